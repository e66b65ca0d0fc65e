"""The Redis broker: Redis pub/sub between instances, and history and presence in Redis.

Each instance subscribes only to the Redis channels (``rtm:<channel>``) it has local subscribers
for, and unsubscribes when the last one leaves.  Redis pub/sub keeps nothing: while an instance
is disconnected it misses what the others publish (counted as outages in the stats); its own
messages are queued (``broker_queue_size``) and sent once it is back.

History (docs/history.md): a Lua script gives each message its offset (``rtm:n:<channel>``),
appends it to the list ``rtm:h:<channel>`` trimmed to ``history_size`` and publishes it, in one
step, so that offsets and the order of delivery agree on every instance.  ``rtm:e:<channel>``
holds the epoch; all three expire ``history_ttl`` after the last message.  Presence:
``rtm:p:<channel>`` (a hash: member -> description) and ``rtm:pz:<channel>`` (member -> expiry),
refreshed by each instance for its own members.
"""
import json
import logging
import time
from collections import deque
from typing import Any, Deque, Dict, List, Tuple

import gevent
from gevent.event import Event

from ..exceptions import MissingExtra

try:
    import redis
except ImportError as error:
    raise MissingExtra("redis://", "redis-py", "redis") from error

from ..pubsub.history import Entry, Snapshot, new_epoch, unexpired
from .base import BrokerSettings, Deliver, NetworkBroker

log = logging.getLogger("realtimemagic.broker")

PREFIX = "rtm:"
PRESENCE_TTL = 60.0      # s: a member not refreshed for this long is gone (its process died)
PRESENCE_REFRESH = 15.0  # s: how often an instance refreshes its own members
COMMAND_LATENCY = 0.05   # s: longest wait before the listener sends a (un)subscribe

# KEYS: epoch, offset, list.  ARGV: redis channel, origin, channel (JSON), message (JSON),
# size, ttl (s), a new epoch in case there is none, now (ms).
PUBLISH_WITH_HISTORY = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[7]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local offset = redis.call('INCR', KEYS[2])
local entry = '{"o":"' .. ARGV[2] .. '","c":' .. ARGV[3] .. ',"n":' .. offset .. ',"e":"' ..
  epoch .. '","t":' .. ARGV[8] .. ',"m":' .. ARGV[4] .. '}'
redis.call('RPUSH', KEYS[3], entry)
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
end
redis.call('PUBLISH', ARGV[1], entry)
return offset
"""


class RedisBroker(NetworkBroker):
    keeps_history = True

    def __init__(self, url: str, deliver: Deliver, settings: BrokerSettings) -> None:
        super().__init__(url, deliver, settings)
        self._commands: Deque[Tuple[str, str]] = deque()  # (un)subscribe, for the listener
        self._confirmed: Dict[str, Event] = {}
        self._reader = None  # a client for history and presence queries
        self._members: Dict[Tuple[str, str], str] = {}  # this instance's presence members

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url, socket_keepalive=True, socket_connect_timeout=5,
            health_check_interval=self.settings.health_interval,
            client_name="realtimemagic-broker")

    def start(self) -> None:
        super().start()
        self._greenlets.append(gevent.spawn(self._refresh_presence_forever))

    # -- publishing ------------------------------------------------------------------------

    def connect_publisher(self) -> redis.Redis:
        client = self._client()
        client.ping()
        return client

    def _ping_publisher(self, connection: redis.Redis) -> None:
        connection.ping()

    def send_payload(self, connection: redis.Redis, channel: str, payload: str) -> None:
        connection.publish(PREFIX + channel, payload)

    def send_history(self, connection: redis.Redis, channel: str, message: Any,
                     options: Any) -> None:
        connection.eval(PUBLISH_WITH_HISTORY, 3, *self._history_keys(channel),
                        PREFIX + channel, self.origin, json.dumps(channel),
                        json.dumps(message, ensure_ascii=False, separators=(",", ":")),
                        options.history_size, int(options.history_ttl), new_epoch(),
                        int(time.time() * 1000))

    @staticmethod
    def _history_keys(channel: str) -> Tuple[str, str, str]:
        return PREFIX + "e:" + channel, PREFIX + "n:" + channel, PREFIX + "h:" + channel

    # -- listening -------------------------------------------------------------------------

    def _listen_forever(self) -> None:
        client = self._client()
        pubsub = client.pubsub()
        try:
            pubsub.ping()  # connects, so that a dead server is found here
            for event in self._confirmed.values():
                event.clear()
            self._commands.clear()
            if self.channels:
                pubsub.subscribe(*[PREFIX + channel for channel in self.channels])
            self._came_up()
            while True:
                # Only this greenlet uses the connection: two greenlets reading it would share
                # redis-py's parser.  Commands from others wait here, read between messages.
                while self._commands:
                    command, redis_channel = self._commands.popleft()
                    getattr(pubsub, command)(redis_channel)
                # get_message pings on its own every health_interval (health_check_interval),
                # so a half-open connection is found even when nothing is published.
                message = pubsub.get_message(timeout=COMMAND_LATENCY)
                if message is None:
                    continue
                kind = message.get("type")
                if kind == "message":
                    self.received(message["data"])
                elif kind == "subscribe":
                    self._confirmation(message["channel"]).set()
        finally:
            try:
                pubsub.close()
            except Exception:
                pass

    def _confirmation(self, redis_channel: Any) -> Event:
        if isinstance(redis_channel, bytes):
            redis_channel = redis_channel.decode("utf-8")
        channel = redis_channel[len(PREFIX):]
        event = self._confirmed.get(channel)
        if event is None:
            event = self._confirmed[channel] = Event()
        return event

    def _listen(self, channel: str) -> None:
        self._confirmation(PREFIX + channel).clear()
        self._commands.append(("subscribe", PREFIX + channel))

    def _unlisten(self, channel: str) -> None:
        self._confirmed.pop(channel, None)
        self._commands.append(("unsubscribe", PREFIX + channel))

    def wait_subscribed(self, channel: str, timeout: float) -> bool:
        """False at once while the broker is down: local clients are served meanwhile, and the
        subscription is restored on reconnection."""
        if not self.connected.is_set():
            return False
        return self._confirmation(PREFIX + channel).wait(timeout)

    # -- history and presence --------------------------------------------------------------

    @property
    def reader(self) -> redis.Redis:
        if self._reader is None:
            self._reader = self._client()
        return self._reader

    def snapshot(self, channel: str, options: Any) -> Snapshot:
        epoch_key, offset_key, list_key = self._history_keys(channel)
        pipeline = self.reader.pipeline(transaction=True)
        pipeline.get(epoch_key)
        pipeline.get(offset_key)
        pipeline.lrange(list_key, 0, -1)
        epoch, top, raw_entries = pipeline.execute()
        entries = []
        for raw in raw_entries:
            envelope = json.loads(raw)
            entries.append(Entry(envelope["n"], envelope["m"], envelope["t"] / 1000.0))
        entries = unexpired(entries, options.history_ttl, time.time())
        return Snapshot(epoch.decode("utf-8") if epoch else None, entries, int(top or 0))

    def presence_add(self, channel: str, key: str, info: Any) -> None:
        member = self.origin + ":" + key
        description = json.dumps(info, ensure_ascii=False)
        self._members[(channel, member)] = description
        self._write_members([(channel, member, description)])

    def presence_remove(self, channel: str, key: str) -> None:
        member = self.origin + ":" + key
        self._members.pop((channel, member), None)
        pipeline = self.reader.pipeline(transaction=False)
        pipeline.hdel(PREFIX + "p:" + channel, member)
        pipeline.zrem(PREFIX + "pz:" + channel, member)
        pipeline.execute()

    def presence_members(self, channel: str) -> List[Any]:
        hash_key, expiry_key = PREFIX + "p:" + channel, PREFIX + "pz:" + channel
        now = time.time()
        gone = self.reader.zrangebyscore(expiry_key, "-inf", now)
        if gone:  # members of a process that died: forget them
            pipeline = self.reader.pipeline(transaction=False)
            pipeline.zrem(expiry_key, *gone)
            pipeline.hdel(hash_key, *gone)
            pipeline.execute()
        members = self.reader.zrange(expiry_key, 0, -1)
        if not members:
            return []
        return [json.loads(info) for info in self.reader.hmget(hash_key, members) if info]

    def _write_members(self, members: List[Tuple[str, str, str]]) -> None:
        expiry = time.time() + PRESENCE_TTL
        pipeline = self.reader.pipeline(transaction=False)
        for channel, member, description in members:
            pipeline.hset(PREFIX + "p:" + channel, member, description)
            pipeline.zadd(PREFIX + "pz:" + channel, {member: expiry})
            pipeline.expire(PREFIX + "p:" + channel, int(PRESENCE_TTL * 2))
            pipeline.expire(PREFIX + "pz:" + channel, int(PRESENCE_TTL * 2))
        pipeline.execute()

    def _refresh_presence_forever(self) -> None:
        while True:
            gevent.sleep(PRESENCE_REFRESH)
            if not self._members:
                continue
            try:
                self._write_members([(channel, member, description) for (channel, member),
                                     description in list(self._members.items())])
            except Exception as error:  # Redis away: the next round tries again
                log.warning("broker %s: presence refresh failed: %s", self.url_for_logs, error)

    def maintain(self, ttl_of) -> None:
        """Nothing to do: Redis expires history and presence keys itself."""
