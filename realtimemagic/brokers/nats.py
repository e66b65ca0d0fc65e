"""The NATS broker: plain NATS subjects between instances (core NATS, no JetStream).

Each instance subscribes only to the subjects (``rtm.<channel>``, encoded as
:mod:`.nats_protocol` says) of the channels it has local subscribers for, on one listening
connection, and publishes on a second one.  Core NATS keeps nothing: while an instance is
disconnected it misses what the others publish (counted as outages in the stats); its own
messages are queued (``broker_queue_size``) and sent once it is back.  A subscription is
confirmed by the PONG of a PING sent after it: the server handles a connection's commands in
order.  History and presence are not kept (docs/history.md): use Redis for them.
"""
from typing import Dict, Optional

from gevent.event import Event

from . import nats_protocol as protocol
from .base import BrokerSettings, Deliver, NetworkBroker, log
from .nats_connection import NatsConnection, NatsUrl


class NatsBroker(NetworkBroker):

    def __init__(self, url: str, deliver: Deliver, settings: BrokerSettings) -> None:
        super().__init__(url, deliver, settings)
        self.nats_url = NatsUrl(url)
        self.counters["too_large"] = 0
        self._attempts = 0  # rotates over the servers of the URL
        self._listener: Optional[NatsConnection] = None
        self._sids: Dict[str, int] = {}  # channel -> subscription id on the listener
        self._next_sid = 0
        self._confirmed: Dict[str, Event] = {}

    def _connect(self, role: str) -> NatsConnection:
        attempt, self._attempts = self._attempts, self._attempts + 1
        return NatsConnection(self.nats_url, "realtimemagic-" + role, attempt)

    # -- publishing ------------------------------------------------------------------------

    def connect_publisher(self) -> NatsConnection:
        return self._connect("publisher")

    def _ping_publisher(self, connection: NatsConnection) -> None:
        connection.flush(self.settings.health_interval)

    def send_payload(self, connection: NatsConnection, channel: str, payload: str) -> None:
        data = payload.encode("utf-8")
        if len(data) > connection.max_payload:
            # The server would answer with an error and close the connection.
            self.counters["too_large"] += 1
            log.error("broker %s: a message of %d bytes on %r is over the server's max_payload "
                      "(%d bytes): not sent to other instances", self.url_for_logs, len(data),
                      channel, connection.max_payload)
            return
        connection.poll()
        connection.send(protocol.pub(protocol.subject_for(channel), data))

    # -- listening -------------------------------------------------------------------------

    def _listen_forever(self) -> None:
        connection = self._connect("listener")
        try:
            self._listener = connection
            self._sids.clear()
            self._sync_subscriptions()
            self._came_up()
            while True:
                event = connection.next_event(self.settings.health_interval)
                if isinstance(event, protocol.Msg):
                    self.received(event.payload)
                elif event is None:  # a quiet connection: is it still there?
                    if connection.oldest_ping_age() >= self.settings.health_interval:
                        raise ConnectionError("no PONG from the NATS server in %.1f s"
                                              % connection.oldest_ping_age())
                    connection.ping()
        finally:
            self._listener = None
            connection.close()

    def _sync_subscriptions(self) -> None:
        """Subscribe to every local channel.  Sending yields, and channels may come and go
        meanwhile, so repeat until nothing is left to send: nothing yields from there until
        the listener is marked up."""
        while True:
            missing = [channel for channel in self.channels if channel not in self._sids]
            extra = [channel for channel in self._sids if channel not in self.channels]
            if not missing and not extra:
                return
            for channel in missing:
                self._listen(channel)
            for channel in extra:
                self._unlisten(channel)

    def _confirmation(self, channel: str) -> Event:
        event = self._confirmed.get(channel)
        if event is None:
            event = self._confirmed[channel] = Event()
        return event

    def _listen(self, channel: str) -> None:
        connection = self._listener
        if connection is None or channel in self._sids:
            return
        self._next_sid += 1
        self._sids[channel] = self._next_sid
        confirmed = self._confirmation(channel)
        confirmed.clear()
        connection.send(protocol.sub(protocol.subject_for(channel), self._next_sid))
        connection.ping(confirmed.set)

    def _unlisten(self, channel: str) -> None:
        self._confirmed.pop(channel, None)
        sid = self._sids.pop(channel, None)
        if self._listener is not None and sid is not None:
            self._listener.send(protocol.unsub(sid))

    def wait_subscribed(self, channel: str, timeout: float) -> bool:
        """False at once while the broker is down: local clients are served meanwhile, and the
        subscription is restored on reconnection."""
        if not self.connected.is_set():
            return False
        return self._confirmation(channel).wait(timeout)

    # -- what the server asks of every broker -----------------------------------------------

    def maintain(self, ttl_of) -> None:
        """Nothing to keep tidy: core NATS stores nothing."""

