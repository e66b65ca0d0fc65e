"""The project's JavaScript client (realtimemagic/static/realtimemagic.js, served by rtm-serve at
/pubsub/realtimemagic.js) in headless Chromium against rtm-serve's plain pub/sub.

The pages come from a small static server on another 127.0.0.1 port (cross-origin to rtm-serve,
as a site that embeds realtimemagic would be); they load the client from rtm-serve itself and,
when the test wants sockjs-client, sockjs.min.js 1.6.1 from tests/js/node_modules through the
static server (nothing from a CDN).

1. The seed's snippet, with only the URL filled in: the page gets its own "I'm new to this
   channel", published before the connection opened and before onopen subscribed (with
   sockjs-client, with plain WebSocket, and with the client imported as an ES module).
2. Two pages: what one publishes the other receives, over sockjs-client's websocket,
   xhr-streaming and xhr-polling, and over plain WebSocket.
3. rtm-serve stops and starts again on the same port: the page reconnects by itself, subscribes
   again (once) and gets a message published from Python after the restart.

And the complete page of docs/client.md works as printed.
"""
import json
import os
import re
import sys
import time
from typing import Any, Dict, List
from urllib.parse import urlsplit

import pytest
import websocket

from conftest import ROOT, free_port, need, run_process
from test_sockjs_client_browser import SOCKJS_MIN_JS, StaticServer, read

pytestmark = pytest.mark.slow

CLIENT_DIR = os.path.join(ROOT, "client")
JAVASCRIPT = "application/javascript; charset=UTF-8"
HTML = "text/html; charset=UTF-8"
WAIT_MS = 10000


def rtm_serve_plain(port: int) -> List[str]:
    """``rtm-serve --port PORT``: no application, so plain pub/sub (and the demo page).  The
    internal API takes any free port (not PORT + 1, which may be another test's)."""
    return [sys.executable, "-m", "realtimemagic.cli", "--port", str(port), "--api-port", "0",
            "--log-level", "warning"]


def publish_from_python(port: int, channel: str, message: Any) -> None:
    """Publish through a raw WebSocket client and wait for the server's "published"."""
    connection = websocket.create_connection("ws://127.0.0.1:%d/pubsub/websocket" % port,
                                             timeout=5)
    try:
        connection.send(json.dumps({"action": "publish", "id": "py",
                                    "payload": {"channel": channel, "message": message}}))
        while True:
            reply = json.loads(connection.recv())
            if reply.get("id") == "py":
                assert reply["action"] == "published", reply
                return
    finally:
        connection.close()


def page_html(server_url: str, sockjs: bool) -> bytes:
    """A page that loads the client from rtm-serve (and sockjs-client first, if wanted)."""
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>client test</title>\n"
            "%s<script src=\"%s/pubsub/realtimemagic.js\"></script>\n"
            "<script>window.received = []; window.closes = []; window.opens = 0;</script>\n"
            "</head><body><p>realtimemagic client test</p></body></html>\n" % (
                "<script src=\"/sockjs.min.js\"></script>\n" if sockjs else "",
                server_url)).encode("utf-8")


MODULE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>client as an ES module</title>
<script type="module">
import realtimeMagic, { Client } from '/client/index.mjs';
window.received = []; window.closes = [];
window.imported = { same: Client === realtimeMagic.Client, version: realtimeMagic.version };
var client = new Client(%s, { transport: 'websocket' });
client.onopen = function () { client.subscribe('the_channel'); };
client.onmessage = function (message) { window.received.push(message); };
client.onclose = function (event) { window.closes.push(event.code); };
client.publish("the_channel", "I'm new to this channel");
window.client = client;
</script></head><body><p>realtimemagic client as an ES module</p></body></html>
"""

#: The seed's snippet; only the URL is filled in (and what it records goes to window.*).
SEED_SNIPPET = """
var client = new realtimeMagic.Client(%s);
client.onopen = function(){
  client.subscribe('the_channel');
};
client.onmessage = function(message){
  window.received.push(message);
};
client.onclose = function(event){
  window.closes.push(event.code);
};
client.publish("the_channel", "I'm new to this channel");
window.client = client;
"""


@pytest.fixture(scope="module")
def static_server():
    files: Dict[str, Any] = {
        "/client/index.mjs": (JAVASCRIPT, read(os.path.join(CLIENT_DIR, "index.mjs"))),
        # client/realtimemagic.js is a symlink to realtimemagic/static/realtimemagic.js.
        "/client/realtimemagic.js": (JAVASCRIPT, read(os.path.join(CLIENT_DIR,
                                                                   "realtimemagic.js"))),
    }
    if os.path.isfile(SOCKJS_MIN_JS):
        files["/sockjs.min.js"] = (JAVASCRIPT, read(SOCKJS_MIN_JS))
    with StaticServer(files) as server:
        yield server


@pytest.fixture(scope="module")
def pubsub_server(tmp_path_factory):
    port = free_port()
    with run_process(rtm_serve_plain(port), port, tmp_path_factory.mktemp("js-client"),
                     name="rtm-serve") as server:
        yield server


def need_sockjs() -> None:
    need(os.path.isfile(SOCKJS_MIN_JS),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")


def add_page(static_server: StaticServer, server_url: str, sockjs: bool) -> str:
    path = "/page-%s-%s.html" % (server_url.rsplit(":", 1)[1], "sockjs" if sockjs else "plain")
    static_server.files[path] = (HTML, page_html(server_url, sockjs))
    return static_server.url + path


class Recorder:
    """What a page did on the network, and what it logged."""

    def __init__(self, page) -> None:
        self.requests: List[str] = []
        self.websockets: List[Dict[str, Any]] = []
        self.console: List[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", self._websocket)
        page.on("console", lambda message: self.console.append(
            "%s: %s" % (message.type, message.text)))
        page.on("pageerror", lambda error: self.console.append("pageerror: %s" % error))

    def _websocket(self, ws) -> None:
        record: Dict[str, Any] = {"url": ws.url, "sent": []}
        self.websockets.append(record)
        ws.on("framesent", lambda payload: record["sent"].append(payload))

    def __str__(self) -> str:
        return "requests: %s\nwebsockets: %s\nconsole: %s" % (
            self.requests[-20:], [(ws["url"], ws["sent"][:10]) for ws in self.websockets],
            self.console[-20:])


def sent_messages(frames: List[Any]) -> List[Any]:
    """The protocol messages in WebSocket frames: one per frame on the plain WebSocket, a
    JSON array of them (SockJS framing) over sockjs-client's websocket transport."""
    messages = []
    for frame in frames:
        value = json.loads(frame)
        if isinstance(value, list):
            messages.extend(json.loads(item) for item in value)
        else:
            messages.append(value)
    return messages


def wait_for(page, expression: str, recorder: Recorder, what: str, timeout: int = WAIT_MS):
    try:
        page.wait_for_function(expression, timeout=timeout)
    except Exception as error:  # playwright's TimeoutError
        state = page.evaluate("({received: window.received, closes: window.closes,"
                              " opens: window.opens})")
        raise AssertionError("%s: %s\npage state: %s\n%s" % (what, error, state, recorder))


# -- 1. the seed's snippet -------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["sockjs", "websocket", "module"])
def test_seed_snippet_gets_its_own_message(browser, static_server, pubsub_server, variant):
    server = pubsub_server
    if variant == "sockjs":
        need_sockjs()
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    recorder = Recorder(page)
    try:
        if variant == "module":
            static_server.files["/module.html"] = (
                HTML, (MODULE_PAGE % json.dumps(server.url + "/pubsub")).encode("utf-8"))
            page.goto(static_server.url + "/module.html")
        else:
            page.goto(add_page(static_server, server.url, variant == "sockjs"))
            page.add_script_tag(content=SEED_SNIPPET % json.dumps(server.url + "/pubsub"))
        wait_for(page, "window.received && window.received.length >= 1", recorder,
                 "the page did not get its own message")
        page.wait_for_timeout(200)  # anything more (a duplicate) would arrive by now
        received = page.evaluate("window.received")
        transport = page.evaluate("[client.transport, client.socket && client.socket.transport]")
        imported = page.evaluate("window.imported || null")
        closes = page.evaluate("window.closes")
    finally:
        context.close()

    assert received == ["I'm new to this channel"], "%s\n%s" % (received, recorder)
    assert closes == [], closes
    websocket_urls = [ws["url"] for ws in recorder.websockets]
    if variant == "sockjs":
        assert transport == ["sockjs", "websocket"], transport
        assert server.url + "/pubsub/info" in [url.split("?")[0] for url in recorder.requests]
        assert len(websocket_urls) == 1 and websocket_urls[0].startswith(
            server.ws_url + "/pubsub/") and websocket_urls[0] != server.ws_url + \
            "/pubsub/websocket", websocket_urls
    else:
        assert transport[0] == "websocket", transport
        assert websocket_urls == [server.ws_url + "/pubsub/websocket"], recorder
        assert not any("/pubsub/info" in url for url in recorder.requests), recorder
    if variant == "module":
        assert imported == {"same": True, "version": "1.0.0"}, imported
    # What went over the wire, in order: onopen's subscribe (with the client's own id, so that
    # its reply brings the channel's position: docs/history.md), then the queued publish.
    messages = sent_messages(recorder.websockets[0]["sent"])
    assert messages == [
        {"action": "subscribe", "payload": {"channel": "the_channel"}, "id": "rtm.1"},
        {"action": "publish", "payload": {"channel": "the_channel",
                                          "message": "I'm new to this channel"}},
    ], messages


# -- 2. two pages ----------------------------------------------------------------------------

TWO_PAGES = """
window.got = [];
window.client = new realtimeMagic.Client(%s, %s);
client.subscribe('two_pages', function (message, channel) {
  window.got.push(channel + ': ' + message);
});
"""


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling",
                                       "plain-websocket"])
def test_two_pages(browser, static_server, pubsub_server, transport):
    server = pubsub_server
    sockjs = transport != "plain-websocket"
    if sockjs:
        need_sockjs()
    options = {"transports": [transport]} if sockjs else {"transport": "websocket"}
    url = add_page(static_server, server.url, sockjs)
    context = browser.new_context()
    try:
        pages, recorders = [], []

        def publish(page, text: str) -> None:
            page.evaluate("text => client.publish('two_pages', text)", text)

        def arrived(page, recorder, text: str) -> None:
            wait_for(page, "window.got.indexOf(%s) >= 0" % json.dumps("two_pages: " + text),
                     recorder, "%r did not arrive" % text)

        # One page after the other; each one's own message back shows that its subscription
        # is in place.
        for name in ("first", "second"):
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            recorders.append(Recorder(page))
            page.goto(url)
            page.add_script_tag(content=TWO_PAGES % (json.dumps(server.url + "/pubsub"),
                                                     json.dumps(options)))
            pages.append(page)
            publish(page, name + " ready")
            arrived(page, recorders[-1], name + " ready")
        first, second = pages
        publish(first, "from the first page")
        arrived(second, recorders[1], "from the first page")
        publish(second, "from the second page")
        arrived(first, recorders[0], "from the second page")
        arrived(second, recorders[1], "from the second page")
        got = [page.evaluate("window.got") for page in pages]
        transports = [page.evaluate("[client.transport, client.socket.transport]")
                      for page in pages]
    finally:
        context.close()

    expected = ["first ready", "second ready", "from the first page", "from the second page"]
    assert got[0] == ["two_pages: " + text for text in expected], got
    assert got[1] == ["two_pages: " + text for text in expected[1:]], got
    if sockjs:
        assert transports == [["sockjs", transport]] * 2, transports
    else:
        assert [t[0] for t in transports] == ["websocket"] * 2, transports


# -- 3. the server restarts ------------------------------------------------------------------

RESTART_PAGE = """
window.client = new realtimeMagic.Client(%s, {minDelay: 100, maxDelay: 400});
client.onopen = function () { window.opens += 1; };
client.onclose = function (event) {
  window.closes.push({code: event.code, wasOpen: event.wasOpen, delay: event.delay});
};
client.subscribe('restart_channel', function (message) { window.received.push(message); });
"""


@pytest.mark.parametrize("variant", ["websocket", "sockjs"])
def test_reconnects_after_a_server_restart(browser, static_server, tmp_path, variant):
    sockjs = variant == "sockjs"
    if sockjs:
        need_sockjs()
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    recorder = Recorder(page)
    try:
        with run_process(rtm_serve_plain(port), port, tmp_path, name="rtm-serve-1") as first:
            page.goto(add_page(static_server, url, sockjs))
            page.add_script_tag(content=RESTART_PAGE % json.dumps(url + "/pubsub"))
            wait_for(page, "window.opens === 1", recorder, "no connection")
            # The page's own message back: its subscription is in place.
            page.evaluate("client.publish('restart_channel', 'probe before')")
            wait_for(page, "window.received.indexOf('probe before') >= 0", recorder,
                     "no probe before the restart")
            publish_from_python(port, "restart_channel", "before the restart")
            wait_for(page, "window.received.indexOf('before the restart') >= 0", recorder,
                     "the message before the restart did not arrive")
            stopped = time.monotonic()
            first.stop()
        stop_seconds = time.monotonic() - stopped
        wait_for(page, "window.closes.length >= 1 && !client.connected", recorder,
                 "the page did not see the server go")
        page.wait_for_timeout(300)  # a few failed attempts while nothing listens

        with run_process(rtm_serve_plain(port), port, tmp_path, name="rtm-serve-2") as second:
            restarted = time.monotonic()
            wait_for(page, "window.opens === 2", recorder, "the page did not reconnect")
            reconnect_seconds = time.monotonic() - restarted
            # The page subscribes nowhere itself: the client restored the subscription, before
            # this publish of the page's (one connection's messages are handled in order).
            page.evaluate("client.publish('restart_channel', 'probe after')")
            wait_for(page, "window.received.indexOf('probe after') >= 0", recorder,
                     "the subscription was not restored")
            publish_from_python(port, "restart_channel", "after the restart")
            wait_for(page, "window.received.indexOf('after the restart') >= 0", recorder,
                     "the message after the restart did not arrive")
            page.wait_for_timeout(200)
            received = page.evaluate("window.received")
            closes = page.evaluate("window.closes")
            channels = page.evaluate("client.channels()")
            transport = page.evaluate("[client.transport, client.socket.transport]")
            server_log = second.log()
    finally:
        context.close()

    assert received == ["probe before", "before the restart", "probe after",
                        "after the restart"], "%s\n%s\n%s" % (received, recorder, server_log)
    assert channels == ["restart_channel"]
    assert closes[0]["wasOpen"] is True, closes
    assert all(100 <= close["delay"] <= 400 for close in closes), closes
    assert len(closes) >= 2, "failed attempts while the server was away: %s" % closes
    assert transport[0] == ("sockjs" if sockjs else "websocket"), transport
    if sockjs:
        assert transport[1] == "websocket", transport
    assert stop_seconds < 8 and reconnect_seconds < 5, (stop_seconds, reconnect_seconds)

    # Exactly one subscribe on each connection, first, with the client's own id (rtm.1, then
    # rtm.2) and no "since" (no history on this server: no position); the probe after it.
    connections = [sent_messages(ws["sent"]) for ws in recorder.websockets if ws["sent"]]
    assert len(connections) == 2, recorder
    for number, messages in enumerate(connections, 1):
        subscribe = {"action": "subscribe", "payload": {"channel": "restart_channel"},
                     "id": "rtm.%d" % number}
        subscribes = [m for m in messages if m.get("action") == "subscribe"]
        assert messages[0] == subscribe and subscribes == [subscribe], messages
        assert messages[1]["action"] == "publish", messages


# -- the page of docs/client.md ----------------------------------------------------------------

def test_docs_page_example(browser, static_server, pubsub_server):
    """The complete page of docs/client.md, pointed at the test server, with no access beyond
    127.0.0.1: it loads sockjs-client from the server, as printed."""
    server = pubsub_server
    with open(os.path.join(ROOT, "docs", "client.md"), encoding="utf-8") as docs:
        text = docs.read()
    html = re.search(r"```html\n(.*?)```", text, re.S).group(1)
    assert "http://127.0.0.1:9000/pubsub" in html
    static_server.files["/docs-example.html"] = (
        HTML, html.replace("http://127.0.0.1:9000", server.url).encode("utf-8"))
    context = browser.new_context()
    context.route("**/*", lambda route: route.continue_()
                  if urlsplit(route.request.url).hostname == "127.0.0.1"
                  else route.abort("internetdisconnected"))
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    recorder = Recorder(page)
    try:
        page.goto(static_server.url + "/docs-example.html")
        status = page.locator("#status")
        try:
            status.filter(has_text="connected (sockjs)").wait_for()
            page.get_by_label("Say something").fill("from the docs")
            page.get_by_role("button", name="Publish").click()
            page.locator("#news li").first.wait_for()
        except Exception as error:  # playwright's TimeoutError
            raise AssertionError("%s\nstatus: %r\n%s" % (error, status.text_content(), recorder))
        items = page.locator("#news li").all_text_contents()
    finally:
        context.close()
    assert items == ["from the docs"], "%s\n%s" % (items, recorder)
    assert not [line for line in recorder.console if line.startswith("pageerror")], recorder
