"""Scale-out: several instances sharing channels through real Redis, PostgreSQL and NATS,
several gunicorn workers, broker loss, the internal API and rtm-publish."""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from clients import WebSocketClient, XhrPollingClient
from conftest import (POSTGRES_URL, REDIS_URL, ROOT, free_port, nats_server_binary, need,
                      postgres_available, redis_available, run_process, wait_for_port)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def shared_broker(request, name):
    """The URL of the machine's broker ``name``; skipped (failed under CI) when it is not up."""
    if name == "redis":
        need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
        return REDIS_URL
    if name == "postgresql":
        need(postgres_available(), "PostgreSQL at 127.0.0.1:5432 (database test) is needed")
        return POSTGRES_URL
    return request.getfixturevalue("nats_url")


def delivery(channel, message):
    return {"action": "message", "payload": {"channel": channel, "message": message}}


def is_delivery(message):
    return message.get("action") == "message"


def exactly_once_across(serve_module, broker_url):
    a = serve_module("realtimemagic.magic:RealTimeMagic", "--broker", broker_url)
    b = serve_module("realtimemagic.magic:RealTimeMagic", "--broker", broker_url)
    on_a = [WebSocketClient(a), XhrPollingClient(a)]
    on_b = [WebSocketClient(b), XhrPollingClient(b)]
    channel = "room-%d" % os.getpid()
    for client in on_a + on_b:
        client.subscribed(channel)
    on_a[0].publish(channel, {"from": "a", "text": "caf\u00e9"})
    on_b[1].publish(channel, "from b")
    for client in on_a + on_b:
        got = [client.expect(is_delivery, timeout=10) for _ in range(2)]
        assert sorted(json.dumps(m, sort_keys=True) for m in got) == sorted(
            json.dumps(m, sort_keys=True) for m in (
                delivery(channel, {"from": "a", "text": "caf\u00e9"}),
                delivery(channel, "from b")))
        assert client.nothing_within(0.5), "a message arrived twice"
    for client in on_a + on_b:
        client.close()
    return a, b


@pytest.mark.parametrize("broker", ["redis", "postgresql", "nats"])
def test_two_instances_share_channels(serve_module, request, broker):
    a, b = exactly_once_across(serve_module, shared_broker(request, broker))
    # Over NOTIFY's 8000-byte limit: PostgreSQL carries it through the messages table.
    sender, receiver = WebSocketClient(a), WebSocketClient(b)
    channel = "big-%d" % os.getpid()
    receiver.subscribed(channel)
    sender.publish(channel, "x" * 20000)
    assert receiver.expect(is_delivery, timeout=10) == delivery(channel, "x" * 20000)


@pytest.mark.parametrize("broker", ["redis", "nats"])
def test_gunicorn_four_workers(tmp_path, request, broker):
    url = shared_broker(request, broker)
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-k", "realtimemagic.gunicorn.Worker",
               "-w", "4", "-b", "127.0.0.1:%d" % port, "--graceful-timeout", "3",
               "examples.simplest:rtm"]
    env = {"RTM_BROKER": url, "RTM_API_PORT": str(free_port())}
    with run_process(command, port, tmp_path, env=env, name="gunicorn") as server:
        # The API port is shared by the workers: wait until two of them answer (the master
        # listens before its workers have booted, which takes seconds on a busy machine).
        pids = set()
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%s/api/stats"
                                            % env["RTM_API_PORT"], timeout=5) as response:
                    pids.add(json.load(response)["pid"])
            except OSError:
                time.sleep(0.2)
        clients = [WebSocketClient(server) for _ in range(40)]
        for client in clients:
            client.subscribed("all")
        for n in range(20):
            clients[n % 40].publish("all", n)
        for client in clients:
            got = [client.expect(is_delivery, timeout=10)["payload"]["message"]
                   for _ in range(20)]
            assert sorted(got) == list(range(20))
        for client in clients:
            client.close()
        print("API answered from %d worker processes" % len(pids))
        assert len(pids) >= 2


def test_gunicorn_refuses_several_workers_with_the_memory_broker(tmp_path):
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-k", "realtimemagic.gunicorn.Worker", "-w", "2",
         "-b", "127.0.0.1:%d" % port, "examples.simplest:rtm"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, RTM_API=str(False)))
    assert result.returncode != 0
    assert "would not share channels" in result.stderr
    # gunicorn has no --broker flag: the fix is the environment variable.
    assert "RTM_BROKER=redis://" in result.stderr and "--broker" not in result.stderr


def private_broker(broker, port):
    """The command that runs a broker server of the test's own on ``port``, and its URL."""
    if broker == "redis":
        server = shutil.which("redis-server")
        need(server is not None, "redis-server is needed")
        return ([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], "redis://127.0.0.1:%d/0" % port)
    server = nats_server_binary()
    need(server is not None, "nats-server is needed (apt-get install nats-server)")
    return [server, "-a", "127.0.0.1", "-p", str(port)], "nats://127.0.0.1:%d" % port


@pytest.mark.parametrize("broker", ["redis", "nats"])
def test_broker_restart_mid_test(tmp_path, start_server, broker):
    broker_port = free_port()
    command, url = private_broker(broker, broker_port)

    def start_broker():
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_for_port(broker_port, process)
        return process

    broker_process = start_broker()
    try:
        flags = ("--broker", url, "--broker-reconnect-min", "0.2", "--broker-reconnect-max", "1",
                 "--broker-health-interval", "1")
        b_api = free_port()
        a = start_server("realtimemagic.magic:RealTimeMagic", *flags)
        b = start_server("realtimemagic.magic:RealTimeMagic", "--api-port", str(b_api), *flags)
        sender, receiver = WebSocketClient(a), WebSocketClient(b)
        receiver.subscribed("r")
        sender.publish("r", "before")
        assert receiver.expect(is_delivery, timeout=10) == delivery("r", "before")

        broker_process.terminate()
        broker_process.wait(10)
        stopped = time.monotonic()
        time.sleep(1.0)
        broker_process = start_broker()

        # Publish until a message crosses again; the gap is how long delivery was interrupted.
        n = 0
        while True:
            n += 1
            sender.publish("r", "after-%d" % n)
            try:
                message = receiver.expect(is_delivery, timeout=0.2)
            except Exception:
                message = None
            if message is not None and message["payload"]["message"].startswith("after"):
                break
            assert time.monotonic() - stopped < 30, "delivery never came back"
        interrupted = time.monotonic() - stopped
        print("delivery between instances interrupted for %.2f s (%s down 1 s)"
              % (interrupted, broker))
        # Queued while the broker was down, sent once it was back: later ones arrive too.
        sender.publish("r", "final")
        assert receiver.expect(lambda m: is_delivery(m) and m["payload"]["message"] == "final",
                               timeout=10)
        with urllib.request.urlopen("http://127.0.0.1:%d/api/stats" % b_api,
                                    timeout=5) as response:
            broker = json.load(response)["broker"]
        assert broker["state"] == "connected" and broker["outages"] >= 1
    finally:
        broker_process.terminate()
        broker_process.wait(10)


def test_internal_api_publish_stats_metrics_and_rtm_publish(start_server):
    api_port = free_port()
    server = start_server("realtimemagic.magic:RealTimeMagic", "--api-key", "s3cret",
                          "--api-port", str(api_port))
    api = "http://127.0.0.1:%d" % api_port
    client = WebSocketClient(server)
    client.subscribed("news")

    def post(body, key=None):
        request = urllib.request.Request(api + "/api/publish", data=json.dumps(body).encode(),
                                         method="POST")
        if key:
            request.add_header("Authorization", "Bearer " + key)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    assert post({"channel": "news", "message": "no key"})[0] == 401
    assert post({"channel": "news", "message": "wrong key"}, "nope")[0] == 401
    assert post({"channel": "news"}, "s3cret")[0] == 400
    assert post({"channel": "news", "message": {"via": "api"}}, "s3cret") == (
        200, {"published": True})
    assert client.expect(is_delivery) == delivery("news", {"via": "api"})

    result = subprocess.run([sys.executable, "-c", "from realtimemagic.cli import publish_main;"
                             "publish_main()", "news", '{"via": "rtm-publish"}',
                             "--api-url", api, "--api-key", "s3cret"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert client.expect(is_delivery) == delivery("news", {"via": "rtm-publish"})

    with urllib.request.urlopen(api + "/api/stats", timeout=5) as response:
        stats = json.load(response)
    assert stats["connections"] == 1 and stats["connections_by_transport"] == {
        "websocket-raw": 1}
    assert stats["published"] >= 2 and stats["deliveries"] >= 2

    from prometheus_client.parser import text_string_to_metric_families

    def metrics():
        with urllib.request.urlopen(api + "/metrics", timeout=5) as response:
            text = response.read().decode()
        return {sample.name: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if not sample.labels}

    before = metrics()
    client.publish("news", "counted")
    client.expect(is_delivery)
    after = metrics()
    assert after["realtimemagic_deliveries_total"] == before["realtimemagic_deliveries_total"] + 1
    assert after["realtimemagic_messages_in_total"] > before["realtimemagic_messages_in_total"]
    with urllib.request.urlopen(api + "/healthz", timeout=5) as response:
        assert response.status == 200
    client.close()


@pytest.mark.parametrize("broker", ["redis", "nats"])
def test_publisher_helper_reaches_clients_without_http(start_server, request, broker):
    url = shared_broker(request, broker)
    from realtimemagic.publisher import Publisher
    server = start_server("realtimemagic.magic:RealTimeMagic", "--broker", url)
    client = WebSocketClient(server)
    channel = "jobs-%d" % os.getpid()
    client.subscribed(channel)
    publisher = Publisher(url)
    publisher.publish(channel, {"done": 42})
    assert client.expect(is_delivery, timeout=10) == delivery(channel, {"done": 42})
    publisher.close()
    client.close()
