"""What the networked brokers share: the envelope between instances, the bounded outgoing queue
drained by one publisher greenlet, the supervised listener with reconnect and backoff, and the
counters the stats show.

A message published on one instance is delivered to that instance's subscribers at once (so a
broker outage does not silence local channels) and sent through the broker to the others, which
deliver it; an instance skips its own messages when they come back.  Each subscriber therefore
gets each message once.
"""
import json
import logging
import time
import uuid
from collections import deque
from typing import Any, Callable, Deque, Dict, NamedTuple, Optional, Set

import gevent
from gevent.event import Event

from ..backoff import Backoff
from ..exceptions import BadRequest
from ..pubsub import protocol

log = logging.getLogger("realtimemagic.broker")

Deliver = Callable[..., int]  # deliver(channel, message, action="message", extra=None)


class Outgoing(NamedTuple):
    """A message waiting to be sent to the broker."""
    kind: str  # "message", "history", "join", "leave"
    channel: str
    message: Any
    options: Any = None  # the namespace options of a history message


class BrokerSettings:
    """The broker's part of the config (see realtimemagic.config)."""

    def __init__(self, queue_size: int = 10000, reconnect_min: float = 0.5,
                 reconnect_max: float = 30.0, health_interval: float = 10.0) -> None:
        self.queue_size = queue_size
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.health_interval = health_interval

    @classmethod
    def from_config(cls, settings) -> "BrokerSettings":
        return cls(settings.broker_queue_size, settings.broker_reconnect_min,
                   settings.broker_reconnect_max, settings.broker_health_interval)


class NetworkBroker:
    """Base of the Redis and PostgreSQL brokers.  Subclasses provide ``connect_publisher``,
    ``send_payload``, ``_ping_publisher``, ``_listen_forever`` (which returns or raises when
    the connection is lost) and ``_listen``/``_unlisten`` for one channel on the live
    listener."""

    shared = True

    def __init__(self, url: str, deliver: Deliver, settings: BrokerSettings) -> None:
        self.url = url
        self.deliver = deliver
        self.settings = settings
        self.origin = uuid.uuid4().hex[:16]
        self.channels: Set[str] = set()  # channels with local subscribers
        self.outgoing: Deque[Outgoing] = deque()
        self._outgoing_ready = Event()
        self._greenlets = []
        self.connected = Event()
        self.counters: Dict[str, Any] = {
            "published": 0, "received": 0, "dropped": 0, "reconnects": 0, "outages": 0,
            "outage_seconds": 0.0, "last_error": None}
        self._down_since: Optional[float] = time.monotonic()

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

    @property
    def url_for_logs(self) -> str:
        scheme, _, rest = self.url.partition("://")
        return "%s://%s" % (scheme, rest.rpartition("@")[2])  # no password in logs

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
            self._queue(Outgoing("history", channel, message, options))
        else:
            self.deliver(channel, message)
            self._queue(Outgoing("message", channel, message))

    def publish_event(self, channel: str, action: str, client: Any) -> None:
        """A join or leave event for ``channel``'s subscribers, here and elsewhere."""
        self.deliver(channel, client, action)
        self._queue(Outgoing(action, channel, client))

    def _queue(self, item: "Outgoing") -> None:
        """A full queue (the broker is down or slow for long) drops the oldest message not yet
        sent, counts it and logs it."""
        if len(self.outgoing) >= self.settings.queue_size:
            self.outgoing.popleft()
            self.counters["dropped"] += 1
            if self.counters["dropped"] in (1, 10, 100) or self.counters["dropped"] % 1000 == 0:
                log.error("broker %s: outgoing queue full, %d messages not sent to other "
                          "instances", self.url_for_logs, self.counters["dropped"])
        self.outgoing.append(item)
        self._outgoing_ready.set()

    def wait_subscribed(self, channel: str, timeout: float) -> bool:
        """Wait until the broker confirms this process listens to ``channel``."""
        return True

    def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        if self.connected.is_set():
            try:
                self._listen(channel)
            except Exception as error:
                log.warning("broker %s: subscribe %r failed (%s); restored on reconnect",
                            self.url_for_logs, channel, error)

    def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        if self.connected.is_set():
            try:
                self._unlisten(channel)
            except Exception as error:
                log.warning("broker %s: unsubscribe %r failed: %s", self.url_for_logs, channel,
                            error)

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
            item = self.outgoing.popleft()
            try:
                if item.kind == "history":
                    self.send_history(connection, item.channel, item.message, item.options)
                else:
                    self.send_payload(connection, item.channel, self.envelope(
                        item.channel, item.message, item.kind))
            except Exception:
                self.outgoing.appendleft(item)  # sent again after reconnecting
                raise
            self.counters["published"] += 1

    def envelope(self, channel: str, message: Any, action: str = "message") -> str:
        envelope = {"o": self.origin, "c": channel, "m": message}
        if action != "message":
            envelope["a"] = action
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))

    def parse_envelope(self, data: Any) -> Optional[Dict[str, Any]]:
        # Strict, as every entrance: a NaN or a lone surrogate put in the broker by another
        # program would otherwise reach the fan-out, whose encoder refuses it.
        try:
            envelope = protocol.parse_json(data.decode("utf-8") if isinstance(data, bytes)
                                           else data)
        except (BadRequest, UnicodeDecodeError, TypeError):
            envelope = None
        if not isinstance(envelope, dict) or "o" not in envelope or "c" not in envelope:
            log.warning("broker %s: ignoring a malformed message", self.url_for_logs)
            return None
        return envelope

    def accept(self, envelope: Dict[str, Any]) -> None:
        """An envelope from the broker: deliver it here unless this instance sent it (and so
        delivered it already).  History messages ("n": offset, "e": epoch) are delivered only
        from here, the sender's own included."""
        channel = envelope["c"]
        if channel not in self.channels or "m" not in envelope:
            return
        if "n" in envelope:
            self.counters["received"] += 1
            self.deliver(channel, envelope["m"], "message",
                         {"offset": envelope["n"], "epoch": envelope["e"]})
        elif envelope["o"] != self.origin:
            self.counters["received"] += 1
            self.deliver(channel, envelope["m"], envelope.get("a", "message"))

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

    def send_history(self, connection: Any, channel: str, message: Any, options: Any) -> None:
        raise NotImplementedError("%s keeps no history" % type(self).__name__)

    def _listen_forever(self) -> None:
        raise NotImplementedError

    def _listen(self, channel: str) -> None:
        raise NotImplementedError

    def _unlisten(self, channel: str) -> None:
        raise NotImplementedError
