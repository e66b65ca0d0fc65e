"""What the networked brokers share: the bounded outgoing queue drained by one publisher
greenlet, the supervised listener with reconnect and backoff, the queue of LISTEN/SUBSCRIBE
commands only the listener sends, and the counters the stats show.  The interface every broker
implements is in :mod:`.interface`, the envelope between instances in :mod:`.envelope`.

A message published on one instance is delivered to that instance's subscribers at once (so a
broker outage does not silence local channels) and sent through the broker to the others, which
deliver it; an instance skips its own messages when they come back.  Each subscriber therefore
gets each message once.  The envelopes are numbered (:mod:`.sequence`): a message that the broker
carries twice (sent again after a connection broke) is delivered once, and what an instance
misses is counted (``lost``).
"""
import logging
import time
import uuid
from collections import deque
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional, Set, Tuple

import gevent
from gevent.event import Event

from ..backoff import Backoff
from ..config import FIXED
from .envelope import decode_envelope, encode_envelope, numbers_of
from .interface import Broker, BrokerSettings, Deliver, HistoryFigures
from .sequence import Arrivals, Numbers, Sequencer

log = logging.getLogger("realtimemagic.broker")

LOSS_LOG_INTERVAL = FIXED.broker_loss_log_interval  # s: lost messages logged at most this often


class Outgoing(NamedTuple):
    """A message waiting to be sent to the broker."""
    kind: str  # "message", "history", "join", "leave"
    channel: str
    message: Any
    numbers: Numbers
    options: Any = None  # the namespace options of a history message



COMMAND_LATENCY = FIXED.broker_command_latency  # s: before a queued (un)subscribe is sent


class NetworkBroker(Broker):
    """Base of the Redis and PostgreSQL brokers.  Subclasses provide ``connect_publisher``,
    ``send_payload``, ``_ping_publisher`` and ``_listen_forever``, which returns or raises when
    the connection is lost.  Only the listener greenlet uses the listening connection: it
    calls :meth:`_listen_to_all` once connected, then :meth:`_send_commands` between two reads
    (at least every ``COMMAND_LATENCY``), and :meth:`_confirm` when the server confirms that
    it listens to a channel."""

    shared = True
    batch_size = 1  # messages the publisher sends at a time

    def __init__(self, url: str, deliver: Deliver, settings: BrokerSettings) -> None:
        self.url = url
        scheme, _, rest = url.partition("://")
        self.url_for_logs = "%s://%s" % (scheme, rest.rpartition("@")[2])  # no password
        self.deliver = deliver
        self.settings = settings
        self.origin = uuid.uuid4().hex[:16]
        self.channels: Set[str] = set()  # channels with local subscribers
        # ("listen" | "unlisten", channel) for the listener, queued while it is connected.
        self._commands: Deque[Tuple[str, str]] = deque()
        self._commands_taken = False
        self._confirmed: Dict[str, Event] = {}  # local channel -> set once listened to
        self.outgoing: Deque[Outgoing] = deque()
        self._outgoing_ready = Event()
        self._greenlets: List[gevent.Greenlet] = []
        self.connected = Event()
        self.sequence = Sequencer(settings.sequence_channels)
        self.arrivals = Arrivals()
        self.counters: Dict[str, Any] = {
            "published": 0, "received": 0, "dropped": 0, "publish_failed": 0, "lost": 0,
            "duplicates": 0, "reconnects": 0, "outages": 0, "outage_seconds": 0.0,
            "last_error": None}
        self._down_since: Optional[float] = time.monotonic()
        self._loss_logged = -LOSS_LOG_INTERVAL

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if not self._greenlets:
            self._greenlets = [gevent.spawn(self._supervise, self._listen_forever, "listener"),
                               gevent.spawn(self._supervise, self._publish_forever, "publisher")]

    def stop(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets = []

    def _supervise(self, run: Callable[[], None], role: str) -> None:
        """Run ``run`` forever; on a lost connection wait (exponential backoff) and again."""
        backoff = Backoff(self.settings.reconnect_min, self.settings.reconnect_max)
        while True:
            started = time.monotonic()
            try:
                run()
            except Exception as error:  # the network, the server, a protocol surprise
                self.counters["last_error"] = "%s: %s" % (type(error).__name__, error)
                log.warning("broker %s %s lost: %s", self.url_for_logs, role, error)
            if role == "listener":
                self._went_down()
            if time.monotonic() - started > self.settings.reconnect_max:
                backoff.reset()
            gevent.sleep(backoff.next())
            self.counters["reconnects"] += 1

    def _came_up(self) -> None:
        """The listener is connected and listening to every local channel."""
        if self._down_since is not None:
            if self.counters["reconnects"]:
                outage = time.monotonic() - self._down_since
                self.counters["outage_seconds"] += outage
                log.info("broker %s reconnected after %.1f s", self.url_for_logs, outage)
            else:
                log.info("broker %s connected", self.url_for_logs)
            self._down_since = None
        self.connected.set()

    def _went_down(self) -> None:
        self._commands_taken = False  # the next connection listens to every channel anyway
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.counters["outages"] += 1
        self.connected.clear()

    # -- the local side --------------------------------------------------------------------

    def publish(self, channel: str, message: Any, options: Any = None) -> None:
        """Deliver here, queue for the others; never blocks.  On a history channel
        (``options.history``) the broker gives the offset, so nothing is delivered here before
        the message comes back from it."""
        if options is not None and options.history:
            self._queue("history", channel, message, options)
        else:
            self.deliver(channel, message)
            self._queue("message", channel, message)

    def publish_event(self, channel: str, action: str, client: Any) -> None:
        """A join or leave event for ``channel``'s subscribers, here and elsewhere."""
        self.deliver(channel, client, action)
        self._queue(action, channel, client)

    def _queue(self, kind: str, channel: str, message: Any, options: Any = None) -> None:
        """A full queue (the broker is down or slow for long) drops the oldest message not yet
        sent, counts it and logs it."""
        if len(self.outgoing) >= self.settings.queue_size:
            self.outgoing.popleft()
            self.counters["dropped"] += 1
            if self.counters["dropped"] in (1, 10, 100) or self.counters["dropped"] % 1000 == 0:
                log.error("broker %s: outgoing queue full, %d messages not sent to other "
                          "instances", self.url_for_logs, self.counters["dropped"])
        self.outgoing.append(Outgoing(kind, channel, message, self.sequence.next(channel),
                                      options))
        self._outgoing_ready.set()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def wait_subscribed(self, channel: str, timeout: float) -> bool:
        """Wait until the broker confirms this process listens to ``channel``; False at once
        while the broker is down (local clients are served meanwhile, and the subscription is
        restored on reconnection)."""
        event = self._confirmed.get(channel)
        if event is None or not self.connected.is_set():
            return False
        return event.wait(timeout)

    def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        self._listen(channel)

    def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        self.arrivals.forget(channel)
        self._unlisten(channel)

    # -- the listener's commands -----------------------------------------------------------

    def _listen(self, channel: str) -> None:
        """Have the listener listen to ``channel``: queued, it never waits on the network (a
        subclass with a listener of another kind overrides this and :meth:`_unlisten`)."""
        self._confirmed[channel] = Event()
        if self._commands_taken:
            self._commands.append(("listen", channel))

    def _unlisten(self, channel: str) -> None:
        self._confirmed.pop(channel, None)
        if self._commands_taken:
            self._commands.append(("unlisten", channel))

    def _listen_to_all(self, listen_all: Callable[[List[str]], None]) -> None:
        """The listener is connected: listen to every local channel with ``listen_all``; what
        changes meanwhile (and later) is queued for :meth:`_send_commands`."""
        self._commands.clear()
        for event in self._confirmed.values():
            event.clear()
        self._commands_taken = True
        channels = list(self.channels)
        if channels:
            listen_all(channels)

    def _send_commands(self, listen: Callable[[str], None],
                       unlisten: Callable[[str], None]) -> None:
        """Send the queued commands on the listening connection (the listener only)."""
        while self._commands:
            command, channel = self._commands.popleft()
            (listen if command == "listen" else unlisten)(channel)

    def _confirm(self, channel: str) -> None:
        """The broker listens to ``channel`` for this process now."""
        event = self._confirmed.get(channel)
        if event is not None:
            event.set()

    def history_figures(self) -> HistoryFigures:
        return HistoryFigures()

    def status(self) -> Dict[str, Any]:
        return dict(self.counters, url=self.url_for_logs,
                    state="connected" if self.connected.is_set() else "reconnecting",
                    channels=len(self.channels), queued=len(self.outgoing))

    # -- the wire --------------------------------------------------------------------------

    def _publish_forever(self) -> None:
        connection = self.connect_publisher()
        while True:
            while not self.outgoing:
                self._outgoing_ready.clear()
                self._outgoing_ready.wait(self.settings.health_interval)
                if not self.outgoing:
                    self._ping_publisher(connection)
            batch = [self.outgoing.popleft()
                     for _ in range(min(self.batch_size, len(self.outgoing)))]
            try:
                self.send_batch(connection, batch)
            except Exception:
                # Sent again after reconnecting, with the same numbers: what did reach the
                # broker is dropped by the receivers as a duplicate.
                self.outgoing.extendleft(reversed(batch))
                self.counters["publish_failed"] += len(batch)
                raise
            self.counters["published"] += len(batch)

    def send_batch(self, connection: Any, items: List[Outgoing]) -> None:
        """Send ``items`` in order (at most ``batch_size``; a subclass may pipeline them)."""
        for item in items:
            self.send_item(connection, item)

    def send_item(self, connection: Any, item: Outgoing) -> None:
        if item.kind == "history":
            self.send_history(connection, item)
        else:
            self.send_payload(connection, item.channel, self.envelope(
                item.channel, item.message, item.kind, item.numbers))

    def envelope(self, channel: str, message: Any, action: str = "message",
                 numbers: Optional[Numbers] = None) -> str:
        return encode_envelope(self.origin, channel, message, action, numbers)

    def parse_envelope(self, data: Any) -> Optional[Dict[str, Any]]:
        parsed = decode_envelope(data)
        if parsed is None:
            log.warning("broker %s: ignoring a malformed message", self.url_for_logs)
        return parsed

    def accept(self, envelope: Dict[str, Any]) -> None:
        """An envelope from the broker: deliver it here unless this instance sent it (and so
        delivered it already).  History messages ("n": offset, "e": epoch) are delivered only
        from here, the sender's own included."""
        channel = envelope["c"]
        if channel not in self.channels or "m" not in envelope:
            return
        if "n" not in envelope and envelope["o"] == self.origin:
            return
        fresh, lost = self.arrivals.check(channel, envelope["o"], numbers_of(envelope))
        if lost:
            self._count_lost(lost, channel)
        if not fresh:
            self.counters["duplicates"] += 1
            return
        self.counters["received"] += 1
        if "n" in envelope:
            self.deliver(channel, envelope["m"], "message",
                         {"offset": envelope["n"], "epoch": envelope["e"]})
        else:
            self.deliver(channel, envelope["m"], envelope.get("a", "message"))

    def _count_lost(self, lost: int, channel: str) -> None:
        """Counted always, logged at most every LOSS_LOG_INTERVAL (a failover loses a little on
        each of many channels)."""
        self.counters["lost"] += lost
        now = time.monotonic()
        if now - self._loss_logged >= LOSS_LOG_INTERVAL:
            self._loss_logged = now
            log.warning("broker %s: messages of other instances never arrived here (%d on %r; "
                        "%d in all)", self.url_for_logs, lost, channel, self.counters["lost"])

    def received(self, data: Any) -> None:
        envelope = self.parse_envelope(data)
        if envelope is not None:
            self.accept(envelope)

    # -- for subclasses --------------------------------------------------------------------

    def connect_publisher(self) -> Any:
        raise NotImplementedError

    def _ping_publisher(self, connection: Any) -> None:
        raise NotImplementedError

    def send_payload(self, connection: Any, channel: str, payload: str) -> None:
        raise NotImplementedError

    def send_history(self, connection: Any, item: Outgoing) -> None:
        raise NotImplementedError("%s keeps no history" % type(self).__name__)

    def _listen_forever(self) -> None:
        raise NotImplementedError
