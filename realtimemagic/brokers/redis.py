"""The Redis broker: Redis pub/sub between instances, and history and presence in Redis.

Each instance subscribes only to the Redis channels (``rtm:<channel>``) it has local subscribers
for, and unsubscribes when the last one leaves.  Redis pub/sub keeps nothing: while an instance
is disconnected it misses what the others publish (counted as outages in the stats); its own
messages are queued (``broker_queue_size``) and sent once it is back.

History (docs/history.md): a Lua script gives each message its offset (``rtm:n:<channel>``),
appends it to the list ``rtm:h:<channel>`` trimmed to ``history_size`` and publishes it, in one
step, so that offsets and the order of delivery agree on every instance.  ``rtm:e:<channel>``
holds the epoch; all three expire ``history_ttl`` after the last message.  The same script
keeps the histories within ``history_max_channels`` and ``history_max_bytes`` for the whole
Redis: the index ``rtm:hi`` (a sorted set, channel -> time of its last message) drops the least
recently published channel first, ``rtm:hx`` (channel -> expiry) the expired ones, and
``rtm:hb``/``rtm:hc`` (hashes, channel -> bytes/entries charged) with the totals in
``rtm:ht`` say how much is held.  All four are bounded by ``history_max_channels``.  Presence:
``rtm:p:<channel>`` (a hash: member -> description) and ``rtm:pz:<channel>`` (member -> expiry),
refreshed by each instance for its own members.

With a ``redis+sentinel://`` URL (:mod:`.redis_urls`) every connection asks the
sentinels for the master when it opens, so after a failover the reconnecting listener and
publisher reach the new master; the listener subscribes again, the publisher sends what was
queued meanwhile (numbered: a message that reached the old master too is delivered once).
"""
import json
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import gevent

from .. import jsoncodec
from ..config import FIXED
from ..exceptions import MissingExtra

try:
    import redis
except ImportError as error:
    raise MissingExtra("redis://", "redis-py", "redis") from error

from . import redis_urls
from ..pubsub.history import Entry, Snapshot, new_epoch, unexpired
from .base import COMMAND_LATENCY, NetworkBroker, Outgoing
from .interface import BrokerSettings, Deliver, HistoryFigures

log = logging.getLogger("realtimemagic.broker")

PREFIX = "rtm:"
PRESENCE_TTL = FIXED.redis_presence_ttl  # s: a member not refreshed for this long is gone
PRESENCE_REFRESH = FIXED.redis_presence_refresh  # s: an instance refreshes its members
INDEX_KEYS = (PREFIX + "hi", PREFIX + "hx", PREFIX + "hb", PREFIX + "hc", PREFIX + "ht")
# What a channel and an entry are charged besides their text, in bytes (Redis's keys, list
# nodes and index entries, roughly).
CHANNEL_COST = FIXED.redis_channel_cost
ENTRY_COST = FIXED.redis_entry_cost
EXPIRED_PER_CALL = FIXED.redis_expired_per_call  # dropped by one publish (maintain: the rest)
PUBLISH_BATCH = FIXED.redis_publish_batch  # queued messages sent in one pipeline at most

# The bookkeeping of the history index, shared by both scripts.  KEYS[1..5]: INDEX_KEYS.
HISTORY_INDEX = """
local prefix = 'rtm:'  -- PREFIX
local function charge(channel, bytes, entries)
  redis.call('HINCRBY', KEYS[3], channel, bytes)
  redis.call('HINCRBY', KEYS[4], channel, entries)
  redis.call('HINCRBY', KEYS[5], 'bytes', bytes)
  redis.call('HINCRBY', KEYS[5], 'entries', entries)
end
local function release(channel)
  local bytes = tonumber(redis.call('HGET', KEYS[3], channel) or '0')
  local entries = tonumber(redis.call('HGET', KEYS[4], channel) or '0')
  redis.call('HDEL', KEYS[3], channel)
  redis.call('HDEL', KEYS[4], channel)
  redis.call('HINCRBY', KEYS[5], 'bytes', 0 - bytes)  -- not -bytes: "-0" is no integer
  redis.call('HINCRBY', KEYS[5], 'entries', 0 - entries)
  redis.call('ZREM', KEYS[1], channel)
  redis.call('ZREM', KEYS[2], channel)
end
local function drop(channel)
  release(channel)
  redis.call('DEL', prefix .. 'e:' .. channel, prefix .. 'n:' .. channel,
             prefix .. 'h:' .. channel)
end
local function drop_expired(now, count)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, count)
  for _, channel in ipairs(expired) do drop(channel) end
  return #expired
end
"""

# KEYS: INDEX_KEYS, then epoch, offset, list.  ARGV: redis channel, origin, channel (JSON),
# message (JSON), size, ttl (s), a new epoch in case there is none, now (ms), channel,
# history_max_channels, history_max_bytes, the sender's two numbers (brokers/sequence.py).
PUBLISH_WITH_HISTORY = HISTORY_INDEX + """
local channel = ARGV[9]
local epoch = redis.call('GET', KEYS[6])
if not epoch then
  epoch = ARGV[7]
  redis.call('SET', KEYS[6], epoch)
  redis.call('DEL', KEYS[7], KEYS[8])
  release(channel)  -- what its lost history was charged
  charge(channel, %(channel_cost)d + 2 * #channel, 0)
end
local offset = redis.call('INCR', KEYS[7])
local entry = '{"o":"' .. ARGV[2] .. '","c":' .. ARGV[3] .. ',"n":' .. offset .. ',"e":"' ..
  epoch .. '","t":' .. ARGV[8] .. ',"s":' .. ARGV[12] .. ',"k":' .. ARGV[13] .. ',"m":' ..
  ARGV[4] .. '}'
redis.call('RPUSH', KEYS[8], entry)
charge(channel, %(entry_cost)d + #entry, 1)
local excess = redis.call('LLEN', KEYS[8]) - tonumber(ARGV[5])
if excess > 0 then
  for _, old in ipairs(redis.call('LRANGE', KEYS[8], 0, excess - 1)) do
    charge(channel, -%(entry_cost)d - #old, -1)
  end
  redis.call('LTRIM', KEYS[8], excess, -1)
end
local now = tonumber(ARGV[8])
redis.call('ZADD', KEYS[1], now, channel)
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  redis.call('ZADD', KEYS[2], now + ttl * 1000, channel)
  redis.call('EXPIRE', KEYS[6], ttl)
  redis.call('EXPIRE', KEYS[7], ttl)
  redis.call('EXPIRE', KEYS[8], ttl)
else
  redis.call('ZREM', KEYS[2], channel)
end
drop_expired(now, %(expired_per_call)d)
local max_channels, max_bytes = tonumber(ARGV[10]), tonumber(ARGV[11])
while redis.call('ZCARD', KEYS[1]) > max_channels or
    tonumber(redis.call('HGET', KEYS[5], 'bytes') or '0') > max_bytes do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if oldest == nil or oldest == channel then break end
  drop(oldest)
  redis.call('HINCRBY', KEYS[5], 'dropped', 1)
end
redis.call('PUBLISH', ARGV[1], entry)
return offset
""" % {"channel_cost": CHANNEL_COST, "entry_cost": ENTRY_COST,
       "expired_per_call": EXPIRED_PER_CALL}

# KEYS: INDEX_KEYS.  ARGV: now (ms), most to drop.  Returns channels, entries, bytes, dropped.
DROP_EXPIRED = HISTORY_INDEX + """
drop_expired(tonumber(ARGV[1]), tonumber(ARGV[2]))
local totals = redis.call('HMGET', KEYS[5], 'entries', 'bytes', 'dropped')
return {redis.call('ZCARD', KEYS[1]), tonumber(totals[1] or '0'), tonumber(totals[2] or '0'),
        tonumber(totals[3] or '0')}
"""


class RedisBroker(NetworkBroker):
    """Redis pub/sub, with history and presence."""

    keeps_history = True
    batch_size = PUBLISH_BATCH

    def __init__(self, url: str, deliver: Deliver, settings: BrokerSettings) -> None:
        super().__init__(url, deliver, settings)
        self._reader: Optional[redis.Redis] = None  # a client for history and presence queries
        self._members: Dict[Tuple[str, str], str] = {}  # this instance's presence members
        self._history = HistoryFigures()

    def _client(self) -> redis.Redis:
        # RESP2: redis-py's pure-Python parser reads pub/sub messages faster than with RESP3
        # (measured: about 1.7 times as many a second), and nothing here needs RESP3.
        return redis_urls.client(
            self.url, socket_keepalive=True, socket_connect_timeout=5,
            health_check_interval=self.settings.health_interval,
            client_name="realtimemagic-broker", protocol=2)

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

    def send_batch(self, connection: redis.Redis, items: List[Outgoing]) -> None:
        """One round trip for what is queued: a message waits for Redis once, not once per
        message ahead of it."""
        pipeline = connection.pipeline(transaction=False)
        for item in items:
            self.send_item(pipeline, item)
        pipeline.execute()

    def send_payload(self, connection: redis.Redis, channel: str, payload: str) -> None:
        connection.publish(PREFIX + channel, payload)

    def send_history(self, connection: redis.Redis, item: Outgoing) -> None:
        channel, options = item.channel, item.options
        connection.eval(PUBLISH_WITH_HISTORY, 8, *INDEX_KEYS, *self._history_keys(channel),
                        PREFIX + channel, self.origin, json.dumps(channel),
                        jsoncodec.dumps(item.message),
                        options.history_size, int(options.history_ttl), new_epoch(),
                        int(time.time() * 1000), channel, self.settings.history_max_channels,
                        self.settings.history_max_bytes, *item.numbers)

    @staticmethod
    def _history_keys(channel: str) -> Tuple[str, str, str]:
        return PREFIX + "e:" + channel, PREFIX + "n:" + channel, PREFIX + "h:" + channel

    # -- listening -------------------------------------------------------------------------

    def _listen_forever(self) -> None:
        client = self._client()
        pubsub = client.pubsub()
        try:
            pubsub.ping()  # connects, so that a dead server is found here
            self._listen_to_all(
                lambda channels: pubsub.subscribe(*[PREFIX + channel for channel in channels]))
            self._came_up()
            while True:
                # Only this greenlet uses the connection: two greenlets reading it would share
                # redis-py's parser.  Commands from others wait here, read between messages.
                self._send_commands(lambda channel: pubsub.subscribe(PREFIX + channel),
                                    lambda channel: pubsub.unsubscribe(PREFIX + channel))
                # get_message pings on its own every health_interval (health_check_interval),
                # so a half-open connection is found even when nothing is published.
                message = pubsub.get_message(timeout=COMMAND_LATENCY)
                if message is None:
                    continue
                kind = message.get("type")
                if kind == "message":
                    self.received(message["data"])
                elif kind == "subscribe":
                    self._confirm(_decoded(message["channel"])[len(PREFIX):])
        finally:
            try:
                pubsub.close()
            except Exception:
                pass

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
        members: List[Any] = self.reader.zrange(expiry_key, 0, -1)
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

    def maintain(self, ttl_of: Callable[[str], float]) -> None:
        """Drop the expired histories from the index (Redis expires their keys itself; the
        expiry of each was written with its last message) and read the figures."""
        channels, entries, size, dropped = self.reader.eval(
            DROP_EXPIRED, len(INDEX_KEYS), *INDEX_KEYS, int(time.time() * 1000), 10000)
        self._history = HistoryFigures(channels, entries, size, dropped)

    def history_figures(self) -> HistoryFigures:
        """As of the last maintain() (every maintenance_interval)."""
        return self._history


def _decoded(name: Any) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else name
