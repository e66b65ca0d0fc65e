"""Hostile input at every entrance, on real sockets against a real rtm-serve: what is not JSON by
RFC 8259 (NaN, infinities, lone surrogates), messages that are not valid Unicode, and absurd
nesting are refused with ``bad_request`` (400 on the internal API), never published, and hurt
no other client (docs/limits.md, docs/protocol.md).

The entrances: SockJS over WebSocket, xhr_send, the raw WebSocket, ``POST /api/publish``,
``rtm.publish`` from Python.
"""
import json
import logging
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest

from realtimemagic import RealTimeMagic, brokers
from realtimemagic.incidents import incidents
from realtimemagic.publisher import Publisher
from realtimemagic.runtime.connection import SockJSHandler
from realtimemagic.runtime.endpoint import SockJSEndpoint

from clients import WebSocketClient, XhrPollingClient
from conftest import ROOT, free_port, wait_for_port
from inprocess import in_thread, serving
from wsclient import TEXT, RawWebSocket

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SUBSCRIBERS = 50  # of each kind: raw WebSocket and SockJS over WebSocket


@pytest.fixture(scope="module")
def server(serve_module):
    api_port = free_port()
    running = serve_module("realtimemagic.magic:RealTimeMagic", "--api-port", str(api_port),
                           "--rate-limit", "1000")
    wait_for_port(api_port, running.process)
    running.api = "http://127.0.0.1:%d" % api_port
    return running


def unique(name: str) -> str:
    return "%s-%s" % (name, uuid.uuid4().hex[:8])  # the server may be shared: own channels


def post(url: str, body: bytes):
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def request_text(action: str, channel_json: str, message_json: str = None,
                 request_id: str = None) -> str:
    """A request written by hand, so that it can hold what json.dumps never writes."""
    payload = '"channel": %s' % channel_json
    if message_json is not None:
        payload += ', "message": %s' % message_json
    return '{"action": "%s", %s"payload": {%s}}' % (
        action, '"id": "%s", ' % request_id if request_id else "", payload)


# -- subscribers over raw sockets --------------------------------------------------------------

class RawSubscriber:
    """The raw WebSocket: one protocol message per text frame."""

    def __init__(self, port: int, channel: str) -> None:
        self.ws = RawWebSocket(port, "/pubsub/websocket", timeout=15)
        self.send(json.dumps({"action": "subscribe", "payload": {"channel": channel}, "id": 1}))
        reply = self.next()
        assert reply["action"] == "subscribed", reply

    def send(self, text: str) -> None:
        self.ws.send_text(text)

    def next(self):
        opcode, payload = self.ws.recv_frame()
        assert opcode == TEXT, (opcode, payload)
        return json.loads(payload.decode("utf-8"))


class SockJSSubscriber(RawSubscriber):
    """SockJS over WebSocket: frames ``o``, ``h``, ``a[...]`` of JSON texts."""

    def __init__(self, port: int, channel: str) -> None:
        self.pending = []
        self.ws = RawWebSocket(port, "/pubsub/000/%s/websocket" % uuid.uuid4().hex, timeout=15)
        assert self.ws.recv_text() == "o"
        self.send(json.dumps({"action": "subscribe", "payload": {"channel": channel}, "id": 1}))
        reply = self.next()
        assert reply["action"] == "subscribed", reply

    def send(self, text: str) -> None:
        self.ws.send_text(json.dumps([text]))

    def send_frame(self, frame: str) -> None:
        self.ws.send_text(frame)

    def next(self):
        while not self.pending:
            frame = self.ws.recv_text()
            if frame.startswith("a"):
                self.pending = [json.loads(text) for text in json.loads(frame[1:])]
            else:
                assert frame == "h", frame
        return self.pending.pop(0)


def is_error(message) -> bool:
    return message.get("action") == "error"


# -- Acceptance 2 ------------------------------------------------------------------------------

def test_nan_and_lone_surrogates_are_refused_at_every_entrance_and_hurt_no_subscriber(server):
    channel = unique("attacked")
    raw = [RawSubscriber(server.port, channel) for _ in range(SUBSCRIBERS)]
    sockjs = [SockJSSubscriber(server.port, channel) for _ in range(SUBSCRIBERS)]
    quoted = json.dumps(channel)
    not_json = {  # what Python's json module reads, and RFC 8259 does not allow
        "nan": "NaN",
        "infinity": '{"deep": [1, {"x": -Infinity}]}',
        "surrogate": '"a\\ud800b"',
        "surrogate-key": '{"\\udc00": 1}',
        "overflow": "1e999",
    }

    # Over a SockJS WebSocket, xhr_send and the raw WebSocket: bad_request, with the id.
    sockjs_publisher = SockJSSubscriber(server.port, unique("publisher"))
    raw_publisher = WebSocketClient(server)
    xhr_publisher = XhrPollingClient(server)
    try:
        for kind, message_json in not_json.items():
            for name, publisher in (("sockjs-websocket", sockjs_publisher),
                                    ("raw-websocket", raw_publisher), ("xhr_send", xhr_publisher)):
                request_id = "%s-%s" % (name, kind)
                if isinstance(publisher, SockJSSubscriber):
                    publisher.send(request_text("publish", quoted, message_json, request_id))
                    error = publisher.next()
                else:
                    publisher.send_text(request_text("publish", quoted, message_json, request_id))
                    error = publisher.expect(is_error, timeout=10)
                assert error["payload"]["code"] == "bad_request", (request_id, error)
                assert "not JSON" in error["payload"]["reason"]
                assert error["id"] == request_id, error

        # A lone surrogate escaped in the SockJS frame itself: the frame is JSON (sockjs-node
        # reads it too), the message it carries is not valid Unicode: bad_request, no id (the
        # message is not parsed), and the connection goes on.
        poisoned = request_text("publish", quoted, '"a\ud800b"', "frame-escape")
        sockjs_publisher.send_frame(json.dumps([poisoned]))  # json.dumps escapes the surrogate
        error = sockjs_publisher.next()
        assert error["payload"]["code"] == "bad_request"
        assert "not valid Unicode" in error["payload"]["reason"], error
        xhr_publisher._post_send([poisoned])
        error = xhr_publisher.expect(is_error, timeout=10)
        assert "not valid Unicode" in error["payload"]["reason"], error

        # The internal API: 400 with a JSON reason.
        for kind, message_json in not_json.items():
            status, answer = post(server.api + "/api/publish", (
                '{"channel": %s, "message": %s}' % (quoted, message_json)).encode("ascii"))
            assert status == 400 and "not JSON" in answer["error"], (kind, status, answer)

        # Every subscriber is still connected, and the next thing it gets is the next valid
        # message: nothing of the refused ones was published.
        sockjs_publisher.send(request_text("publish", quoted, '"after the attack"'))
        for subscriber in raw + sockjs:
            assert subscriber.next() == {"action": "message", "payload": {
                "channel": channel, "message": "after the attack"}}
        status, _ = post(server.api + "/api/publish", json.dumps(
            {"channel": channel, "message": "\U0001F600 and \u00e9"}).encode("utf-8"))
        assert status == 200
        for subscriber in raw + sockjs:
            assert subscriber.next()["payload"]["message"] == "\U0001F600 and \u00e9"
    finally:
        raw_publisher.close()
        xhr_publisher.close()
    log = server.log()
    assert "Traceback" not in log and "UnicodeEncodeError" not in log, log[-3000:]


@pytest.mark.parametrize("kind", ["raw", "sockjs"])
def test_subscribing_to_a_lone_surrogate_channel_is_a_bad_request(server, kind):
    """Once killed the client that asked: its error reply echoed the channel, and the writer
    died encoding it."""
    client = (RawSubscriber if kind == "raw" else SockJSSubscriber)(server.port, unique("ok"))
    client.send(request_text("subscribe", '"\\ud800"', request_id="bad"))
    error = client.next()
    assert error["payload"]["code"] == "bad_request" and error["id"] == "bad", error
    channel = unique("after")
    client.send(json.dumps({"action": "subscribe", "payload": {"channel": channel}, "id": 2}))
    assert client.next() == {"action": "subscribed", "payload": {"channel": channel}, "id": 2}
    client.send(json.dumps({"action": "publish", "payload": {"channel": channel,
                                                              "message": "alive"}}))
    assert client.next()["payload"]["message"] == "alive"


# -- deep nesting --------------------------------------------------------------------------

def test_deep_nesting_over_websockets_and_xhr_send_is_refused(server):
    """60,000 brackets fit in max_message_size (64 KiB) and are too deep to parse:
    bad_request; 100,000 are over it: too_large.  Never a RecursionError, and the connection
    goes on."""
    for brackets, code in ((60000, "bad_request"), (100000, "too_large")):
        raw = RawSubscriber(server.port, unique("deep"))
        raw.send("[" * brackets)
        sockjs = SockJSSubscriber(server.port, unique("deep"))
        sockjs.send("[" * brackets)
        for client in (raw, sockjs):
            error = client.next()
            assert error["payload"]["code"] == code, error
            if code == "bad_request":
                assert "nested too deeply" in error["payload"]["reason"]
        xhr = XhrPollingClient(server)
        try:
            xhr.send_text("[" * brackets)
            assert xhr.expect(is_error, timeout=10)["payload"]["code"] == code
            xhr.subscribed(unique("still"))
        finally:
            xhr.close()
        channel = unique("still")
        for client in (raw, sockjs):
            client.send(json.dumps({"action": "subscribe", "payload": {"channel": channel},
                                    "id": "s"}))
            assert client.next()["action"] == "subscribed"
    assert "Traceback" not in server.log()


# -- Acceptance 5 ------------------------------------------------------------------------------

def test_the_api_answers_100000_nested_brackets_with_400(server):
    status, answer = post(server.api + "/api/publish", b"[" * 100000)
    assert status == 400 and "nested too deeply" in answer["error"], (status, answer)
    status, answer = post(server.api + "/api/publish",
                          b'{"channel": "c", "message": ' + b"[" * 100000)
    assert status == 400 and "nested too deeply" in answer["error"], (status, answer)
    assert "Traceback" not in server.log()


def test_the_api_answers_a_cut_short_chunked_body_with_400(server):
    port = int(server.api.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n20\r\n{\"channel\": \"c\", \"mess")
        sock.shutdown(socket.SHUT_WR)  # the body ends early
        answer = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert "Incomplete" in json.loads(body)["error"]
    assert "Traceback" not in server.log()


def test_rtm_publish_sends_text_that_is_not_strict_json_as_a_string(server):
    """``rtm-publish CHANNEL MESSAGE`` takes MESSAGE as JSON when it is JSON, else as a string:
    ``NaN`` is the string "NaN", not a number the server would refuse."""
    channel = unique("cli")
    subscriber = RawSubscriber(server.port, channel)
    for text in ("NaN", "[1, Infinity]"):
        result = subprocess.run([sys.executable, "-c", "from realtimemagic.cli import publish_main;"
                                 "publish_main()", channel, text, "--api-url", server.api],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert subscriber.next()["payload"]["message"] == text


# -- from Python ---------------------------------------------------------------------------

@pytest.mark.parametrize("message,error", [
    (float("nan"), ValueError), ({"a": [float("inf")]}, ValueError), ("a\ud800b", ValueError),
    ({"\udfff": 1}, ValueError), ({1, 2}, TypeError),
])
def test_rtm_publish_refuses_what_is_not_json(message, error):
    rtm = RealTimeMagic()
    with pytest.raises(error):
        rtm.publish("news", message)
    with pytest.raises(error):
        rtm.publish_local("news", message)
    with pytest.raises(ValueError):
        rtm.publish("\ud800", "fine message, bad channel")
    assert rtm.counters["published"] == 0
    rtm.publish("news", {"fine": 1.5})
    assert rtm.counters["published"] == 1


@pytest.mark.parametrize("message", [float("nan"), ["\ud800"], {"\udfff": 1}])
def test_the_publisher_refuses_what_is_not_json_before_reaching_the_broker(message):
    publisher = Publisher("redis://127.0.0.1:1/0")  # nothing listens there: never reached
    with pytest.raises(ValueError):
        publisher.publish("news", message)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "postgresql://postgres@127.0.0.1:1/x",
                                 "nats://127.0.0.1:1"])
def test_a_broker_message_that_is_not_strict_json_is_ignored(url):
    """What another program put in Redis, a NOTIFY or NATS never reaches the fan-out."""
    broker = brokers.from_url(url, deliver=lambda *args: 0)
    for data in (b'{"o": "x", "c": "c", "m": NaN}', '{"o": "x", "c": "c", "m": "\\ud800"}',
                 b'{"o": "x", "c": "c", "m": "\xff"}', b"[" * 100000, None):
        assert broker.parse_envelope(data) is None
    assert broker.parse_envelope(b'{"o": "x", "c": "c", "m": 1.5}') == {
        "o": "x", "c": "c", "m": 1.5}


# -- the writer of a connection ------------------------------------------------------------

class Poisoner(SockJSHandler):
    """Below the pub/sub layer, which refuses such text: sends what no UTF-8 encoder takes."""

    def on_message(self, connection, message):
        connection.send("a\ud800b" if message == "poison" else message)


def test_a_frame_that_cannot_be_written_closes_that_connection_alone(caplog):
    caplog.set_level(logging.WARNING)
    failed_before = incidents.counts["write_failed"]
    with serving(SockJSEndpoint(Poisoner(), prefix="/p")) as running:
        port = running.address[1]

        def exchange():
            victims = [RawWebSocket(port, "/p/websocket") for _ in range(3)]
            bystander = RawWebSocket(port, "/p/websocket")
            for victim in victims:
                victim.send_text("poison")
            closes = [victim.recv_close() for victim in victims]
            bystander.send_text("still here")
            return closes, bystander.recv_text()

        closes, echoed = in_thread(exchange)
    assert closes == [(1011, "Internal error")] * 3
    assert echoed == "still here"
    assert incidents.counts["write_failed"] == failed_before + 3
    lines = [record for record in caplog.records if "could not be written" in record.message]
    assert len(lines) <= 1 and not any(record.exc_info for record in caplog.records), [
        record.message for record in caplog.records]
