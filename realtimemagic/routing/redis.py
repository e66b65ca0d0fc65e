"""The session directory and inboxes in Redis.

``rtm:s:<prefix>/<session id>`` holds the owning process's id and expires ``routing_ttl``
after its last refresh.  Each process's inbox is the pub/sub channel ``rtm:i:<process id>``:
PUBLISH answers how many listen, so a message to a process that died is known lost at once.
"""
import logging
import time
from typing import Any, Callable, Dict, List, Optional

import gevent
import redis

from ..backoff import Backoff
from ..brokers import redis_urls
from ..config import FIXED
from ..exceptions import RoutesUnavailable
from ..runtime.routes import Message
from . import wire

log = logging.getLogger("realtimemagic.routing")

SESSION = "rtm:s:"
INBOX = "rtm:i:"
RECONNECT = FIXED.routing_reconnect  # seconds: first and longest wait before listening again

# KEYS: the session; ARGV: the node.  Deletes the entry if the node holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: sessions; ARGV: node, ttl (ms).  Refreshes the node's entries (re-created after a Redis
# restart); returns the keys another node holds.
REFRESH = """
local lost = {}
for _, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == false or owner == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, key)
  end
end
return lost
"""
REFRESH_BATCH = FIXED.routing_refresh_batch


class RedisRoutes:
    def __init__(self, url: str, node: str, ttl: float) -> None:
        self.url = url
        self.node = node
        self.ttl_ms = int(ttl * 1000)
        # The inbox's connection is pinged when quiet, so that a half-open one is found.
        # redis+sentinel://: each new connection asks the sentinels for the master.
        self.client = redis_urls.client(url, socket_connect_timeout=5, socket_timeout=5,
                                        socket_keepalive=True, health_check_interval=10,
                                        client_name="realtimemagic-routing")
        self._release = self.client.register_script(RELEASE)
        self._refresh = self.client.register_script(REFRESH)
        self._listener: Optional[gevent.Greenlet] = None

    def _call(self, command: Callable, *args: Any, **keywords: Any) -> Any:
        try:
            return command(*args, **keywords)
        except redis.RedisError as error:
            raise RoutesUnavailable(str(error)) from None

    def start(self, on_message: Callable[[Message], None]) -> None:
        self._listener = gevent.spawn(self._listen_forever, on_message)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.kill(block=False)
            self._listener = None

    def claim(self, key: str) -> Optional[str]:
        for _ in range(3):  # the owner's entry may expire between SET and GET
            if self._call(self.client.set, SESSION + key, self.node, nx=True, px=self.ttl_ms):
                return self.node
            owner = self._call(self.client.get, SESSION + key)
            if owner is not None:
                return owner.decode("ascii")
        return None

    def owner(self, key: str) -> Optional[str]:
        owner = self._call(self.client.get, SESSION + key)
        return owner.decode("ascii") if owner is not None else None

    def release(self, key: str, node: str) -> None:
        self._call(self._release, keys=[SESSION + key], args=[node])

    def refresh(self, keys: List[str]) -> List[str]:
        lost: List[str] = []
        for start in range(0, len(keys), REFRESH_BATCH):
            batch = [SESSION + key for key in keys[start:start + REFRESH_BATCH]]
            for key in self._call(self._refresh, keys=batch, args=[self.node, self.ttl_ms]):
                lost.append(key.decode("utf-8")[len(SESSION):])
        return lost

    def post(self, node: str, message: Message) -> None:
        payload = wire.dump(message)
        if not self._call(self.client.publish, INBOX + node, payload):
            raise RoutesUnavailable("process %s does not listen" % node)

    def _listen_forever(self, on_message: Callable[[Message], None]) -> None:
        backoff = Backoff(*RECONNECT)
        while True:
            started = time.monotonic()
            try:
                self._listen(on_message)
            except (redis.RedisError, OSError) as error:
                log.warning("routing inbox lost: %s", error)
            if time.monotonic() - started > RECONNECT[1]:
                backoff.reset()
            gevent.sleep(backoff.next())

    def _listen(self, on_message: Callable[[Message], None]) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(INBOX + self.node)
            while True:
                item: Optional[Dict] = pubsub.get_message(timeout=1.0)
                if item is None or item.get("type") != "message":
                    continue
                message = wire.load(item["data"])
                if message is not None:
                    on_message(message)
        finally:
            pubsub.close()
