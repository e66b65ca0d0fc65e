"""What clients did wrong or what the process ran out of (and the frames it could not write),
counted and logged without flooding.

An attacker controls how often these happen (a malformed request, a request that trickles, a
connection refused because the process is full), so each one is counted, and logged at most once
per :data:`LOG_INTERVAL` per kind, in one line without a traceback: the line says how many more
were counted since the previous one.  The counts are per process (``/api/stats`` and
``/metrics`` show them), as the file descriptors and the log they protect are.
"""
import logging
import time
from typing import Callable, Dict

from .config import FIXED

log = logging.getLogger("realtimemagic.incidents")

#: Seconds between two log lines of one kind.
LOG_INTERVAL = FIXED.incident_log_interval

#: kind -> what the log line says it is.  The kinds are the keys of ``counts``.
KINDS = {
    "malformed_request": "malformed request",
    "header_timeout": "request headers not complete within header_timeout",
    "body_timeout": "request body not complete within body_timeout",
    "ping_timeout": "WebSocket ping not answered by the next heartbeat",
    "half_open_limit": "connection refused: max_connections requests waiting for their headers",
    "descriptors_exhausted": "out of file descriptors",
    "write_failed": "a WebSocket frame could not be written; that connection was closed with 1011",
}


class Incidents:
    """Counters by kind, and a log that says each kind at most once per ``interval``."""

    def __init__(self, interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.counts: Dict[str, int] = dict.fromkeys(KINDS, 0)
        self._logged_at: Dict[str, float] = {}
        self._unlogged: Dict[str, int] = dict.fromkeys(KINDS, 0)

    def record(self, kind: str, detail: str = "") -> None:
        """Count one incident of ``kind``; log it unless that kind was logged within the
        interval.  ``detail``: what this one was (who, what was wrong), without a traceback."""
        now = self.clock()
        self.counts[kind] += 1
        last = self._logged_at.get(kind)
        if last is not None and now - last < self.interval:
            self._unlogged[kind] += 1
            return
        self._logged_at[kind] = now
        more, self._unlogged[kind] = self._unlogged[kind], 0
        log.warning("%s%s%s (%d in all; further ones are counted and logged at most every "
                    "%g s)", KINDS[kind], ": " + detail if detail else "",
                    "; %d more since the last line" % more if more else "", self.counts[kind],
                    self.interval)


#: The process's incidents (the servers, the endpoints and the statistics share them).
incidents = Incidents()
