"""Channel history and the recovery decision, without I/O (time is passed in).

An entry is (offset, message, time).  Offsets increase by one per message on a channel; the
epoch names one continuous history, and changes when it is lost.
"""
import uuid
from collections import deque
from typing import Any, Deque, Dict, List, NamedTuple, Optional, Tuple


class Entry(NamedTuple):
    offset: int
    message: Any
    time: float


class Snapshot(NamedTuple):
    """What a store holds for a channel: its epoch (None: no history at all), its entries in
    order, and the latest offset given out."""
    epoch: Optional[str]
    entries: List[Entry]
    top: int


def new_epoch() -> str:
    return uuid.uuid4().hex[:12]


def recover(since_offset: int, since_epoch: str, snapshot: Snapshot) -> Tuple[bool, List[Entry]]:
    """Whether a client that saw up to ``since_offset`` of ``since_epoch`` can be given exactly
    what it missed, and those entries."""
    if since_epoch == "" and since_offset == 0:
        # The client subscribed before the channel had any history: everything is new to it.
        since_epoch = snapshot.epoch
    if snapshot.epoch is None or since_epoch != snapshot.epoch or since_offset > snapshot.top:
        return since_epoch is None and snapshot.top == 0, []
    if since_offset == snapshot.top:
        return True, []
    if not snapshot.entries or snapshot.entries[0].offset > since_offset + 1:
        return False, []  # the history no longer reaches back far enough
    return True, [entry for entry in snapshot.entries if entry.offset > since_offset]


def unexpired(entries: List[Entry], ttl: float, now: float) -> List[Entry]:
    if not ttl:
        return entries
    return [entry for entry in entries if entry.time > now - ttl]


class MemoryHistory:
    """History kept in this process (the memory:// broker): one epoch per process start."""

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self._entries: Dict[str, Deque[Entry]] = {}
        self._tops: Dict[str, int] = {}

    def append(self, channel: str, message: Any, size: int, ttl: float,
               now: float) -> Tuple[int, str]:
        entries = self._entries.get(channel)
        if entries is None or entries.maxlen != size:
            entries = self._entries[channel] = deque(entries or (), maxlen=size)
        offset = self._tops.get(channel, 0) + 1
        self._tops[channel] = offset
        entries.append(Entry(offset, message, now))
        return offset, self.epoch

    def snapshot(self, channel: str, ttl: float, now: float) -> Snapshot:
        entries = unexpired(list(self._entries.get(channel, ())), ttl, now)
        return Snapshot(self.epoch, entries, self._tops.get(channel, 0))

    def sweep(self, ttl_of, now: float) -> None:
        """Forget channels whose newest entry has expired (``ttl_of(channel)`` in seconds)."""
        for channel, entries in list(self._entries.items()):
            ttl = ttl_of(channel)
            if ttl and (not entries or entries[-1].time <= now - ttl):
                del self._entries[channel]
