"""Monitors: what the server watches besides its clients (SPEC section 8).

- :mod:`realtimemagic.monitors.psql`: ``PsqlMonitor``, PostgreSQL LISTEN/NOTIFY (psycopg2).
- :mod:`realtimemagic.monitors.redis`: ``RedisMonitor``, Redis pub/sub channels and patterns.
- :mod:`realtimemagic.monitors.base`: what they share: the decorator, one connection per monitor
  object, supervision (reconnection with backoff, keepalive checks), ``status()``.

A monitor function is any ``fn(rtm)`` in ``rtm.monitors``; the decorators of the monitor objects
make such functions.  :func:`monitor_status` finds the monitor objects behind an rtm's functions
(the server's stats report them).  Importing this package imports neither psycopg2 nor redis.
"""
from typing import Any, Dict, List

from .base import Monitor, MonitorError, MonitorFunction, ConnectionLost

__all__ = ["Monitor", "MonitorError", "MonitorFunction", "ConnectionLost", "monitors_of",
           "monitor_status"]


def monitors_of(rtm: Any) -> List[Monitor]:
    """The monitor objects whose functions are in ``rtm.monitors``, each once, in order."""
    found: List[Monitor] = []
    for function in rtm.monitors:
        monitor = getattr(function, "monitor", None)
        if isinstance(monitor, Monitor) and not any(monitor is known for known in found):
            found.append(monitor)
    return found


def monitor_status(rtm: Any) -> List[Dict[str, Any]]:
    """``status()`` of each monitor object of ``rtm`` (see :meth:`Monitor.status`)."""
    return [monitor.status() for monitor in monitors_of(rtm)]
