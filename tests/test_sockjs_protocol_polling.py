"""The official SockJS protocol suite, part 2: session URLs and the protocol basics
(SessionURLs, Protocol), the polling transports (XhrPolling, JsonPolling), JsessionidCookie and
JSONEncoding, plus the one case of upstream's http-quirks.py.
Helpers and conventions: see test_sockjs_protocol.py."""
import json
import uuid

import pytest

from test_sockjs_protocol import (ANOTHER_CONNECTION, GO_AWAY, Client, assert_content_type,
                                  assert_cors, assert_no_cookie, assert_not_cached,
                                  assert_options, session_path)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def client(sockjs_server):
    result = Client(sockjs_server)
    yield result
    result.close_all()


def open_xhr_session(client: Client, prefix: str = "/echo") -> str:
    url = session_path(prefix)
    response = client.post(url + "/xhr")
    assert response.status == 200
    assert response.text == "o\n"
    return url


def jsonp_frame(callback: str, frame: str) -> str:
    """A frame as the jsonp transport wraps it: the frame as a JSON string argument."""
    return "/**/%s(%s);\r\n" % (callback, json.dumps(frame))


# -- SessionURLs ---------------------------------------------------------------------------

def test_session_urls__any_value(client):
    """Official: SessionURLs.test_anyValue (any server and session id without '/' or '.';
    a random suffix keeps the ids fresh)."""
    suffix = uuid.uuid4().hex[:8]
    for session_part in ("/a/a" + suffix, "/_/_" + suffix, "/1/" + suffix,
                         "/abcdefgh_i-j%20/abcdefg_i-j%20" + suffix):
        response = client.post("/echo" + session_part + "/xhr")
        assert response.status == 200, session_part
        assert response.text == "o\n"


def test_session_urls__invalid_paths(client):
    """Official: SessionURLs.test_invalidPaths (404, not 405, even for GET)"""
    for suffix in ("//", "/a./a", "/a/a.", "/./.", "/", "///"):
        assert client.get("/echo" + suffix + "/xhr").status == 404, suffix
        assert client.post("/echo" + suffix + "/xhr").status == 404, suffix


def test_session_urls__ignoring_server_id(client):
    """Official: SessionURLs.test_ignoringServerId"""
    session_id = str(uuid.uuid4())
    response = client.post("/echo/000/%s/xhr" % session_id)
    assert response.status == 200
    assert response.text == "o\n"
    response = client.post("/echo/000/%s/xhr_send" % session_id, '["a"]')
    assert response.status == 204
    assert response.body == b""
    # Another server id, the same session.
    response = client.post("/echo/999/%s/xhr" % session_id)
    assert response.status == 200
    assert response.text == 'a["a"]\n'


# -- Protocol ------------------------------------------------------------------------------

def test_protocol__simple_session(client):
    """Official: Protocol.test_simpleSession"""
    url = session_path()
    response = client.post(url + "/xhr")
    assert response.status == 200
    assert response.text == "o\n"
    response = client.post(url + "/xhr_send", '["a"]')
    assert response.status == 204
    assert response.body == b""
    response = client.post(url + "/xhr")
    assert response.status == 200
    assert response.text == 'a["a"]\n'
    # Sending to a session that does not exist.
    assert client.post("/echo/000/bad_session/xhr_send", '["a"]').status == 404
    # Only one receiver at a time: a second poll is closed at once, the first stays.
    waiting = client.pending_post(url + "/xhr")
    response = client.post(url + "/xhr")
    assert response.text == ANOTHER_CONNECTION + "\n"
    assert response.status == 200
    waiting.close()


def test_protocol__close_session(client):
    """Official: Protocol.test_closeSession (a closed session keeps answering with its close
    frame)"""
    url = session_path("/close")
    response = client.post(url + "/xhr")
    assert response.status == 200
    assert response.text == "o\n"
    for _ in range(2):
        response = client.post(url + "/xhr")
        assert response.status == 200
        assert response.text == GO_AWAY + "\n"


# -- XhrPolling ----------------------------------------------------------------------------

def test_xhr_polling__options(client):
    """Official: XhrPolling.test_options"""
    for suffix in ("/xhr", "/xhr_send"):
        assert_options(client, "/echo/abc/abc" + suffix, "OPTIONS, POST")


def test_xhr_polling__transport(client):
    """Official: XhrPolling.test_transport"""
    url = session_path()
    response = client.post(url + "/xhr", headers={"Origin": "test"})
    assert response.status == 200
    assert response.text == "o\n"
    assert_content_type(response, "application/javascript;charset=UTF-8")
    assert_cors(response, "test")
    assert_not_cached(response)  # iOS 6 caches POSTs

    response = client.post(url + "/xhr_send", '["x"]', {"Origin": "test"})
    assert response.status == 204
    assert response.body == b""
    # text/plain even on a 204: Firefox would otherwise parse the empty reply as XML.
    assert_content_type(response, "text/plain;charset=UTF-8")
    assert_cors(response, "test")
    assert_not_cached(response)

    response = client.post(url + "/xhr")
    assert response.status == 200
    assert response.text == 'a["x"]\n'


def test_xhr_polling__invalid_session(client):
    """Official: XhrPolling.test_invalid_session"""
    assert client.post(session_path() + "/xhr_send", '["x"]').status == 404


def test_xhr_polling__invalid_json(client):
    """Official: XhrPolling.test_invalid_json (bad sends fail, the session survives)"""
    url = open_xhr_session(client)
    response = client.post(url + "/xhr_send", '["x')
    assert response.status == 500
    assert "Broken JSON encoding." in response.text
    response = client.post(url + "/xhr_send", "")
    assert response.status == 500
    assert "Payload expected." in response.text
    response = client.post(url + "/xhr_send", '["a"]')
    assert response.body == b""
    assert response.status == 204
    response = client.post(url + "/xhr")
    assert response.text == 'a["a"]\n'
    assert response.status == 200


def test_xhr_polling__content_types(client):
    """Official: XhrPolling.test_content_types (any request Content-Type, even empty)"""
    url = open_xhr_session(client)
    content_types = ["text/plain", "T", "application/json", "application/xml", "",
                     "application/json; charset=utf-8", "text/xml; charset=utf-8", "text/xml"]
    for content_type in content_types:
        response = client.post(url + "/xhr_send", '["a"]', {"Content-Type": content_type})
        assert response.status == 204, content_type
        assert response.body == b""
    response = client.post(url + "/xhr")
    assert response.status == 200
    assert response.text == "a[" + ",".join(['"a"'] * len(content_types)) + "]\n"


def test_xhr_polling__request_headers_cors(client):
    """Official: XhrPolling.test_request_headers_cors"""
    preflight = {"Origin": "test", "Access-Control-Request-Method": "POST"}
    response = client.options(session_path() + "/xhr",
                              dict(preflight, **{"Access-Control-Request-Headers": "a, b, c"}))
    assert response.status in (200, 204)
    assert_cors(response, "test")
    assert response["Access-Control-Allow-Headers"] == "a, b, c"

    response = client.options(session_path() + "/xhr",
                              dict(preflight, **{"Access-Control-Request-Headers": ""}))
    assert response.status in (200, 204)
    assert_cors(response, "test")
    assert not response["Access-Control-Allow-Headers"]

    response = client.options(session_path() + "/xhr", preflight)
    assert response.status in (200, 204)
    assert_cors(response, "test")
    assert not response["Access-Control-Allow-Headers"]


def test_xhr_polling__sending_empty_frame(client):
    """Official: XhrPolling.test_sending_empty_frame (clients may send '[]' as a heartbeat)"""
    url = open_xhr_session(client)
    assert client.post(url + "/xhr_send", "[]").status == 204
    assert client.post(url + "/xhr_send", '["a"]').status == 204
    response = client.post(url + "/xhr")
    assert response.text == 'a["a"]\n'
    assert response.status == 200


# -- JsonPolling ---------------------------------------------------------------------------

def test_jsonp_polling__transport(client):
    """Official: JsonPolling.test_transport"""
    url = session_path()
    response = client.get(url + "/jsonp?c=%63allback")  # the callback is URL-decoded
    assert response.status == 200
    assert_content_type(response, "application/javascript;charset=UTF-8")
    assert_not_cached(response)
    assert response.text == '/**/callback("o");\r\n'

    response = client.post(url + "/jsonp_send", "d=%5B%22x%22%5D", FORM)
    # 200 'ok', not 204: Konqueror mishandles a 204.
    assert response.text == "ok"
    assert response.status == 200
    assert_content_type(response, "text/plain;charset=UTF-8")
    assert_not_cached(response)

    response = client.get(url + "/jsonp?c=%63allback")
    assert response.status == 200
    assert response.text == '/**/callback("a[\\"x\\"]");\r\n'
    assert response.text == jsonp_frame("callback", 'a["x"]')


def test_jsonp_polling__no_callback(client):
    """Official: JsonPolling.test_no_callback"""
    response = client.get("/echo/a/a/jsonp")
    assert response.status == 500
    assert '"callback" parameter required' in response.text


def test_jsonp_polling__invalid_callback(client):
    """Official: JsonPolling.test_invalid_callback (callbacks must match [a-zA-Z0-9-_.]+)"""
    for callback in ("%20", "*", "abc(", "abc%28"):
        response = client.get("/echo/a/a/jsonp?c=" + callback)
        assert response.status == 500, callback
        assert 'invalid "callback" parameter' in response.text


def test_jsonp_polling__invalid_json(client):
    """Official: JsonPolling.test_invalid_json"""
    url = session_path()
    assert client.get(url + "/jsonp?c=x").text == '/**/x("o");\r\n'
    response = client.post(url + "/jsonp_send", "d=%5B%22x", FORM)
    assert response.status == 500
    assert "Broken JSON encoding." in response.text
    for body in ("", "d=", "p=p"):
        response = client.post(url + "/jsonp_send", body, FORM)
        assert response.status == 500, body
        assert "Payload expected." in response.text
    assert client.post(url + "/jsonp_send", "d=%5B%22b%22%5D", FORM).text == "ok"
    response = client.get(url + "/jsonp?c=x")
    assert response.status == 200
    assert response.text == '/**/x("a[\\"b\\"]");\r\n'


def test_jsonp_polling__content_types(client):
    """Official: JsonPolling.test_content_types (a text/plain body is raw JSON and is not
    URL-decoded: '%61bc' stays '%61bc')"""
    url = session_path()
    assert client.get(url + "/jsonp?c=x").text == '/**/x("o");\r\n'
    assert client.post(url + "/jsonp_send", "d=%5B%22abc%22%5D", FORM).text == "ok"
    response = client.post(url + "/jsonp_send", '["%61bc"]', {"Content-Type": "text/plain"})
    assert response.text == "ok"
    response = client.get(url + "/jsonp?c=x")
    assert response.status == 200
    assert response.text == '/**/x("a[\\"abc\\",\\"%61bc\\"]");\r\n'


def test_jsonp_polling__close(client):
    """Official: JsonPolling.test_close"""
    url = session_path("/close")
    assert client.get(url + "/jsonp?c=x").text == '/**/x("o");\r\n'
    for _ in range(2):
        response = client.get(url + "/jsonp?c=x")
        assert response.text == '/**/x("c[3000,\\"Go away!\\"]");\r\n'
        assert response.text == jsonp_frame("x", GO_AWAY)


def test_jsonp_polling__sending_empty_frame(client):
    """Official: JsonPolling.test_sending_empty_frame"""
    url = session_path()
    assert client.get(url + "/jsonp?c=x").text == '/**/x("o");\r\n'
    assert client.post(url + "/jsonp_send", "d=%5B%5D", FORM).text == "ok"
    assert client.post(url + "/jsonp_send", "d=%5B%22x%22%5D", FORM).text == "ok"
    response = client.get(url + "/jsonp?c=x")
    assert response.status == 200
    assert response.text == '/**/x("a[\\"x\\"]");\r\n'


# -- JsessionidCookie ----------------------------------------------------------------------

def assert_cookie(response, value: str = "dummy") -> None:
    """``Set-Cookie: JSESSIONID=<value>; path=/`` (attribute case free, more may follow)."""
    parts = (response["Set-Cookie"] or "").split(";")
    assert parts[0].strip() == "JSESSIONID=" + value, response["Set-Cookie"]
    assert len(parts) > 1 and parts[1].strip().lower() == "path=/", response["Set-Cookie"]


def test_jsessionid_cookie__basic(client):
    """Official: JsessionidCookie.test_basic (/info itself sets no cookie)"""
    response = client.get("/cookie_needed_echo/info")
    assert response.status == 200
    assert_no_cookie(response)
    assert json.loads(response.text)["cookie_needed"] is True


def test_jsessionid_cookie__xhr(client):
    """Official: JsessionidCookie.test_xhr"""
    response = client.post(session_path("/cookie_needed_echo") + "/xhr")
    assert response.status == 200
    assert response.text == "o\n"
    assert_cookie(response)
    # A cookie the client already has is echoed back.
    response = client.post(session_path("/cookie_needed_echo") + "/xhr",
                           headers={"Cookie": "JSESSIONID=abcdef"})
    assert response.status == 200
    assert response.text == "o\n"
    assert_cookie(response, "abcdef")


def test_jsessionid_cookie__xhr_streaming(client):
    """Official: JsessionidCookie.test_xhr_streaming"""
    stream = client.stream("POST", session_path("/cookie_needed_echo") + "/xhr_streaming")
    assert stream.status == 200
    assert_cookie(stream)


def test_jsessionid_cookie__eventsource(client):
    """Official: JsessionidCookie.test_eventsource"""
    stream = client.stream("GET", session_path("/cookie_needed_echo") + "/eventsource")
    assert stream.status == 200
    assert_cookie(stream)


def test_jsessionid_cookie__htmlfile(client):
    """Official: JsessionidCookie.test_htmlfile"""
    stream = client.stream("GET", session_path("/cookie_needed_echo") + "/htmlfile?c=%63allback")
    assert stream.status == 200
    assert_cookie(stream)


def test_jsessionid_cookie__jsonp(client):
    """Official: JsessionidCookie.test_jsonp"""
    url = session_path("/cookie_needed_echo")
    response = client.get(url + "/jsonp?c=%63allback")
    assert response.status == 200
    assert_cookie(response)
    assert response.text == '/**/callback("o");\r\n'
    response = client.post(url + "/jsonp_send", "d=%5B%22x%22%5D", FORM)
    assert response.text == "ok"
    assert response.status == 200
    assert_cookie(response)


# -- JSONEncoding --------------------------------------------------------------------------

# Characters the server must send as \uXXXX escapes (browsers mangle them raw). The suite
# checks the ones from U+00FF up.
SERVER_ESCAPES = "200C-200F 2028-202F 2060-206F FFF0-FFFF"
# Characters sockjs-client escapes before sending: the server must decode them all.
CLIENT_ESCAPES = """
0000-001F 0022 007F-009F 00AD 0300-0333 033D-0346 034A-034C 0350-0352 0357-0358 035C-0362 0374
037E 0387 0591-05AF 05C4 0600-0604 0610-0617 0653-0654 0657-065B 065D-065E 06DF-06E2 06EB-06EC
070F 0730 0732-0733 0735-0736 073A 073D 073F-0741 0743 0745 0747 07EB-07F1 0951 0958-095F
09DC-09DD 09DF 0A33 0A36 0A59-0A5B 0A5E 0B5C-0B5D 0E38-0E39 0F43 0F4D 0F52 0F57 0F5C 0F69
0F72-0F76 0F78 0F80-0F83 0F93 0F9D 0FA2 0FA7 0FAC 0FB9 17B4-17B5 1939-193A 1A17 1B6B 1CDA-1CDB
1DC0-1DCF 1DFC 1DFE 1F71 1F73 1F75 1F77 1F79 1F7B 1F7D 1FBB 1FBE 1FC9 1FCB 1FD3 1FDB 1FE3 1FEB
1FEE-1FEF 1FF9 1FFB 1FFD 2000-20FF 2126 212A-212B 2329-232A 2ADC 302B-302C AAB2-AAB3 F900-FA0D
FA10 FA12 FA15-FA1E FA20 FA22 FA25-FA26 FA2A-FA2D FA30-FA6D FA70-FAD9 FB1D FB1F FB2A-FB36
FB38-FB3C FB3E FB40-FB41 FB43-FB44 FB46-FB4E FEFF FFF0-FFFF
"""


def code_points(spec: str) -> list:
    """'0022 007F-009F' -> [0x22, 0x7f, ..., 0x9f]"""
    result = []
    for token in spec.split():
        first, _, last = token.partition("-")
        result.extend(range(int(first, 16), int(last or first, 16) + 1))
    return result


def escaped_json_string(points: list) -> str:
    """A JSON string literal with every character as a lowercase \\uXXXX escape."""
    return '"' + "".join("\\u%04x" % point for point in points) + '"'


def test_json_encoding__xhr_server_encodes(client):
    """Official: JSONEncoding.test_xhr_server_encodes (each of these characters comes back as
    a lowercase \\uXXXX escape, exactly)"""
    points = code_points(SERVER_ESCAPES)
    assert len(points) == 44
    url = open_xhr_session(client)
    payload = '["' + "".join(chr(point) for point in points) + '"]'  # raw, UTF-8 encoded
    assert client.post(url + "/xhr_send", payload).status == 204
    response = client.post(url + "/xhr")
    assert response.status == 200
    # Between 'a[' and ']': the one message, as a JSON string.
    assert response.text.strip()[2:-1] == escaped_json_string(points)


def test_json_encoding__xhr_server_decodes(client):
    """Official: JSONEncoding.test_xhr_server_decodes (escapes sent by the client are decoded;
    any correct JSON encoding of the echo passes)"""
    points = code_points(CLIENT_ESCAPES)
    assert len(points) == 1093
    escaped = escaped_json_string(points)
    url = open_xhr_session(client)
    assert client.post(url + "/xhr_send", "[" + escaped + "]").status == 204
    response = client.post(url + "/xhr")
    assert response.status == 200
    assert json.loads(response.text.strip()[2:-1]) == json.loads(escaped)


# -- upstream http-quirks.py ---------------------------------------------------------------

def test_http_quirks__empty_content_length_for_post(client):
    """Official (http-quirks.py, outside the 68): HttpQuirks.test_emptyContentLengthForPost.
    A POST with no Content-Length header at all: the server must not wait for a body."""
    response = client.request("POST", session_path() + "/xhr", content_length=False)
    assert response.text == "o\n"
    assert response.status == 200
