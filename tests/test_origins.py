"""allowed_origins left automatic (docs/authentication.md, "Origins"): with an authenticator that
reads cookies only the origins it trusts and the server's own may connect; without one, and with
an explicit list or ``*``, the setting is honoured as written.

In this process, over real sockets: the WebSocket handshake, CORS requests (/info, xhr), the
requests browsers send without an Origin (jsonp, htmlfile, iframe.html: judged by the Referer
and Sec-Fetch-Site), the startup log line and the warning for ``*``.  The Django rules and the
browser are tested with the example site (tests/test_auth_django.py).
"""
import http.client
import logging
import uuid

import pytest
import websocket

from realtimemagic import RealTimeMagic, config
from realtimemagic.auth import Authenticator
from realtimemagic.http import Request
from realtimemagic.transports.origins import origin_of, page_origin

from inprocess import in_thread, serving

pytestmark = pytest.mark.timeout(60)

TRUSTED = "https://www.example.com"
EVIL = "http://127.0.0.1:1"  # another port of the same host: the same site for cookies


class SessionCookie(Authenticator):
    """An authenticator of the application's own that reads a cookie and trusts one site."""
    uses_cookies = True

    def trusts_origin(self, origin):
        return origin == TRUSTED

    def trusted_origins(self):
        return TRUSTED


class Declared:
    """Not a subclass: declaring uses_cookies is enough (then only the server's own pages)."""
    uses_cookies = True

    def check(self, conn, channel):
        pass


def rtm_with(*authenticators, **settings):
    rtm = RealTimeMagic(port=0, api=False, **settings)
    rtm.authenticators["default"].extend(authenticators)
    return rtm


def status(server, method, path, headers=None, host=None):
    """The status of one request (a fresh connection: a refusal may come before the body)."""
    def request():
        connection = http.client.HTTPConnection("127.0.0.1", server.address[1], timeout=5)
        try:
            connection.putrequest(method, path, skip_host=host is not None)
            if host is not None:
                connection.putheader("Host", host)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.putheader("Content-Length", "0")
            connection.endheaders()
            response = connection.getresponse()
            return response.status, dict(response.getheaders())
        finally:
            connection.close()
    return in_thread(request)


def handshake(server, origin=None):
    """The raw WebSocket handshake's status: 101, or the refusal's."""
    def connect():
        options = {"origin": origin} if origin else {"suppress_origin": True}
        try:
            websocket.create_connection("ws://127.0.0.1:%d/pubsub/websocket" % server.address[1],
                                        timeout=5, **options).close()
        except websocket.WebSocketBadStatusException as error:
            return error.status_code
        return 101
    return in_thread(connect)


def session_path(resource):
    return "/pubsub/000/%s/%s" % (uuid.uuid4().hex, resource)


# -- the page's origin -----------------------------------------------------------------------

def request_with(**headers):
    environ = {"REQUEST_METHOD": "GET"}
    environ.update(("HTTP_" + name.upper(), value) for name, value in headers.items())
    return Request(environ)


@pytest.mark.parametrize("headers,expected", [
    ({}, None),                                              # not a browser (or an old one)
    ({"Origin": "https://a.example"}, "https://a.example"),
    ({"Origin": "null"}, "null"),                            # a file: page, a sandboxed frame
    ({"Origin": "https://a.example", "Referer": "https://b.example/x"}, "https://a.example"),
    ({"Referer": "https://A.example:8443/page?q=1"}, "https://a.example:8443"),
    ({"Referer": "https://user:pw@a.example/"}, "https://a.example"),
    ({"Referer": "about:blank"}, "null"),
    ({"Sec_Fetch_Site": "same-origin"}, None),               # a same-origin GET
    ({"Sec_Fetch_Site": "none"}, None),                      # a typed URL
    ({"Sec_Fetch_Site": "same-site"}, "null"),               # another port, no Referer
    ({"Sec_Fetch_Site": "cross-site"}, "null"),
    ({"Sec_Fetch_Site": "cross-site", "Referer": "https://b.example/"}, "https://b.example"),
])
def test_page_origin(headers, expected):
    assert page_origin(request_with(**headers)) == expected


def test_origin_of_a_malformed_url_is_null():
    assert origin_of("http://[::1") == "null"
    assert origin_of("not a url") == "null"


# -- the setting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("environ,automatic,origins", [
    ({}, True, None),
    ({"RTM_ALLOWED_ORIGINS": ""}, True, None),
    ({"RTM_ALLOWED_ORIGINS": "*"}, False, None),
    ({"RTM_ALLOWED_ORIGINS": "https://a.example, https://b.example/"}, False,
     frozenset({"https://a.example", "https://b.example"})),
])
def test_left_at_its_default_or_set(environ, automatic, origins):
    settings = config.build(environ=environ)
    assert (settings.origins_automatic, settings.origins) == (automatic, origins)
    assert config.build({"allowed_origins": "*"}, environ={}).origins_automatic is False


# -- automatic, with an authenticator that reads cookies -----------------------------------------

def test_cookie_authentication_accepts_trusted_origins_only(caplog):
    caplog.set_level(logging.INFO, "realtimemagic")
    with serving(rtm_with(SessionCookie())) as server:
        own = "http://127.0.0.1:%d" % server.address[1]
        assert handshake(server, EVIL) == 403
        assert handshake(server, "https://evil.example") == 403
        assert handshake(server, "null") == 403
        assert handshake(server, TRUSTED) == 101
        assert handshake(server, own) == 101       # the server's own pages
        assert handshake(server) == 101            # not a browser: no Origin
        for origin, expected in ((EVIL, 403), (TRUSTED, 200), (own, 200)):
            assert status(server, "GET", "/pubsub/info", {"Origin": origin})[0] == expected
            assert status(server, "POST", session_path("xhr"), {"Origin": origin})[0] == expected
            assert status(server, "OPTIONS", session_path("xhr_streaming"), {
                "Origin": origin, "Access-Control-Request-Method": "POST"})[0] == (
                    403 if expected == 403 else 204)
        # the Host decides what "own" is; the scheme cannot be known behind a TLS proxy
        assert status(server, "POST", session_path("xhr"), {"Origin": "https://rtm.example"},
                      host="rtm.example")[0] == 200
    lines = [record for record in caplog.records if "allowed_origins" in record.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert lines[0].getMessage() == (
        "allowed_origins automatic, for cookie authentication (SessionCookie): pages of this "
        "server and of %s may connect, others get 403 (set --allowed-origins to choose)"
        % TRUSTED)


def test_requests_without_origin_are_judged_by_referer_and_fetch_metadata():
    """What browsers send without an Origin: script tags (jsonp), iframes (htmlfile,
    iframe.html) of any page, and a same-origin page's GETs (eventsource, /info)."""
    with serving(rtm_with(SessionCookie())) as server:
        own = "http://127.0.0.1:%d/page" % server.address[1]
        cases = [
            ({"Referer": EVIL + "/attack", "Sec-Fetch-Site": "same-site"}, 403),
            ({"Sec-Fetch-Site": "same-site"}, 403),     # the page asked for no Referer
            ({"Sec-Fetch-Site": "cross-site"}, 403),
            ({"Referer": TRUSTED + "/chat", "Sec-Fetch-Site": "cross-site"}, 200),
            ({"Referer": own, "Sec-Fetch-Site": "same-origin"}, 200),
            ({"Sec-Fetch-Site": "same-origin"}, 200),
            ({}, 200),                                  # not a browser
        ]
        for resource in ("jsonp?c=callback", "htmlfile?c=callback", "eventsource"):
            for headers, expected in cases:
                got = status(server, "GET", session_path(resource), headers)[0]
                assert got == expected, (resource, headers, got)
        for headers, expected in cases:
            assert status(server, "GET", "/pubsub/iframe.html", headers)[0] == expected, headers
        # each load of iframe.html must reach the check: a cached copy would let any page
        # frame it, and the iframe's own requests are of the server's origin
        assert status(server, "GET", "/pubsub/iframe.html")[1]["Cache-Control"].startswith(
            "no-store")


def test_declaring_uses_cookies_trusts_the_servers_own_origin_only(caplog):
    caplog.set_level(logging.INFO, "realtimemagic")
    with serving(rtm_with(Declared())) as server:
        assert handshake(server, TRUSTED) == 403
        assert handshake(server, "http://127.0.0.1:%d" % server.address[1]) == 101
    assert "(Declared): pages of this server and of no other origin may connect" in caplog.text


def test_every_cookie_reader_must_trust_the_origin():
    class OtherSite(SessionCookie):
        def trusts_origin(self, origin):
            return origin == "https://other.example"

    rtm = rtm_with(SessionCookie())
    rtm.authenticators["private"].append(OtherSite())
    with serving(rtm) as server:
        assert handshake(server, TRUSTED) == 403
        assert handshake(server, "https://other.example") == 403


# -- honoured as written -------------------------------------------------------------------------

def test_explicit_star_with_cookie_authentication_is_honoured_with_a_warning(caplog):
    caplog.set_level(logging.INFO, "realtimemagic")
    with serving(rtm_with(SessionCookie(), allowed_origins="*")) as server:
        assert handshake(server, EVIL) == 101
        assert status(server, "POST", session_path("xhr"), {"Origin": EVIL})[0] == 200
        assert status(server, "GET", session_path("jsonp?c=x"), {
            "Sec-Fetch-Site": "cross-site"})[0] == 200
        assert status(server, "GET", "/pubsub/iframe.html")[1]["Cache-Control"].startswith(
            "public")
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert [record.getMessage() for record in warnings] == [
        "allowed_origins is '*' with cookie authentication (SessionCookie): a page of any "
        "origin that the browser sends the cookie from can connect as the logged-in user"]


def test_explicit_list_with_cookie_authentication_is_honoured(caplog):
    caplog.set_level(logging.INFO, "realtimemagic")
    with serving(rtm_with(SessionCookie(), allowed_origins=EVIL)) as server:
        assert handshake(server, EVIL) == 101
        assert handshake(server, TRUSTED) == 403
        assert handshake(server, "http://127.0.0.1:%d" % server.address[1]) == 403  # as written
        assert status(server, "GET", session_path("jsonp?c=x"), {
            "Referer": TRUSTED + "/", "Sec-Fetch-Site": "cross-site"})[0] == 403
    assert "allowed_origins" not in caplog.text


@pytest.mark.parametrize("authenticators", ["none", "token", "not-cookies"])
def test_without_cookie_authentication_any_origin_is_the_default(authenticators, caplog):
    caplog.set_level(logging.INFO, "realtimemagic")
    rtm = rtm_with()
    if authenticators == "token":
        pytest.importorskip("jwt")
        from realtimemagic.auth.token import TokenAuthenticator
        TokenAuthenticator("k" * 32).install(rtm)
    elif authenticators == "not-cookies":
        rtm.authenticators["default"].append(Authenticator())
    with serving(rtm) as server:
        assert handshake(server, EVIL) == 101
        assert status(server, "POST", session_path("xhr"), {"Origin": EVIL})[0] == 200
        assert status(server, "GET", session_path("jsonp?c=x"), {
            "Sec-Fetch-Site": "cross-site"})[0] == 200
    assert "allowed_origins" not in caplog.text
