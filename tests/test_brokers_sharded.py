"""Channels sharded over three independent Redis servers (a comma-separated broker URL): a
publish on one instance reaches every subscriber on another exactly once, each channel lives on
one shard (its pub/sub, history and presence), and recovery and presence work there."""
import json
import urllib.request
import uuid

import pytest

from clients import WebSocketClient
from conftest import free_port
from redisnodes import redis_shards
from realtimemagic.brokers.sharded import shard_index

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CHANNELS = 1000
PER_CLIENT = 100  # the default max_subscriptions
NAMESPACES = json.dumps({"hist": {"history_size": 100, "history_ttl": 600},
                         "room": {"presence": True, "join_leave": True}})


@pytest.fixture
def shards(tmp_path):
    with redis_shards(tmp_path, 3) as nodes:
        yield nodes


def serve(start_server, shards, *flags):
    api_port = free_port()
    server = start_server("realtimemagic.magic:RealTimeMagic", "--broker",
                          ",".join(node.url for node in shards), "--api-port", str(api_port),
                          "--rate-limit", "10000", "--namespaces", NAMESPACES, *flags)
    server.api = "http://127.0.0.1:%d" % api_port
    return server


def subscribe_all(client, channels, since=None):
    """Subscribe to every channel (pipelined), then wait for each confirmation."""
    ids = []
    for channel in channels:
        payload = {"channel": channel}
        if since is not None:
            payload["since"] = since
        ids.append(uuid.uuid4().hex[:8])
        client.send({"action": "subscribe", "payload": payload, "id": ids[-1]})
    replies = {}
    while len(replies) < len(ids):
        reply = client.expect(lambda m: m.get("id") in ids, timeout=60)
        assert reply["action"] == "subscribed", reply
        replies[reply["id"]] = reply["payload"]
    return [replies[request_id] for request_id in ids]


def deliveries(client, count):
    return [client.expect(lambda m: m.get("action") == "message", timeout=20)["payload"]
            for _ in range(count)]


def test_a_thousand_channels_over_three_shards_exactly_once(start_server, shards):
    a = serve(start_server, shards)
    b = serve(start_server, shards, "--max-subscriptions", str(PER_CLIENT + 1))
    prefix = "shard-%s-" % uuid.uuid4().hex[:6]
    channels = [prefix + str(n) for n in range(CHANNELS)]
    groups = [channels[n:n + PER_CLIENT] for n in range(0, CHANNELS, PER_CLIENT)]
    # Two subscribers on B for every channel.
    subscribers = [(WebSocketClient(b), group) for group in groups + groups]
    for client, group in subscribers:
        for n in range(0, len(group), 25):
            client.send_many({"action": "subscribe", "payload": {"channel": channel}}
                             for channel in group[n:n + 25])
    for client, group in subscribers:
        subscribe_all(client, [prefix + "sync"])  # answered after the 100 before it

    on_shard = [{name.decode()[len("rtm:"):] for name in node.client().pubsub_channels(
        "rtm:" + prefix + "*")} - {prefix + "sync"} for node in shards]
    assert all(on_shard), "a shard got no channel: %s" % [len(s) for s in on_shard]
    assert sum(len(names) for names in on_shard) == CHANNELS
    assert set().union(*on_shard) == set(channels)
    for index, names in enumerate(on_shard):
        assert all(shard_index(name, 3) == index for name in names)

    publisher = WebSocketClient(a)
    publisher.send_many({"action": "publish", "payload": {"channel": channel, "message": n}}
                        for n, channel in enumerate(channels))
    for client, group in subscribers:
        got = deliveries(client, len(group))
        assert sorted(m["channel"] for m in got) == sorted(group)
        assert all(m["message"] == channels.index(m["channel"]) for m in got)
        assert client.nothing_within(0.2), "a message arrived twice"

    with urllib.request.urlopen(b.api + "/api/stats", timeout=5) as response:
        broker = json.load(response)["broker"]
    print("\nreceived by B per shard: %s" % [shard["received"] for shard in broker["shards"]])
    assert broker["received"] == CHANNELS and all(s["received"] for s in broker["shards"])
    assert broker["state"] == "connected" and broker["lost"] == broker["duplicates"] == 0

    # The Publisher helper places channels as the instances do.
    from realtimemagic.publisher import Publisher
    publisher_helper = Publisher(",".join(node.url for node in shards))
    for index in range(3):
        channel = next(name for name in channels if shard_index(name, 3) == index)
        publisher_helper.publish(channel, "helper")
        for client, group in subscribers:
            if channel in group:
                assert client.expect(lambda m: m.get("action") == "message")["payload"] == {
                    "channel": channel, "message": "helper"}
    publisher_helper.close()
    for client, _ in subscribers:
        client.close()
    publisher.close()


def test_history_recovery_and_presence_on_a_sharded_channel(start_server, shards):
    a, b = serve(start_server, shards), serve(start_server, shards)
    history = "hist:%s" % uuid.uuid4().hex[:8]
    home = shards[shard_index(history, 3)]
    reader, publisher = WebSocketClient(a), WebSocketClient(b)
    subscribe_all(reader, [history])
    publisher.publish(history, "first")
    seen = deliveries(reader, 1)[0]
    reader.close()
    for n in range(50):
        publisher.publish(history, n)
    publisher.subscribed("sync-" + history)
    back = WebSocketClient(a)
    reply = subscribe_all(back, [history], since={"offset": seen["offset"],
                                                   "epoch": seen["epoch"]})[0]
    assert reply["recovered"] is True and reply["epoch"] == seen["epoch"]
    assert [m["message"] for m in deliveries(back, 50)] == list(range(50))
    keys = ["rtm:%s:%s" % (kind, history) for kind in ("h", "n", "e")]
    for node in shards:
        assert node.client().exists(*keys) == (3 if node is home else 0)

    room = "room:%s" % uuid.uuid4().hex[:8]
    watcher, joining = WebSocketClient(a), WebSocketClient(b)
    subscribe_all(watcher, [room])
    subscribe_all(joining, [room])
    assert watcher.expect(lambda m: m.get("action") == "join", timeout=10)
    watcher.send({"action": "presence", "payload": {"channel": room}, "id": "p"})
    assert len(watcher.expect(lambda m: m.get("id") == "p")["payload"]["clients"]) == 2
    for node in shards:
        assert bool(node.client().exists("rtm:p:" + room)) is (
            node is shards[shard_index(room, 3)])
    joining.close()
    assert watcher.expect(lambda m: m.get("action") == "leave", timeout=10)
    for client in (publisher, back, watcher):
        client.close()
