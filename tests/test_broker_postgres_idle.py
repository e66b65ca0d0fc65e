"""The PostgreSQL broker idles, then works under load, without one ERROR in its log: two rtm-serve
instances on the real PostgreSQL, maintenance every second (its interval is a setting), the
listener's health check every two seconds.  RTM_PG_IDLE_SECONDS and RTM_PG_LOAD_SECONDS (30 s
each by default) set the phases."""
import os
import threading
import time
import uuid

import pytest

from clients import WebSocketClient
from conftest import POSTGRES_URL, free_port, need, postgres_available

IDLE_SECONDS = float(os.environ.get("RTM_PG_IDLE_SECONDS", "30"))
LOAD_SECONDS = float(os.environ.get("RTM_PG_LOAD_SECONDS", "30"))
WORKERS = 4

pytestmark = [pytest.mark.slow, pytest.mark.timeout(IDLE_SECONDS + LOAD_SECONDS + 120)]


def is_delivery(message):
    return message.get("action") == "message"


def test_postgresql_broker_idle_and_under_load_logs_no_error(start_server):
    need(postgres_available(), "PostgreSQL at 127.0.0.1:5432 (db test) is needed")
    flags = ("--broker", POSTGRES_URL, "--maintenance-interval", "1",
             "--broker-health-interval", "2", "--rate-limit", "10000")
    first = start_server("realtimemagic.magic:RealTimeMagic", "--api-port", str(free_port()),
                         *flags)
    second = start_server("realtimemagic.magic:RealTimeMagic", "--api-port", str(free_port()),
                          *flags)
    time.sleep(IDLE_SECONDS)
    for server in (first, second):
        assert server.process.poll() is None
    watcher = WebSocketClient(second)
    shared = "pgidle-%s" % uuid.uuid4().hex[:8]
    watcher.subscribed(shared)

    deadline = time.monotonic() + LOAD_SECONDS
    rounds = [0] * WORKERS
    failures = []

    def work(index):
        publisher = WebSocketClient(first)
        reader = WebSocketClient(second)
        try:
            while time.monotonic() < deadline:
                channel = "pgload-%s" % uuid.uuid4().hex[:12]  # LISTEN, then UNLISTEN
                reader.subscribed(channel)
                body = "x" * (9000 if rounds[index] % 10 == 0 else 10)  # > 8000: the table
                publisher.publish(channel, {"round": rounds[index], "body": body})
                got = reader.expect(is_delivery, timeout=10)["payload"]
                assert got["channel"] == channel and got["message"]["body"] == body
                reader.unsubscribe(channel)
                publisher.publish(shared, rounds[index])
                rounds[index] += 1
        except Exception as error:  # reported below, with the log
            failures.append(repr(error))
        finally:
            publisher.close()
            reader.close()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LOAD_SECONDS + 30)
    time.sleep(3)  # a few more rounds of maintenance and health checks
    seen = 0
    while not watcher.nothing_within(0.5):
        watcher.expect(is_delivery)
        seen += 1
    watcher.close()
    logs = first.log() + second.log()
    print("%d rounds under load, %d messages on the shared channel" % (sum(rounds), seen))
    assert not failures, "%s\n%s" % (failures, logs[-3000:])
    assert sum(rounds) >= 20 and seen == sum(rounds), (sum(rounds), seen)
    assert "ERROR" not in logs and "Traceback" not in logs, logs[-3000:]
