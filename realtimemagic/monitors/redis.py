"""Redis pub/sub monitors (SPEC section 8)::

    from realtimemagic.monitors.redis import RedisMonitor
    redis_monitor = RedisMonitor(url='redis://127.0.0.1:6379/0')

    @redis_monitor.monitor('events')          # SUBSCRIBE events
    def events(message, pubsub):
        pubsub.publish('events', json.loads(message.data))

    @redis_monitor.pattern('jobs:*')          # PSUBSCRIBE jobs:*
    def jobs(message, pubsub):
        pubsub.publish(message.channel, json.loads(message.data))

    rtm.monitors.extend([events, jobs])

``message`` is a :class:`RedisMessage`: ``channel``, ``data`` (text: the payload decoded as
UTF-8, undecodable bytes replaced), ``pattern`` (the pattern that matched, None for a channel)
and ``raw`` (the payload's bytes).  One connection serves all the channels and patterns of a
RedisMonitor.  redis-py is cooperative once gevent has monkey-patched the standard library
(``realtimemagic.patch_all()``, which ``rtm-serve`` calls); the monitor refuses to run without
it.  redis-py's own reconnection is turned off: the monitor reconnects, with the supervision of
:mod:`realtimemagic.monitors.base` (see docs/monitors.md).
"""
import logging
import socket
import time
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

from gevent import monkey

from ..exceptions import ConfigError, MissingExtra

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as error:
    raise MissingExtra("RedisMonitor", "redis-py", "redis") from error

from ..brokers import redis_urls
from .base import TCP_KEEPALIVE_PROBES, ConnectionLost, Monitor, MonitorError, MonitorFunction

log = logging.getLogger("realtimemagic.monitors")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
CLIENT_NAME = "realtimemagic-monitor"  # CLIENT LIST's name, unless the URL has ?client_name=
PING_MESSAGE = "realtimemagic-keepalive"

CHANNEL, PATTERN = "channel", "pattern"


class RedisMessage(NamedTuple):
    channel: str
    data: str
    pattern: Optional[str]
    raw: bytes


class RedisMonitor(Monitor):
    """One pub/sub connection for the channels and patterns of its functions.  ``url`` is a
    redis:// (or rediss://, unix://) URL, or a redis+sentinel:// URL (each reconnection asks
    the sentinels for the master, so the monitor follows a failover); ``client_name`` is used
    when the URL has none.  The other keywords are the supervision timings of
    :class:`~realtimemagic.monitors.base.Monitor`.
    """

    kind = "redis"
    connection_errors = (redis.RedisError, ConnectionLost, OSError)

    def __init__(self, url: str = DEFAULT_URL, *, client_name: str = CLIENT_NAME,
                 **timings: float) -> None:
        if len(redis_urls.split_shards(url)) > 1:
            raise ConfigError("a RedisMonitor listens to one Redis server, not a list: %s"
                              % redis_urls.without_password(url))
        self.url = url
        super().__init__(redis_urls.without_password(url), **timings)
        self.client_name = client_name
        self._client: Optional[redis.Redis] = None

    def monitor(self, channel: str) -> Callable[[Callable], MonitorFunction]:
        """Decorator: ``fn(message, pubsub)`` is called for each message on ``channel``."""
        return self._decorator((CHANNEL, _name(channel, "channel")))

    def pattern(self, pattern: str) -> Callable[[Callable], MonitorFunction]:
        """Decorator: ``fn(message, pubsub)`` is called for each message on a channel matching
        the glob-style ``pattern`` (``message.pattern`` says which)."""
        return self._decorator((PATTERN, _name(pattern, "pattern")))

    def _connection_options(self) -> Dict[str, Any]:
        """TCP keepalives after keepalive_interval idle seconds, then TCP_KEEPALIVE_PROBES
        probes within check_timeout; unacknowledged writes time out after check_timeout."""
        keepalive = {}
        for option, value in (("TCP_KEEPIDLE", self.keepalive_interval),
                              ("TCP_KEEPINTVL", self.check_timeout / TCP_KEEPALIVE_PROBES),
                              ("TCP_KEEPCNT", TCP_KEEPALIVE_PROBES),
                              ("TCP_USER_TIMEOUT", self.check_timeout * 1000)):  # ms
            if hasattr(socket, option):  # Linux has them all; others some
                keepalive[getattr(socket, option)] = max(1, int(value))
        return {"client_name": self.client_name,
                "socket_connect_timeout": self.connect_timeout,
                "socket_timeout": self.check_timeout,
                "socket_keepalive": True, "socket_keepalive_options": keepalive,
                "health_check_interval": 0,  # the monitor checks, and notices the missing PONG
                "retry": Retry(NoBackoff(), 0, supported_errors=())}  # the monitor reconnects

    # -- the connection --------------------------------------------------------------------------

    def _open(self) -> Any:
        if not monkey.is_module_patched("socket"):
            raise MonitorError("RedisMonitor needs gevent's monkey-patching: call "
                               "realtimemagic.patch_all() first thing (rtm-serve does), or "
                               "redis-py would stop the whole server while it waits")
        if self._client is None:
            self._client = redis_urls.client(self.url, **self._connection_options())
        return self._client.pubsub(ignore_subscribe_messages=False)

    def _subscribe(self, pubsub: Any, keys: List[Tuple[str, str]]) -> None:
        channels, patterns = _split(keys)
        if channels:
            pubsub.subscribe(*channels)
        if patterns:
            pubsub.psubscribe(*patterns)

    def _unsubscribe(self, pubsub: Any, keys: List[Tuple[str, str]]) -> None:
        channels, patterns = _split(keys)
        if channels:
            pubsub.unsubscribe(*channels)
        if patterns:
            pubsub.punsubscribe(*patterns)

    def _listen(self, pubsub: Any) -> None:
        next_ping = time.monotonic() + self.keepalive_interval
        pong_due: Optional[float] = None  # a PING is unanswered; the PONG must come by then
        while True:
            self._sync(pubsub)
            now = time.monotonic()
            if pong_due is not None and now >= pong_due:
                raise ConnectionLost("no answer to PING within %g s" % self.check_timeout)
            if pong_due is None and now >= next_ping:
                pubsub.ping(PING_MESSAGE)
                pong_due = now + self.check_timeout
            deadline = pong_due if pong_due is not None else next_ping
            message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is None:
                continue
            kind = message["type"]
            if kind == "pong":
                pong_due, next_ping = None, time.monotonic() + self.keepalive_interval
            elif kind == "message":
                channel = _text(message["channel"])
                self._deliver((CHANNEL, channel), _message(channel, message["data"], None))
            elif kind == "pmessage":
                pattern = _text(message["pattern"])
                self._deliver((PATTERN, pattern),
                              _message(_text(message["channel"]), message["data"], pattern))

    def _close(self, pubsub: Any) -> None:
        try:
            pubsub.close()
        except (redis.RedisError, OSError) as error:
            log.debug("%s: closing: %s", self.name, error)

    def _describe(self, keys: Iterable[Tuple[str, str]]) -> Dict[str, Any]:
        channels, patterns = _split(keys)
        return {"channels": sorted(channels), "patterns": sorted(patterns)}


def _name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError("a Redis %s is a non-empty string, not %r" % (what, name))
    return name


def _split(keys: Iterable[Tuple[str, str]]) -> Tuple[List[str], List[str]]:
    pairs = list(keys)
    return ([name for kind, name in pairs if kind == CHANNEL],
            [name for kind, name in pairs if kind == PATTERN])


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _message(channel: str, data: Any, pattern: Optional[str]) -> RedisMessage:
    raw = data if isinstance(data, bytes) else str(data).encode("utf-8")
    return RedisMessage(channel, raw.decode("utf-8", "replace"), pattern, raw)


__all__ = ["RedisMonitor", "RedisMessage", "MonitorFunction", "DEFAULT_URL", "CLIENT_NAME"]
