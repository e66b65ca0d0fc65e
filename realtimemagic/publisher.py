"""Publishing from application code outside the server (a Django view, a job), straight into the
broker, without the HTTP hop of the internal API.

    from realtimemagic.publisher import Publisher
    publisher = Publisher('redis://127.0.0.1:6379/0')   # the servers' --broker
    publisher.publish('news', {'headline': '...'})

Blocking calls (cooperative under gevent once patched).  With the in-process broker
(``memory://``) there is nothing to reach from outside: publish through the server's internal
API instead, with :func:`api_publish` (what ``rtm-publish`` does) or ``POST /api/publish``.
"""
import json
import urllib.error
import urllib.request
from typing import Any

from . import brokers
from .config import FIXED
from .exceptions import ConfigError, PublishError
from .pubsub import protocol

API_TIMEOUT = FIXED.api_publish_timeout  # seconds api_publish waits for the server


def api_publish(api_url: str, channel: str, message: Any, api_key: str = "",
                timeout: float = API_TIMEOUT) -> None:
    """Publish through the internal API at ``api_url`` (``http://127.0.0.1:9001``, the server's
    port + 1 by default).  Raises :class:`PublishError` unless a realtimemagic API took it."""
    url = api_url.rstrip("/") + "/api/publish"
    request = urllib.request.Request(
        url, method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"channel": channel, "message": message}).encode("utf-8"))
    if api_key:
        request.add_header("Authorization", "Bearer " + api_key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(4096)
    except urllib.error.HTTPError as error:
        raise PublishError("%s answered %d %s: %s" % (url, error.code, error.reason,
                                                      _refusal(error))) from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise PublishError("cannot reach %s: %s (is the server running? its API listens on "
                           "its port + 1; see --api-url)" % (url, reason)) from None
    try:
        published = json.loads(body).get("published") is True
    except (ValueError, AttributeError):
        published = False
    if not published:
        raise PublishError("%s is not a realtimemagic API (it answered %r); check --api-url"
                           % (url, body[:80]))


def _refusal(error: urllib.error.HTTPError) -> str:
    """The API's own reason, or what a wrong address means."""
    try:
        reason = json.loads(error.read(4096)).get("error")
    except (ValueError, AttributeError, OSError):
        reason = None
    if error.code == 401:
        return "%s (--api-key)" % (reason or "an API key is required")
    if isinstance(reason, str) and error.code != 404:
        return reason
    return "not a realtimemagic API at this address; check --api-url"


class Publisher:

    def __init__(self, broker_url: str) -> None:
        broker = brokers.from_url(broker_url, deliver=lambda channel, message: 0)
        if not broker.shared:
            raise ConfigError("%s cannot be reached from another process: publish through the "
                              "internal API (rtm-publish) instead" % broker_url)
        # A NetworkBroker, or Redis shards (ShardedRedisBroker: the same three methods, each
        # going to the channel's shard).
        self._broker: Any = broker
        self._connection = None

    def publish(self, channel: str, message: Any) -> None:
        """Raises as ``rtm.publish`` does: ValueError for a bad channel name or a message that
        is not strict JSON (NaN, an infinity, a lone surrogate), TypeError for a value JSON has
        no type for."""
        problem = protocol.channel_error(channel)
        if problem:
            raise ValueError(problem)
        protocol.check_value(message)
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
