"""The Redis broker: Redis pub/sub between instances.

Each instance subscribes only to the Redis channels (``rtm:<channel>``) it has local subscribers
for, and unsubscribes when the last one leaves.  Redis pub/sub keeps nothing: while an instance
is disconnected it misses what the others publish (counted as outages in the stats); its own
messages are queued (``broker_queue_size``) and sent once it is back.
"""
import logging
from typing import Any

import redis

from .base import BrokerSettings, Deliver, NetworkBroker

log = logging.getLogger("realtimemagic.broker")

PREFIX = "rtm:"


class RedisBroker(NetworkBroker):

    def __init__(self, url: str, deliver: Deliver, settings: BrokerSettings) -> None:
        super().__init__(url, deliver, settings)
        self._pubsub = None

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url, socket_keepalive=True, socket_connect_timeout=5,
            health_check_interval=self.settings.health_interval,
            client_name="realtimemagic-broker")

    def connect_publisher(self) -> redis.Redis:
        client = self._client()
        client.ping()
        return client

    def _ping_publisher(self, connection: redis.Redis) -> None:
        connection.ping()

    def send_payload(self, connection: redis.Redis, channel: str, payload: str) -> None:
        connection.publish(PREFIX + channel, payload)

    def _listen_forever(self) -> None:
        client = self._client()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.ping()  # connects, so that a dead server is found here
            if self.channels:
                pubsub.subscribe(*[PREFIX + channel for channel in self.channels])
            self._pubsub = pubsub
            self._came_up()
            while True:
                # get_message pings on its own every health_interval (health_check_interval),
                # so a half-open connection is found even when nothing is published.
                message = pubsub.get_message(timeout=self.settings.health_interval)
                if message is not None and message.get("type") == "message":
                    self.received(message["data"])
        finally:
            self._pubsub = None
            try:
                pubsub.close()
            except Exception:
                pass

    def _listen(self, channel: str) -> None:
        if self._pubsub is not None:
            self._pubsub.subscribe(PREFIX + channel)

    def _unlisten(self, channel: str) -> None:
        if self._pubsub is not None:
            self._pubsub.unsubscribe(PREFIX + channel)
