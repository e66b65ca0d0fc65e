"""A token bucket per connection: ``rate`` messages a second, bursts of ``burst``."""


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "updated", "refused_in_a_row")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now
        #: Messages refused since the last one that passed.
        self.refused_in_a_row = 0

    def take(self, now: float) -> bool:
        """Spend a token if there is one.  ``now`` in seconds, monotonic."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False
