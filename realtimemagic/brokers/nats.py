"""The NATS broker: plain NATS subjects between instances (core NATS, no JetStream).

Each instance subscribes only to the subjects (``rtm.<channel>``, encoded as
:mod:`.nats_protocol` says) of the channels it has local subscribers for, on one listening
connection, and publishes on a second one.  Core NATS keeps nothing: while an instance is
disconnected it misses what the others publish (counted as outages in the stats); its own
messages are queued (``broker_queue_size``) and sent once it is back.  A subscription is
confirmed by the PONG of a PING sent after it: the server handles a connection's commands in
order.  History and presence are not kept (docs/history.md): use Redis for them.
"""
from typing import Callable, Dict

import gevent
from gevent.event import Event

from . import nats_protocol as protocol
from .base import NetworkBroker, log
from .interface import BrokerSettings, Deliver, WithoutHistory
from .nats_connection import NatsConnection, NatsUrl


class NatsBroker(WithoutHistory, NetworkBroker):
    """NATS subjects, without history or presence.  Its listener has its own way with
    subscriptions (a writer greenlet brings the server to the local channels), so it
    overrides ``_listen``/``_unlisten`` rather than use the command queue."""

    def __init__(self, url: str, deliver: Deliver, settings: BrokerSettings) -> None:
        super().__init__(url, deliver, settings)
        self.nats_url = NatsUrl(url)
        self.counters["too_large"] = 0
        self._attempts = 0  # rotates over the servers of the URL
        self._sids: Dict[str, int] = {}  # channel -> subscription id on the listener
        self._next_sid = 0
        self._subscriptions_changed = Event()

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
            count = self.counters["too_large"]
            if count in (1, 10, 100) or count % 1000 == 0:
                log.error("broker %s: a message of %d bytes on %r is over the server's "
                          "max_payload (%d bytes): not sent to other instances (%d so far)",
                          self.url_for_logs, len(data), channel, connection.max_payload, count)
            return
        connection.poll()
        connection.send(protocol.pub(protocol.subject_for(channel), data))

    # -- listening -------------------------------------------------------------------------

    def _listen_forever(self) -> None:
        connection = self._connect("listener")
        writer = None
        try:
            self._sids.clear()
            for gone in [channel for channel in self._confirmed if channel not in self.channels]:
                del self._confirmed[gone]
            self._sync_subscriptions(connection)
            writer = gevent.spawn(self._write_subscriptions, connection)
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
            if writer is not None:
                writer.kill(block=False)
            connection.close()

    def _write_subscriptions(self, connection: NatsConnection) -> None:
        """The greenlet that sends SUB and UNSUB: subscribe() and unsubscribe() only wake it,
        so they never write or wait (they may be called in the middle of a fan-out)."""
        try:
            while True:
                self._subscriptions_changed.wait()
                self._subscriptions_changed.clear()
                self._sync_subscriptions(connection)
        except Exception:  # the connection broke: the listener's read fails and reconnects
            connection.close()

    def _sync_subscriptions(self, connection: NatsConnection) -> None:
        """Subscribe to every local channel and to nothing else.  Sending yields, and channels
        may come and go meanwhile, so repeat until nothing is left to send."""
        while True:
            missing = [channel for channel in self.channels if channel not in self._sids]
            extra = [channel for channel in self._sids if channel not in self.channels]
            if not missing and not extra:
                return
            for channel in missing:
                self._next_sid += 1
                self._sids[channel] = self._next_sid
                confirmed = self._confirmation(channel)
                confirmed.clear()
                connection.send(protocol.sub(protocol.subject_for(channel), self._next_sid))
                connection.ping(confirmed.set)
            for channel in extra:
                self._confirmed.pop(channel, None)
                connection.send(protocol.unsub(self._sids.pop(channel)))

    def _confirmation(self, channel: str) -> Event:
        event = self._confirmed.get(channel)
        if event is None:
            event = self._confirmed[channel] = Event()
        return event

    def _listen(self, channel: str) -> None:
        if channel not in self._sids:  # else its UNSUB was not sent yet: the server still has it
            self._confirmation(channel).clear()
        self._subscriptions_changed.set()

    def _unlisten(self, channel: str) -> None:
        if channel not in self._sids:  # its SUB was not sent yet: nothing to wait for
            self._confirmed.pop(channel, None)
        self._subscriptions_changed.set()

    # -- what the server asks of every broker -----------------------------------------------

    def maintain(self, ttl_of: Callable[[str], float]) -> None:
        """Nothing to keep tidy: core NATS stores nothing."""

