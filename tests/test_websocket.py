"""Level 3: WebSocket edge cases on a real socket, with the server in this process so that the
test can see inside it (close codes the application got, a ticker's lateness)."""
import time

import gevent
import pytest

from realtimemagic import config
from realtimemagic.runtime.connection import SockJSHandler
from realtimemagic.runtime.endpoint import SockJSEndpoint

from inprocess import in_thread, serving
from wsclient import BINARY, PING, PONG, TEXT, RawWebSocket

LIMIT = 64 * 1024


class Recorder(SockJSHandler):
    """Echoes, closes on request, and remembers how each session ended."""

    def __init__(self):
        self.closed = []

    def on_message(self, connection, message):
        if message.startswith("close "):
            _, code, reason = message.split(" ", 2)
            connection.close(int(code), reason)
        else:
            connection.send(message)

    def on_close(self, connection):
        self.closed.append(connection.client_close)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def server(recorder):
    settings = config.build({"prefix": "/ws", "max_frame_size": LIMIT})
    with serving(SockJSEndpoint(recorder, settings)) as running:
        yield running


def port_of(server):
    return server.address[1]


def echo_works(port, path="/ws/websocket"):
    ws = RawWebSocket(port, path)
    ws.send_text("still alive")
    answer = ws.recv_text()
    ws.close()
    return answer == "still alive"


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        gevent.sleep(0.01)
    return condition()


def test_server_close_code_and_reason_reach_the_client(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        ws.send_text("close 4321 custom reason \u00e9")
        return ws.recv_close()
    assert in_thread(client, port_of(server)) == (4321, "custom reason \u00e9")


def test_client_close_code_and_reason_reach_the_application(server, recorder):
    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        ws.close(4002, "client leaves")
        code_reason = ws.recv_close()
        return code_reason, ws.at_eof()
    (code, reason), eof = in_thread(client, port_of(server))
    assert (code, reason) == (4002, "client leaves") and eof
    assert wait_until(lambda: recorder.closed == [(4002, "client leaves")])


def test_sockjs_websocket_close_sends_close_frame_then_1000(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/000/abc/websocket")
        opened = ws.recv_text()
        ws.send_text('["close 3001 bye"]')
        return opened, ws.recv_text(), ws.recv_close()
    assert in_thread(client, port_of(server)) == ("o", 'c[3001,"bye"]', (1000, "Normal closure"))


def test_oversized_message_gets_1009_and_the_server_lives_on(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        ws.send_text("x" * (LIMIT + 1))
        return ws.recv_close(), echo_works(port)
    (code, _), alive = in_thread(client, port_of(server))
    assert code == 1009 and alive


def test_message_at_the_limit_passes(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        ws.send_text("y" * LIMIT)
        return len(ws.recv_text())
    assert in_thread(client, port_of(server)) == LIMIT


def test_oversized_fragmented_message_gets_1009(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        ws.send_frame(TEXT, b"a" * LIMIT, fin=False)
        ws.send_frame(0x0, b"b", fin=True)
        return ws.recv_close()
    assert in_thread(client, port_of(server))[0] == 1009


def test_invalid_utf8_gets_1007(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        ws.send_frame(TEXT, b"\xff\xfe bad")
        return ws.recv_close(), echo_works(port)
    (code, _), alive = in_thread(client, port_of(server))
    assert code == 1007 and alive


def test_unmasked_client_frame_gets_1002(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        ws.send_frame(TEXT, b"unmasked", mask=False)
        return ws.recv_close(), echo_works(port)
    (code, _), alive = in_thread(client, port_of(server))
    assert code == 1002 and alive


def test_binary_message_is_refused_with_1003(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        ws.send_frame(BINARY, b"\x00\x01")
        return ws.recv_close()
    assert in_thread(client, port_of(server))[0] == 1003


def test_ping_gets_pong_with_the_same_payload(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        ws.send_frame(PING, b"are you there")
        return ws.recv_frame()
    assert in_thread(client, port_of(server)) == (PONG, b"are you there")


def test_broken_sockjs_framing_closes_the_websocket(server):
    def client(port):
        ws = RawWebSocket(port, "/ws/000/abc/websocket")
        ws.recv_text()
        ws.send_text('["a')
        return ws.recv_close()
    assert in_thread(client, port_of(server)) == (3000, "Broken framing.")


def test_bad_handshakes_are_refused_with_400(server):
    import http.client

    def client(port, headers):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/ws/websocket", headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    port = port_of(server)
    assert in_thread(client, port, {})[0] == 400
    assert in_thread(client, port, {"Upgrade": "websocket", "Connection": "Upgrade",
                                    "Sec-WebSocket-Version": "13",
                                    "Sec-WebSocket-Key": "not base64!"})[0] == 400
    assert in_thread(client, port, {"Upgrade": "websocket", "Connection": "Upgrade",
                                    "Sec-WebSocket-Version": "7",
                                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})[0] == 400


def test_a_ticker_is_never_late_while_a_client_sends_messages_at_the_limit(server):
    """gevent-websocket stalled the process for seconds on big messages; we must not."""
    lateness = []
    period = 0.01

    def ticker():
        expected = time.perf_counter() + period
        while True:
            gevent.sleep(period)
            now = time.perf_counter()
            lateness.append(now - expected)
            expected = now + period

    def client(port):
        ws = RawWebSocket(port, "/ws/websocket")
        sizes = []
        for _ in range(20):
            ws.send_text("z" * LIMIT)
            sizes.append(len(ws.recv_text()))
        ws.send_text("z" * (LIMIT * 16))  # way over: refused without stalling either
        return sizes, ws.recv_close()[0]

    ticking = gevent.spawn(ticker)
    try:
        gevent.sleep(0.05)
        sizes, code = in_thread(client, port_of(server))
    finally:
        ticking.kill()
    assert sizes == [LIMIT] * 20 and code == 1009
    assert len(lateness) > 5
    assert max(lateness) < 0.1, "ticker was %.3f s late" % max(lateness)
