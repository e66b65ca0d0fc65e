"""The official SockJS protocol suite (sockjs-protocol 0.3.x, 68 cases), written again as pytest
tests and run against a real rtm-serve over real sockets.

Every test that reproduces an official case is named ``test_<class>__<case>`` and its docstring
starts with ``Official: <Class>.<test_method>``. Checks the suite does not make are named
``test_extra__...`` and say so. The cases are split over four files:

* this file: the shared client helpers, then BaseUrlGreeting, IframePage, InfoTest;
* test_sockjs_protocol_polling.py: SessionURLs, Protocol, XhrPolling, JsonPolling,
  JsessionidCookie, JSONEncoding (+ the one case of upstream's http-quirks.py);
* test_sockjs_protocol_streaming.py: XhrStreaming, EventSource, HtmlFile, HandlingClose, Http10,
  Http11;
* test_sockjs_protocol_websocket.py: WebsocketHttpErrors, Websocket, RawWebsocket.

Declined, on purpose: Websocket.test_haproxy, the hixie-76 (draft-76) handshake, which predates
RFC 6455 and which our WebSocket stack does not speak. The other 67 official cases are here.

The HTTP client is our own, on raw sockets, because the suite's checks are byte-exact: each
streaming frame must arrive as its own HTTP chunk, a response without framing
(no chunking, no Content-Length, no ``Connection: close``) is an error, and some tests abort a
request half-way by closing the socket.
"""
import json
import re
import socket
import time
import uuid
from typing import Dict, List, Optional, Tuple

import pytest
import websocket

TIMEOUT = 3.0  # seconds, for every socket read: a missing byte fails the test, never hangs it

GREETING = "Welcome to SockJS!\n"
NOT_CACHED = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
LONG_MAX_AGE = re.compile(r"max-age=[1-9][0-9]{6}")  # at least 1000000 s; a year is usual
GO_AWAY = 'c[3000,"Go away!"]'
ANOTHER_CONNECTION = 'c[2010,"Another connection still open"]'
INTERRUPTED = 'c[1002,"Connection interrupted"]'


# -- a raw HTTP/1.x client -----------------------------------------------------------------

class HTTPResponse:
    """Status line and headers of a response, and its body (bytes) once read."""

    def __init__(self, version: str, status: int, header_lines: List[Tuple[str, str]]) -> None:
        self.version = version
        self.status = status
        self.header_lines = header_lines
        self.body = b""

    def __getitem__(self, name: str) -> Optional[str]:
        """Header value, case-insensitive; the last one wins; None when absent."""
        value = None
        for key, text in self.header_lines:
            if key.lower() == name.lower():
                value = text
        return value

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def __repr__(self) -> str:
        return "<HTTP/%s %d %r %r>" % (self.version, self.status, self.header_lines,
                                        self.body[:200])


class RawHTTPConnection:
    """One TCP connection to the server. Requests are written by hand and responses parsed
    byte by byte, so that chunk boundaries, framing and closes can be asserted."""

    def __init__(self, server, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        self.host = "127.0.0.1:%d" % server.port
        self.buffer = b""

    def send_request(self, method: str, path: str, headers: Optional[Dict[str, str]] = None,
                     body=None, version: str = "1.1", content_length: bool = True) -> None:
        """Headers as given, then Host, then (POST only, like the suite) Content-Length."""
        data = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        lines = ["%s %s HTTP/%s" % (method, path, version)]
        lines += ["%s: %s" % item for item in (headers or {}).items()]
        lines.append("Host: " + self.host)
        if method == "POST" and content_length:
            lines.append("Content-Length: %d" % len(data))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def read_line(self) -> bytes:
        while b"\n" not in self.buffer:
            if not self._fill():
                raise AssertionError("connection closed inside a line: %r" % self.buffer)
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise AssertionError("connection closed after %d of %d bytes"
                                     % (len(self.buffer), size))
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_some(self) -> bytes:
        """What has arrived (at least one byte, or b'' at EOF)."""
        if not self.buffer:
            self._fill()
        data, self.buffer = self.buffer, b""
        return data

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data

    def read_head(self) -> HTTPResponse:
        status_line = self.read_line().decode("latin-1")
        match = re.match(r"HTTP/(\d\.\d) (\d{3})", status_line)
        assert match, "not an HTTP status line: %r" % status_line
        header_lines = []
        while True:
            line = self.read_line().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            header_lines.append((name.strip(), value.strip()))
        return HTTPResponse(match.group(1), int(match.group(2)), header_lines)

    def read_chunk(self) -> bytes:
        """Exactly one HTTP chunk; b'' is the terminating zero-size chunk."""
        size = int(self.read_line().split(b";")[0].strip(), 16)
        data = self.read_exact(size)
        assert self.read_exact(2) == b"\r\n", "chunk not followed by CRLF"
        if size == 0:
            return b""
        return data

    def read_body(self, response: HTTPResponse, method: str) -> bytes:
        """The body, framed as the suite's client expects; a response it could not delimit
        (a client would wait forever) fails."""
        if (response["Transfer-Encoding"] or "").lower() == "chunked":
            chunks = []
            while True:
                chunk = self.read_chunk()
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        if response["Content-Length"]:
            return self.read_exact(int(response["Content-Length"]))
        if "close" in [part.strip() for part in (response["Connection"] or "").lower().split(",")]:
            return self.read_to_eof()
        if response.status in (101, 204, 304) or (response.status == 200 and method == "OPTIONS"):
            return b""
        raise AssertionError("no chunking, Content-Length nor Connection: close: %r" % response)

    def peer_closed(self, wait: float = 1.0) -> bool:
        """True when the server closes the connection within ``wait`` s with nothing more sent."""
        assert not self.buffer, "unread data: %r" % self.buffer
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1)
        except socket.timeout:
            return False
        assert data == b"", "data after the end: %r" % data
        return True

    def close(self) -> None:
        self.sock.close()


class Stream:
    """A response whose status and headers have been read; the body is read chunk by chunk."""

    def __init__(self, connection: RawHTTPConnection, response: HTTPResponse) -> None:
        self.connection = connection
        self.response = response
        self.status = response.status

    def __getitem__(self, name: str) -> Optional[str]:
        return self.response[name]

    def chunk(self) -> str:
        """The next HTTP chunk as text ('' when the response has ended)."""
        assert (self.response["Transfer-Encoding"] or "").lower() == "chunked", self.response
        return self.connection.read_chunk().decode("utf-8")

    def close(self) -> None:
        """Drop the TCP connection: for the server, the client aborted."""
        self.connection.close()


class Client:
    """Requests to one server. Each request uses a new connection (as the suite does); all are
    closed at the end of the test."""

    def __init__(self, server) -> None:
        self.server = server
        self.connections: List[RawHTTPConnection] = []
        self.websockets: list = []

    def connect(self) -> RawHTTPConnection:
        connection = RawHTTPConnection(self.server)
        self.connections.append(connection)
        return connection

    def request(self, method: str, path: str, headers: Optional[Dict[str, str]] = None,
                body=None, **options) -> HTTPResponse:
        connection = self.connect()
        connection.send_request(method, path, headers, body, **options)
        response = connection.read_head()
        response.body = connection.read_body(response, method)
        connection.close()
        return response

    def get(self, path: str, headers: Optional[Dict[str, str]] = None) -> HTTPResponse:
        return self.request("GET", path, headers)

    def post(self, path: str, body=None, headers: Optional[Dict[str, str]] = None) -> HTTPResponse:
        return self.request("POST", path, headers, body)

    def options(self, path: str, headers: Optional[Dict[str, str]] = None) -> HTTPResponse:
        return self.request("OPTIONS", path, headers)

    def stream(self, method: str, path: str, headers: Optional[Dict[str, str]] = None) -> Stream:
        """Send a request and read only the status line and headers."""
        connection = self.connect()
        connection.send_request(method, path, headers)
        return Stream(connection, connection.read_head())

    def pending_post(self, path: str) -> RawHTTPConnection:
        """A POST whose response is never read (a long-poll left waiting). Gives the server
        a moment to attach it; close() it to abort it."""
        connection = self.connect()
        connection.send_request("POST", path)
        time.sleep(0.25)
        return connection

    def websocket(self, path: str):
        ws = websocket.create_connection(self.server.ws_url + path, timeout=TIMEOUT)
        self.websockets.append(ws)
        return ws

    def close_all(self) -> None:
        for connection in self.connections:
            connection.close()
        for ws in self.websockets:
            ws.shutdown()


def session_path(prefix: str = "/echo") -> str:
    """A fresh session URL ``<prefix>/000/<uuid>``."""
    return "%s/000/%s" % (prefix, uuid.uuid4())


# -- the suite's shared assertions ---------------------------------------------------------

def assert_content_type(response, expected: str) -> None:
    """Exact and case-sensitive, spaces aside ('charset=utf-8' is not 'charset=UTF-8')."""
    assert response["Content-Type"] is not None, response
    assert response["Content-Type"].replace(" ", "") == expected


def assert_cors(response, origin: str) -> None:
    assert response["Access-Control-Allow-Origin"] == origin
    assert response["Access-Control-Allow-Credentials"] == "true"


def assert_not_cached(response) -> None:
    assert response["Cache-Control"] == NOT_CACHED
    assert not response["Expires"]
    assert not response["Last-Modified"]


def assert_no_cookie(response) -> None:
    assert not response["Set-Cookie"]


def assert_long_cached(response) -> None:
    assert "public" in (response["Cache-Control"] or "")
    assert LONG_MAX_AGE.search(response["Cache-Control"]), response["Cache-Control"]
    assert response["Expires"]


def assert_405(response) -> None:
    assert response.status == 405
    assert not response["Content-Type"]
    assert response["Allow"]
    assert response.body == b""


def assert_options(client: Client, path: str, allowed_methods: str) -> None:
    """A CORS preflight, for the origins 'test' and 'null' (both echoed back)."""
    for origin in ("test", "null"):
        response = client.options(path, {"Access-Control-Request-Method": allowed_methods,
                                          "Origin": origin})
        assert response.status in (200, 204)
        assert_long_cached(response)
        assert int(response["Access-Control-Max-Age"]) > 1000000
        for method in allowed_methods.split(","):
            assert method.strip() in response["Access-Control-Allow-Methods"]
        assert response.body == b""
        assert_cors(response, origin)


@pytest.fixture
def client(sockjs_server):
    result = Client(sockjs_server)
    yield result
    result.close_all()


# -- BaseUrlGreeting -----------------------------------------------------------------------

def test_base_url_greeting__greeting(client):
    """Official: BaseUrlGreeting.test_greeting"""
    for path in ("/echo", "/echo/"):
        response = client.get(path)
        assert response.status == 200
        assert_content_type(response, "text/plain;charset=UTF-8")
        assert response.text == GREETING
        assert_no_cookie(response)


def test_base_url_greeting__not_found(client):
    """Official: BaseUrlGreeting.test_notFound"""
    for suffix in ("/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a", "/a/"):
        assert client.get("/echo" + suffix).status == 404, suffix


# -- IframePage ----------------------------------------------------------------------------

IFRAME_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="SOCKJS_URL"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""
# The page must match exactly, except for the sockjs-client URL, which is configurable.
IFRAME_RE = re.compile("".join(
    re.escape(part) if part != "SOCKJS_URL" else '(?P<sockjs_url>[^"]*)'
    for part in re.split("(SOCKJS_URL)", IFRAME_PAGE)))


def assert_iframe_page(client: Client, path: str) -> HTTPResponse:
    response = client.get(path)
    assert response.status == 200, path
    assert_content_type(response, "text/html;charset=UTF-8")
    # Strongly cacheable: Cache-Control, Expires and ETag, but no Last-Modified.
    assert_long_cached(response)
    assert response["ETag"]
    assert not response["Last-Modified"]
    match = IFRAME_RE.fullmatch(response.text.strip())
    assert match, response.text
    assert match.group("sockjs_url").startswith(("/", "http"))
    assert_no_cookie(response)
    return response


def test_iframe_page__simple_url(client):
    """Official: IframePage.test_simpleUrl"""
    assert_iframe_page(client, "/echo/iframe.html")


def test_iframe_page__versioned_url(client):
    """Official: IframePage.test_versionedUrl"""
    for suffix in ("/iframe-a.html", "/iframe-.html", "/iframe-0.1.2.html",
                   "/iframe-0.1.2abc-dirty.2144.html"):
        assert_iframe_page(client, "/echo" + suffix)


def test_iframe_page__queried_url(client):
    """Official: IframePage.test_queriedUrl"""
    for suffix in ("/iframe-a.html?t=1234", "/iframe-0.1.2.html?t=123414",
                   "/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123"):
        assert_iframe_page(client, "/echo" + suffix)


def test_iframe_page__invalid_url(client):
    """Official: IframePage.test_invalidUrl"""
    for suffix in ("/iframe.htm", "/iframe", "/IFRAME.HTML", "/IFRAME", "/iframe.HTML",
                   "/iframe.xml", "/iframe-/.html"):
        assert client.get("/echo" + suffix).status == 404, suffix


def test_iframe_page__cacheability(client):
    """Official: IframePage.test_cacheability"""
    first = client.get("/echo/iframe.html")
    second = client.get("/echo/iframe.html")
    assert first["ETag"]
    assert first["ETag"] == second["ETag"]
    response = client.get("/echo/iframe.html", {"If-None-Match": first["ETag"]})
    assert response.status == 304
    assert not response["Content-Type"]
    assert response.body == b""


# -- InfoTest ------------------------------------------------------------------------------

def test_info__basic(client):
    """Official: InfoTest.test_basic"""
    response = client.get("/echo/info", {"Origin": "test"})
    assert response.status == 200
    assert_content_type(response, "application/json;charset=UTF-8")
    assert_no_cookie(response)
    assert_not_cached(response)
    assert_cors(response, "test")
    data = json.loads(response.text)
    assert data["websocket"] is True
    assert data["cookie_needed"] in (True, False)
    assert data["origins"] == ["*:*"]
    assert type(data["entropy"]) is int  # a JSON integer, not 1.0


def test_info__entropy(client):
    """Official: InfoTest.test_entropy"""
    first = json.loads(client.get("/echo/info").text)["entropy"]
    second = json.loads(client.get("/echo/info").text)["entropy"]
    assert type(first) is int and type(second) is int
    assert first != second


def test_info__options(client):
    """Official: InfoTest.test_options"""
    assert_options(client, "/echo/info", "OPTIONS, GET")


def test_info__options_null_origin(client):
    """Official: InfoTest.test_options_null_origin (the page of a file:// URL sends Origin
    null; the suite's assertion wants it echoed)."""
    response = client.options("/echo/info", {"Origin": "null",
                                              "Access-Control-Request-Method": "POST"})
    assert response.status in (200, 204)
    assert response.body == b""
    assert response["Access-Control-Allow-Origin"] == "null"


def test_info__disabled_websocket(client):
    """Official: InfoTest.test_disabled_websocket"""
    response = client.get("/disabled_websocket_echo/info")
    assert response.status == 200
    assert json.loads(response.text)["websocket"] is False
