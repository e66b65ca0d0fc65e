"""What every monitor shares: the decorator, one connection per monitor object, supervision.

A monitor object (:class:`~realtimemagic.monitors.psql.PsqlMonitor`,
:class:`~realtimemagic.monitors.redis.RedisMonitor`) owns one connection for the channels of all
its functions.  Its decorator turns ``fn(message, pubsub)`` into a :class:`MonitorFunction`, which
RealTimeMagic runs as ``fn(rtm)`` when it is in ``rtm.monitors``.  Of the running functions of
one monitor object, the first one started drives the connection; the others stand by and take
over if it stops.  A message goes to the running functions subscribed to its channel, in the
driving greenlet, one after the other (so in the order they arrived).

The connection's life, driven by :meth:`Monitor._serve`::

    connecting --opened, subscribed--> listening --lost--> reconnecting --opened--> listening
        |                                                    ^      |
        +--failed----------------------------------------------+  +--failed: wait, longer each time

"Lost" is an error or end of file on the connection, or no answer to the keepalive check (a
``SELECT 1`` or ``PING`` sent after ``keepalive_interval`` seconds, answered within
``check_timeout``), so a half-open connection is found within ``keepalive_interval +
check_timeout`` seconds even when nothing is published.  The waits between attempts double from
``backoff_initial`` to ``backoff_max``; they start again from ``backoff_initial`` once a
connection has stayed up for ``backoff_max`` seconds.
"""
import functools
import logging
import time
from typing import Any, Callable, Dict, Hashable, Iterable, List, Optional, Set, Tuple, Type

import gevent
from gevent.lock import Semaphore

from ..backoff import Backoff
from ..exceptions import ConfigError, ConnectionLost, MonitorError  # noqa: F401 (re-exported)
from ..config import FIXED

log = logging.getLogger("realtimemagic.monitors")

# The defaults of the keywords below, each explained in config.FixedValues.
KEEPALIVE_INTERVAL = FIXED.monitor_keepalive_interval
CHECK_TIMEOUT = FIXED.monitor_check_timeout
CONNECT_TIMEOUT = FIXED.monitor_connect_timeout
BACKOFF_INITIAL = FIXED.monitor_backoff_initial
BACKOFF_MAX = FIXED.monitor_backoff_max
BACKOFF_JITTER = FIXED.monitor_backoff_jitter
TCP_KEEPALIVE_PROBES = FIXED.tcp_keepalive_probes

# Connection states, as status() reports them.
IDLE = "idle"                  # no function of the monitor has been started
CONNECTING = "connecting"      # opening the first connection
LISTENING = "listening"        # connected and subscribed
RECONNECTING = "reconnecting"  # the connection was lost or could not be opened: retrying
STOPPED = "stopped"            # every function of the monitor has stopped


class MonitorFunction:
    """What a monitor's decorator returns.  Called with one argument (``fn(rtm)``, as
    RealTimeMagic calls the functions of ``rtm.monitors``) it runs the monitor until it is
    killed; called with two (``fn(message, pubsub)``) it is the decorated function itself."""

    __name__: str  # the decorated function's, set by update_wrapper

    def __init__(self, monitor: "Monitor", function: Callable[[Any, Any], Any],
                 key: Hashable) -> None:
        functools.update_wrapper(self, function)
        self.monitor = monitor
        self.function = function
        self.key = key  # what it listens to: a channel (PostgreSQL), a (kind, name) pair (Redis)

    def __call__(self, *args: Any) -> Any:
        if len(args) == 1:
            # Every process runs its monitors and sees every notification: what a function
            # publishes through its ``pubsub`` goes to this process's clients only, so that
            # each client gets it once however many processes share the broker.
            rtm = args[0]
            return self.monitor.run(self, getattr(rtm, "local", rtm))
        return self.function(*args)

    def status(self) -> Dict[str, Any]:
        """The status of its monitor object (see :meth:`Monitor.status`), with ``function``:
        this function's name."""
        return dict(self.monitor.status(), function=self.__name__)

    def __repr__(self) -> str:
        return "<%s %r on %s>" % (type(self).__name__, self.key, self.monitor.name)


class Monitor:
    """The base of monitor objects: subclasses open, subscribe, listen and close one kind of
    connection; this class runs it, with the supervision described in the module docstring.

    Keywords (seconds): ``keepalive_interval``, ``check_timeout``, ``connect_timeout``,
    ``backoff_initial``, ``backoff_max``, with the defaults of this module's constants.
    """

    kind = "monitor"
    #: The exceptions that mean "the connection is lost" (subclasses add their library's).
    connection_errors: Tuple[Type[BaseException], ...] = (ConnectionLost, OSError)

    def __init__(self, target: str, *, keepalive_interval: float = KEEPALIVE_INTERVAL,
                 check_timeout: float = CHECK_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT,
                 backoff_initial: float = BACKOFF_INITIAL,
                 backoff_max: float = BACKOFF_MAX) -> None:
        for keyword, value in (("keepalive_interval", keepalive_interval),
                               ("check_timeout", check_timeout),
                               ("connect_timeout", connect_timeout),
                               ("backoff_initial", backoff_initial),
                               ("backoff_max", backoff_max)):
            if not value > 0:
                raise ConfigError("%s monitor: %s must be a positive number of seconds, not "
                                  "%r" % (self.kind, keyword, value))
        if backoff_max < backoff_initial:
            raise ConfigError("%s monitor: backoff_max (%r) is shorter than backoff_initial "
                              "(%r)" % (self.kind, backoff_max, backoff_initial))
        self.target = target  # what it connects to, for people: no password
        self.name = "%s monitor (%s)" % (self.kind, target)
        self.keepalive_interval = keepalive_interval
        self.check_timeout = check_timeout
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._running: List[Tuple[MonitorFunction, Any]] = []  # (function, pubsub), started
        self._slot = Semaphore(1)  # held by the greenlet that drives the connection
        self._subscribed: Set[Any] = set()  # keys: comparable, of one kind per monitor
        self._state = IDLE
        self._state_since = time.time()
        self._lost_at: Optional[float] = None  # monotonic time the connection was lost
        self._counters = {"connections": 0, "reconnects": 0, "failed_attempts": 0,
                          "notifications": 0, "handler_errors": 0}
        self._last_error: Optional[str] = None
        self._last_error_at: Optional[float] = None
        self._last_handler_error: Optional[str] = None
        self._last_outage: Optional[float] = None
        self._next_attempt_in: Optional[float] = None

    # -- what subclasses provide ---------------------------------------------------------------

    def _open(self) -> Any:
        """Open a connection (the caller bounds it by ``connect_timeout``)."""
        raise NotImplementedError

    def _subscribe(self, connection: Any, keys: List[Any]) -> None:
        """Start listening to ``keys`` (the caller bounds it by ``check_timeout``)."""
        raise NotImplementedError

    def _unsubscribe(self, connection: Any, keys: List[Any]) -> None:
        raise NotImplementedError

    def _listen(self, connection: Any) -> None:
        """Deliver what arrives, check an idle connection every ``keepalive_interval``, call
        :meth:`_sync` now and then; never return: raise one of ``connection_errors`` when the
        connection is lost."""
        raise NotImplementedError

    def _close(self, connection: Any) -> None:
        """Close the connection; must neither raise nor wait."""
        raise NotImplementedError

    def _describe(self, keys: Iterable[Any]) -> Dict[str, Any]:
        """What status() says of the subscribed keys."""
        return {"channels": sorted(keys)}

    # -- the decorator ---------------------------------------------------------------------------

    def _decorator(self, key: Hashable) -> Callable[[Callable], MonitorFunction]:
        def decorate(function: Callable[[Any, Any], Any]) -> MonitorFunction:
            return MonitorFunction(self, function, key)
        return decorate

    # -- running ---------------------------------------------------------------------------------

    def run(self, function: MonitorFunction, pubsub: Any) -> None:
        """Run ``function`` (one of this monitor's) for ``pubsub`` until the greenlet is killed:
        the first running function of the monitor drives the connection, the others wait to
        take over."""
        entry = (function, pubsub)
        self._running.append(entry)
        try:
            gevent.sleep(0)  # the functions started with this one join before it subscribes
            with self._slot:  # no deadline: a standby waits as long as the driver runs
                self._serve()
        except Exception as error:  # a bug: recorded, then up to RealTimeMagic's supervisor
            self._last_error, self._last_error_at = _describe_error(error), time.time()
            raise
        finally:
            self._running.remove(entry)
            if not self._running:
                self._set_state(STOPPED)

    def _serve(self) -> None:
        """Keep a connection open and subscribed, for as long as the greenlet lives."""
        backoff = Backoff(self.backoff_initial, self.backoff_max, BACKOFF_JITTER)
        while True:
            connection = None
            listening_since = None
            self._set_state(RECONNECTING if self._counters["connections"] else CONNECTING)
            try:
                with gevent.Timeout(self.connect_timeout, ConnectionLost(
                        "not connected and subscribed within %g s" % self.connect_timeout)):
                    connection = self._open()
                    self._sync(connection)
                listening_since = time.monotonic()
                self._now_listening()
                self._listen(connection)
                raise ConnectionLost("stopped listening")  # _listen never returns
            except self.connection_errors as error:
                self._connection_failed(error, was_listening=listening_since is not None)
            finally:
                if connection is not None:
                    self._close(connection)
                self._subscribed.clear()
            if (listening_since is not None
                    and time.monotonic() - listening_since >= self.backoff_max):
                backoff.reset()
            self._next_attempt_in = backoff.next()
            gevent.sleep(self._next_attempt_in)
            self._next_attempt_in = None

    def _sync(self, connection: Any) -> None:
        """Subscribe to what the running functions want, and only that."""
        wanted = {function.key for function, _ in self._running}
        added, removed = wanted - self._subscribed, self._subscribed - wanted
        if not added and not removed:
            return
        with gevent.Timeout(self.check_timeout, ConnectionLost(
                "(un)subscribing not answered within %g s" % self.check_timeout)):
            if added:
                self._subscribe(connection, sorted(added))
                self._subscribed |= added
            if removed:
                self._unsubscribe(connection, sorted(removed))
                self._subscribed -= removed

    def _deliver(self, key: Hashable, message: Any) -> None:
        """Hand ``message`` to each running function listening to ``key``; one that raises is
        logged and the others, and the next messages, go on."""
        self._counters["notifications"] += 1
        for function, pubsub in list(self._running):
            if function.key != key:
                continue
            try:
                function.function(message, pubsub)
            except Exception as error:
                self._counters["handler_errors"] += 1
                self._last_handler_error = _describe_error(error)
                log.exception("monitor function %s raised on %r; it gets the next message",
                              function.__name__, message)

    # -- state -----------------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state, self._state_since = state, time.time()

    def _now_listening(self) -> None:
        self._counters["failed_attempts"] = 0
        self._counters["connections"] += 1
        if self._lost_at is not None:
            self._counters["reconnects"] += 1
            self._last_outage = time.monotonic() - self._lost_at
            log.warning("%s: listening again (%s), %.2f s after the connection was lost",
                        self.name, self._subscriptions_text(), self._last_outage)
            self._lost_at = None
        else:
            log.info("%s: listening (%s)", self.name, self._subscriptions_text())
        self._set_state(LISTENING)

    def _subscriptions_text(self) -> str:
        return "; ".join("%s %s" % (what, " ".join(names))
                         for what, names in self._describe(self._subscribed).items() if names)

    def _connection_failed(self, error: BaseException, was_listening: bool) -> None:
        self._last_error, self._last_error_at = _describe_error(error), time.time()
        if was_listening:
            self._lost_at = time.monotonic()
            log.warning("%s: connection lost (%s); reconnecting", self.name, self._last_error)
        else:
            self._counters["failed_attempts"] += 1
            if self._lost_at is None and self._counters["connections"]:
                self._lost_at = time.monotonic()
            log.warning("%s: cannot connect (%s), attempt %d", self.name, self._last_error,
                        self._counters["failed_attempts"])
        self._set_state(RECONNECTING)

    def status(self) -> Dict[str, Any]:
        """The monitor's state as a JSON-ready dict: ``monitor`` (its kind: psql, redis),
        ``target`` (the DSN or URL, without password), ``state`` (idle, connecting, listening,
        reconnecting, stopped) and since when (``since``, Unix time), what it listens to,
        counters (``connections`` opened, ``reconnects`` after a loss, ``failed_attempts`` in a
        row, ``notifications`` received, ``handler_errors``), ``last_error`` (connection) and
        ``last_handler_error`` (None: none yet), ``last_outage`` (seconds from the last loss
        to listening again) and ``next_attempt_in`` (seconds, while waiting to reconnect)."""
        result = {"monitor": self.kind, "target": self.target, "state": self._state,
                  "since": self._state_since,
                  "functions": sorted({function.__name__ for function, _ in self._running}),
                  "last_error": self._last_error, "last_error_at": self._last_error_at,
                  "last_handler_error": self._last_handler_error,
                  "last_outage": self._last_outage, "next_attempt_in": self._next_attempt_in,
                  "keepalive_interval": self.keepalive_interval,
                  "check_timeout": self.check_timeout,
                  "backoff": [self.backoff_initial, self.backoff_max]}
        result.update(self._counters)
        result.update(self._describe(self._subscribed))
        return result


def _describe_error(error: BaseException) -> str:
    text = " ".join(str(error).split())  # libraries' messages span lines
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__
