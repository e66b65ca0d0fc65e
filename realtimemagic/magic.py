"""RealTimeMagic: a pub/sub server with plain-Python hooks (SPEC section 2).

    from realtimemagic import RealTimeMagic
    rtm = RealTimeMagic()      # 127.0.0.1:9000, SockJS at /pubsub, in-process broker
    rtm.start()                # blocks; SIGINT/SIGTERM stop it gracefully

It is the SockJS handler of its endpoint: each incoming message is handled in its own greenlet
of the bounded hook pool, through the receivers' chain (see :mod:`realtimemagic.pubsub.lane`
for the order guarantees).
"""
import html
import logging
import time
from collections import defaultdict
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence

import gevent
from gevent.event import Event
from gevent.pool import Pool

from . import brokers, config, routing
from .api import start_api
from .auth.origins import automatic_rule
from .backoff import Backoff
from .exceptions import ConfigError, RequestRefused
from .pubsub import namespaces, protocol
from .pubsub.channels import ChannelRegistry
from .pubsub.connection import Connection
from .pubsub.handler import pubsub_receiver
from .pubsub.lane import Lane
from .pubsub.namespaces import NamespaceOptions
from .pubsub.ratelimit import TokenBucket
from .runtime.connection import SockJSConnection, SockJSHandler
from .runtime.endpoint import SockJSEndpoint
from .runtime.router import Router
from .runtime.static import StaticFile
from .runtime.threads import LoopThread

log = logging.getLogger("realtimemagic")

RATE_LIMIT_CLOSE = (4029, "Rate limit exceeded")
MONITOR_BACKOFF = (0.5, 30.0)  # seconds: first and longest wait before restarting a monitor
BROKER_START_TIMEOUT = 5.0  # seconds start-up waits for the broker before serving anyway


class RealTimeMagic(SockJSHandler):
    """The server and its hooks.  Keywords are the settings of :mod:`realtimemagic.config`."""

    def __init__(self, **keywords: Any) -> None:
        self.settings = config.build(keywords)
        #: fn(conn, conn_info) after a session opens.
        self.openings: List[Callable] = []
        #: fn(conn, message) for each incoming message; returning False stops the chain.
        self.receivers: List[Callable] = [pubsub_receiver]
        #: fn(conn, channel, message) before a client's publish: False drops, a (channel,
        #: message) tuple replaces, None/True passes.
        self.push_traps: List[Callable] = []
        #: namespace -> authenticators; 'default' applies to every channel.
        self.authenticators: Dict[str, List[Any]] = defaultdict(list)
        #: fn(conn) once when a session ends.
        self.closers: List[Callable] = []
        #: fn(rtm), each run as a supervised greenlet.
        self.monitors: List[Callable] = []
        self.channels = ChannelRegistry(on_first=self._first_subscriber,
                                        on_last=self._last_subscriber)
        #: namespace -> NamespaceOptions (history, presence); see namespace().
        self.namespaces: Dict[str, NamespaceOptions] = namespaces.parse(self.settings.namespaces)
        #: Counters since start, for /api/stats and /metrics.
        self.counters = {"messages_in": 0, "published": 0, "deliveries": 0, "errors": 0}
        self.broker: brokers.Broker = brokers.from_url(self.settings.broker, self._deliver,
                                                       self.settings)
        self.loop_thread = LoopThread()
        self.connections: Dict[SockJSConnection, Connection] = {}
        self._pool: Optional[Pool] = None
        self._app: Optional[Router] = None
        self._monitor_greenlets: List[gevent.Greenlet] = []
        self.api_server: Any = None  # a WSGIServer while the internal API runs
        self._started = False

    def configure(self, **keywords: Any) -> None:
        """Change settings before the server starts (``rtm-serve`` flags use this)."""
        if self._app is not None:
            raise RuntimeError("configure() must come before the server starts")
        self.settings = self.settings.replace(**keywords)
        self.broker = brokers.from_url(self.settings.broker, self._deliver, self.settings)
        if "namespaces" in keywords:
            self.namespaces.update(namespaces.parse(self.settings.namespaces))

    # -- serving -------------------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            self._pool = Pool(self.settings.hook_pool_size)
        return self._pool

    @property
    def app(self) -> Router:
        """The WSGI application: the SockJS endpoint at ``settings.prefix``, the JavaScript
        client at ``{prefix}/realtimemagic.js`` and, with ``demo``, the demo page at ``/``."""
        if self._app is None:
            prefix = self.settings.prefix
            endpoint = SockJSEndpoint(self, self.settings)
            routes = {prefix + "/realtimemagic.js": StaticFile(
                "realtimemagic.js", "application/javascript; charset=UTF-8")}
            if self.settings.demo:
                routes["/"] = StaticFile("demo.html", "text/html; charset=UTF-8", {
                    "{{prefix}}": html.escape(prefix),
                    "{{sockjs_url}}": html.escape(endpoint.sockjs_url)})
            self._app = Router([endpoint], routes=routes)
        return self._app

    def __call__(self, environ, start_response):
        # WSGI, for servers that call the application directly (gunicorn's stock worker).
        if not self._started:
            self.startup()
        return self.app(environ, start_response)

    def startup(self, shared_listeners: bool = False) -> None:
        """Start the background work: the sweeper, the broker, the monitors, the internal API
        (``shared_listeners``: several worker processes bind its port, as under gunicorn)."""
        if self._started:
            return
        self._started = True
        self.loop_thread.bind()
        self._check_namespaces()
        self._choose_origins()
        routing.enable(self)
        self.app.startup()
        if self.settings.api:
            self.api_server = start_api(self, reuse_port=shared_listeners)
        self.broker.start()
        if not self.broker.shared:
            log.info("broker %s (this process only)", self.broker.url_for_logs)
        elif not self.broker.wait_connected(BROKER_START_TIMEOUT):
            log.error("broker %s not reachable yet; serving local clients meanwhile",
                      self.broker.url_for_logs)
        self._monitor_greenlets = [gevent.spawn(self._supervise, monitor)
                                   for monitor in self.monitors]
        self._monitor_greenlets.append(gevent.spawn(self._maintain_forever))

    def _choose_origins(self) -> None:
        """allowed_origins left automatic: with cookie authentication, only the origins it
        trusts (decided once, with the authenticators installed at startup)."""
        rule = automatic_rule(self.settings, self.authenticators)
        if rule is not None:
            for endpoint in self.app.endpoints:
                endpoint.restrict_origins(rule)

    def shutdown(self, timeout: float = 0.0) -> None:
        """Stop the background work; running hooks get up to ``timeout`` seconds to finish."""
        if self._pool is not None and not self._pool.join(timeout=timeout):
            log.warning("%d hooks still running at shutdown", len(self._pool))
        if self.api_server is not None:
            self.api_server.stop(timeout=1)
            self.api_server = None
        for greenlet in self._monitor_greenlets:
            greenlet.kill(block=False)
        self.broker.stop()
        if self._app is not None:
            self._app.shutdown()
        self._started = False

    def close_all(self, code: int, reason: str) -> None:
        self.app.close_all(code, reason)

    def start(self) -> None:
        """Serve until SIGINT or SIGTERM (the seed's ``rtm.start()``).  Logs as ``rtm-serve``
        does (at info level, to stderr) unless the application configured logging."""
        from .runtime.server import Server, configure_logging
        configure_logging()
        Server(self, self.settings.host, self.settings.port, self.settings.shutdown_timeout,
               self.settings).serve_forever()

    def _supervise(self, monitor: Callable) -> None:
        """Run a monitor forever: one that raises or returns is logged and restarted, with
        backoff."""
        backoff = Backoff(*MONITOR_BACKOFF)
        while True:
            started = time.monotonic()
            try:
                monitor(self)
                log.warning("monitor %s returned; restarting", getattr(monitor, "__name__", monitor))
            except Exception:
                log.exception("monitor %s raised; restarting",
                              getattr(monitor, "__name__", monitor))
            if time.monotonic() - started > MONITOR_BACKOFF[1]:
                backoff.reset()
            gevent.sleep(backoff.next())

    # -- namespaces: history and presence ---------------------------------------------------

    def namespace(self, name: str, **options: Any) -> NamespaceOptions:
        """Switch on history or presence for channels ``name:...`` (``default``: channels
        without a namespace): ``history_size``, ``history_ttl``, ``presence``, ``join_leave``."""
        self.namespaces[name] = namespaces.build(options)
        return self.namespaces[name]

    def options_for(self, channel: str) -> NamespaceOptions:
        return namespaces.lookup(self.namespaces, channel)

    def _check_namespaces(self) -> None:
        wanted = [name for name, options in self.namespaces.items()
                  if options.history or options.presence]
        if wanted and not self.broker.keeps_history:
            raise ConfigError("namespaces %s want history or presence, which the broker %s does "
                              "not keep: use memory:// or redis://" % (
                                  ", ".join(sorted(wanted)), self.broker.url_for_logs))

    def joined(self, conn: Connection, channel: str) -> None:
        """``conn`` subscribed to ``channel``: presence and the join event."""
        options = self.options_for(channel)
        if options.presence:
            self.broker.presence_add(channel, conn.session_id, conn.presence_info)
            if options.join_leave:
                self.broker.publish_event(channel, "join", conn.presence_info)

    def left(self, conn: Connection, channel: str) -> None:
        """``conn`` left ``channel``.  Done in a greenlet of its own: this may be called where
        nothing may wait (a slow client closed by a publish)."""
        options = self.options_for(channel)
        if options.presence:
            gevent.spawn(self._leave, channel, conn.session_id, conn.presence_info,
                         options.join_leave)

    def _leave(self, channel: str, key: str, info: Any, announce: bool) -> None:
        try:
            self.broker.presence_remove(channel, key)
        except Exception:
            log.exception("presence: removing %s from %s failed", key, channel)
        if announce:
            self.broker.publish_event(channel, "leave", info)

    def _maintain_forever(self) -> None:
        while True:
            gevent.sleep(self.settings.maintenance_interval)
            try:
                self.broker.maintain(lambda channel: self.options_for(channel).history_ttl)
            except Exception:
                log.exception("maintenance failed")

    # -- publishing ------------------------------------------------------------------------

    def publish(self, channel: str, message: Any) -> None:
        """Publish ``message`` to every subscriber of ``channel``, through the broker.  Never
        blocks on slow clients; callable from any greenlet or thread.  Raises ValueError for a
        bad channel name and for a message that is not strict JSON (NaN, an infinity, a lone
        surrogate in a string), TypeError for a value JSON has no type for: nothing is
        published then."""
        _check(channel, message)
        self._publish(channel, message)

    def _publish(self, channel: str, message: Any) -> None:
        """:meth:`publish` of a checked channel and message."""
        options = self.options_for(channel)
        self.loop_thread.call(self.broker.publish, channel, message,
                              options if options.history else None)

    def publish_local(self, channel: str, message: Any) -> None:
        """Publish to this process's subscribers only, not through the broker: for what every
        process sees anyway (a NOTIFY, a Redis pub/sub message), so that each client gets it
        once however many processes there are.  Raises as :meth:`publish` does."""
        _check(channel, message)
        self.loop_thread.call(self._deliver, channel, message)

    @property
    def local(self) -> "LocalPublisher":
        """This object, with ``publish`` meaning :meth:`publish_local` (what monitor functions
        get as ``pubsub``)."""
        return LocalPublisher(self)

    def publish_from(self, conn: Connection, channel: str, message: Any) -> None:
        """A client's publish, after its authenticators: through the push traps, then out."""
        for trap in self.push_traps:
            result = trap(conn, channel, message)
            if result is False:
                return
            if isinstance(result, tuple):
                channel, message = result
                try:
                    _check(channel, message)
                except (ValueError, TypeError) as error:
                    raise ValueError("push trap %r replaced the publish: %s" % (trap, error)
                                     ) from None
        # The client's own message was parsed strictly: it needs no second check.
        self._publish(channel, message)

    def _deliver(self, channel: str, message: Any, action: str = "message",
                 extra: Optional[Dict[str, Any]] = None) -> int:
        """A message (or a join/leave event) for this process's subscribers, from here or from
        the broker; ``extra``: its offset and epoch on a history channel."""
        reached = self.channels.publish(channel, message, action, extra)
        self.counters["published"] += 1
        self.counters["deliveries"] += reached
        return reached

    def _first_subscriber(self, channel: str) -> None:
        self.broker.subscribe(channel)

    def _last_subscriber(self, channel: str) -> None:
        self.broker.unsubscribe(channel)

    # -- the SockJS handler ----------------------------------------------------------------

    def on_open(self, sockjs: SockJSConnection) -> None:
        conn = Connection(self, sockjs, Lane(self.pool, self.settings.max_pending_messages),
                          TokenBucket(self.settings.rate_limit, 2 * self.settings.rate_limit,
                                      time.monotonic()))
        self.connections[sockjs] = conn
        conn.lane.submit(partial(self._open, conn), wait=False)

    def on_message(self, sockjs: SockJSConnection, text: str) -> None:
        conn = self.connections.get(sockjs)
        if conn is None:
            return
        self.counters["messages_in"] += 1
        if not conn.bucket.take(time.monotonic()):
            if conn.bucket.refused_in_a_row > conn.bucket.burst:
                conn.close(*RATE_LIMIT_CLOSE)
            else:
                conn.answer(protocol.error(protocol.RATE_LIMITED, "more than %g messages a second"
                                           % self.settings.rate_limit))
            return
        try:
            protocol.check_text(text, self.settings.max_message_size)
        except RequestRefused as error:
            conn.answer(protocol.error(error.code, error.reason))
            return
        conn.lane.submit(partial(self._handle, conn, text))

    def on_close(self, sockjs: SockJSConnection) -> None:
        # A slow subscriber closed by a publish is closed inside the fan-out: unsubscribing
        # (which may reach the broker) and the closers wait until the loop is over.
        self.channels.after_fanout(partial(self._closed, sockjs))

    def _closed(self, sockjs: SockJSConnection) -> None:
        conn = self.connections.pop(sockjs, None)
        if conn is None:
            return
        conn.unsubscribe_all()  # at once: nothing more is delivered to a closed session
        conn.lane.submit(partial(self._close, conn), wait=False)

    # -- hooks, each call isolated -----------------------------------------------------------

    def _open(self, conn: Connection, previous: Event, mine: Event) -> None:
        previous.wait()
        for opening in list(self.openings):
            self._call_hook(conn, None, opening, conn, conn.info)

    def _close(self, conn: Connection, previous: Event, mine: Event) -> None:
        previous.wait()
        for closer in list(self.closers):
            self._call_hook(conn, None, closer, conn)

    def _handle(self, conn: Connection, text: str, previous: Event, mine: Event) -> None:
        """One message through the receivers' chain: the part up to the pub/sub handler in the
        connection's order, the receivers after it concurrently with the next message."""
        message, problem, request_id = protocol.parse_message(text)
        receivers = list(self.receivers)
        ordered = receivers.index(pubsub_receiver) + 1 if pubsub_receiver in receivers else 0
        previous.wait()
        try:
            if self._run_chain(conn, receivers[:ordered], message, request_id):
                return
        finally:
            mine.set()
        if self._run_chain(conn, receivers[ordered:], message, request_id):
            return
        if all(receiver is pubsub_receiver or getattr(receiver, "protocol_receiver", False)
               for receiver in receivers):
            conn.answer(protocol.error(protocol.BAD_REQUEST, _why_not_handled(message, problem),
                                       request_id=request_id))

    def _run_chain(self, conn: Connection, receivers: Sequence[Callable], message: Any,
                   request_id: Any) -> bool:
        """True when the chain stopped: a receiver returned False, or raised (answered)."""
        for receiver in receivers:
            result = self._call_hook(conn, request_id, receiver, conn, message)
            if result is False or result is _RAISED:
                return True
        return False

    def _call_hook(self, conn: Connection, request_id: Any, hook: Callable, *args: Any) -> Any:
        """Call one hook; a refusal it raises is answered, anything else is logged with its
        traceback and answered with ``internal``.  The connection and the server live on."""
        try:
            return hook(*args)
        except RequestRefused as error:
            self.counters["errors"] += 1
            conn.answer(protocol.error(error.code, error.reason, error.channel,
                                       error.request_id if error.request_id is not None
                                       else request_id))
        except Exception:
            self.counters["errors"] += 1
            log.exception("hook %s raised (session %s)", getattr(hook, "__name__", hook),
                          conn.session_id)
            conn.answer(protocol.error(protocol.INTERNAL, "the server failed to handle this "
                                       "message; the error has been logged",
                                       request_id=request_id))
        return _RAISED


_RAISED = object()  # what _call_hook returns for a hook that raised


class LocalPublisher:
    """A RealTimeMagic whose ``publish`` reaches this process's subscribers only."""

    def __init__(self, rtm: RealTimeMagic) -> None:
        self._rtm = rtm

    def publish(self, channel: str, message: Any) -> None:
        self._rtm.publish_local(channel, message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rtm, name)


def _check(channel: str, message: Any) -> None:
    """What is published from Python: a valid channel name and strict JSON."""
    problem = protocol.channel_error(channel)
    if problem:
        raise ValueError(problem)
    protocol.check_value(message)


def _why_not_handled(message: Any, problem: Optional[str]) -> str:
    if problem:
        return problem
    if isinstance(message, dict) and "action" in message:
        return "unknown action %r" % (message["action"],)
    return "not a pub/sub request: expected an object with an action (%s)" % ", ".join(
        protocol.ACTIONS)
