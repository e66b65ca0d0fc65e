"""History with recovery, and presence with join/leave (docs/history.md), with the in-process
broker and with the real Redis (several instances)."""
import json
import time
import uuid

import pytest

from clients import WebSocketClient, XhrPollingClient
from conftest import free_port, need, redis_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

NAMESPACES = json.dumps({"hist": {"history_size": 100, "history_ttl": 600},
                         "room": {"presence": True, "join_leave": True}})


def start(start_server, broker, *flags):
    return start_server("realtimemagic.magic:RealTimeMagic", "--broker", broker,
                        "--namespaces", NAMESPACES, "--api-port", str(free_port()),
                        "--rate-limit", "10000", *flags)


def subscribe(client, channel, since=None):
    request_id = uuid.uuid4().hex[:8]
    payload = {"channel": channel}
    if since is not None:
        payload["since"] = since
    client.send({"action": "subscribe", "payload": payload, "id": request_id})
    reply = client.expect(lambda m: m.get("id") == request_id)
    assert reply["action"] == "subscribed", reply
    return reply["payload"]


def deliveries(client, count, timeout=10):
    got = [client.expect(lambda m: m.get("action") == "message", timeout=timeout)["payload"]
           for _ in range(count)]
    return got


def recovery_scenario(start_server, broker):
    server = start(start_server, broker)
    channel = "hist:%s" % uuid.uuid4().hex[:8]
    publisher = WebSocketClient(server)
    reader = WebSocketClient(server)
    subscribe(reader, channel)
    for n in range(5):
        publisher.publish(channel, n)
    seen = deliveries(reader, 5)
    assert [m["message"] for m in seen] == list(range(5))
    assert [m["offset"] for m in seen] == [seen[0]["offset"] + k for k in range(5)]
    position = {"offset": seen[-1]["offset"], "epoch": seen[-1]["epoch"]}
    reader.close()

    for n in range(5, 55):  # 50 published while the reader is away
        publisher.publish(channel, n)
    publisher.subscribed("sync-%s" % uuid.uuid4().hex[:6])  # all 50 are in

    back = XhrPollingClient(server)  # comes back over another transport, on purpose
    reply = subscribe(back, channel, since=position)
    assert reply["recovered"] is True and reply["epoch"] == position["epoch"]
    for n in range(55, 58):  # live ones right behind the replay
        publisher.publish(channel, n)
    got = deliveries(back, 53)
    assert [m["message"] for m in got] == list(range(5, 58)), (
        "gap or duplicate at the seam: %s" % [(m["message"], m["offset"]) for m in got])
    assert [m["offset"] for m in got] == list(range(position["offset"] + 1,
                                                    position["offset"] + 54))
    assert back.nothing_within(0.5)
    for client in (publisher, back):
        client.close()
    return server, channel, position


def test_recovery_with_the_memory_broker(start_server):
    recovery_scenario(start_server, "memory://")


def test_recovery_with_redis(start_server, private_redis):
    recovery_scenario(start_server, private_redis)


def test_recovery_across_instances_with_redis(start_server, private_redis):
    a, b = start(start_server, private_redis), start(start_server, private_redis)
    channel = "hist:%s" % uuid.uuid4().hex[:8]
    reader = WebSocketClient(a)
    subscribe(reader, channel)
    publisher = WebSocketClient(b)
    publisher.publish(channel, "first")
    first = deliveries(reader, 1)[0]
    reader.close()
    for n in range(50):
        publisher.publish(channel, n)
    publisher.subscribed("sync")
    time.sleep(0.3)
    back = WebSocketClient(b)  # back on the other instance
    reply = subscribe(back, channel, since={"offset": first["offset"], "epoch": first["epoch"]})
    assert reply["recovered"] is True
    assert [m["message"] for m in deliveries(back, 50)] == list(range(50))


def test_lost_history_answers_recovered_false(start_server, private_redis):
    import redis
    server = start(start_server, private_redis)
    channel = "hist:%s" % uuid.uuid4().hex[:8]
    client = WebSocketClient(server)
    subscribe(client, channel)
    client.publish(channel, "before the flush")
    seen = deliveries(client, 1)[0]
    client.close()
    redis.Redis.from_url(private_redis).flushall()
    publisher = WebSocketClient(server)
    publisher.publish(channel, "after the flush")
    publisher.subscribed("sync")
    back = WebSocketClient(server)
    reply = subscribe(back, channel, since={"offset": seen["offset"], "epoch": seen["epoch"]})
    assert reply["recovered"] is False and reply["epoch"] != seen["epoch"]
    publisher.publish(channel, "live")
    assert deliveries(back, 1)[0]["message"] == "live", "nothing old, then live"


def test_too_short_history_answers_recovered_false(start_server):
    server = start(start_server, "memory://")
    channel = "hist:%s" % uuid.uuid4().hex[:8]
    client = WebSocketClient(server)
    subscribe(client, channel)
    client.publish(channel, 0)
    seen = deliveries(client, 1)[0]
    for n in range(150):  # history_size is 100
        client.publish(channel, n)
    client.subscribed("sync")
    back = WebSocketClient(server)
    reply = subscribe(back, channel, since={"offset": seen["offset"], "epoch": seen["epoch"]})
    assert reply["recovered"] is False


def presence_clients(client, channel):
    request_id = uuid.uuid4().hex[:8]
    client.send({"action": "presence", "payload": {"channel": channel}, "id": request_id})
    reply = client.expect(lambda m: m.get("id") == request_id)
    assert reply["action"] == "presence", reply
    return sorted(json.dumps(c, sort_keys=True) for c in reply["payload"]["clients"])


def test_presence_and_join_leave_across_instances(start_server):
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
    from freezeproxy import FreezeProxy
    broker = "redis://127.0.0.1:6379/0"
    timings = ("--disconnect-delay", "1", "--heartbeat-interval", "2")
    a, b = start(start_server, broker, *timings), start(start_server, broker, *timings)
    channel = "room:%s" % uuid.uuid4().hex[:8]
    watcher = WebSocketClient(a)
    subscribe(watcher, channel)
    assert len(presence_clients(watcher, channel)) == 1

    with FreezeProxy(("127.0.0.1", b.port)) as proxy:
        class ThroughProxy:
            port = proxy.port
        polling = XhrPollingClient(ThroughProxy)  # on b, through a proxy we can cut
        subscribe(polling, channel)
        join = watcher.expect(lambda m: m.get("action") == "join", timeout=10)
        assert join["payload"]["channel"] == channel and "session" in join["payload"]["client"]
        on_b = WebSocketClient(b)
        subscribe(on_b, channel)
        watcher.expect(lambda m: m.get("action") == "join", timeout=10)
        assert len(presence_clients(watcher, channel)) == 3
        assert presence_clients(on_b, channel) == presence_clients(watcher, channel)

        on_b.close()  # a clean close: leaves at once
        leave = watcher.expect(lambda m: m.get("action") == "leave", timeout=10)
        assert leave["payload"]["channel"] == channel
        assert len(presence_clients(watcher, channel)) == 2

        # A network cut without a close: the server's pending poll ends with the next
        # heartbeat, no new poll comes, and the session leaves after the disconnect delay.
        started = time.monotonic()
        proxy.freeze()
        leave = watcher.expect(lambda m: m.get("action") == "leave", timeout=30)
        print("the cut client left after %.1f s" % (time.monotonic() - started))
        assert leave["payload"]["client"] == join["payload"]["client"]
        assert len(presence_clients(watcher, channel)) == 1


def test_presence_with_the_memory_broker_and_refusals(start_server):
    server = start(start_server, "memory://")
    one, two = WebSocketClient(server), WebSocketClient(server)
    subscribe(one, "room:x")
    subscribe(two, "room:x")
    assert len(presence_clients(one, "room:x")) == 2
    one.send({"action": "presence", "payload": {"channel": "plain"}, "id": "p"})
    error = one.expect(lambda m: m.get("id") == "p")
    assert error["action"] == "error" and error["payload"]["code"] == "bad_request"
