"""Channel history and the recovery decision, without I/O (time is passed in).

An entry is (offset, message, time).  Offsets increase by one per message on a channel; the
epoch names one continuous history, and changes when it is lost.
"""
import itertools
import json
import uuid
from collections import OrderedDict
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

from .. import jsoncodec
from ..config import FIXED, Settings

_DEFAULTS = Settings()


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


def recover(since_offset: int, since_epoch: Optional[str],
            snapshot: Snapshot) -> Tuple[bool, List[Entry]]:
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


# What the memory:// history charges, in bytes, measured on CPython 3.11 (64-bit) with a
# margin: a channel (its slot in the LRU, its record, its list) and an entry (the tuple, its
# offset and time), besides the text of the channel name and of the message's JSON.
STR_HEADER = FIXED.memory_str_header
CHANNEL_COST = FIXED.memory_channel_cost
ENTRY_COST = FIXED.memory_entry_cost
SHRINK_FROM = FIXED.memory_shrink_from  # channels: below this the table is small enough to keep

_encode = jsoncodec.dumps


def text_cost(text: str) -> int:
    """Bytes a str of ``text`` takes at most in memory (CPython's compact strings: one byte a
    character for ASCII, up to four otherwise, plus the object's header)."""
    return STR_HEADER + len(text) * (1 if text.isascii() else 4)


class ChannelHistory:
    """One channel's entries (oldest first; their message as JSON text), the latest offset
    given out, the generation that names its epoch, and the bytes charged for it."""

    __slots__ = ("entries", "top", "generation", "cost")

    def __init__(self, generation: int, cost: int) -> None:
        # A list, not a deque: a deque takes 600 bytes even for one entry, and a history is
        # short (history_size), so dropping its oldest entry is a small memmove.
        self.entries: List[Entry] = []
        self.top = 0
        self.generation = generation
        self.cost = cost


class MemoryHistory:
    """History kept in this process (the memory:// broker), bounded in channels and bytes.

    Channels are kept in the order of their last message: past ``max_channels`` or
    ``max_bytes``, the channel whose last message is the oldest loses its whole history.  A
    channel whose history was lost (dropped, expired) and starts again gets a new epoch, so a
    client that saw the old one is told it cannot recover.
    """

    def __init__(self, max_channels: int = _DEFAULTS.history_max_channels,
                 max_bytes: int = _DEFAULTS.history_max_bytes) -> None:
        self.max_channels = max_channels
        self.max_bytes = max_bytes
        self.epoch = new_epoch()  # this process's; a channel's epoch is "<epoch>.<generation>"
        self._channels: "OrderedDict[str, ChannelHistory]" = OrderedDict()
        self._generations = itertools.count(1)
        self._largest = 0  # the most channels held since the table was last rebuilt
        self.bytes = 0
        self.entry_count = 0
        self.dropped = 0  # channels dropped to stay within the bounds

    def channel_epoch(self, history: ChannelHistory) -> str:
        return "%s.%d" % (self.epoch, history.generation)

    def append(self, channel: str, message: Any, size: int, ttl: float,
               now: float) -> Tuple[int, str]:
        """Store ``message`` as the newest entry of ``channel`` (at most ``size`` kept); its
        offset and the channel's epoch."""
        text = _encode(message)
        history = self._channels.get(channel)
        if history is None:
            history = self._channels[channel] = ChannelHistory(
                next(self._generations), CHANNEL_COST + text_cost(channel))
            self.bytes += history.cost
            if len(self._channels) > self._largest:
                self._largest = len(self._channels)
        else:
            self._channels.move_to_end(channel)
        history.top += 1
        entry = Entry(history.top, text, now)
        history.entries.append(entry)
        self._charge(history, ENTRY_COST + text_cost(text), 1)
        excess = len(history.entries) - size
        if excess > 0:
            for old in history.entries[:excess]:
                self._charge(history, -ENTRY_COST - text_cost(old.message), -1)
            del history.entries[:excess]
        epoch = self.channel_epoch(history)
        self._shed(keep=channel)
        return history.top, epoch

    def _charge(self, history: ChannelHistory, cost: int, entries: int) -> None:
        history.cost += cost
        self.bytes += cost
        self.entry_count += entries

    def _shed(self, keep: str) -> None:
        """Drop the least recently published channels until within both bounds (never the one
        just published to: a message bigger than max_bytes alone is still delivered)."""
        while len(self._channels) > 1 and (len(self._channels) > self.max_channels
                                           or self.bytes > self.max_bytes):
            oldest = next(iter(self._channels))
            if oldest == keep:
                break
            self._forget(oldest)
            self.dropped += 1

    def _forget(self, channel: str) -> None:
        history = self._channels.pop(channel)
        self.bytes -= history.cost
        self.entry_count -= len(history.entries)

    def snapshot(self, channel: str, ttl: float, now: float) -> Snapshot:
        history = self._channels.get(channel)
        if history is None:
            return Snapshot(None, [], 0)  # no history (never had one, or lost it)
        entries = [entry._replace(message=json.loads(entry.message))
                   for entry in unexpired(history.entries, ttl, now)]
        return Snapshot(self.channel_epoch(history), entries, history.top)

    def sweep(self, ttl_of: Callable[[str], float], now: float) -> int:
        """Forget channels whose newest entry has expired (``ttl_of(channel)`` in seconds, 0:
        never); the number forgotten."""
        expired = [channel for channel, history in self._channels.items()
                   for ttl in (ttl_of(channel),)
                   if ttl and (not history.entries or history.entries[-1].time <= now - ttl)]
        for channel in expired:
            self._forget(channel)
        if self._largest > SHRINK_FROM and len(self._channels) < self._largest // 4:
            # A dict's table never shrinks on deletions: copy it into one of the right size.
            self._channels = OrderedDict(self._channels)
            self._largest = len(self._channels)
        return len(expired)

    def __len__(self) -> int:
        return len(self._channels)

