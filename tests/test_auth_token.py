"""The token authenticator (realtimemagic/auth/token.py) in a real server:
examples/django_site/realtime_token.py, served by rtm-serve, over a raw WebSocket and over SockJS
xhr-polling.  Valid, expired, forged, malformed and wrong-channel tokens, each given in the
connection's query string and in a first ``authenticate`` message.  Then the JavaScript client in
headless Chromium, on a page of another origin, with the token in the endpoint's URL (plain
WebSocket, and sockjs-client's xhr-streaming and xhr-polling), and the pure parts (patterns,
reasons, settings) in-process."""
import json
import os
import secrets
import time
from urllib.parse import quote

import pytest

from clients import WebSocketClient
from conftest import need
from realtimemagic.exceptions import AuthenticationError, ConfigError

try:
    import jwt
    from realtimemagic.auth.token import TokenAuthenticator, channel_allowed, make_token
except ImportError:  # the jwt extra is not installed: every test says so (need, below)
    jwt = None
from test_sockjs_client_browser import SOCKJS_MIN_JS, StaticServer

pytestmark = pytest.mark.timeout(60)

KEY = "test-token-key-" + secrets.token_hex(16)
OTHER_KEY = "not-the-server-key-" + secrets.token_hex(16)
APP = "examples.django_site.realtime_token:rtm"
NO_TOKEN = "a token is required: connect with ?token=... or send an authenticate message"


@pytest.fixture(scope="module", autouse=True)
def pyjwt_installed():
    need(jwt is not None, "PyJWT is not installed: pip install 'realtimemagic[jwt]'")


@pytest.fixture(scope="module")
def server(serve_module):
    return serve_module(APP, "--api-port", "0", env={"DJANGO_SITE_TOKEN_KEY": KEY})


def in_query(token):
    return "?token=" + quote(token, safe="")


def answer(client, request_id, timeout=5.0):
    """The reply or error that carries ``request_id``."""
    return client.expect(lambda m: m.get("id") == request_id, timeout)


def subscribe(client, channel):
    request_id = "sub-%s-%d" % (channel, time.monotonic_ns())
    client.subscribe(channel, request_id)
    return answer(client, request_id)


def forbidden(reason, channel, request_id):
    return {"action": "error", "id": request_id,
            "payload": {"code": "forbidden", "reason": reason, "channel": channel}}


def assert_refused(client, channel, reason):
    reply = subscribe(client, channel)
    assert reply == forbidden(reason, channel, reply["id"])


def authenticate(client, token, request_id="auth"):
    client.send({"action": "authenticate", "payload": {"token": token}, "id": request_id})
    return answer(client, request_id)


def expired_token():
    return make_token(KEY, "alice", channels=["user:alice"], exp=int(time.time()) - 10)


BAD_TOKENS = {
    "expired": (expired_token, "token expired"),
    "forged": (lambda: make_token(OTHER_KEY, "alice", channels=["user:alice"]),
               "invalid token: the signature does not match"),
    "malformed": (lambda: "not.a.token", "invalid token: malformed"),
    "unsigned": (lambda: jwt.encode({"sub": "alice", "exp": int(time.time()) + 60,
                                     "channels": ["user:alice"]}, None, algorithm="none"),
                 "invalid token: algorithm not allowed"),
    "no expiry": (lambda: jwt.encode({"sub": "alice", "channels": ["user:alice"]}, KEY,
                                     algorithm="HS256"),
                  "invalid token: no 'exp' claim"),
    "bad namespaces claim": (lambda: jwt.encode({"sub": "alice", "exp": int(time.time()) + 60,
                                                "namespaces": "chat"}, KEY, algorithm="HS256"),
                           "invalid token: 'namespaces' must be a list of strings"),
}


# -- in the query string ---------------------------------------------------------------------

def test_query_token_allows_its_channels_namespaces_and_patterns(server, connect):
    token = make_token(KEY, "alice", channels=["user:alice", "room:*"], namespaces=["chat"])
    client = connect(server, query=in_query(token))
    for channel in ("user:alice", "chat:lobby", "chat:x:y", "room:1", "room:"):
        assert subscribe(client, channel)["action"] == "subscribed", channel
    client.publish("chat:lobby", "hello", request_id="pub")
    got = [client.recv(), client.recv()]  # the delivery and the reply, in either order
    assert {"action": "published", "payload": {"channel": "chat:lobby"}, "id": "pub"} in got
    assert {"action": "message", "payload": {"channel": "chat:lobby", "message": "hello"}} in got


@pytest.mark.parametrize("channel", ["user:bob", "user:alice2", "news", "chat", "rooms:1"])
def test_query_token_refuses_other_channels(server, connect, channel):
    token = make_token(KEY, "alice", channels=["user:alice", "room:*"], namespaces=["chat"])
    client = connect(server, query=in_query(token))
    assert_refused(client, channel, "the token does not allow channel %r" % channel)
    client.publish(channel, "sneaky", request_id="pub")
    assert answer(client, "pub") == forbidden(
        "the token does not allow channel %r" % channel, channel, "pub")


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_query_token_refused(server, connect, kind):
    make, reason = BAD_TOKENS[kind]
    client = connect(server, query=in_query(make()))
    assert_refused(client, "user:alice", reason)


def test_no_token_is_refused(server, connect):
    client = connect(server)
    assert_refused(client, "user:alice", NO_TOKEN)
    client.publish("anything", 1, request_id="pub")
    assert answer(client, "pub") == forbidden(NO_TOKEN, "anything", "pub")


def test_token_that_expires_during_the_connection(server, connect):
    token = make_token(KEY, "alice", channels=["a", "b"], ttl=1)
    client = connect(server, query=in_query(token))
    assert subscribe(client, "a")["action"] == "subscribed"
    time.sleep(max(0.0, jwt.decode(token, KEY, algorithms=["HS256"])["exp"] - time.time()) + 0.2)
    assert_refused(client, "b", "token expired: send an authenticate message with a new one")
    # A fresh token in an authenticate message brings the connection back.
    assert authenticate(client, make_token(KEY, "alice", channels=["b"]))["action"] == \
        "authenticated"
    assert subscribe(client, "b")["action"] == "subscribed"


# -- in the first message ----------------------------------------------------------------------

def test_first_message_token(server, connect):
    client = connect(server)
    token = make_token(KEY, 42, channels=["user:42"], namespaces=["chat"], ttl=600)
    reply = authenticate(client, token, request_id=7)
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    assert reply == {"action": "authenticated", "id": 7,
                     "payload": {"sub": "42", "exp": claims["exp"], "channels": ["user:42"],
                                 "namespaces": ["chat"]}}
    assert subscribe(client, "user:42")["action"] == "subscribed"
    assert subscribe(client, "chat:x")["action"] == "subscribed"
    assert_refused(client, "user:43", "the token does not allow channel 'user:43'")


def test_first_message_then_subscribe_without_waiting(server, connect):
    # The authenticate receiver runs before the pub/sub handler, in the connection's order:
    # a subscribe sent right after it is checked with the new token.
    client = connect(server)
    client.send({"action": "authenticate",
                 "payload": {"token": make_token(KEY, "alice", channels=["c"])}})
    client.subscribe("c", "s")
    assert answer(client, "s")["action"] == "subscribed"


@pytest.mark.parametrize("kind", list(BAD_TOKENS) + ["not a string", "no payload"])
def test_first_message_token_refused(server, connect, kind):
    client = connect(server)
    if kind == "not a string":
        token, reason = 12345, "invalid token: expected a non-empty string"
    elif kind == "no payload":
        client.send({"action": "authenticate", "id": "a"})
        assert answer(client, "a") == {"action": "error", "id": "a", "payload": {
            "code": "forbidden", "reason": "invalid token: expected a non-empty string"}}
        return
    else:
        make, reason = BAD_TOKENS[kind]
        token = make()
    assert authenticate(client, token, "a") == {
        "action": "error", "id": "a", "payload": {"code": "forbidden", "reason": reason}}
    assert_refused(client, "user:alice", NO_TOKEN)


def test_refused_authenticate_message_leaves_the_connection_as_it_was(server, connect):
    client = connect(server, query=in_query(make_token(KEY, "alice", channels=["user:alice"])))
    assert authenticate(client, expired_token())["payload"]["reason"] == "token expired"
    assert subscribe(client, "user:alice")["action"] == "subscribed"


def test_authenticate_message_replaces_the_query_token(server, connect):
    client = connect(server, query=in_query(make_token(KEY, "alice", channels=["user:alice"])))
    assert authenticate(client, make_token(KEY, "bob", channels=["user:bob"]))["payload"][
        "sub"] == "bob"
    assert subscribe(client, "user:bob")["action"] == "subscribed"
    assert_refused(client, "user:alice", "the token does not allow channel 'user:alice'")


def test_authenticate_without_id_gets_no_reply(server, connect):
    client = connect(server)
    client.send({"action": "authenticate", "payload": {"token": make_token(KEY, "a",
                                                                           channels=["x"])}})
    assert client.nothing_within(0.3)


def test_other_messages_still_get_bad_request(server, connect):
    client = connect(server)
    client.send({"action": "nonsense", "id": "n"})
    assert answer(client, "n", timeout=1)["payload"]["code"] == "bad_request"


# -- in Chromium, from a page of another origin ----------------------------------------------------

BROWSER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>token test</title>
<script src="/sockjs.min.js"></script>
<script src="%s/pubsub/realtimemagic.js"></script>
</head><body><p>token test</p></body></html>
"""

START_CLIENT = """([url, options]) => {
  window.got = {messages: [], errors: []};
  var client = new realtimeMagic.Client(url, options);
  client.subscribe('user:alice', function (message) { window.got.messages.push(message); });
  client.subscribe('user:bob', function (message) { window.got.messages.push(message); });
  client.onerror = function (error) { window.got.errors.push(error); };
  window.client = client;
}"""


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
def test_browser_page_of_another_origin_connects_with_a_token(server, browser,  # noqa: F811
                                                              transport):
    need(os.path.isfile(SOCKJS_MIN_JS),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")
    with open(SOCKJS_MIN_JS, "rb") as sockjs:
        files = {"/sockjs.min.js": ("application/javascript", sockjs.read()),
                 "/index.html": ("text/html; charset=UTF-8",
                                 (BROWSER_PAGE % server.url).encode("utf-8"))}
    token = make_token(KEY, "alice", channels=["user:alice"])
    options = ({"transport": "websocket"} if transport == "websocket"
               else {"transport": "sockjs", "transports": [transport]})
    publisher = WebSocketClient(server, query=in_query(make_token(KEY, "api", channels=["*"])))
    with StaticServer(files) as static:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(static.url + "/index.html")
            page.evaluate(START_CLIENT, [server.url + "/pubsub?token=" + quote(token, safe=""),
                                         options])
            page.wait_for_function("window.got.errors.length > 0", timeout=10000)
            deadline = time.monotonic() + 10
            while not page.evaluate("window.got.messages.length"):
                assert time.monotonic() < deadline, page.evaluate("window.got")
                publisher.publish("user:bob", "for bob")
                publisher.publish("user:alice", "for alice")
                page.wait_for_timeout(300)
            got = page.evaluate("window.got")
            used = page.evaluate("window.client.socket.transport || 'websocket'")
        finally:
            context.close()
            publisher.close()
    assert set(got["messages"]) == {"for alice"}, got
    assert [(error["code"], error["channel"], error["reason"]) for error in got["errors"]] == [
        ("forbidden", "user:bob", "the token does not allow channel 'user:bob'")]
    assert used == transport


# -- pure ----------------------------------------------------------------------------------------

class FakeConn:
    """What the authenticator reads of a connection: ``info.query`` and ``state``."""

    def __init__(self, query=None):
        self.state = {}
        self.info = type("Info", (), {"query": query or {}})()


@pytest.mark.parametrize("claims,channel,allowed", [
    ({"channels": ["a"]}, "a", True),
    ({"channels": ["a"]}, "ab", False),
    ({"channels": ["a*"]}, "ab:c", True),
    ({"channels": ["*"]}, "anything", True),
    ({"channels": ["user:*:inbox"]}, "user:1:inbox", True),
    ({"channels": ["user:*:inbox"]}, "user:1:outbox", False),
    ({"channels": ["a.b"]}, "axb", False),      # only * is special
    ({"channels": ["a[b]"]}, "ab", False),
    ({"namespaces": ["chat"]}, "chat:1", True),
    ({"namespaces": ["chat"]}, "chat", False),   # no namespace
    ({"namespaces": ["chat"]}, "chatter:1", False),
    ({}, "a", False),
])
def test_channel_allowed(claims, channel, allowed):
    assert channel_allowed(claims, channel) is allowed


def test_publish_false_grants_listening_only():
    authenticator = TokenAuthenticator(KEY, publish=False)
    conn = FakeConn({"token": make_token(KEY, "a", channels=["c"])})
    authenticator.check_channel(conn, "c")
    with pytest.raises(AuthenticationError, match="clients may not publish to 'c'"):
        authenticator.check_message(conn, "c", "hi")


def test_audience_issuer_leeway_and_other_parameter():
    authenticator = TokenAuthenticator(KEY, audience="rtm", issuer="site", leeway=30,
                                       query_parameter="jwt")
    good = make_token(KEY, "a", channels=["c"], aud="rtm", iss="site", exp=int(time.time()) - 5)
    authenticator.check_channel(FakeConn({"jwt": good}), "c")  # within the leeway
    with pytest.raises(AuthenticationError, match="wrong audience"):
        authenticator.check_channel(FakeConn({"jwt": make_token(KEY, "a", channels=["c"],
                                                                aud="other", iss="site")}), "c")
    with pytest.raises(AuthenticationError, match="wrong issuer"):
        authenticator.check_channel(FakeConn({"jwt": make_token(KEY, "a", channels=["c"],
                                                                aud="rtm", iss="x")}), "c")
    with pytest.raises(AuthenticationError, match="a token is required"):
        authenticator.check_channel(FakeConn({"token": good}), "c")


def test_settings_refused():
    with pytest.raises(ConfigError):
        TokenAuthenticator("")
    with pytest.raises(ConfigError):
        TokenAuthenticator(KEY, algorithms=["none"])
    with pytest.raises(ValueError):
        make_token(KEY, "a", ttl=0)
    with pytest.raises(TypeError):
        make_token(KEY, "a", channels="user:1")  # a list of channels, not one


def test_install_puts_the_receiver_first_once():
    from realtimemagic import RealTimeMagic
    from realtimemagic.pubsub.handler import pubsub_receiver
    rtm = RealTimeMagic()
    authenticator = TokenAuthenticator(KEY)
    assert authenticator.install(rtm) is authenticator
    authenticator.install(rtm, "private")
    assert rtm.receivers == [authenticator.receive, pubsub_receiver]
    assert rtm.authenticators["default"] == [authenticator]
    assert rtm.authenticators["private"] == [authenticator]
    with pytest.raises(ConfigError, match="another TokenAuthenticator"):
        TokenAuthenticator(OTHER_KEY).install(rtm, "other")


def test_make_token_claims():
    token = make_token(KEY, 7, channels=("a",), namespaces=["n"], ttl=60, role="admin")
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    assert claims["sub"] == "7" and claims["role"] == "admin"
    assert claims["channels"] == ["a"] and claims["namespaces"] == ["n"]
    assert 59 <= claims["exp"] - time.time() <= 61
    assert json.loads(json.dumps(claims)) == claims
