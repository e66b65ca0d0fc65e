"""Limits, reached on purpose: each answers as documented (docs/limits.md) and the server, and
the other connections, live on."""
import http.client
import json
import signal
import socket
import threading
import time
import urllib.request
import uuid

import pytest
import websocket

from clients import WebSocketClient
from conftest import free_port
from wsclient import RawWebSocket

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SHUTDOWN_FRAME = 'c[1001,"Server shutting down"]'


def start_rtm(start_server, *flags):
    """A RealTimeMagic server with its internal API on a port of its own."""
    api_port = free_port()
    server = start_server("realtimemagic.magic:RealTimeMagic", "--api-port", str(api_port),
                          *flags)
    server.api_port = api_port
    return server


def stats(server):
    with urllib.request.urlopen("http://127.0.0.1:%d/api/stats" % server.api_port,
                                timeout=10) as response:
        return json.load(response)


def post(server, path, body=b"", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.read().decode("utf-8"), dict(response.getheaders())


def test_connections_per_process(start_server):
    server = start_rtm(start_server, "--max-connections", "5")
    clients = [WebSocketClient(server) for _ in range(5)]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        WebSocketClient(server)
    assert refused.value.status_code == 503
    status, body, _ = post(server, "/pubsub/000/%s/xhr" % uuid.uuid4().hex)
    assert status == 503 and "Too many connections" in body
    clients[0].subscribed("still")  # the existing ones live on
    clients[1].close()
    deadline = time.monotonic() + 5
    while stats(server)["sessions"] > 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    WebSocketClient(server).subscribed("room-again")
    for client in clients:
        client.close()


def test_allowed_origins(start_server):
    server = start_server("realtimemagic.magic:RealTimeMagic",
                          "--allowed-origins", "https://good.example, http://127.0.0.1:8000")
    url = server.ws_url + "/pubsub/websocket"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, origin="https://evil.example", timeout=5)
    assert refused.value.status_code == 403
    websocket.create_connection(url, origin="https://good.example", timeout=5).close()
    websocket.create_connection(url, suppress_origin=True, timeout=5).close()
    path = "/pubsub/000/%s/xhr" % uuid.uuid4().hex
    assert post(server, path, headers={"Origin": "https://evil.example"})[0] == 403
    status, body, headers = post(server, path, headers={"Origin": "http://127.0.0.1:8000"})
    assert (status, body) == (200, "o\n")
    assert headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"


def test_thousands_of_messages_queued_between_polls_all_arrive(start_server):
    server = start_rtm(start_server, "--rate-limit", "100000")
    path = "/pubsub/000/%s/" % uuid.uuid4().hex
    assert post(server, path + "xhr")[1] == "o\n"
    subscribe = json.dumps({"action": "subscribe", "payload": {"channel": "q"}, "id": 1})
    assert post(server, path + "xhr_send", json.dumps([subscribe]).encode())[0] == 204
    assert json.loads(json.loads(post(server, path + "xhr")[1][1:])[0])["action"] == "subscribed"
    publisher = WebSocketClient(server)
    count = 5000
    for n in range(count):
        publisher.send({"action": "publish", "payload": {"channel": "q", "message": n}})
    publisher.subscribed("sync")  # every publish before this is done
    received = []
    while len(received) < count:
        frame = post(server, path + "xhr")[1]
        assert frame.startswith("a["), frame
        received.extend(json.loads(m)["payload"]["message"] for m in json.loads(frame[1:]))
    assert received == list(range(count))
    publisher.close()


@pytest.mark.parametrize("transport", ["jsonp", "htmlfile"])
@pytest.mark.parametrize("callback", [
    "alert(1)//", "</script><script>alert(1)</script>", 'a"b', "a'b", "a b", "a;b", "a\\u2028b",
    "x" * 33, "", "%00", "a\nb", "caf\u00e9",
])
def test_callback_injection_is_refused(sockjs_server, transport, callback):
    path = "/echo/000/%s/%s?c=%s" % (uuid.uuid4().hex, transport,
                                     urllib.request.quote(callback, safe=""))
    connection = http.client.HTTPConnection("127.0.0.1", sockjs_server.port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode("utf-8")
    assert response.status == 500
    assert body in ('invalid "callback" parameter', '"callback" parameter required')


def test_connect_disconnect_cycles_leave_nothing_behind(start_server):
    server = start_rtm(start_server, "--disconnect-delay", "0.5")
    warm = RawWebSocket(server.port, "/pubsub/websocket")
    warm.close()
    time.sleep(0.5)
    before = stats(server)
    cycles, threads = 10000, 4

    def churn(count):
        for n in range(count):
            ws = RawWebSocket(server.port, "/pubsub/websocket")
            if n % 2:
                ws.send_text('{"action":"subscribe","payload":{"channel":"c%d"}}' % (n % 50))
                ws.close()
                ws.recv_close()
            ws.shutdown()

    workers = [threading.Thread(target=churn, args=(cycles // threads,)) for _ in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 10
    after = stats(server)
    while (after["sessions"] or after["connections"]) and time.monotonic() < deadline:
        time.sleep(0.2)
        after = stats(server)
    print("%d cycles in %.1f s; sessions %d -> %d, greenlets %d -> %d, fds %s -> %s" % (
        cycles, elapsed, before["sessions"], after["sessions"],
        before["process"]["greenlets"], after["process"]["greenlets"],
        before["process"]["open_fds"], after["process"]["open_fds"]))
    assert after["sessions"] == 0 and after["connections"] == 0 and after["channels"] == 0
    assert after["process"]["greenlets"] <= before["process"]["greenlets"] + 5
    assert after["process"]["open_fds"] <= before["process"]["open_fds"] + 2


def test_sigterm_closes_every_client_and_exits_zero(start_server):
    server = start_rtm(start_server, "--shutdown-timeout", "8")
    port = server.port
    raw = [RawWebSocket(port, "/pubsub/websocket") for _ in range(80)]
    framed = [RawWebSocket(port, "/pubsub/000/%s/websocket" % uuid.uuid4().hex)
              for _ in range(40)]
    for ws in framed:
        assert ws.recv_text() == "o"

    def open_polling(transport):
        sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        path = "/pubsub/000/%s/%s" % (uuid.uuid4().hex, transport)
        request = "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % path
        if transport == "xhr":  # open the session, then leave a poll pending
            sock.sendall(request.encode())
            data = b""
            while not data.endswith(b"0\r\n\r\n"):  # the chunked body of "o\\n" ended
                data += sock.recv(4096)
        sock.sendall(request.encode())
        return sock

    polling = [open_polling("xhr") for _ in range(40)] + \
        [open_polling("xhr_streaming") for _ in range(40)]
    time.sleep(0.5)
    assert stats(server)["connections"] == 200

    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    for ws in raw:
        assert ws.recv_close() == (1001, "Server shutting down")
    for ws in framed:
        assert ws.recv_text() == SHUTDOWN_FRAME
    for sock in polling:
        data = b""
        while SHUTDOWN_FRAME.encode() not in data:
            chunk = sock.recv(65536)
            assert chunk, "closed without the close frame: %r" % data[-200:]
            data += chunk
    assert server.process.wait(15) == 0
    elapsed = time.monotonic() - started
    print("200 clients closed, exit 0 after %.2f s" % elapsed)
    assert elapsed < 8, "not within the shutdown timeout"


def test_send_body_over_max_frame_size_gets_413(start_server):
    # max_message_size may not exceed max_frame_size (a message travels in one frame).
    server = start_rtm(start_server, "--max-frame-size", "1000", "--max-message-size", "1000")
    path = "/pubsub/000/%s/" % uuid.uuid4().hex
    assert post(server, path + "xhr")[1] == "o\n"
    status, body, _ = post(server, path + "xhr_send", json.dumps(["x" * 2000]).encode())
    assert status == 413 and "larger than 1000 bytes" in body
    # Without a Content-Length (chunked) it is refused too, without reading it whole.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", path + "xhr_send", body=iter([b'["' + b"y" * 1500 + b'"]']),
                       encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413
    response.read()
    subscribe = json.dumps({"action": "subscribe", "payload": {"channel": "ok"}, "id": 1})
    assert post(server, path + "xhr_send", json.dumps([subscribe]).encode())[0] == 204
    frame = post(server, path + "xhr")[1]
    assert json.loads(json.loads(frame[1:])[0])["action"] == "subscribed", "the session lives on"


def test_hook_pool_bounds_concurrency_and_loses_nothing(start_server):
    server = start_server("testapps:ordering", "--hook-pool-size", "2",
                          "--max-pending-messages", "2")
    clients = [WebSocketClient(server) for _ in range(4)]
    started = time.monotonic()
    for client in clients:
        client.send({"block": 0.5})
    answered = []
    for client in clients:
        assert client.recv(timeout=10) == {"unblocked": True}
        answered.append(time.monotonic() - started)
    # Four hooks of 0.5 s through a pool of two: two waves.
    assert max(answered) >= 0.95, answered
    # One client sending ten: its reads pause at two in hand, and all ten are answered.
    for _ in range(10):
        clients[0].send({"block": 0.05})
    assert [clients[0].recv(timeout=10) for _ in range(10)] == [{"unblocked": True}] * 10
    for client in clients:
        client.close()


@pytest.mark.parametrize("scheme", ["redis", "nats"])
def test_broker_queue_limit_is_counted_and_local_delivery_goes_on(start_server, scheme):
    dead = "%s://127.0.0.1:%d" % (scheme, free_port())  # nothing listens there
    server = start_rtm(start_server, "--broker", dead, "--broker-queue-size", "5")
    client = WebSocketClient(server)
    client.subscribed("here")
    for n in range(20):
        client.publish("here", n)
    got = [client.expect(lambda m: m.get("action") == "message")["payload"]["message"]
           for _ in range(20)]
    assert got == list(range(20)), "this process's subscribers get everything"
    broker = stats(server)["broker"]
    assert broker["state"] == "reconnecting"
    assert broker["dropped"] == 15 and broker["queued"] == 5
    client.close()
