"""RedisMonitor against the real Redis, in a real server (examples/monitor_redis.py and
tests/monitorapps.py): channel and pattern messages reach WebSocket and polling clients; a killed
or silently cut connection is reopened and its subscriptions restored; a function that raises
gets the next message; the monitor's waits never stall the other clients."""
import json
import time

import pytest

from clients import WebSocketClient
from conftest import need
from freezeproxy import FreezeProxy
from monitortools import (delivery, first_delivery, is_delivery, round_trips, unique,
                          wait_until)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

URL = "redis://127.0.0.1:6379/0"
REOPEN_BOUND = 10.0  # s: generous; expected about backoff_initial (0.5 s), plus the detection


def open_redis():
    """(client, None) or (None, why not)."""
    try:
        import redis
        client = redis.Redis.from_url(URL, socket_timeout=3, socket_connect_timeout=3)
        client.ping()
        return client, None
    except Exception as error:  # any reason at all: no driver, no server
        return None, error


@pytest.fixture(scope="module")
def redis_client():
    """A client for the test itself (PUBLISH, CLIENT LIST, CLIENT KILL)."""
    client, problem = open_redis()
    need(client is not None, "Redis at 127.0.0.1:6379 is needed (%s)" % problem)
    yield client
    client.close()


def monitor_connection(redis_client, client_name, other_than=None, timeout=15.0):
    """The id of the monitor's connection once it is subscribed to its channel and pattern."""
    def find():
        for entry in redis_client.client_list():
            if (entry["name"] == client_name and entry["id"] != other_than
                    and int(entry["sub"]) >= 1 and int(entry["psub"]) >= 1):
                return entry["id"]
        return None
    return wait_until(find, timeout, "a subscribed connection named %s" % client_name)


def connections_named(redis_client, client_name):
    return [entry["id"] for entry in redis_client.client_list() if entry["name"] == client_name]


def serve(start, application, client_name, url=URL, **env):
    environment = {"RTM_MONITOR_REDIS_URL": "%s?client_name=%s" % (url, client_name)}
    environment.update(env)
    return start(application, env=environment)


@pytest.fixture(scope="module")
def example(serve_module, redis_client):
    """examples/monitor_redis.py, with its own client name (other runs may share Redis):
    (server, client name)."""
    name = unique("rtm-test-redis")
    server = serve(serve_module, "examples.monitor_redis:rtm", name)
    monitor_connection(redis_client, name)
    return server, name


def test_channel_and_pattern_messages_reach_clients(example, redis_client, connect):
    server, _ = example
    client = connect(server)
    client.subscribed("events")
    job = unique("jobs:test")
    client.subscribed(job)
    marker = unique("e2e")
    redis_client.publish("events", json.dumps({"marker": marker}))
    assert client.expect(is_delivery) == delivery("events", {"marker": marker})
    redis_client.publish(job, json.dumps("done"))
    assert client.expect(is_delivery) == delivery(job, "done")


def test_function_that_raises_gets_the_next_message(example, redis_client):
    server, _ = example
    client = WebSocketClient(server)
    try:
        client.subscribed("events")
        marker = unique("after-explode")
        redis_client.publish("events", "{explode: true}")  # not JSON: the function raises
        redis_client.publish("events", json.dumps(marker))
        assert client.expect(is_delivery) == delivery("events", marker)
        wait_until(lambda: "JSONDecodeError" in server.log(), 5, "the traceback in the log")
        assert "monitor function events raised" in server.log()
    finally:
        client.close()


def test_killed_connection_is_reopened(example, redis_client):
    server, name = example
    client = WebSocketClient(server)
    try:
        client.subscribed("events")
        old_id = monitor_connection(redis_client, name)
        assert redis_client.client_kill_filter(_id=old_id) == 1  # CLIENT KILL ID, found by name
        killed = time.monotonic()
        marker = unique("reopened")
        arrived, _ = first_delivery(
            lambda n: redis_client.publish("events", json.dumps("%s-%d" % (marker, n))),
            client, lambda n: delivery("events", "%s-%d" % (marker, n)), killed)
        new_id = monitor_connection(redis_client, name, other_than=old_id)
        print("\nredis: CLIENT KILL -> first message delivered after %.2f s" % arrived)
        assert arrived < REOPEN_BOUND
        assert connections_named(redis_client, name) == [new_id]  # one connection
        redis_client.publish("events", json.dumps(marker + "-999"))
        assert client.expect(is_delivery) == delivery("events", marker + "-999")
    finally:
        client.close()


# -- tests/monitorapps.py: status, cut connections, cooperation -----------------------------------

def monitor_status(client):
    client.send({"monitor_status": True})
    return client.expect(lambda m: "monitor_status" in m)["monitor_status"]


def test_silently_cut_connection_is_found_and_reopened(start_server, redis_client):
    """A half-open connection (no FIN, no RST; nothing arrives any more) is found by the
    keepalive PING (here after 1 s, answered within 1 s) though no message is published."""
    name = unique("rtm-test-redis-cut")
    with FreezeProxy(("127.0.0.1", 6379)) as proxy:
        server = serve(start_server, "monitorapps:redis_app", name,
                       url="redis://127.0.0.1:%d/0" % proxy.port,
                       RTM_MONITOR_KEEPALIVE="1", RTM_MONITOR_CHECK_TIMEOUT="1")
        old_id = monitor_connection(redis_client, name)
        client = WebSocketClient(server)
        try:
            status = monitor_status(client)
            assert len(status) == 1, status
            assert status[0]["monitor"] == "redis" and status[0]["state"] == "listening"
            assert (status[0]["channels"], status[0]["patterns"]) == (["events"], ["jobs:*"])
            assert status[0]["functions"] == ["events", "jobs"]
            client.subscribed("events")
            assert proxy.freeze() == 1
            cut = time.monotonic()
            marker = unique("uncut")
            arrived, _ = first_delivery(
                lambda n: redis_client.publish("events", json.dumps("%s-%d" % (marker, n))),
                client, lambda n: delivery("events", "%s-%d" % (marker, n)), cut)
            print("\nredis: silent cut -> first message delivered after %.2f s" % arrived)
            assert arrived < REOPEN_BOUND
            monitor_connection(redis_client, name, other_than=old_id)
            status = monitor_status(client)[0]
            assert status["state"] == "listening" and status["reconnects"] == 1, status
            assert "no answer to PING" in status["last_error"], status
        finally:
            client.close()


def test_redis_restart_is_waited_out_with_backoff(start_server, redis_client):
    """Redis goes away (its connections closed, new ones refused) and comes back: the monitor
    retries, waiting longer each time, and subscribes again."""
    name = unique("rtm-test-redis-restart")
    with FreezeProxy(("127.0.0.1", 6379)) as proxy:
        server = serve(start_server, "monitorapps:redis_app", name,
                       url="redis://127.0.0.1:%d/0" % proxy.port)
        old_id = monitor_connection(redis_client, name)
        client = WebSocketClient(server)
        try:
            client.subscribed("events")
            proxy.stop()
            stopped = time.monotonic()
            down = wait_until(lambda: [s for s in monitor_status(client)
                                       if s["failed_attempts"] >= 2], 10, "two failed attempts")
            assert down[0]["state"] == "reconnecting", down
            away = time.monotonic() - stopped
            proxy.start()
            marker = unique("restarted")
            arrived, _ = first_delivery(
                lambda n: redis_client.publish("events", json.dumps("%s-%d" % (marker, n))),
                client, lambda n: delivery("events", "%s-%d" % (marker, n)), stopped)
            print("\nredis: Redis away for %.2f s -> first message delivered %.2f s after it "
                  "went away" % (away, arrived))
            assert arrived < REOPEN_BOUND
            new_id = monitor_connection(redis_client, name, other_than=old_id)
            status = monitor_status(client)[0]
            assert (status["state"], status["reconnects"], status["failed_attempts"]) == (
                "listening", 1, 0), status
            assert connections_named(redis_client, name) == [new_id]
        finally:
            client.close()


def test_idle_wait_does_not_stall_other_clients(start_server, redis_client):
    """A blocking wait would hold every client for the keepalive interval (30 s here)."""
    name = unique("rtm-test-redis-coop")
    server = serve(start_server, "monitorapps:redis_app", name, RTM_MONITOR_KEEPALIVE="30")
    monitor_connection(redis_client, name)
    listener, sender = WebSocketClient(server), WebSocketClient(server)
    try:
        listener.subscribed("ping")
        times = round_trips(sender, listener, "ping", 5)
        print("\nredis: round trips while the monitor waits %s s" % ["%.3f" % t for t in times])
        assert max(times) < 0.5
    finally:
        listener.close()
        sender.close()
