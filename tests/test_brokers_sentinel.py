"""The Redis broker, history, presence and RedisMonitor behind Redis Sentinel
(redis+sentinel://): the master is killed with SIGKILL in the middle of a steady publish, the
sentinels promote the replica, and everything carries on with the new master
(docs/deployment.md, "Redis Sentinel")."""
import json
import queue
import time
import urllib.request
import uuid

import pytest

from clients import WebSocketClient
from conftest import free_port
from redisnodes import publish_through_failover, sentinel_group

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

RATE = 100                # messages per second, published on A
BEFORE_KILL = 200         # messages published before the master is killed
AFTER_PROMOTION = 5.0     # s of publishing after the sentinels name the new master
RESUME_BOUND = 5.0        # s: delivery resumes this soon after the promotion (documented)
BROKER_FLAGS = ("--broker-reconnect-min", "0.1", "--broker-reconnect-max", "1",
                "--broker-health-interval", "1", "--rate-limit", "10000")
NAMESPACES = json.dumps({"hist": {"history_size": 1000, "history_ttl": 600},
                         "room": {"presence": True}})


def serve(start_server, group, *flags, application="realtimemagic.magic:RealTimeMagic",
          env=None):
    api_port = free_port()
    server = start_server(application, "--broker", group.url, "--api-port", str(api_port),
                          *(BROKER_FLAGS + flags), env=env)
    server.api = "http://127.0.0.1:%d" % api_port
    return server


def broker_stats(server):
    with urllib.request.urlopen(server.api + "/api/stats", timeout=5) as response:
        return json.load(response)["broker"]


def metrics(server):
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(server.api + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


def request(client, action, payload):
    request_id = uuid.uuid4().hex[:8]
    client.send({"action": action, "payload": payload, "id": request_id})
    reply = client.expect(lambda m: m.get("id") == request_id, timeout=10)
    assert reply["action"] == {"subscribe": "subscribed"}.get(action, action), reply
    return reply["payload"]


@pytest.mark.parametrize("queue_size", [10000, 50])
def test_master_killed_during_a_steady_publish(tmp_path, start_server, queue_size):
    """With the default queue A keeps what it publishes while there is no master and sends it
    to the new one; with a queue of 50 most of the outage's messages are dropped on A, and B
    counts exactly what it misses either way."""
    with sentinel_group(tmp_path) as group:
        a = serve(start_server, group, "--broker-queue-size", str(queue_size))
        b = serve(start_server, group)
        channel = "failover-%s" % uuid.uuid4().hex[:8]
        sender, receiver = WebSocketClient(a), WebSocketClient(b)
        receiver.subscribed(channel)
        sender.subscribed("sync-" + channel)  # A is connected too

        run = publish_through_failover(group, sender, receiver, channel, RATE, BEFORE_KILL,
                                       AFTER_PROMOTION)
        numbers = run.numbers
        assert len(numbers) == len(set(numbers)), "a message was delivered twice"
        assert numbers == sorted(numbers), "out of order"
        assert numbers[-1] == run.sent - 1, "the last message never arrived"
        resumed, promoted, lost = run.resumed(BEFORE_KILL), run.promoted, run.lost
        stats_a, stats_b = broker_stats(a), broker_stats(b)
        print("\nsentinel failover: %d published at %d/s; promoted %.2f s after the kill; "
              "delivery resumed %.2f s after the promotion; longest delivery gap %.2f s; "
              "lost %d (B counted %d), duplicates dropped by B %d; A: publish_failed %d, "
              "dropped %d" % (run.sent, RATE, promoted - run.killed, resumed - promoted,
                              run.longest_gap(), lost, stats_b["lost"],
                              stats_b["duplicates"], stats_a["publish_failed"],
                              stats_a["dropped"]))
        assert resumed - promoted < RESUME_BOUND
        assert stats_b["lost"] == lost, "the stats' count differs from what was lost"
        assert metrics(b)["realtimemagic_broker_lost_total"] == lost
        assert stats_a["state"] == stats_b["state"] == "connected"
        assert stats_b["outages"] >= 1 and stats_a["publish_failed"] >= 1
        if queue_size < RATE:  # the outage is longer than a second: the small queue overflowed
            assert stats_a["dropped"] > 0 and lost >= stats_a["dropped"]


def test_history_presence_and_monitor_follow_a_failover(tmp_path, start_server):
    with sentinel_group(tmp_path) as group:
        # examples/monitor_redis.py: SUBSCRIBE events on the Sentinel-managed master.
        server = serve(start_server, group, "--namespaces", NAMESPACES,
                       application="examples.monitor_redis:rtm",
                       env={"RTM_MONITOR_REDIS_URL": group.url})
        other = serve(start_server, group, "--namespaces", NAMESPACES)
        history = "hist:%s" % uuid.uuid4().hex[:8]
        reader, writer = WebSocketClient(server), WebSocketClient(other)
        request(reader, "subscribe", {"channel": history})
        events = WebSocketClient(server)
        events.subscribed("events")
        writer.publish(history, "before")
        before = reader.expect(lambda m: m.get("action") == "message", timeout=10)["payload"]
        group.master.client().publish("events", json.dumps("before"))
        assert events.expect(lambda m: m.get("action") == "message")["payload"]["message"] == (
            "before")
        time.sleep(0.5)  # replicated
        reader.close()

        killed = group.kill_master()
        while not group.promoted():
            assert time.monotonic() - killed < 60, "no failover within 60 s"
            time.sleep(0.05)
        new_master = group.replica.client()

        # The monitor listens again, on the new master.
        deadline = time.monotonic() + 20
        while True:
            new_master.publish("events", json.dumps("after"))
            try:
                message = events.expect(lambda m: m.get("action") == "message", timeout=0.5)
                assert message["payload"]["message"] == "after"
                break
            except queue.Empty:
                assert time.monotonic() < deadline, "the monitor did not follow the failover"

        # History: what was replicated before the kill is recovered, then what came after.
        for n in range(3):
            writer.publish(history, n)
        writer.subscribed("sync-" + history)
        deadline = time.monotonic() + 20
        while int(new_master.get("rtm:n:" + history) or 0) < before["offset"] + 3:
            assert time.monotonic() < deadline, "publishing did not resume on the new master"
            time.sleep(0.1)
        back = WebSocketClient(other)
        reply = request(back, "subscribe", {"channel": history, "since": {
            "offset": before["offset"] - 1, "epoch": before["epoch"]}})
        assert reply["recovered"] is True
        got = [back.expect(lambda m: m.get("action") == "message")["payload"]["message"]
               for _ in range(4)]
        assert got == ["before", 0, 1, 2]

        # Presence, written to and read from the new master.
        room = "room:%s" % uuid.uuid4().hex[:8]
        here, there = WebSocketClient(server), WebSocketClient(other)
        request(here, "subscribe", {"channel": room})
        request(there, "subscribe", {"channel": room})
        assert len(request(here, "presence", {"channel": room})["clients"]) == 2
        assert new_master.exists("rtm:p:" + room)

        # The Publisher helper finds the new master too.
        from realtimemagic.publisher import Publisher
        publisher = Publisher(group.url)
        publisher.publish(room, {"via": "publisher"})
        assert there.expect(lambda m: m.get("action") == "message")["payload"]["message"] == {
            "via": "publisher"}
        publisher.close()
        for client in (writer, events, back, here, there):
            client.close()
