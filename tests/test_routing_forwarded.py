"""Requests served through the process that holds their session behave as local ones: two
rtm-serve instances, A and B, sharing Redis or PostgreSQL; each session lives on A and the
requests under test go to B (raw HTTP, chunk by chunk, as the protocol suite reads them).

Heartbeats, response_limit, close frames, 2010 both ways, a client that goes away mid-request
(1002), disconnect_delay, and a message larger than NOTIFY carries (PostgreSQL's table path).
"""
import time
from typing import Tuple

import pytest

from conftest import (POSTGRES_URL, REDIS_URL, free_port, need, postgres_available,
                      redis_available, rtm_serve_command, run_process)
from test_sockjs_protocol import (ANOTHER_CONNECTION, GO_AWAY, INTERRUPTED, Client,
                                  session_path)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

HEARTBEAT = 1.0
DISCONNECT_DELAY = 2.0
BROKERS = {"redis": (REDIS_URL, redis_available), "postgresql": (POSTGRES_URL, postgres_available),
           # Two shards on one server (databases 0 and 1): the directory is on the first.
           "redis-shards": (REDIS_URL + ",redis://127.0.0.1:6379/1",
                            lambda url: redis_available())}


@pytest.fixture(scope="module", params=sorted(BROKERS))
def pair(request, tmp_path_factory) -> Tuple[Client, Client]:
    """Clients of instance A and instance B."""
    url, available = BROKERS[request.param]
    need(available(url), "%s is needed at %s" % (request.param, url))
    tmp_path = tmp_path_factory.mktemp("forwarded-" + request.param)
    contexts, clients = [], []
    for name in ("a", "b"):
        port = free_port()
        context = run_process(rtm_serve_command(
            "examples.sockjs_endpoints:app", port, "--broker", url, "--api", "false",
            "--heartbeat-interval", str(HEARTBEAT), "--disconnect-delay", str(DISCONNECT_DELAY)),
            port, tmp_path, name=name)
        clients.append(Client(context.__enter__()))
        contexts.append(context)
    yield clients[0], clients[1]
    for client in clients:
        client.close_all()
    for context in reversed(contexts):
        context.__exit__(None, None, None)


def open_on(client: Client, prefix: str = "/echo") -> str:
    url = session_path(prefix)
    assert client.post(url + "/xhr").text == "o\n"
    return url


def send(client: Client, url: str, body: str) -> None:
    response = client.post(url + "/xhr_send", body)
    assert (response.status, response.body) == (204, b"")


def test_forwarded_poll_heartbeat_and_messages(pair):
    a, b = pair
    url = open_on(a)
    started = time.monotonic()
    assert b.post(url + "/xhr").text == "h\n"  # A's heartbeat, through B
    assert HEARTBEAT * 0.5 < time.monotonic() - started < HEARTBEAT * 4
    send(b, url, '["one","two"]')
    send(a, url, '["three"]')
    assert b.post(url + "/xhr").text == 'a["one","two","three"]\n'


def test_forwarded_stream_response_limit(pair):
    """As XhrStreaming.test_response_limit, the stream held by B: 31 frames of 134 bytes (with
    the 'o' of the first poll, on A, 30 of them in the suite) pass /echo's 4096: the response
    ends after the 31st; chunk for chunk."""
    a, b = pair
    url = open_on(a)
    stream = b.stream("POST", url + "/xhr_streaming")
    assert stream.chunk()  # prelude
    message = '"' + "x" * 128 + '"'
    for number in range(31):
        send(a if number % 2 else b, url, "[" + message + "]")
        assert stream.chunk() == "a[" + message + "]\n"
    assert stream.chunk() == ""


def test_forwarded_2010_both_ways(pair):
    a, b = pair
    url = open_on(a)
    local = a.stream("POST", url + "/xhr_streaming")
    assert local.chunk()  # prelude: A's own receiver is attached
    forwarded = b.stream("POST", url + "/xhr_streaming")
    assert forwarded.chunk()  # prelude
    assert forwarded.chunk() == ANOTHER_CONNECTION + "\n"
    assert forwarded.chunk() == ""
    local.close()  # the client went away: the session closes with 1002, wherever asked
    assert b.post(url + "/xhr").text == INTERRUPTED + "\n"

    url = open_on(a)
    held = b.stream("POST", url + "/xhr_streaming")
    assert held.chunk()
    assert a.post(url + "/xhr").text == ANOTHER_CONNECTION + "\n"  # A asks B: still there
    send(a, url, '["x"]')
    assert held.chunk() == 'a["x"]\n'
    held.close()  # gone from B: A, asked at once, answers 1002 rather than 2010
    assert a.post(url + "/xhr").text == INTERRUPTED + "\n"


def test_forwarded_close_frame(pair):
    a, b = pair
    url = session_path("/close")
    assert a.post(url + "/xhr").text == "o\n"
    assert b.post(url + "/xhr").text == GO_AWAY + "\n"
    assert b.post(url + "/xhr").text == GO_AWAY + "\n"


def test_forwarded_disconnect_delay(pair):
    """A session left without a receiver for disconnect_delay ends on A and leaves the
    directory: B answers 404 to a send and opens a new session for a poll."""
    a, b = pair
    url = open_on(a)
    time.sleep(DISCONNECT_DELAY + 1.0)
    assert b.post(url + "/xhr_send", '["late"]').status == 404
    assert b.post(url + "/xhr").text == "o\n"


def test_forwarded_large_message(pair):
    """20 KB each way: more than PostgreSQL's NOTIFY takes (its inbox table carries it)."""
    a, b = pair
    url = open_on(a)
    message = "y" * 20000
    send(b, url, '["%s"]' % message)
    assert b.post(url + "/xhr").text == 'a["%s"]\n' % message
