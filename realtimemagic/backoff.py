"""The waits between attempts to reconnect or restart: exponential, bounded, optionally jittered.
Shared by the brokers, the monitors and RealTimeMagic's supervision of monitor functions."""
import random


class Backoff:
    """The waits between attempts: ``initial``, doubling up to ``maximum`` (seconds), each
    shortened by a random part up to ``jitter`` so that many servers do not retry in step."""

    def __init__(self, initial: float, maximum: float, jitter: float = 0.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._next = initial

    def next(self) -> float:
        """The wait before the next attempt, in seconds."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * (1.0 - self.jitter * random.random())

    def reset(self) -> None:
        self._next = self.initial
