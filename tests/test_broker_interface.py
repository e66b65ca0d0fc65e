"""Every broker (memory, redis, postgresql, nats) implements the whole broker interface
(realtimemagic.brokers.interface.Broker), each method by the class itself or explicitly inherited
from a broker base, and maintain() runs against the real services.  The PostgreSQL broker sends
LISTEN/UNLISTEN from its listener greenlet only (queued, as the Redis broker does)."""
import inspect
import os
import re
import subprocess
import sys
import uuid

import gevent
import pytest

from conftest import (NATS_URL, POSTGRES_URL, REDIS_URL, ROOT, nats_available, need,
                      postgres_available, redis_available)
from realtimemagic.brokers.base import Outgoing
from realtimemagic.brokers.interface import Broker, BrokerSettings
from realtimemagic.brokers.sequence import Numbers
from realtimemagic.brokers.memory import MemoryBroker
from realtimemagic.pubsub.namespaces import NamespaceOptions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

BROKERS = {"memory": "memory://", "redis": REDIS_URL, "postgresql": POSTGRES_URL,
           "nats": NATS_URL, "redis-sentinel": "redis+sentinel://127.0.0.1:26379/rtm/0",
           "redis-shards": REDIS_URL + ",redis://127.0.0.1:6379/1"}


def broker_class(name):
    if name == "redis-shards":
        from realtimemagic.brokers.sharded import ShardedRedisBroker
        return ShardedRedisBroker
    if name in ("redis", "redis-sentinel"):
        from realtimemagic.brokers.redis import RedisBroker
        return RedisBroker
    if name == "postgresql":
        from realtimemagic.brokers.postgres import PostgresBroker
        return PostgresBroker
    if name == "nats":
        from realtimemagic.brokers.nats import NatsBroker
        return NatsBroker
    return MemoryBroker


def make(name, deliver=lambda *arguments: 0):
    from realtimemagic import brokers
    return brokers.from_url(BROKERS[name], deliver)


def interface_methods():
    return sorted(name for name, member in vars(Broker).items()
                  if getattr(member, "__isabstractmethod__", False))


def test_the_interface_names_everything_the_server_calls():
    """A call to ``broker.<name>`` anywhere in the server is a member of the interface."""
    members = set(interface_methods()) | set(Broker.__annotations__)
    called = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "realtimemagic")):
        if folder.endswith("brokers"):
            continue
        for file_name in files:
            # config.py's ``broker`` is the URL, a string
            if file_name.endswith(".py") and file_name != "config.py":
                with open(os.path.join(folder, file_name), encoding="utf-8") as source:
                    called |= {name for owner, name in re.findall(
                        r"(?:(\w+)\.)?\bbroker\.(\w+)", source.read())
                        if owner != "settings"}  # settings.broker: the URL
    called -= {"base"}  # "from .brokers.base import" and the like
    assert called and called <= members, "not in the interface: %s" % (called - members)


@pytest.mark.parametrize("name", sorted(BROKERS))
def test_each_broker_implements_every_method_itself_or_explicitly_inherited(name):
    cls = broker_class(name)
    assert Broker in cls.__mro__ and not inspect.isabstract(cls)
    broker = make(name)  # an abstract method left would raise TypeError here
    for method in interface_methods():
        owner = next(klass for klass in cls.__mro__ if method in vars(klass))
        assert owner is not Broker, "%s.%s is the interface's stub" % (cls.__name__, method)
        assert callable(getattr(broker, method))
    for attribute, kind in Broker.__annotations__.items():
        assert isinstance(getattr(broker, attribute), kind), attribute
    assert broker.url_for_logs.startswith(BROKERS[name].split("://")[0])


def test_memory_broker_maintain_forgets_expired_histories():
    broker = MemoryBroker(lambda *arguments: 0)
    broker.publish("brief:1", "m", NamespaceOptions(history_size=5, history_ttl=0.2))
    broker.publish("kept:1", "m", NamespaceOptions(history_size=5))
    assert broker.history_figures().channels == 2
    gevent.sleep(0.3)
    broker.maintain(lambda channel: 0.2 if channel.startswith("brief:") else 0)
    assert broker.history_figures()[:2] == (1, 1)


def test_redis_broker_maintain_against_redis():
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
    import redis
    broker = make("redis")
    channel = "iface-%s" % uuid.uuid4().hex[:8]
    broker.send_history(redis.Redis.from_url(REDIS_URL), Outgoing(
        "history", channel, "m", Numbers(1, 1), NamespaceOptions(history_size=5, history_ttl=60)))
    broker.maintain(lambda name: 60)
    assert broker.history_figures().channels >= 1  # a shared Redis: others' histories too
    redis.Redis.from_url(REDIS_URL).delete(*["rtm:%s:%s" % (kind, channel)
                                             for kind in "hne"])


def test_postgres_broker_maintain_and_queued_listen_against_postgresql():
    need(postgres_available(), "PostgreSQL at 127.0.0.1:5432 (db test) is needed")
    import psycopg2
    received = []
    broker = make("postgresql", lambda channel, message, *rest: received.append(message))
    queries = []
    execute = broker._execute

    def recording(query, arguments=None):
        queries.append((query.split()[0], gevent.getcurrent()))
        return execute(query, arguments)

    broker._execute = recording
    broker.start()
    try:
        assert broker.wait_connected(10)
        broker.maintain(lambda name: 0)  # an explicit no-op: nothing to raise
        channel = "iface-%s" % uuid.uuid4().hex[:8]
        broker.subscribe(channel)  # queued: returns before any query
        assert queries == []
        assert broker.wait_subscribed(channel, 5)
        other = psycopg2.connect(POSTGRES_URL)
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", (
                "rtm_" + __import__("hashlib").sha1(channel.encode()).hexdigest()[:40],
                '{"o": "elsewhere", "c": "%s", "m": "hello"}' % channel))
        other.close()
        deadline = gevent.Timeout(5)
        with deadline:
            while not received:
                gevent.sleep(0.05)
        assert received == ["hello"]
        broker.unsubscribe(channel)
        gevent.sleep(0.3)
        listener = broker._greenlets[0]
        assert [kind for kind, _ in queries] == ["LISTEN", "UNLISTEN"]
        assert all(greenlet is listener for _, greenlet in queries), (
            "LISTEN/UNLISTEN run in the listener greenlet only")
    finally:
        broker.stop()


NATS_CHECK = """
from realtimemagic import patch_all
patch_all()  # the NATS client speaks through the socket module, made cooperative
from realtimemagic import brokers
broker = brokers.from_url(%r, lambda *arguments: 0)
broker.start()
assert broker.wait_connected(10), "not connected"
broker.maintain(lambda name: 0)  # an explicit no-op
broker.subscribe(%r)  # wakes the broker's own writer greenlet
assert broker.wait_subscribed(%r, 5), "not confirmed"
broker.stop()
print("ok")
"""


def test_nats_broker_maintain_against_nats():
    need(nats_available(), "NATS at 127.0.0.1:4222 is needed")
    channel = "iface-%s" % uuid.uuid4().hex[:8]
    result = subprocess.run([sys.executable, "-c", NATS_CHECK % (NATS_URL, channel, channel)],
                            cwd=ROOT, capture_output=True, text=True, timeout=40)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_brokers_take_their_history_bounds_from_the_config():
    from realtimemagic import RealTimeMagic
    rtm = RealTimeMagic(history_max_channels=7, history_max_bytes=12345)
    assert (rtm.broker.history.max_channels, rtm.broker.history.max_bytes) == (7, 12345)
    settings = BrokerSettings.from_config(rtm.settings)
    assert (settings.history_max_channels, settings.history_max_bytes) == (7, 12345)
