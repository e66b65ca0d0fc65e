"""Channels spread over several independent Redis servers (shards), as Centrifugo does with a
list of Redis addresses.  A channel lives on one shard, chosen by a stable hash of its name
(jump consistent hash of its SHA-1): its pub/sub, history and presence keys are all there.
Every instance must list the same shards in the same order.

Each shard is a :class:`~realtimemagic.brokers.redis.RedisBroker` of its own, with its own
listener, publisher, queue and reconnection: one shard down stops only its channels.  A shard
may be a ``redis+sentinel://`` URL.
"""
import hashlib
import time
from typing import Any, Callable, Dict, List, Optional

from .interface import Broker, BrokerSettings, Deliver, HistoryFigures
from .redis import RedisBroker

SUMMED = ("published", "received", "dropped", "publish_failed", "lost", "duplicates",
          "reconnects", "outages", "outage_seconds", "channels", "queued")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash: ``key`` (64 bits) to one of ``buckets``; when
    a bucket is added, only the keys that move to it change bucket."""
    bucket, jump = -1, 0
    while jump < buckets:
        bucket = jump
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        jump = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


def shard_index(channel: str, shards: int) -> int:
    digest = hashlib.sha1(channel.encode("utf-8")).digest()
    return jump_hash(int.from_bytes(digest[:8], "big"), shards)


class AllConnected:
    """Set when every shard's listener is connected (what start-up waits for)."""

    def __init__(self, shards: List[RedisBroker]) -> None:
        self.shards = shards

    def is_set(self) -> bool:
        return all(shard.connected.is_set() for shard in self.shards)

    def wait(self, timeout: Optional[float] = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for shard in self.shards:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not shard.connected.wait(left):
                return False
        return True


class ShardConnections(list):
    """One publishing connection per shard, closed together."""

    def close(self) -> None:
        for connection in self:
            try:
                connection.close()
            except Exception:  # closing a broken connection: nothing left to do
                pass


class ShardedRedisBroker(Broker):
    shared = True
    keeps_history = True

    def __init__(self, urls: List[str], deliver: Deliver, settings: BrokerSettings) -> None:
        self.url = ",".join(urls)
        self.shards = [RedisBroker(url, deliver, settings) for url in urls]
        self.connected = AllConnected(self.shards)
        self.url_for_logs = ",".join(shard.url_for_logs for shard in self.shards)

    def shard_for(self, channel: str) -> RedisBroker:
        return self.shards[shard_index(channel, len(self.shards))]

    def start(self) -> None:
        for shard in self.shards:
            shard.start()

    def stop(self) -> None:
        for shard in self.shards:
            shard.stop()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    # -- one channel: its shard ------------------------------------------------------------

    def publish(self, channel: str, message: Any, options: Any = None) -> None:
        self.shard_for(channel).publish(channel, message, options)

    def publish_event(self, channel: str, action: str, client: Any) -> None:
        self.shard_for(channel).publish_event(channel, action, client)

    def subscribe(self, channel: str) -> None:
        self.shard_for(channel).subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        self.shard_for(channel).unsubscribe(channel)

    def wait_subscribed(self, channel: str, timeout: float) -> bool:
        return self.shard_for(channel).wait_subscribed(channel, timeout)

    def snapshot(self, channel: str, options: Any) -> Any:
        return self.shard_for(channel).snapshot(channel, options)

    def presence_add(self, channel: str, key: str, info: Any) -> None:
        self.shard_for(channel).presence_add(channel, key, info)

    def presence_remove(self, channel: str, key: str) -> None:
        self.shard_for(channel).presence_remove(channel, key)

    def presence_members(self, channel: str) -> List[Any]:
        return self.shard_for(channel).presence_members(channel)

    def maintain(self, ttl_of: Callable[[str], float]) -> None:
        for shard in self.shards:
            shard.maintain(ttl_of)

    def history_figures(self) -> HistoryFigures:
        """The shards' figures summed (each shard bounds its own history: history_max_channels
        and history_max_bytes apply per shard)."""
        figures = [shard.history_figures() for shard in self.shards]
        return HistoryFigures(*(sum(column) for column in zip(*figures)))

    # -- the Publisher helper (realtimemagic.publisher) -------------------------------------

    def connect_publisher(self) -> ShardConnections:
        return ShardConnections(shard.connect_publisher() for shard in self.shards)

    def envelope(self, channel: str, message: Any, action: str = "message",
                 numbers: Any = None) -> str:
        return self.shard_for(channel).envelope(channel, message, action, numbers)

    def send_payload(self, connections: ShardConnections, channel: str, payload: str) -> None:
        index = shard_index(channel, len(self.shards))
        self.shards[index].send_payload(connections[index], channel, payload)

    # -- stats -----------------------------------------------------------------------------

    def status(self) -> Dict[str, Any]:
        """The shards' counters summed, ``state`` connected when every shard is, and each
        shard's own status under ``shards``."""
        shards = [shard.status() for shard in self.shards]
        total: Dict[str, Any] = {name: sum(status[name] for status in shards)
                                 for name in SUMMED}
        down = [status["url"] for status in shards if status["state"] != "connected"]
        total.update(url=self.url_for_logs, shards=shards,
                     state="reconnecting" if down else "connected", shards_down=down,
                     last_error=next((status["last_error"] for status in shards
                                      if status["last_error"]), None))
        return total
