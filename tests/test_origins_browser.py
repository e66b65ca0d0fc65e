"""allowed_origins left automatic with cookie authentication, in headless Chromium with
sockjs-client 1.6.1: the restriction breaks no page that is allowed, and stops the pages that
are not, on every transport.

rtm-serve serves ``testapps:cookie_site`` (an authenticator with ``uses_cookies`` that trusts
the origin in RTM_TEST_TRUSTED_ORIGINS: the static server's, http://127.0.0.1:<port>).  Pages:

- the trusted page (the static server): every transport subscribes and gets its message,
  the iframe-* ones through <server>/pubsub/iframe.html (framed by the trusted page: its
  Referer), whose own requests are of the server's origin;
- a page of the server's own origin (its greeting page, with sockjs-client added): the
  transports that send GET requests without an Origin (eventsource, htmlfile, jsonp) work;
- an untrusted page (the same static server as http://localhost:<port>, another origin): no
  transport connects, and what a page can do by hand without an Origin, a jsonp script tag and
  a frame of iframe.html, gets 403 (Chromium's network log), with or without a Referer.
"""
import os
from typing import Dict

import pytest

from conftest import free_port, need, rtm_serve_command, run_process
from test_sockjs_client_browser import SOCKJS_MIN_JS, StaticServer, read

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHECK = r"""
window.connectAndSubscribe = function (base, transport) {
  return new Promise(function (resolve) {
    var channel = 'origins-' + transport + '-' + Math.random().toString(36).slice(2);
    var sock = new SockJS(base + '/pubsub', null, {transports: [transport], timeout: 8000});
    var timer = setTimeout(function () { resolve({result: 'timeout'}); sock.close(); }, 12000);
    function finish(outcome) { clearTimeout(timer); resolve(outcome); }
    sock.onopen = function () {
      sock.send(JSON.stringify({action: 'subscribe', payload: {channel: channel}, id: 1}));
    };
    sock.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.action === 'subscribed') {
        sock.send(JSON.stringify({action: 'publish', payload: {channel: channel, message: 'hi'}}));
      } else if (message.action === 'message') {
        finish({result: 'message', transport: sock.transport, message: message.payload.message});
        sock.close();
      } else {
        finish({result: 'unexpected', message: message});
      }
    };
    sock.onclose = function (event) {
      finish({result: 'closed', code: event.code, reason: event.reason});
    };
  });
};
window.loadScript = function (src, noReferrer) {
  return new Promise(function (resolve) {
    var script = document.createElement('script');
    if (noReferrer) { script.referrerPolicy = 'no-referrer'; }
    script.onload = function () { resolve('load'); };
    script.onerror = function () { resolve('error'); };
    script.src = src;
    document.body.appendChild(script);
  });
};
window.loadFrame = function (src, noReferrer) {
  return new Promise(function (resolve) {
    var frame = document.createElement('iframe');
    if (noReferrer) { frame.referrerPolicy = 'no-referrer'; }
    frame.onload = function () { resolve('load'); };
    frame.src = src;
    document.body.appendChild(frame);
  });
};
"""
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="/sockjs.min.js"></script><script src="/check.js"></script></head>
<body><p>origins</p></body></html>"""

TRUSTED_TRANSPORTS = ["websocket", "xhr-streaming", "eventsource", "iframe-eventsource",
                      "iframe-htmlfile", "xhr-polling", "iframe-xhr-polling", "jsonp-polling"]
SAME_ORIGIN_TRANSPORTS = ["htmlfile", "eventsource", "jsonp-polling", "xhr-streaming",
                          "websocket"]


@pytest.fixture(scope="module")
def static_server():
    need(os.path.isfile(SOCKJS_MIN_JS),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")
    files = {"/sockjs.min.js": ("application/javascript; charset=UTF-8", read(SOCKJS_MIN_JS)),
             "/check.js": ("application/javascript; charset=UTF-8", CHECK.encode("utf-8")),
             "/page.html": ("text/html; charset=UTF-8", PAGE.encode("utf-8"))}
    with StaticServer(files) as server:
        yield server


@pytest.fixture(scope="module")
def realtime(static_server, tmp_path_factory):
    port = free_port()
    command = rtm_serve_command("testapps:cookie_site", port, "--log-level", "info",
                                "--sockjs-url", static_server.url + "/sockjs.min.js")
    with run_process(command, port, tmp_path_factory.mktemp("origins"),
                     env={"RTM_TEST_TRUSTED_ORIGINS": static_server.url}) as server:
        yield server


@pytest.fixture(scope="module")
def context(browser):
    context = browser.new_context()
    yield context
    context.close()


def open_page(context, url: str):
    page = context.new_page()
    page.set_default_timeout(20000)
    page.goto(url)
    return page


def test_startup_says_what_is_allowed(realtime):
    line = ("INFO realtimemagic: allowed_origins automatic, for cookie authentication "
            "(SiteCookie): pages of this server and of the origins SiteCookie.trusts_origin "
            "accepts may connect, others get 403 (set --allowed-origins to choose)")
    assert line in realtime.log_once_it_says(line)


@pytest.mark.parametrize("transport", TRUSTED_TRANSPORTS)
def test_trusted_page_connects_on_every_transport(context, static_server, realtime, transport):
    page = open_page(context, static_server.url + "/page.html")
    try:
        outcome = page.evaluate("([base, transport]) => connectAndSubscribe(base, transport)",
                                [realtime.url, transport])
    finally:
        page.close()
    assert outcome == {"result": "message", "transport": transport, "message": "hi"}, (
        outcome, realtime.log()[-2000:])


@pytest.mark.parametrize("transport", SAME_ORIGIN_TRANSPORTS)
def test_page_of_the_servers_own_origin_connects(context, static_server, realtime, transport):
    page = open_page(context, realtime.url + "/pubsub")  # the greeting: the server's origin
    try:
        page.add_script_tag(url=static_server.url + "/sockjs.min.js")
        page.add_script_tag(url=static_server.url + "/check.js")
        outcome = page.evaluate("([base, transport]) => connectAndSubscribe(base, transport)",
                                [realtime.url, transport])
    finally:
        page.close()
    assert outcome == {"result": "message", "transport": transport, "message": "hi"}, outcome


def untrusted_url(static_server) -> str:
    return "http://localhost:%d/page.html" % static_server.port


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "eventsource",
                                       "iframe-eventsource", "jsonp-polling"])
def test_untrusted_page_connects_on_no_transport(context, static_server, realtime, transport):
    page = open_page(context, untrusted_url(static_server))
    try:
        outcome = page.evaluate("([base, transport]) => connectAndSubscribe(base, transport)",
                                [realtime.url, transport])
    finally:
        page.close()
    assert outcome["result"] == "closed", outcome  # sockjs-client: /info refused


@pytest.mark.parametrize("no_referrer", [False, True], ids=["referer", "no-referrer"])
def test_untrusted_page_gets_403_for_script_tags_and_frames(context, static_server, realtime,
                                                            no_referrer):
    """Requests a browser sends without an Origin, made by hand: a jsonp receiver in a script
    tag (its callback would get the messages) and iframe.html in a frame (it would talk to its
    parent)."""
    page = context.new_page()
    page.set_default_timeout(20000)
    statuses: Dict[str, int] = {}
    urls: Dict[str, str] = {}
    session = context.new_cdp_session(page)
    session.send("Network.enable")
    session.on("Network.requestWillBeSent", lambda event: urls.setdefault(
        event["requestId"], event["request"]["url"]))
    session.on("Network.responseReceivedExtraInfo", lambda event: statuses.setdefault(
        event["requestId"], event["statusCode"]))
    try:
        page.goto(untrusted_url(static_server))
        jsonp = realtime.url + "/pubsub/000/%d/jsonp?c=stolen" % free_port()
        assert page.evaluate("([src, no]) => loadScript(src, no)", [jsonp, no_referrer]) == \
            "error"
        frame = realtime.url + "/pubsub/iframe.html#frame"
        page.evaluate("([src, no]) => loadFrame(src, no)", [frame, no_referrer])
        page.wait_for_timeout(300)  # the last network events
    finally:
        page.close()
    seen = {url.split("#")[0]: statuses.get(request_id) for request_id, url in urls.items()
            if url.startswith(realtime.url)}
    assert seen == {jsonp: 403, frame.split("#")[0]: 403}, seen
