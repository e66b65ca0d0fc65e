"""What is particular to the NATS broker, with real nats-server processes (the cross-instance
tests shared with Redis are in test_brokers.py): subscriptions only for local channels, restored
after a restart; channel names that are not valid subjects; a message over the server's
max_payload; a half-open connection found by the health check; a server that stalls; several
servers; credentials; history refused at start-up."""
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from clients import WebSocketClient
from conftest import ROOT, free_port, nats_server, rtm_serve_command, wait_for_port
from freezeproxy import FreezeProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

QUICK = ("--broker-reconnect-min", "0.2", "--broker-reconnect-max", "1",
         "--broker-health-interval", "1")


def is_delivery(message):
    return message.get("action") == "message"


def start(start_server, url, *flags):
    api_port = free_port()
    server = start_server("realtimemagic.magic:RealTimeMagic", "--broker", url,
                          "--api-port", str(api_port), *flags)
    server.api_port = api_port
    wait_for_port(api_port, server.process)  # the main port may listen before the API does
    return server


def broker_stats(server):
    with urllib.request.urlopen("http://127.0.0.1:%d/api/stats" % server.api_port,
                                timeout=10) as response:
        return json.load(response)["broker"]


def test_channels_that_are_not_subjects_stay_apart(start_server, nats_url):
    a, b = start(start_server, nats_url), start(start_server, nats_url)
    tag = "n%d" % os.getpid()
    # '.' separates tokens, '*' and '>' are wildcards: as subjects these would overlap.
    channels = [tag + ".a", tag + ".*", tag + ".>", tag + "%2Ea", tag + ".caf\u00e9"]
    sender = WebSocketClient(a)
    receivers = [WebSocketClient(b) for _ in channels]
    for receiver, channel in zip(receivers, channels):
        receiver.subscribed(channel)
    for channel in channels:
        sender.publish(channel, "to " + channel)
    for receiver, channel in zip(receivers, channels):
        got = receiver.expect(is_delivery, timeout=10)["payload"]
        assert got == {"channel": channel, "message": "to " + channel}
        assert receiver.nothing_within(0.3), "%r got another channel's message" % channel


def listened_subjects(monitor_port):
    """The subjects of the instance's listening connection, from nats-server's monitoring."""
    with urllib.request.urlopen("http://127.0.0.1:%d/connz?subs=1" % monitor_port,
                                timeout=10) as response:
        connections = json.load(response)["connections"]
    return sorted(subject for connection in connections
                  if connection.get("name") == "realtimemagic-listener"
                  for subject in connection.get("subscriptions_list") or [])


def eventually(check, expected, timeout=10.0):
    deadline = time.monotonic() + timeout
    while check() != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert check() == expected


def test_an_instance_listens_to_its_channels_only_and_again_after_a_restart(start_server):
    port, monitor_port = free_port(), free_port()
    options = ("-m", str(monitor_port))
    with nats_server(port, *options) as first:
        server = start(start_server, "nats://127.0.0.1:%d" % port, "--rate-limit", "10000",
                       *QUICK)
        client = WebSocketClient(server)
        for channel in ("a.b", "c", "d"):
            client.subscribed(channel)
        other = WebSocketClient(server)
        other.subscribed("c")
        assert listened_subjects(monitor_port) == ["rtm.a%2Eb", "rtm.c", "rtm.d"]
        client.unsubscribe("c")  # "c" keeps a local subscriber
        client.unsubscribe("d")
        eventually(lambda: listened_subjects(monitor_port), ["rtm.a%2Eb", "rtm.c"])
        # Churn, faster than the subscriptions are written: every subscribe is still answered
        # at once, and the server ends up with exactly the channels that have subscribers.
        churners = [WebSocketClient(server) for _ in range(2)]
        started = time.monotonic()
        for churner in churners:
            churner.send_many([{"action": action, "payload": {"channel": "churn-%d" % (n % 5)}}
                               for n in range(50) for action in ("subscribe", "unsubscribe")])
        for churner in churners:
            churner.subscribed("churn-0")
        assert time.monotonic() - started < 20
        eventually(lambda: listened_subjects(monitor_port), ["rtm.a%2Eb", "rtm.c", "rtm.churn-0"])
        for churner in churners:
            churner.unsubscribe("churn-0")
        eventually(lambda: listened_subjects(monitor_port), ["rtm.a%2Eb", "rtm.c"])
        first.terminate()
        first.wait(10)
    with nats_server(port, *options):
        eventually(lambda: listened_subjects(monitor_port), ["rtm.a%2Eb", "rtm.c"])
    assert broker_stats(server)["outages"] >= 1


CHURN = r"""
from gevent import monkey; monkey.patch_all()
import sys
from realtimemagic.brokers import from_url
broker = from_url(sys.argv[1], lambda *args: 0)
broker.start()
assert broker.connected.wait(5)
broker.channels.add("x"); broker.subscribe("x")
assert broker.wait_subscribed("x", 5)
# Unsubscribed and subscribed again before the UNSUB is written: the subscription never left.
broker.channels.discard("x"); broker.unsubscribe("x")
broker.channels.add("x"); broker.subscribe("x")
assert broker.wait_subscribed("x", 2), "the second subscribe was never confirmed"
# Subscribed and unsubscribed before the SUB is written: nothing left behind.
for n in range(1000):
    broker.channels.add("c%d" % n); broker.subscribe("c%d" % n)
    broker.channels.discard("c%d" % n); broker.unsubscribe("c%d" % n)
assert not broker.wait_subscribed("c1", 0.1)
import gevent; gevent.sleep(0.5)  # the writer catches up
assert sorted(broker._confirmed) == ["x"] and sorted(broker._sids) == ["x"], len(broker._confirmed)
print("ok")
"""


def test_subscription_bookkeeping_when_channels_come_and_go_at_once(nats_url):
    # Without a yield between the calls, as when a fan-out closes many sessions.
    result = subprocess.run([sys.executable, "-c", CHURN, nats_url], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr[-3000:]


STALL = r"""
from gevent import monkey; monkey.patch_all()
import os, signal, sys, time, gevent
from realtimemagic.brokers import from_url
broker = from_url(sys.argv[1], lambda *args: 0)
broker.start()
assert broker.connected.wait(5)
deadline = time.monotonic() + 3
while time.monotonic() < deadline:  # the server PINGs the publisher meanwhile
    for _ in range(20):
        broker.publish("burst", "x" * 200000)
    gevent.sleep(0.05)
os.kill(int(sys.argv[2]), signal.SIGSTOP)  # a server that takes nothing for a moment
for _ in range(100):
    broker.publish("burst", "x" * 200000)
gevent.sleep(1)
os.kill(int(sys.argv[2]), signal.SIGCONT)
deadline = time.monotonic() + 10
while broker.outgoing and time.monotonic() < deadline:
    gevent.sleep(0.05)
print(len(broker.outgoing), broker.counters["reconnects"], broker.counters["last_error"])
"""


def test_a_server_that_stalls_for_a_moment_costs_no_reconnection(tmp_path):
    # Writes wait (up to 10 s) for a server that does not read, also after the publisher
    # answered the server's PINGs without waiting.
    port = free_port()
    config = tmp_path / "nats.conf"
    config.write_text('ping_interval: "1s"\n')
    with nats_server(port, "-c", str(config)) as server:
        result = subprocess.run([sys.executable, "-c", STALL, "nats://127.0.0.1:%d" % port,
                                 str(server.pid)], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
    assert result.stdout.split() == ["0", "0", "None"], (result.stdout, result.stderr[-3000:])


def test_message_over_max_payload_is_counted_and_the_connection_lives(start_server, tmp_path):
    port = free_port()
    config = tmp_path / "nats.conf"
    config.write_text("max_payload: 4096\n")
    with nats_server(port, "-c", str(config)):
        url = "nats://127.0.0.1:%d" % port
        a, b = start(start_server, url), start(start_server, url)
        here, there = WebSocketClient(a), WebSocketClient(b)
        for client in (here, there):
            client.subscribed("big")
        here.publish("big", "x" * 6000)
        assert here.expect(is_delivery, timeout=10)["payload"]["message"] == "x" * 6000
        here.publish("big", "small")
        # The other instance gets the next message, not the one the server would refuse.
        assert there.expect(is_delivery, timeout=10)["payload"]["message"] == "small"
        stats = broker_stats(a)
        assert stats["too_large"] == 1 and stats["reconnects"] == 0, stats
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % a.api_port,
                                    timeout=10) as response:
            assert "realtimemagic_broker_too_large_total 1.0" in response.read().decode()


def test_half_open_connection_is_found_and_replaced(start_server, nats_url):
    host, port = nats_url.split("://")[1].rsplit(":", 1)
    with FreezeProxy((host, int(port))) as proxy:
        a = start(start_server, nats_url, *QUICK)
        b = start(start_server, "nats://127.0.0.1:%d" % proxy.port, *QUICK)
        sender, receiver = WebSocketClient(a), WebSocketClient(b)
        channel = "frozen-%d" % os.getpid()
        receiver.subscribed(channel)
        sender.publish(channel, "before")
        assert receiver.expect(is_delivery, timeout=10)["payload"]["message"] == "before"

        assert proxy.freeze() == 2  # b's listener and publisher: no FIN, nothing arrives
        frozen = time.monotonic()
        n = 0
        while True:
            n += 1
            sender.publish(channel, "after-%d" % n)
            try:
                message = receiver.expect(is_delivery, timeout=0.2)
            except Exception:
                message = None
            if message is not None:
                break
            assert time.monotonic() - frozen < 20, "the frozen connection was never replaced"
        print("delivery resumed %.2f s after the freeze (health interval 1 s)"
              % (time.monotonic() - frozen))
        stats = broker_stats(b)
        assert stats["state"] == "connected" and stats["outages"] == 1, stats


def test_a_url_with_several_servers_uses_the_one_that_answers(start_server, nats_url):
    dead = free_port()  # nothing listens there: the first attempt fails, the next one works
    a = start(start_server, nats_url)
    b = start(start_server, "nats://127.0.0.1:%d,%s" % (dead, nats_url.split("://")[1]), *QUICK)
    sender, receiver = WebSocketClient(a), WebSocketClient(b)
    channel = "servers-%d" % os.getpid()
    receiver.subscribed(channel)
    sender.publish(channel, "through the second server")
    assert receiver.expect(is_delivery, timeout=10)["payload"]["message"] == (
        "through the second server")
    assert broker_stats(b)["reconnects"] >= 1


def test_credentials_in_the_url(start_server):
    port = free_port()
    with nats_server(port, "--user", "me", "--pass", "s3cret"):
        good = start(start_server, "nats://me:s3cret@127.0.0.1:%d" % port)
        other = start(start_server, "nats://me:s3cret@127.0.0.1:%d" % port)
        wrong = start(start_server, "nats://me:wrong@127.0.0.1:%d" % port, *QUICK)
        sender, receiver = WebSocketClient(good), WebSocketClient(other)
        receiver.subscribed("private")
        sender.publish("private", "in")
        assert receiver.expect(is_delivery, timeout=10)["payload"]["message"] == "in"
        stats = broker_stats(wrong)
        assert stats["state"] == "reconnecting", stats
        assert "Authorization Violation" in stats["last_error"], stats
        assert "wrong" not in json.dumps(stats), "the password is not shown"


def test_history_and_presence_are_refused_at_start_up_in_one_line():
    namespaces = json.dumps({"hist": {"history_size": 10}, "room": {"presence": True}})
    url = "nats://127.0.0.1:%d" % free_port()  # refused before connecting
    result = subprocess.run(
        rtm_serve_command("realtimemagic.magic:RealTimeMagic", free_port(), "--broker", url,
                          "--namespaces", namespaces),
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "rtm-serve: namespaces hist, room want history or presence, which the broker %s does "
        "not keep: use memory:// or redis://" % url]
    # A namespace added after start-up reaches these: a clear error, answered as `internal`.
    from realtimemagic.brokers import from_url
    from realtimemagic.exceptions import ConfigError
    broker = from_url(url, lambda *args: 0)
    for ask in (lambda: broker.snapshot("late:1", None), lambda: broker.presence_members("late:1"),
                lambda: broker.presence_add("late:1", "k", {}),
                lambda: broker.presence_remove("late:1", "k")):
        with pytest.raises(ConfigError, match="does not keep: use redis://"):
            ask()
