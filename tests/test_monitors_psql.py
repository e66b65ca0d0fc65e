"""PsqlMonitor against the real PostgreSQL, in a real server (examples/monitor_psql.py and
tests/monitorapps.py): NOTIFY reaches WebSocket and polling clients; a killed or silently cut
connection is reopened and LISTEN restored; a function that raises gets the next notification;
the monitor's waits never stall the other clients."""
import json
import time
import urllib.request

import pytest

from clients import WebSocketClient
from conftest import free_port, need
from freezeproxy import FreezeProxy
from monitortools import (delivery, first_delivery, is_delivery, round_trips, unique,
                          wait_until)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

DSN = "dbname=test host=127.0.0.1"
REOPEN_BOUND = 10.0  # s: generous; expected about backoff_initial (0.5 s), plus the detection


def open_database():
    """(connection, None) or (None, why not)."""
    try:
        from realtimemagic import pgdriver  # psycopg2, or psycopg2cffi on PyPy
        return pgdriver.connect(DSN, connect_timeout=3), None
    except Exception as error:  # any reason at all: no driver, no server, no database
        return None, error


@pytest.fixture(scope="module")
def database():
    """A connection for the test itself (NOTIFY, pg_stat_activity), autocommit."""
    connection, problem = open_database()
    need(connection is not None,
         "PostgreSQL at 127.0.0.1:5432 (database test) is needed (%s)" % problem)
    connection.autocommit = True
    yield connection
    connection.close()


def notify(database, channel, payload):
    with database.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", (channel, payload))


def backends(database, application_name):
    """(pid, last query) of the sessions with that application_name."""
    with database.cursor() as cursor:
        cursor.execute("SELECT pid, query FROM pg_stat_activity WHERE application_name = %s",
                       (application_name,))
        return cursor.fetchall()


def listening_pid(database, application_name, other_than=None, timeout=15.0):
    """The pid of the monitor's session once it has run LISTEN (its first query)."""
    def find():
        for pid, query in backends(database, application_name):
            if pid != other_than and (query.startswith("LISTEN") or query == "SELECT 1"):
                return pid
        return None
    return wait_until(find, timeout, "a LISTEN session named %s" % application_name)


def serve(start, application, application_name, dsn=DSN, flags=(), **env):
    environment = {"RTM_MONITOR_DSN": "%s application_name=%s" % (dsn, application_name)}
    environment.update(env)
    return start(application, *flags, env=environment)


@pytest.fixture(scope="module")
def example(serve_module, database):
    """examples/monitor_psql.py, with its own application_name (other runs may share the
    database): (server, application_name)."""
    name = unique("rtm-test-psql")
    server = serve(serve_module, "examples.monitor_psql:rtm", name)
    listening_pid(database, name)
    return server, name


def info(marker, n=0):
    return json.dumps({"some_info": "%s-%d" % (marker, n)})


def test_notify_reaches_clients(example, database, connect):
    server, _ = example
    client = connect(server)
    client.subscribed("client_channel")
    marker = unique("e2e")
    notify(database, "status", json.dumps({"some_info": marker}))
    assert client.expect(is_delivery) == delivery("client_channel", {"info1": marker})


def test_function_that_raises_gets_the_next_notification(example, database):
    server, _ = example
    client = WebSocketClient(server)
    try:
        client.subscribed("client_channel")
        marker = unique("after-explode")
        notify(database, "status", '{"explode": true}')  # no some_info: KeyError
        notify(database, "status", info(marker))
        assert client.expect(is_delivery) == delivery("client_channel", {"info1": marker + "-0"})
        wait_until(lambda: "KeyError" in server.log(), 5, "the traceback in the server log")
        assert "monitor function status_changes raised" in server.log()
    finally:
        client.close()


def test_killed_connection_is_reopened(example, database):
    server, name = example
    client = WebSocketClient(server)
    try:
        client.subscribed("client_channel")
        old_pid = listening_pid(database, name)
        with database.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
        killed = time.monotonic()
        marker = unique("reopened")
        arrived, _ = first_delivery(
            lambda n: notify(database, "status", info(marker, n)), client,
            lambda n: delivery("client_channel", {"info1": "%s-%d" % (marker, n)}), killed)
        new_pid = listening_pid(database, name, other_than=old_pid)
        print("\npsql: pg_terminate_backend -> first notification delivered after %.2f s"
              % arrived)
        assert arrived < REOPEN_BOUND
        assert [pid for pid, _ in backends(database, name)] == [new_pid]  # one connection
        notify(database, "status", info(marker, 999))  # and the next one, of course
        assert client.expect(is_delivery) == delivery("client_channel",
                                                      {"info1": marker + "-999"})
    finally:
        client.close()


# -- tests/monitorapps.py: two functions on one monitor, status, cut connections, cooperation -----

def monitor_status(client):
    client.send({"monitor_status": True})
    return client.expect(lambda m: "monitor_status" in m)["monitor_status"]


def test_two_functions_share_one_connection_and_report_status(start_server, database):
    name = unique("rtm-test-psql-app")
    api_port = free_port()
    server = serve(start_server, "monitorapps:psql_app", name, flags=("--api-port", str(api_port)))
    listening_pid(database, name)
    assert len(backends(database, name)) == 1
    client = WebSocketClient(server)
    try:
        status = monitor_status(client)
        assert len(status) == 1, status
        assert status[0]["monitor"] == "psql" and status[0]["state"] == "listening"
        assert status[0]["channels"] == ["rtm_sleep", "status"]
        assert status[0]["functions"] == ["sleep_in_database", "status_changes"]
        assert (status[0]["connections"], status[0]["reconnects"]) == (1, 0)
    finally:
        client.close()
    # The server's stats show it too (one entry per function, or per monitor object).
    with urllib.request.urlopen("http://127.0.0.1:%d/api/stats" % api_port, timeout=5) as answer:
        monitors = json.loads(answer.read())["monitors"]
    assert monitors and all(entry["monitor"] == "psql" and entry["state"] == "listening"
                            for entry in monitors), monitors


def test_silently_cut_connection_is_found_and_reopened(start_server, database):
    """A half-open connection (no FIN, no RST; nothing arrives any more) is found by the
    keepalive check (here 1 s + 1 s to answer) though no notification is sent."""
    name = unique("rtm-test-psql-cut")
    with FreezeProxy(("127.0.0.1", 5432)) as proxy:
        server = serve(start_server, "monitorapps:psql_app", name,
                       dsn="%s port=%d" % (DSN, proxy.port),
                       RTM_MONITOR_KEEPALIVE="1", RTM_MONITOR_CHECK_TIMEOUT="1")
        old_pid = listening_pid(database, name)
        client = WebSocketClient(server)
        try:
            client.subscribed("client_channel")
            assert proxy.freeze() == 1
            cut = time.monotonic()
            marker = unique("uncut")
            arrived, _ = first_delivery(
                lambda n: notify(database, "status", info(marker, n)), client,
                lambda n: delivery("client_channel", {"info1": "%s-%d" % (marker, n)}), cut)
            print("\npsql: silent cut -> first notification delivered after %.2f s" % arrived)
            assert arrived < REOPEN_BOUND
            listening_pid(database, name, other_than=old_pid)
            status = monitor_status(client)[0]
            assert status["state"] == "listening" and status["reconnects"] == 1, status
            assert "no answer to SELECT 1" in status["last_error"], status
        finally:
            client.close()


def test_database_restart_is_waited_out_with_backoff(start_server, database):
    """The database goes away (its connections closed, new ones refused) and comes back: the
    monitor retries, waiting longer each time, and listens again."""
    name = unique("rtm-test-psql-restart")
    with FreezeProxy(("127.0.0.1", 5432)) as proxy:
        server = serve(start_server, "monitorapps:psql_app", name,
                       dsn="%s port=%d" % (DSN, proxy.port))
        old_pid = listening_pid(database, name)
        client = WebSocketClient(server)
        try:
            client.subscribed("client_channel")
            proxy.stop()
            stopped = time.monotonic()
            down = wait_until(lambda: [s for s in monitor_status(client)
                                       if s["failed_attempts"] >= 2], 10, "two failed attempts")
            assert down[0]["state"] == "reconnecting", down
            away = time.monotonic() - stopped
            proxy.start()
            marker = unique("restarted")
            arrived, _ = first_delivery(
                lambda n: notify(database, "status", info(marker, n)), client,
                lambda n: delivery("client_channel", {"info1": "%s-%d" % (marker, n)}), stopped)
            print("\npsql: database away for %.2f s -> first notification delivered %.2f s "
                  "after it went away" % (away, arrived))
            assert arrived < REOPEN_BOUND
            new_pid = listening_pid(database, name, other_than=old_pid)
            status = monitor_status(client)[0]
            assert (status["state"], status["reconnects"], status["failed_attempts"]) == (
                "listening", 1, 0), status
            assert [pid for pid, _ in backends(database, name)] == [new_pid]
        finally:
            client.close()


def test_waits_do_not_stall_other_clients(start_server, database):
    """A blocking wait would hold every client: the idle monitor waits up to its keepalive
    interval (30 s here) between checks, and a monitor function waits 2 s in the database."""
    name = unique("rtm-test-psql-coop")
    server = serve(start_server, "monitorapps:psql_app", name, RTM_MONITOR_KEEPALIVE="30")
    listening_pid(database, name)
    listener, sender = WebSocketClient(server), WebSocketClient(server)
    try:
        listener.subscribed("ping")
        listener.subscribed("slept")
        idle = round_trips(sender, listener, "ping", 5)
        notify(database, "rtm_sleep", "2")
        wait_until(lambda: backends(database, name + "-sleeper"), 5, "the sleeping query")
        during_query = round_trips(sender, listener, "ping", 5)
        print("\npsql: round trips while idle-waiting %s s, while a function waits in the "
              "database %s s" % (["%.3f" % t for t in idle], ["%.3f" % t for t in during_query]))
        assert max(idle + during_query) < 0.5
        assert listener.expect(is_delivery, timeout=10) == delivery("slept", "2")
    finally:
        listener.close()
        sender.close()


def test_each_client_gets_a_notification_once_across_instances(start_server, database):
    """Two instances sharing a Redis broker both run the monitor and both see the NOTIFY: each
    delivers to its own clients (the monitor's pubsub publishes locally), so nobody gets it
    twice."""
    from conftest import REDIS_URL, redis_available
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
    names = [unique("rtm-test-psql-a"), unique("rtm-test-psql-b")]
    servers = [serve(start_server, "examples.monitor_psql:rtm", name,
                     flags=("--broker", REDIS_URL)) for name in names]
    for name in names:
        listening_pid(database, name)
    clients = [WebSocketClient(server) for server in servers for _ in range(2)]
    for client in clients:
        client.subscribed("client_channel")
    notify(database, "status", json.dumps({"some_info": "once"}))
    for client in clients:
        assert client.expect(is_delivery, timeout=10) == delivery("client_channel",
                                                                  {"info1": "once"})
    for client in clients:
        assert client.nothing_within(1.0), "a client got the notification twice"
        client.close()
