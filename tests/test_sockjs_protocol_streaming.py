"""The official SockJS protocol suite, part 3: the streaming transports (XhrStreaming,
EventSource, HtmlFile), HandlingClose, and the HTTP/1.0 and HTTP/1.1 framing cases (Http10,
Http11). Streaming frames are read one HTTP chunk at a time: each frame (and the prelude) must be
its own chunk. /echo ends a streaming response once 4096 bytes of frames have been sent.
Helpers and conventions: see test_sockjs_protocol.py."""
import time

import pytest

from test_sockjs_protocol import (ANOTHER_CONNECTION, GO_AWAY, GREETING, INTERRUPTED, Client,
                                  assert_content_type, assert_cors, assert_not_cached,
                                  assert_options, session_path)


@pytest.fixture
def client(sockjs_server):
    result = Client(sockjs_server)
    yield result
    result.close_all()


def send(client: Client, url: str, body: str) -> None:
    response = client.post(url + "/xhr_send", body)
    assert response.status == 204
    assert response.body == b""


# -- XhrStreaming --------------------------------------------------------------------------

def test_xhr_streaming__options(client):
    """Official: XhrStreaming.test_options"""
    assert_options(client, "/echo/abc/abc/xhr_streaming", "OPTIONS, POST")


def test_xhr_streaming__transport(client):
    """Official: XhrStreaming.test_transport"""
    url = session_path()
    stream = client.stream("POST", url + "/xhr_streaming", {"Origin": "test"})
    assert stream.status == 200
    assert_content_type(stream, "application/javascript;charset=UTF-8")
    assert_cors(stream, "test")
    assert_not_cached(stream)
    # A 2 KiB prelude of 'h', so that browsers start delivering the stream.
    assert stream.chunk() == "h" * 2048 + "\n"
    assert stream.chunk() == "o\n"
    send(client, url, '["x"]')
    assert stream.chunk() == 'a["x"]\n'
    stream.close()


def test_xhr_streaming__response_limit(client):
    """Official: XhrStreaming.test_response_limit (frames only count, the prelude does not:
    'o' + 30 frames of 134 bytes stay under 4096, the 31st ends the response)"""
    url = session_path()
    stream = client.stream("POST", url + "/xhr_streaming")
    assert stream.status == 200
    assert stream.chunk()  # prelude
    assert stream.chunk() == "o\n"
    message = '"' + "x" * 128 + '"'
    for _ in range(31):
        send(client, url, "[" + message + "]")
        assert stream.chunk() == "a[" + message + "]\n"
    assert stream.chunk() == ""  # the terminating chunk: the server ended the response


# -- EventSource ---------------------------------------------------------------------------

def test_eventsource__transport(client):
    """Official: EventSource.test_transport"""
    url = session_path()
    stream = client.stream("GET", url + "/eventsource")
    assert stream.status == 200
    assert_content_type(stream, "text/event-stream")  # no charset
    assert_not_cached(stream)
    assert stream.chunk() == "\r\n"  # prelude (for an old Opera bug)
    assert stream.chunk() == "data: o\r\n\r\n"
    send(client, url, '["x"]')
    assert stream.chunk() == 'data: a["x"]\r\n\r\n'
    # Control characters come back JSON-escaped, never raw inside an event.
    send(client, url, r'["  \u0000\n\r "]')
    assert stream.chunk() == 'data: a["  \\u0000\\n\\r "]\r\n\r\n'
    stream.close()


def test_eventsource__response_limit(client):
    """Official: EventSource.test_response_limit"""
    url = session_path()
    stream = client.stream("GET", url + "/eventsource")
    assert stream.status == 200
    assert stream.chunk()  # prelude
    assert stream.chunk() == "data: o\r\n\r\n"
    message = '"' + "x" * 4096 + '"'
    send(client, url, "[" + message + "]")
    assert stream.chunk() == "data: a[" + message + "]\r\n\r\n"
    assert stream.chunk() == ""


# -- HtmlFile ------------------------------------------------------------------------------

HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.CALLBACK;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"""


def test_htmlfile__transport(client):
    """Official: HtmlFile.test_transport"""
    url = session_path()
    stream = client.stream("GET", url + "/htmlfile?c=%63allback")
    assert stream.status == 200
    assert_content_type(stream, "text/html;charset=UTF-8")
    assert_not_cached(stream)
    head = stream.chunk()
    assert head.strip() == HTMLFILE_HEAD.replace("CALLBACK", "callback")
    assert len(head) > 1024  # padded in the same chunk, or IE does not start rendering
    assert stream.chunk() == '<script>\np("o");\n</script>\r\n'
    send(client, url, '["x"]')
    assert stream.chunk() == '<script>\np("a[\\"x\\"]");\n</script>\r\n'
    stream.close()


def test_htmlfile__no_callback(client):
    """Official: HtmlFile.test_no_callback"""
    response = client.get("/echo/a/a/htmlfile")
    assert response.status == 500
    assert '"callback" parameter required' in response.text


def test_htmlfile__invalid_callback(client):
    """Official: HtmlFile.test_invalid_callback"""
    for callback in ("%20", "*", "abc(", "abc%28"):
        response = client.get("/echo/a/a/htmlfile?c=" + callback)
        assert response.status == 500, callback
        assert 'invalid "callback" parameter' in response.text


def test_htmlfile__response_limit(client):
    """Official: HtmlFile.test_response_limit"""
    url = session_path()
    stream = client.stream("GET", url + "/htmlfile?c=callback")
    assert stream.status == 200
    assert stream.chunk()  # prelude
    assert stream.chunk() == '<script>\np("o");\n</script>\r\n'
    message = "x" * 4096
    send(client, url, '["' + message + '"]')
    assert stream.chunk() == '<script>\np("a[\\"' + message + '\\"]");\n</script>\r\n'
    assert stream.chunk() == ""


# -- HandlingClose -------------------------------------------------------------------------

def test_handling_close__close_frame(client):
    """Official: HandlingClose.test_close_frame (after the application closes, a new request
    gets the close frame, not "Another connection still open"; both responses end)"""
    url = session_path("/close")
    first = client.stream("POST", url + "/xhr_streaming")
    first.chunk()  # prelude
    assert first.chunk() == "o\n"
    assert first.chunk() == GO_AWAY + "\n"
    second = client.stream("POST", url + "/xhr_streaming")
    second.chunk()  # prelude
    assert second.chunk() == GO_AWAY + "\n"
    assert first.chunk() == ""
    assert second.chunk() == ""


def test_handling_close__close_request(client):
    """Official: HandlingClose.test_close_request"""
    url = session_path()
    first = client.stream("POST", url + "/xhr_streaming")
    first.chunk()  # prelude
    assert first.chunk() == "o\n"
    second = client.stream("POST", url + "/xhr_streaming")
    second.chunk()  # prelude
    assert second.chunk() == ANOTHER_CONNECTION + "\n"
    assert second.chunk() == ""


def test_handling_close__abort_xhr_streaming(client):
    """Official: HandlingClose.test_abort_xhr_streaming (the server notices at once that the
    client dropped the receiving request: no sleep before the next one)"""
    url = session_path()
    first = client.stream("POST", url + "/xhr_streaming")
    first.chunk()  # prelude
    assert first.chunk() == "o\n"
    second = client.stream("POST", url + "/xhr_streaming")
    second.chunk()  # prelude
    assert second.chunk() == ANOTHER_CONNECTION + "\n"
    assert second.chunk() == ""
    first.close()
    third = client.stream("POST", url + "/xhr_streaming")
    third.chunk()  # prelude
    # A new session, or the old one closed as interrupted: both are allowed.
    assert third.chunk() in ("o\n", INTERRUPTED + "\n")
    third.close()


def test_handling_close__abort_xhr_polling(client):
    """Official: HandlingClose.test_abort_xhr_polling"""
    url = session_path()
    assert client.post(url + "/xhr").text == "o\n"
    waiting = client.pending_post(url + "/xhr")
    assert client.post(url + "/xhr").text == ANOTHER_CONNECTION + "\n"
    waiting.close()
    assert client.post(url + "/xhr").text in ("o\n", INTERRUPTED + "\n")


# -- Http10 / Http11 -----------------------------------------------------------------------

def test_http10__synchronous(client):
    """Official: Http10.test_synchronous (no chunking for HTTP/1.0: either Content-Length, or
    no length and Connection: close)"""
    connection = client.connect()
    # 'Connection: Keep-Alive' is not HTTP/1.0, but HTTP/1.0 clients send it.
    connection.send_request("GET", "/echo", {"Connection": "Keep-Alive"}, version="1.0")
    response = connection.read_head()
    assert response.status == 200
    assert response.version in ("1.0", "1.1")
    assert not response["Transfer-Encoding"]
    if not response["Content-Length"]:
        assert (response["Connection"] or "").lower() == "close"
        assert connection.read_to_eof() == GREETING.encode()
        return
    assert int(response["Content-Length"]) == 19
    assert connection.read_exact(19) == GREETING.encode()
    keep_alive = (response["Connection"] or "").lower()
    if keep_alive in ("close", ""):
        assert connection.peer_closed()  # close is the HTTP/1.0 default
    else:
        assert keep_alive == "keep-alive"
        connection.send_request("GET", "/echo", {"Connection": "Keep-Alive"}, version="1.0")
        assert connection.read_head().status == 200


def test_http10__streaming(client):
    """Official: Http10.test_streaming (raw bytes, no chunking, no length; the end of the
    response is the server closing the connection)"""
    url = session_path("/close")
    connection = client.connect()
    connection.send_request("POST", url + "/xhr_streaming", {"Connection": "Keep-Alive"},
                            version="1.0")
    response = connection.read_head()
    assert response.status == 200
    assert not response["Transfer-Encoding"]
    assert not response["Content-Length"]
    assert connection.read_exact(2049)[:1] == b"h"  # prelude
    assert connection.read_exact(2) == b"o\n"
    assert connection.read_exact(19) == (GO_AWAY + "\n").encode()
    assert connection.peer_closed()


def test_http11__synchronous(client):
    """Official: Http11.test_synchronous (keep-alive is the HTTP/1.1 default)"""
    connection = client.connect()
    connection.send_request("GET", "/echo", {"Connection": "Keep-Alive"})
    response = connection.read_head()
    assert (response["Connection"] or "").lower() in ("keep-alive", "")
    if response["Content-Length"]:
        assert int(response["Content-Length"]) == 19
        assert connection.read_exact(19) == GREETING.encode()
        assert not response["Transfer-Encoding"]
    else:
        assert response["Transfer-Encoding"].lower() == "chunked"
        assert connection.read_chunk() == GREETING.encode()
        assert connection.read_chunk() == b""
    # A second request on the same connection.
    connection.send_request("GET", "/echo", {"Connection": "Keep-Alive"})
    assert connection.read_head().status == 200


def test_http11__streaming(client):
    """Official: Http11.test_streaming"""
    url = session_path("/close")
    connection = client.connect()
    connection.send_request("POST", url + "/xhr_streaming", {"Connection": "Keep-Alive"})
    response = connection.read_head()
    assert response.status == 200
    assert (response["Transfer-Encoding"] or "").lower() == "chunked"
    assert not response["Content-Length"]
    assert connection.read_chunk()[:1] == b"h"  # prelude
    assert connection.read_chunk() == b"o\n"
    assert connection.read_chunk() == (GO_AWAY + "\n").encode()
    assert connection.read_chunk() == b""


# -- extras: heartbeats and session expiry, on a server with short timings ------------------

@pytest.fixture
def quick_client(start_server):
    """A client of a server with a 0.5 s heartbeat and a 0.5 s disconnect delay (the suite's
    server uses 25 s and 5 s, too long to wait for)."""
    server = start_server("examples.sockjs_endpoints:app",
                          "--heartbeat-interval", "0.5", "--disconnect-delay", "0.5")
    result = Client(server)
    yield result
    result.close_all()


def test_extra__heartbeat_frame(quick_client):
    """Extra, not in the suite (it only describes it): an idle receiver gets an 'h' frame every
    heartbeat interval, so proxies do not cut the connection."""
    url = session_path()
    stream = quick_client.stream("POST", url + "/xhr_streaming")
    stream.chunk()  # prelude
    assert stream.chunk() == "o\n"
    assert stream.chunk() == "h\n"
    assert stream.chunk() == "h\n"
    stream.close()
    # A pending poll is answered with the heartbeat too.
    polled = session_path()
    assert quick_client.post(polled + "/xhr").text == "o\n"
    assert quick_client.post(polled + "/xhr").text == "h\n"


def test_extra__session_expires_after_disconnect_delay(quick_client):
    """Extra, not in the suite (its comments state the rule): a session with no receiver for
    the disconnect delay is forgotten. A closed one answers its close frame only until then,
    after which the same id opens a new session; sending to an expired one gives 404."""
    closed = session_path("/close")
    assert quick_client.post(closed + "/xhr").text == "o\n"
    assert quick_client.post(closed + "/xhr").text == GO_AWAY + "\n"
    idle = session_path()
    assert quick_client.post(idle + "/xhr").text == "o\n"
    time.sleep(1.5)  # 0.5 s delay + the sweeper's period, with room to spare
    assert quick_client.post(closed + "/xhr").text == "o\n"
    assert quick_client.post(idle + "/xhr_send", '["a"]').status == 404
