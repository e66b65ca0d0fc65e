"""Publishing from application code outside the server (a Django view, a job), straight into the
broker, without the HTTP hop of the internal API.

    from realtimemagic.publisher import Publisher
    publisher = Publisher('redis://127.0.0.1:6379/0')   # the servers' --broker
    publisher.publish('news', {'headline': '...'})

Blocking calls (cooperative under gevent once patched).  With the in-process broker
(``memory://``) there is nothing to reach from outside: use ``rtm-publish`` or the internal API.
"""
from typing import Any

from . import brokers
from .exceptions import ConfigError
from .pubsub import protocol


class Publisher:

    def __init__(self, broker_url: str) -> None:
        self._broker = brokers.from_url(broker_url, deliver=lambda channel, message: 0)
        if not getattr(self._broker, "shared", False):
            raise ConfigError("%s cannot be reached from another process: publish through the "
                              "internal API (rtm-publish) instead" % broker_url)
        self._connection = None

    def publish(self, channel: str, message: Any) -> None:
        problem = protocol.channel_error(channel)
        if problem:
            raise ValueError(problem)
        if self._connection is None:
            self._connection = self._broker.connect_publisher()
        try:
            self._broker.send_payload(self._connection, channel,
                                      self._broker.envelope(channel, message))
        except Exception:
            self.close()  # reconnect on the next call
            raise

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                pass
