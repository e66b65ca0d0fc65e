"""The official SockJS protocol suite, part 4: WebSockets (WebsocketHttpErrors, Websocket,
RawWebsocket), plus the close codes sockjs-node sends, which the suite does not check.
Websocket.test_haproxy (hixie-76) is declined, see test_sockjs_protocol.py.
Helpers and conventions: see test_sockjs_protocol.py."""
import pytest
from websocket import ABNF, WebSocketConnectionClosedException

from test_sockjs_protocol import GO_AWAY, Client, assert_405, session_path


@pytest.fixture
def client(sockjs_server):
    result = Client(sockjs_server)
    yield result
    result.close_all()


def next_frame(ws) -> tuple:
    """(opcode, payload) of the next frame, control frames included; for a close frame the
    payload is (code, reason)."""
    opcode, frame = ws.recv_data_frame(control_frame=True)
    if opcode == ABNF.OPCODE_CLOSE:
        data = frame.data
        assert len(data) >= 2, "close frame without a code: %r" % data
        return opcode, (int.from_bytes(data[:2], "big"), data[2:].decode("utf-8"))
    return opcode, frame.data.decode("utf-8") if opcode == ABNF.OPCODE_TEXT else frame.data


# -- WebsocketHttpErrors -------------------------------------------------------------------

def test_websocket_http_errors__http_method(client):
    """Official: WebsocketHttpErrors.test_httpMethod (a plain GET is no WebSocket request)"""
    assert client.get("/echo/0/0/websocket").status == 400


def test_websocket_http_errors__invalid_connection_header(client):
    """Official: WebsocketHttpErrors.test_invalidConnectionHeader (a proxy rewrote
    Connection)"""
    response = client.get("/echo/0/0/websocket", {"Upgrade": "WebSocket",
                                                   "Connection": "close"})
    assert response.status == 400


def test_websocket_http_errors__invalid_method(client):
    """Official: WebsocketHttpErrors.test_invalidMethod"""
    for headers in ({"Upgrade": "WebSocket", "Connection": "Upgrade"}, {}):
        assert_405(client.post("/echo/0/0/websocket", headers=headers))


# -- Websocket -----------------------------------------------------------------------------

def test_websocket__transport(client):
    """Official: Websocket.test_transport (no trailing newline on WebSocket frames)"""
    ws = client.websocket(session_path() + "/websocket")
    assert ws.recv() == "o"
    ws.send('["a"]')
    assert ws.recv() == 'a["a"]'
    ws.close()


def test_websocket__close(client):
    """Official: Websocket.test_close (after the close frame, the connection ends: a close
    frame or EOF, no other message)"""
    ws = client.websocket(session_path("/close") + "/websocket")
    assert ws.recv() == "o"
    assert ws.recv() == GO_AWAY
    with pytest.raises(WebSocketConnectionClosedException):
        if not ws.recv():  # '' is websocket-client's answer to a close frame
            raise WebSocketConnectionClosedException("close frame")
    ws.close()


def test_websocket__headers_sanity(client):
    """Official: Websocket.test_headersSanity (the RFC 6455 handshake, sample key of the RFC;
    no Origin header, only the old Sec-WebSocket-Origin)"""
    connection = client.connect()
    connection.send_request("GET", session_path() + "/websocket", {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Origin": "http://asd",
        "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw==",
    })
    response = connection.read_head()
    assert response.status == 101
    assert response["Sec-WebSocket-Accept"] == "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
    assert response["Connection"].lower() == "upgrade"
    assert response["Upgrade"].lower() == "websocket"
    assert not response["Content-Length"]


def test_websocket__empty_frame(client):
    """Official: Websocket.test_empty_frame (an empty message and '[]' are ignored)"""
    ws = client.websocket(session_path() + "/websocket")
    assert ws.recv() == "o"
    ws.send("")
    ws.send("[]")
    ws.send('["a"]')
    assert ws.recv() == 'a["a"]'
    ws.close()


def test_websocket__reuse_session_id(client):
    """Official: Websocket.test_reuseSessionId (a WebSocket session lives as long as its
    connection, so two connections may share a session id, and it may be reused later)"""
    path = session_path() + "/websocket"
    first = client.websocket(path)
    assert first.recv() == "o"
    second = client.websocket(path)
    assert second.recv() == "o"
    first.send('["a"]')
    assert first.recv() == 'a["a"]'
    second.send('["b"]')
    assert second.recv() == 'a["b"]'
    first.close()
    second.close()

    third = client.websocket(path)
    assert third.recv() == "o"
    third.send('["a"]')
    assert third.recv() == 'a["a"]'
    third.close()


def test_websocket__broken_json(client):
    """Official: Websocket.test_broken_json (the server ends the connection: a close frame,
    then EOF)"""
    ws = client.websocket(session_path() + "/websocket")
    assert ws.recv() == "o"
    ws.send('["a')
    with pytest.raises(WebSocketConnectionClosedException):
        ws.recv()
        ws.recv()
    ws.close()


# -- RawWebsocket --------------------------------------------------------------------------

def test_raw_websocket__transport(client):
    """Official: RawWebsocket.test_transport (<prefix>/websocket: no SockJS framing at all)"""
    ws = client.websocket("/echo/websocket")
    ws.send("Hello world!\uffff")
    assert ws.recv() == "Hello world!\uffff"
    ws.close()


def test_raw_websocket__close(client):
    """Official: RawWebsocket.test_close (the first thing received is a close frame with the
    application's reason)"""
    ws = client.websocket("/close/websocket")
    opcode, payload = next_frame(ws)
    assert opcode == ABNF.OPCODE_CLOSE, payload
    assert payload[1] == "Go away!"
    ws.close()


# -- extras: close codes (sockjs-node's, not checked by the suite) --------------------------

def test_extra__websocket_close_code_after_session_close(client):
    """Extra, not in the suite: when the application closes a SockJS-over-WebSocket session,
    the text frame c[3000,"Go away!"] is followed by a WebSocket close with code 1000 (normal
    closure), as sockjs-node does; the SockJS code is in the text frame only."""
    ws = client.websocket(session_path("/close") + "/websocket")
    assert next_frame(ws) == (ABNF.OPCODE_TEXT, "o")
    assert next_frame(ws) == (ABNF.OPCODE_TEXT, GO_AWAY)
    opcode, (code, _reason) = next_frame(ws)
    assert opcode == ABNF.OPCODE_CLOSE
    assert code == 1000
    ws.close()


def test_extra__raw_websocket_close_code(client):
    """Extra, not in the suite (which checks the reason only): the raw /close/websocket endpoint
    closes with the application's code 3000 and reason "Go away!"."""
    ws = client.websocket("/close/websocket")
    assert next_frame(ws) == (ABNF.OPCODE_CLOSE, (3000, "Go away!"))
    ws.close()


def test_extra__websocket_broken_json_close_code(client):
    """Extra, not in the suite: broken JSON on a SockJS WebSocket gets no c[...] frame, only a
    WebSocket close 3000 "Broken framing." (as sockjs-node), then EOF."""
    ws = client.websocket(session_path() + "/websocket")
    assert ws.recv() == "o"
    ws.send('["a')
    assert next_frame(ws) == (ABNF.OPCODE_CLOSE, (3000, "Broken framing."))
    with pytest.raises(WebSocketConnectionClosedException):
        ws.recv_data_frame(control_frame=True)
