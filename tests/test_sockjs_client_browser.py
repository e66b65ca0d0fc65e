"""sockjs-client 1.6.1, the real client, in headless Chromium against rtm-serve: each of its 11
transports, forced one at a time.

The page, sockjs.min.js (tests/js/node_modules/sockjs-client/dist) and the checks
(tests/js/echo_client.js, the same code as the Node tests) come from a small static HTTP server
on another 127.0.0.1 port, so the page is cross-origin to the SockJS server: /info, xhr_send and
the xhr receivers go through CORS with credentials, and the iframe-* transports load
<server>/echo/iframe.html, which loads sockjs.min.js from the static server (rtm-serve runs with
``--sockjs-url http://127.0.0.1:<static port>/sockjs.min.js``; nothing comes from a CDN).

For each transport: connect to /echo, check ``sock.transport`` is the forced one and that the
browser requested that transport's receiver (and no other one: no silent fallback), echo an
ASCII, a unicode (non-BMP, U+2028, U+2029, ``</script>``...) and a 100 KiB message, all back in
order and intact, close cleanly, then connect to /close and get 3000 "Go away!".

Two transports need more than a cross-origin page:

* xdr-streaming and xdr-polling use IE's ``XDomainRequest``, which Chromium lacks (sockjs-client
  enables them only when ``window.XDomainRequest`` exists).  Their page defines, in a script
  before sockjs.min.js, a minimal ``XDomainRequest`` over ``XMLHttpRequest`` (GET/POST only, no
  cookies, non-2xx is an error, ``onprogress`` with the text so far, as IE's), so that
  sockjs-client's own XDR sender and receiver code runs against the server.  The test checks that
  Chromium had no XDomainRequest of its own and that the requests went through the stand-in.
* htmlfile (not wrapped in an iframe) is enabled by sockjs-client only on a page of the server's
  own origin (``HtmlFileTransport.enabled`` needs ``info.sameOrigin``: the htmlfile page calls
  ``parent.<callback>``).  Its test opens the server's greeting page (<server>/echo, served by
  rtm-serve) and adds sockjs.min.js and the checks from the static server to it.
  Cross-origin pages get it as iframe-htmlfile, tested too.
"""
import http.server
import os
import re
import threading
from typing import Dict, List, Tuple
from urllib.request import urlopen

import pytest

from conftest import free_port, need, rtm_serve_command, run_process
from test_sockjs_client_node import (ECHO_CLIENT, JS_DIR, MESSAGES, STEP_TIMEOUT_MS,
                                     check_result, shorten)

pytestmark = pytest.mark.slow

SOCKJS_MIN_JS = os.path.join(JS_DIR, "node_modules", "sockjs-client", "dist", "sockjs.min.js")

#: Every transport of sockjs-client 1.6.1, in its own order (lib/transport-list.js), and the
#: receiving resource that each one must request from the server.
RECEIVERS = {
    "websocket": "websocket",
    "xhr-streaming": "xhr_streaming",
    "xdr-streaming": "xhr_streaming",
    "eventsource": "eventsource",
    "iframe-eventsource": "eventsource",
    "htmlfile": "htmlfile",
    "iframe-htmlfile": "htmlfile",
    "xhr-polling": "xhr",
    "xdr-polling": "xhr",
    "iframe-xhr-polling": "xhr",
    "jsonp-polling": "jsonp",
}
TRANSPORTS = list(RECEIVERS)
XDR_TRANSPORTS = ("xdr-streaming", "xdr-polling")
SAME_ORIGIN_ONLY = ("htmlfile",)
SESSION_URL = re.compile(r"/(echo|close)/[^/?.]+/[^/?.]+/([a-z_]+)(?:[/?]|$)")

#: IE's XDomainRequest, as far as sockjs-client uses it (lib/transport/sender/xdr.js), over
#: XMLHttpRequest.  Loaded before sockjs.min.js, which decides at load time whether XDR exists.
XDR_STAND_IN = r"""
(function () {
  'use strict';
  window.__xdr = { native: typeof window.XDomainRequest !== 'undefined', requests: [] };
  function XDomainRequest() {
    this.timeout = 0;
    this.responseText = '';
    this.contentType = '';
    this.onprogress = this.onload = this.onerror = this.ontimeout = null;
    this._xhr = null;
  }
  XDomainRequest.prototype.open = function (method, url) {
    method = String(method).toUpperCase();
    if (method !== 'GET' && method !== 'POST') {
      throw new Error('XDomainRequest: only GET and POST');
    }
    var self = this;
    var xhr = new XMLHttpRequest();
    this._xhr = xhr;
    window.__xdr.requests.push(method + ' ' + url);
    xhr.open(method, url, true);
    xhr.withCredentials = false;  // XDomainRequest never sends cookies
    xhr.onprogress = function () {
      self.responseText = xhr.responseText;
      if (self.onprogress) { self.onprogress(); }
    };
    xhr.onload = function () {
      self.responseText = xhr.responseText;
      self.contentType = xhr.getResponseHeader('Content-Type') || '';
      // XDomainRequest has no status: any answer but a 2xx one is an error.
      var handler = xhr.status >= 200 && xhr.status < 300 ? self.onload : self.onerror;
      if (handler) { handler(); }
    };
    xhr.onerror = function () { if (self.onerror) { self.onerror(); } };
    xhr.ontimeout = function () { if (self.ontimeout) { self.ontimeout(); } };
  };
  XDomainRequest.prototype.send = function (body) {
    if (this.timeout) { this._xhr.timeout = this.timeout; }
    this._xhr.send(body === undefined ? null : body);  // a string: text/plain, as XDR's
  };
  XDomainRequest.prototype.abort = function () {
    if (this._xhr) { this._xhr.abort(); }
  };
  window.XDomainRequest = XDomainRequest;
}());
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>sockjs-client checks</title>
%s<script src="/sockjs.min.js"></script>
<script src="/echo_client.js"></script>
</head><body><p>realtimemagic: sockjs-client %s checks</p></body></html>
"""


class StaticServer:
    """A few files from memory on 127.0.0.1, never cached (so that the iframe's own load of
    sockjs.min.js is a request of its own)."""

    def __init__(self, files: Dict[str, Tuple[str, bytes]]) -> None:
        self.files = files
        self.requests: List[Tuple[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                server.requests.append((path, self.headers.get("Referer") or ""))
                if path not in server.files:
                    self.send_error(404)
                    return
                content_type, body = server.files[path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "StaticServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def read(path: str) -> bytes:
    with open(path, "rb") as source:
        return source.read()


@pytest.fixture(scope="module")
def static_server():
    need(os.path.isfile(SOCKJS_MIN_JS),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")
    javascript = "application/javascript; charset=UTF-8"
    html = "text/html; charset=UTF-8"
    files = {
        "/sockjs.min.js": (javascript, read(SOCKJS_MIN_JS)),
        "/echo_client.js": (javascript, read(ECHO_CLIENT)),
        "/index.html": (html, (PAGE % ("", "")).encode("utf-8")),
        "/xdr.html": (html, (PAGE % ("<script>%s</script>\n" % XDR_STAND_IN,
                                     "XDomainRequest")).encode("utf-8")),
    }
    with StaticServer(files) as server:
        yield server


@pytest.fixture(scope="module")
def sockjs_browser_server(static_server, tmp_path_factory):
    """rtm-serve with examples/sockjs_endpoints.py, its iframe.html loading sockjs-client from
    the static server."""
    port = free_port()
    sockjs_url = static_server.url + "/sockjs.min.js"
    command = rtm_serve_command("examples.sockjs_endpoints:app", port, "--sockjs-url", sockjs_url)
    # The same setting as its RTM_* variable too: rtm-serve ignores its flags for a ready-made
    # WSGI application such as this Router, built from defaults and RTM_* variables when its
    # module is imported (test_rtm_serve_flags_reach_a_ready_made_app below).  Without the
    # variable iframe.html would load the server's own copy of sockjs-client, not this one.
    with run_process(command, port, tmp_path_factory.mktemp("browser"),
                     env={"RTM_SOCKJS_URL": sockjs_url}, name="rtm-serve") as server:
        yield server


def sockjs_resources(urls: List[str], server_url: str) -> List[Tuple[str, str]]:
    """(endpoint, resource) of each session request to the SockJS server."""
    found = []
    for url in urls:
        url = re.sub(r"^ws://", "http://", url)
        if url.startswith(server_url + "/"):
            match = SESSION_URL.search(url[len(server_url):])
            if match:
                found.append((match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_browser_sockjs_client(browser, static_server, sockjs_browser_server, transport):
    server = sockjs_browser_server
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15000)
    requests: List[Tuple[str, str]] = []
    console: List[str] = []
    info_cors: List[Tuple[str, str]] = []
    static_requests_before = len(static_server.requests)

    def on_request(request) -> None:
        try:
            frame_url = request.frame.url
        except Exception:  # a request of no frame (a worker)
            frame_url = ""
        requests.append((request.url, frame_url))

    def on_response(response) -> None:
        if response.url.startswith(server.url + "/echo/info"):
            info_cors.append((response.headers.get("access-control-allow-origin"),
                              response.headers.get("access-control-allow-credentials")))

    page.on("request", on_request)
    page.on("response", on_response)
    page.on("websocket", lambda websocket: requests.append((websocket.url, page.url)))
    page.on("console", lambda message: console.append("%s: %s" % (message.type, message.text)))
    page.on("pageerror", lambda error: console.append("pageerror: %s" % error))
    job = {"base": server.url, "transport": transport, "messages": MESSAGES,
           "timeout_ms": STEP_TIMEOUT_MS}
    try:
        if transport in SAME_ORIGIN_ONLY:
            page.goto(server.url + "/echo")
            page.add_script_tag(url=static_server.url + "/sockjs.min.js")
            page.add_script_tag(url=static_server.url + "/echo_client.js")
        else:
            page.goto(static_server.url + (
                "/xdr.html" if transport in XDR_TRANSPORTS else "/index.html"))
        result = page.evaluate("job => window.sockjsChecks.run(job)", job)
        xdr = page.evaluate("window.__xdr || null")
    finally:
        context.close()

    check_result(result, transport, server_log=server.log() + "\nbrowser console:\n" +
                 "\n".join(console[-30:]))
    context_text = "\nrequests: %s\nconsole: %s" % (
        shorten([url for url, _ in requests], 4000), shorten(console, 2000))

    # The page's /info request went cross-origin, with credentials, and the server allowed it
    # (htmlfile's page is the server's own: no Origin, "*").
    if transport in SAME_ORIGIN_ONLY:
        assert ("*", None) in info_cors, info_cors
    else:
        assert (static_server.url, "true") in info_cors, info_cors

    # No silent fallback: the one receiver requested is the forced transport's.
    resources = sockjs_resources([url for url, _ in requests], server.url)
    receivers = {resource for _, resource in resources
                 if resource not in ("xhr_send", "jsonp_send")}
    assert receivers == {RECEIVERS[transport]}, "receivers %r%s" % (receivers, context_text)
    assert ("echo", RECEIVERS[transport]) in resources and (
        "close", RECEIVERS[transport]) in resources, context_text
    senders = {resource for endpoint, resource in resources
               if endpoint == "echo" and resource in ("xhr_send", "jsonp_send")}
    if transport == "websocket":
        assert senders == set(), context_text
    else:
        assert senders == {"jsonp_send" if transport == "jsonp-polling" else "xhr_send"}, (
            "senders %r%s" % (senders, context_text))

    iframe_page = server.url + "/echo/iframe.html"
    iframe_loads = [url for url, _ in requests if url.split("?")[0] == iframe_page]
    if transport.startswith("iframe-"):
        assert iframe_loads, "no %s%s" % (iframe_page, context_text)
        # The iframe loaded sockjs-client from --sockjs-url, our static server.
        assert any(url == static_server.url + "/sockjs.min.js" and
                   frame_url.startswith(server.url + "/echo/iframe")
                   for url, frame_url in requests), context_text
        static_requests = static_server.requests[static_requests_before:]
        assert any(path == "/sockjs.min.js" and referer.startswith(server.url)
                   for path, referer in static_requests), static_requests
    else:
        assert not iframe_loads, context_text

    if transport in XDR_TRANSPORTS:
        assert xdr is not None and xdr["native"] is False, xdr
        through_xdr = [entry.split(" ", 1)[1] for entry in xdr["requests"]]
        assert any("/xhr_send" in url for url in through_xdr), xdr
        assert any(re.search(r"/%s(\?|$)" % RECEIVERS[transport], url)
                   for url in through_xdr), xdr


def test_rtm_serve_flags_reach_a_ready_made_app(start_server):
    """``rtm-serve examples.sockjs_endpoints:app --sockjs-url URL`` must serve an iframe.html
    that loads URL: every setting is an rtm-serve flag (realtimemagic/config.py).  The app is a
    ready-made Router, built when its module is imported, and rtm-serve uses only --host and
    --port of the flags for it (realtimemagic/cli.py build_app applies them to a RealTimeMagic
    only), so iframe.html would keep the default address, and every other setting flag
    (--heartbeat-interval, --max-frame-size...) is ignored the same way."""
    url = "http://127.0.0.1:9/flag-check/sockjs.min.js"
    server = start_server("examples.sockjs_endpoints:app", "--sockjs-url", url)
    with urlopen(server.url + "/echo/iframe.html", timeout=5) as response:
        body = response.read().decode("utf-8")
    scripts = re.findall(r'<script src="([^"]*)"', body)
    assert scripts == [url], "iframe.html loads %r, not the --sockjs-url %r" % (scripts, url)
