"""Without servers: the numbering that drops duplicates and counts losses, the URL forms of
Sentinel and of shards, and the stable placement of channels on shards."""
import collections

import pytest

from realtimemagic import brokers
from realtimemagic.brokers import redis_urls
from realtimemagic.brokers.sequence import ORIGINS_PER_CHANNEL, Arrivals, Numbers, Sequencer
from realtimemagic.brokers.sharded import ShardedRedisBroker, jump_hash, shard_index
from realtimemagic.exceptions import ConfigError


def test_sequencer_counts_per_origin_and_per_channel():
    sequence = Sequencer(channels=2)
    assert [sequence.next(c) for c in "aab"] == [Numbers(1, 1), Numbers(2, 2), Numbers(3, 1)]
    sequence.next("c")  # "a" is now the least recently used of three: forgotten
    assert sequence.next("a") == Numbers(5, 1)


def test_arrivals_drop_duplicates_and_count_gaps():
    arrivals = Arrivals()
    assert arrivals.check("ch", "x", Numbers(10, 1)) == (True, 0)  # first heard: no gap known
    assert arrivals.check("ch", "x", Numbers(11, 2)) == (True, 0)
    assert arrivals.check("ch", "x", Numbers(11, 2)) == (False, 0)  # sent again: dropped
    assert arrivals.check("ch", "x", Numbers(9, 1)) == (False, 0)
    assert arrivals.check("ch", "x", Numbers(20, 5)) == (True, 2)  # 3 and 4 never came
    assert arrivals.check("ch", "y", Numbers(1, 1)) == (True, 0)  # another origin
    assert arrivals.check("ch", "x", Numbers(30, 1)) == (True, 0)  # x's count started again
    assert arrivals.check("ch", "x", None) == (True, 0)  # not numbered: delivered
    arrivals.forget("ch")
    assert arrivals.check("ch", "x", Numbers(40, 9)) == (True, 0)


def test_arrivals_remember_a_bounded_number_of_origins():
    arrivals = Arrivals()
    for n in range(ORIGINS_PER_CHANNEL + 1):
        arrivals.check("ch", "origin-%d" % n, Numbers(1, 1))
    assert arrivals.check("ch", "origin-0", Numbers(1, 1)) == (True, 0)  # forgotten
    assert arrivals.check("ch", "origin-5", Numbers(1, 1)) == (False, 0)  # remembered


def test_envelopes_from_another_program_cannot_stop_the_listener():
    delivered = []
    broker = brokers.from_url("redis://127.0.0.1:1/0",
                              lambda *message: delivered.append(message) or 1)
    broker.channels.add("ch")
    for text in ('{"o": ["x"], "c": "ch", "m": 0}', '{"o": "x", "c": ["ch"], "m": 0}',
                 '{"o": "x", "c": "ch", "m": 1, "s": true, "k": 1}',  # not numbered
                 '{"o": "x", "c": "ch", "m": 2, "s": 1, "k": 1}',
                 '{"o": "x", "c": "ch", "m": 2, "s": 1, "k": 1}'):  # twice: once
        broker.received(text)
    assert delivered == [("ch", 1, "message"), ("ch", 2, "message")]
    assert broker.counters["duplicates"] == 1


def test_sentinel_urls():
    target = redis_urls.parse_sentinel(
        "redis+sentinel://:s3cret@10.0.0.1:26380,10.0.0.2,[::1]:26381/mymaster/2"
        "?sentinel_password=other&client_name=me")
    assert target.sentinels == [("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 26381)]
    assert (target.service, target.db, target.password) == ("mymaster", 2, "s3cret")
    assert (target.sentinel_password, target.client_name) == ("other", "me")
    assert redis_urls.parse_sentinel("redis+sentinel://h/m").db == 0
    for bad in ("redis+sentinel://h:26379", "redis+sentinel://h/m/x",
                "redis+sentinel://h:port/m", "redis+sentinel:///m"):
        with pytest.raises(ConfigError):
            redis_urls.parse_sentinel(bad)
    assert redis_urls.without_password("redis+sentinel://:s3cret@h/m") == (
        "redis+sentinel://:***@h/m")


def test_shard_lists():
    assert redis_urls.split_shards("redis://a:1/0, redis://b:2/0,redis+sentinel://c,d/m") == [
        "redis://a:1/0", "redis://b:2/0", "redis+sentinel://c,d/m"]
    assert redis_urls.split_shards("redis+sentinel://c:1,d:2/m/0") == [
        "redis+sentinel://c:1,d:2/m/0"]
    broker = brokers.from_url("redis://127.0.0.1:1/0,redis://127.0.0.1:2/0", lambda *a: 0)
    assert isinstance(broker, ShardedRedisBroker) and len(broker.shards) == 2
    with pytest.raises(ConfigError, match="each is redis://"):
        brokers.from_url("redis://a:1/0,postgresql://b/db", lambda *a: 0)
    with pytest.raises(ConfigError, match="twice"):
        brokers.from_url("redis://a:1/0,redis://a:1/0", lambda *a: 0)
    from realtimemagic.monitors.redis import RedisMonitor
    with pytest.raises(ConfigError, match="one Redis server"):
        RedisMonitor("redis://a:1/0,redis://b:1/0")


def test_channels_spread_evenly_and_stay_put():
    counts = collections.Counter(shard_index("channel-%d" % n, 3) for n in range(30000))
    assert sorted(counts) == [0, 1, 2] and min(counts.values()) > 9000
    # Fixed for ever (every instance, every version must agree): SHA-1 and the jump hash, no
    # per-process seed as Python's hash() has.
    assert [shard_index(name, 3) for name in ("news", "chat:room1", "caf\u00e9", "a", "b")] == [
        2, 1, 1, 0, 1]
    assert jump_hash(0, 1) == 0 and jump_hash(2 ** 64 - 1, 1) == 0
    # A fourth shard takes about a quarter of the channels; the others stay where they were.
    moved = [n for n in range(30000)
             if shard_index("channel-%d" % n, 3) != shard_index("channel-%d" % n, 4)]
    assert all(shard_index("channel-%d" % n, 4) == 3 for n in moved)
    assert 6000 < len(moved) < 9000
