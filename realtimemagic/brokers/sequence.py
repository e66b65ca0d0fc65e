"""Numbering what an instance sends through the broker, so that the others drop what arrives
twice and count what never arrives.  No I/O.

Each message an instance queues for the broker gets two numbers in its envelope: ``s``, counting
every message of this instance (its origin), and ``k``, counting its messages on that channel.
A message that is sent again after a lost connection keeps its numbers (it may have reached
Redis before the connection broke: a failover, a restart).  A receiver remembers, for each
channel it has local subscribers for and each origin it heard on it, the last ``s`` and ``k``:

- ``s`` not above the last one: a duplicate, dropped;
- ``k`` more than one above the last one: the messages between were lost for this instance
  (not delivered by the broker while it was away, or dropped from the sender's full queue).

What cannot be counted: messages lost before the first one a receiver hears from an origin on a
channel, and those after the last one it hears (they are counted when the next one arrives).
"""
from collections import OrderedDict
from typing import Dict, NamedTuple, Optional, Tuple

from ..config import FIXED

ORIGINS_PER_CHANNEL = FIXED.broker_origins_per_channel  # instances, Publisher helpers


class Numbers(NamedTuple):
    sent: int        # ``s``: this origin's messages so far
    on_channel: int  # ``k``: this origin's messages on the channel so far


class Sequencer:
    """The sender's side.  ``channels`` bounds the channels it keeps a count for: past it the
    least recently used one starts again from 1, and receivers then count no gap across the
    restart."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._sent = 0
        self._counts: "OrderedDict[str, int]" = OrderedDict()

    def next(self, channel: str) -> Numbers:
        self._sent += 1
        count = self._counts.pop(channel, 0) + 1
        self._counts[channel] = count
        if len(self._counts) > self.channels:
            self._counts.popitem(last=False)
        return Numbers(self._sent, count)


class Arrivals:
    """The receiver's side: what it has heard, per channel and origin."""

    def __init__(self) -> None:
        self._last: Dict[str, "OrderedDict[str, Tuple[int, int]]"] = {}

    def check(self, channel: str, origin: str, numbers: Optional[Numbers]) -> Tuple[bool, int]:
        """Whether to deliver this message (False: a duplicate), and how many messages of
        ``origin`` on ``channel`` were lost just before it."""
        if numbers is None:  # a sender that does not number its messages
            return True, 0
        heard = self._last.setdefault(channel, OrderedDict())
        last = heard.pop(origin, None)
        if last is not None and numbers.sent <= last[0]:
            heard[origin] = last
            return False, 0
        heard[origin] = (numbers.sent, numbers.on_channel)
        if len(heard) > ORIGINS_PER_CHANNEL:
            heard.popitem(last=False)
        if last is None or numbers.on_channel <= last[1]:
            return True, 0  # first heard, or the sender's count started again
        return True, numbers.on_channel - last[1] - 1

    def forget(self, channel: str) -> None:
        """No local subscriber is left on ``channel``."""
        self._last.pop(channel, None)
