"""Brokers connect the processes that share channels, selected by URL (SPEC section 7):
``memory://`` (one process), ``redis://`` (Redis pub/sub), ``redis+sentinel://`` (the same,
through the master Sentinel names), several Redis URLs separated by commas (channels sharded
over them), ``postgresql://`` (LISTEN/NOTIFY), ``nats://`` (NATS subjects).

Each implements :class:`realtimemagic.brokers.interface.Broker`; a new broker subclasses it (a
networked one :class:`~realtimemagic.brokers.base.NetworkBroker`) and gets its scheme here."""
from typing import Any, Callable

from ..exceptions import ConfigError
from .interface import Broker, BrokerSettings
from .memory import MemoryBroker

__all__ = ["Broker", "BrokerSettings", "MemoryBroker", "from_url"]

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")



def from_url(url: str, deliver: Callable[..., int], settings: Any = None) -> Broker:
    """The broker for ``url``; ``deliver(channel, message)`` hands a message to this process's
    subscribers; ``settings`` is the config (its broker_* and history_max_* fields)."""
    scheme = url.split("://", 1)[0].lower()
    broker_settings = BrokerSettings.from_config(settings) if settings else BrokerSettings()
    if scheme == "memory":
        return MemoryBroker(deliver, broker_settings)
    if scheme in REDIS_SCHEMES:
        from .redis_urls import split_shards
        shards = split_shards(url)
        if len(shards) > 1:
            return _sharded(shards, deliver, broker_settings)
        from .redis import RedisBroker
        return RedisBroker(url, deliver, broker_settings)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresBroker
        return PostgresBroker(url, deliver, broker_settings)
    if scheme == "nats":
        from .nats import NatsBroker
        return NatsBroker(url, deliver, broker_settings)
    raise ConfigError("unsupported broker %r: use memory://, redis://, redis+sentinel://, "
                      "postgresql:// or nats://" % url)


def _sharded(urls, deliver, settings):
    from .sharded import ShardedRedisBroker
    for url in urls:
        if url.split("://", 1)[0].lower() not in REDIS_SCHEMES:
            raise ConfigError("a list of broker URLs shards channels over Redis servers: each "
                              "is redis://, rediss://, unix:// or redis+sentinel://, not %r"
                              % url.split("://", 1)[0])
    if len(set(urls)) != len(urls):
        raise ConfigError("a Redis shard is listed twice in the broker URL")
    return ShardedRedisBroker(urls, deliver, settings)
