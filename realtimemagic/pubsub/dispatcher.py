"""The hook dispatcher: the pub/sub server without its lifecycle (SPEC section 2).

It holds the hook lists, the channels and the namespaces, publishes through the broker it is
given, and is the SockJS handler of its endpoint: each incoming message is handled in its own
greenlet of the bounded hook pool, through the receivers' chain (see :mod:`.lane` for the order
guarantees).  The application (:class:`realtimemagic.magic.RealTimeMagic`) chooses the broker
and runs the server around it.

One client's publish goes through it once: the request handler checks the channel and looks its
options up, :meth:`HookDispatcher.publish_from` runs the push traps and hands it to the broker,
and the broker hands it back to :meth:`HookDispatcher._deliver`, which fans it out.
"""
import logging
import time
from collections import defaultdict
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence

import gevent
from gevent.event import Event
from gevent.pool import Pool

from ..config import Settings
from ..exceptions import RequestRefused
from ..runtime.connection import SockJSConnection, SockJSHandler
from ..runtime.threads import LoopThread
from . import namespaces, protocol
from .channels import ChannelRegistry
from .connection import Connection
from .handler import pubsub_receiver
from .interfaces import PubSubBroker
from .lane import Lane
from .namespaces import NamespaceOptions
from .ratelimit import TokenBucket

log = logging.getLogger("realtimemagic")

RATE_LIMIT_CLOSE = (4029, "Rate limit exceeded")


class HookDispatcher(SockJSHandler):
    """Hooks, channels and publishing for ``settings``.  ``broker`` is set by the application
    before the first publish."""

    broker: PubSubBroker

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
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
        self.channels = ChannelRegistry(on_first=self._first_subscriber,
                                        on_last=self._last_subscriber)
        #: namespace -> NamespaceOptions (history, presence); see namespace().
        self.namespaces: Dict[str, NamespaceOptions] = namespaces.parse(settings.namespaces)
        #: Counters since start, for /api/stats and /metrics.
        self.counters = {"messages_in": 0, "published": 0, "deliveries": 0, "errors": 0}
        self.loop_thread = LoopThread()
        self.connections: Dict[SockJSConnection, Connection] = {}
        self._pool: Optional[Pool] = None

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            self._pool = Pool(self.settings.hook_pool_size)
        return self._pool

    # -- namespaces: history and presence ---------------------------------------------------

    def namespace(self, name: str, **options: Any) -> NamespaceOptions:
        """Switch on history or presence for channels ``name:...`` (``default``: channels
        without a namespace): ``history_size``, ``history_ttl``, ``presence``, ``join_leave``."""
        self.namespaces[name] = namespaces.build(options)
        return self.namespaces[name]

    def options_for(self, channel: str) -> NamespaceOptions:
        return namespaces.lookup(self.namespaces, channel)

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

    # -- publishing ------------------------------------------------------------------------

    def publish(self, channel: str, message: Any) -> None:
        """Publish ``message`` to every subscriber of ``channel``, through the broker.  Never
        blocks on slow clients; callable from any greenlet or thread.  Raises ValueError for a
        bad channel name and for a message that is not strict JSON (NaN, an infinity, a lone
        surrogate in a string), TypeError for a value JSON has no type for: nothing is
        published then."""
        _check(channel, message)
        self.loop_thread.call(self._publish, channel, message, self.options_for(channel))

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

    def publish_from(self, conn: Connection, channel: str, message: Any,
                     options: NamespaceOptions) -> None:
        """A client's publish, checked and authorized by the request handler, which looked
        ``options`` up: through the push traps, then out (hooks run in the loop's thread)."""
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
                options = self.options_for(channel)
        # The client's own message was parsed strictly: it needs no second check.
        self._publish(channel, message, options)

    def _publish(self, channel: str, message: Any, options: NamespaceOptions) -> None:
        """Out through the broker: a checked channel and message, with its options."""
        self.broker.publish(channel, message, options if options.history else None)

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
    """A server whose ``publish`` reaches this process's subscribers only."""

    def __init__(self, rtm: HookDispatcher) -> None:
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
