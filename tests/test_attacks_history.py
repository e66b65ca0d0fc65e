"""History is bounded (docs/history.md): channels and bytes per process with memory://, for the
whole Redis with redis://; the least recently published history goes first; expired histories
are really freed.  Pure tests of the store, the Redis scripts on a Redis of the test's own, and
200,000 history channels published into a real server (RSS read from /proc)."""
import json
import sys
import time
import tracemalloc
import urllib.request
import uuid

import pytest

from clients import WebSocketClient
from conftest import free_port
from realtimemagic.config import Settings
from realtimemagic.pubsub.history import MemoryHistory, recover
from realtimemagic.pubsub.namespaces import NamespaceOptions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

BIG = 10 ** 12


# -- the in-process store ------------------------------------------------------------------

def test_the_least_recently_published_history_is_dropped_past_max_channels():
    history = MemoryHistory(max_channels=3, max_bytes=BIG)
    for channel in ("a", "b", "c", "a", "d"):  # "a" again: "b" is now the oldest
        history.append(channel, "m", 10, 0, 100.0)
    assert len(history) == 3 and history.dropped == 1
    assert history.snapshot("b", 0, 100.0).epoch is None, "b's history is gone"
    assert [entry.message for entry in history.snapshot("a", 0, 100.0).entries] == ["m", "m"]


def test_max_bytes_bounds_what_the_histories_are_charged():
    history = MemoryHistory(max_channels=BIG, max_bytes=100000)
    for number in range(2000):
        history.append("c%d" % number, "x" * 100, 10, 0, 100.0)
    assert 90000 < history.bytes <= 100000
    assert 0 < len(history) < 2000 and history.dropped == 2000 - len(history)
    assert history.snapshot("c1999", 0, 100.0).top == 1, "the newest is kept"
    assert history.snapshot("c0", 0, 100.0).epoch is None, "the oldest went first"


def test_a_message_larger_than_max_bytes_is_still_kept_alone():
    history = MemoryHistory(max_channels=10, max_bytes=1000)
    history.append("small", "x", 10, 0, 100.0)
    history.append("huge", "y" * 5000, 10, 0, 100.0)
    assert len(history) == 1 and history.snapshot("huge", 0, 100.0).top == 1


def test_trimmed_entries_are_uncharged():
    history = MemoryHistory()
    history.append("c", "first", 3, 0, 100.0)
    one_entry = history.bytes
    for number in range(10):
        history.append("c", "later", 3, 0, 100.0)
    assert history.entry_count == 3
    assert [entry.offset for entry in history.snapshot("c", 0, 100.0).entries] == [9, 10, 11]
    history.append("c", "first", 1, 0, 100.0)  # a smaller history_size trims at once
    assert history.entry_count == 1 and history.bytes == one_entry


def test_a_history_that_starts_again_has_a_new_epoch():
    """Offsets start again at 1 after a history was lost: a new epoch tells a client that saw
    the old one that it cannot recover (instead of replaying the wrong messages)."""
    history = MemoryHistory()
    for number in range(5):
        offset, old_epoch = history.append("c", number, 10, 1.0, 100.0)
    assert history.sweep(lambda channel: 1.0, 200.0) == 1
    for number in range(8):
        offset, new_epoch = history.append("c", number, 10, 1.0, 300.0)
    assert offset == 8 and new_epoch != old_epoch
    assert recover(5, old_epoch, history.snapshot("c", 1.0, 300.0)) == (False, [])
    recovered, entries = recover(5, new_epoch, history.snapshot("c", 1.0, 300.0))
    assert recovered and [entry.message for entry in entries] == [5, 6, 7]


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="tracemalloc is CPython's")
def test_the_sweep_gives_all_the_memory_back():
    """Everything held for 50,000 expired channels is freed, the table of channels included
    (a dict never shrinks by itself)."""
    history = MemoryHistory(max_channels=BIG, max_bytes=BIG)
    history.append("keep", "x", 10, 0, 100.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(50000):
            history.append("gone:%d" % number, {"n": number}, 10, 5.0, 100.0)
        grown = tracemalloc.get_traced_memory()[0] - before
        assert history.bytes >= grown, "the charge is an upper bound of what is held"
        history.sweep(lambda channel: 5.0 if channel.startswith("gone:") else 0, 200.0)
        left = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(history) == 1 and history.entry_count == 1
    assert left < 64 * 1024, "%d bytes still held after the sweep (%d at the peak)" % (
        left, grown)


# -- Redis ---------------------------------------------------------------------------------

def send_history(broker, client, channel, message, options):
    """What the broker's publisher does with one history message off its queue."""
    from realtimemagic.brokers.base import Outgoing
    from realtimemagic.brokers.sequence import Numbers
    broker.send_history(client, Outgoing("history", channel, message, Numbers(1, 1), options))


def redis_broker(url, **bounds):
    from realtimemagic.brokers.interface import BrokerSettings
    from realtimemagic.brokers.redis import RedisBroker
    return RedisBroker(url, lambda *arguments: 0, BrokerSettings(**bounds))


def test_redis_history_is_bounded_in_channels_and_bytes(private_redis):
    import redis
    client = redis.Redis.from_url(private_redis)
    broker = redis_broker(private_redis, history_max_channels=20, history_max_bytes=BIG)
    options = NamespaceOptions(history_size=3, history_ttl=600)
    for number in range(50):
        for _ in range(5):
            send_history(broker, client, "hist:%d" % number, {"n": number}, options)
    assert client.zcard("rtm:hi") == 20 and client.hlen("rtm:hb") == 20
    assert client.exists("rtm:h:hist:29", "rtm:n:hist:29", "rtm:e:hist:29") == 0, "dropped"
    assert client.llen("rtm:h:hist:30") == 3
    assert all(0 < client.ttl(key) <= 600 for key in client.keys("rtm:[hne]:*"))
    broker.maintain(lambda channel: 600)
    figures = broker.history_figures()
    assert (figures.channels, figures.entries, figures.dropped) == (20, 60, 30)
    assert figures.bytes == sum(int(value) for value in client.hvals("rtm:hb"))

    small = redis_broker(private_redis, history_max_channels=20, history_max_bytes=5000)
    send_history(small, client, "hist:last", "x" * 100, options)
    small.maintain(lambda channel: 600)
    assert 0 < small.history_figures().bytes <= 5000
    assert client.zscore("rtm:hi", "hist:last") is not None


def test_redis_expired_histories_leave_the_index(private_redis):
    import redis
    client = redis.Redis.from_url(private_redis)
    broker = redis_broker(private_redis)
    for number in range(5):
        send_history(broker, client, "brief:%d" % number, number,
                            NamespaceOptions(history_size=10, history_ttl=1))
    send_history(broker, client, "forever", "kept", NamespaceOptions(history_size=10))
    time.sleep(2.1)
    broker.maintain(lambda channel: 1)
    figures = broker.history_figures()
    assert (figures.channels, figures.entries) == (1, 1)
    assert client.keys("rtm:[hne]:brief:*") == [] and client.zcard("rtm:hx") == 0
    assert client.hkeys("rtm:hb") == [b"forever"]


# -- history channels against a real server ------------------------------------------------

CHANNELS = 200000
HISTORY_TTL = 8  # s
CAP = Settings().history_max_bytes  # the default, 16 MiB
NAMESPACES = json.dumps({"hist": {"history_size": 10, "history_ttl": HISTORY_TTL}})


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def api_stats(api_port):
    with urllib.request.urlopen("http://127.0.0.1:%d/api/stats" % api_port,
                                timeout=10) as response:
        return json.load(response)


def metrics(api_port):
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % api_port,
                                timeout=10) as response:
        return {sample.name: sample.value for family in
                text_string_to_metric_families(response.read().decode())
                for sample in family.samples}


def flood(server, count):
    """Publish once to each of ``count`` new history channels, in the server."""
    client = WebSocketClient(server)
    client.send({"flood": count, "prefix": uuid.uuid4().hex[:8]})
    client.expect(lambda message: message.get("flooded") == count, timeout=120)
    client.close()


def test_history_figures_in_stats_and_metrics(start_server):
    api_port = free_port()
    server = start_server("testapps:history_flood", "--api-port", str(api_port),
                          "--namespaces", NAMESPACES, "--history-max-channels", "1500")
    flood(server, 1000)
    history = api_stats(api_port)["history"]
    assert history == {"channels": 1000, "entries": 1000, "bytes": history["bytes"],
                       "dropped": 0, "max_channels": 1500, "max_bytes": CAP}
    flood(server, 1000)
    history = api_stats(api_port)["history"]
    assert (history["channels"], history["entries"], history["dropped"]) == (1500, 1500, 500)
    exported = metrics(api_port)
    assert exported["realtimemagic_history_channels"] == 1500
    assert exported["realtimemagic_history_entries"] == 1500
    assert exported["realtimemagic_history_bytes"] == history["bytes"]
    assert exported["realtimemagic_history_dropped_total"] == 500


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="RSS figures are CPython's")
def test_200000_history_channels_stay_under_the_cap_and_are_freed(start_server):
    """RSS is read from /proc only while the histories live and die, so that nothing else
    allocates meanwhile.  The cap is the default, 16 MiB: what stays behind after the TTL is
    CPython's fragmentation (a few long-lived objects allocated meanwhile keep 1 MiB arenas),
    which grows with the peak: about 5 to 9 MB at 32 MiB, 8 to 12 MB at 64 MiB, so the
    default is the cap that keeps it within 20% of the baseline."""
    api_port = free_port()
    server = start_server("testapps:history_flood", "--api-port", str(api_port),
                          "--maintenance-interval", "1", "--namespaces", NAMESPACES)
    pid = server.process.pid
    flood(server, 5000)  # every code path once (the API's too), then let it expire
    limits = api_stats(api_port)["history"]
    metrics(api_port)
    time.sleep(HISTORY_TTL + 3)
    baseline = rss_bytes(pid)

    started = time.monotonic()
    flood(server, CHANNELS)
    flooded_in = time.monotonic() - started
    peak = rss_bytes(pid)
    deadline = time.monotonic() + HISTORY_TTL + 30
    time.sleep(HISTORY_TTL + 3)
    after = rss_bytes(pid)
    while after > baseline * 1.2 and time.monotonic() < deadline:
        time.sleep(1)
        after = rss_bytes(pid)
    print("baseline %.1f MB, peak %.1f MB (flooded in %.1f s), after the TTL %.1f MB" % (
        baseline / 2**20, peak / 2**20, flooded_in, after / 2**20))
    assert limits["max_bytes"] == CAP
    assert peak - baseline <= CAP, "RSS grew by %.1f MB, over the %.1f MB cap" % (
        (peak - baseline) / 2**20, CAP / 2**20)
    history = api_stats(api_port)["history"]
    assert history["dropped"] > 0, "the cap was reached: the oldest histories were dropped"
    assert (history["channels"], history["entries"], history["bytes"]) == (0, 0, 0)
    assert after <= baseline * 1.2, "RSS %.1f MB after the TTL, baseline %.1f MB" % (
        after / 2**20, baseline / 2**20)
