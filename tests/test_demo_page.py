"""The demo page (realtimemagic/static/demo.html) that ``rtm-serve`` with no application serves
at ``/``, in headless Chromium with no access beyond 127.0.0.1: every other request is aborted
by the browser context's routing.  The page loads sockjs-client 1.6.1 from the server itself
(the copy shipped as package data, served at {prefix}/sockjs.min.js), so it works offline, over
any transport.  Two tabs subscribe and publish through the page's own form; the test leaves a
screenshot at tests/artifacts/demo.png for people to look at."""
import os
import re
from typing import List
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

from conftest import ROOT, free_port, need, run_process
from test_js_client_browser import rtm_serve_plain
from test_sockjs_client_browser import SOCKJS_MIN_JS, read

pytestmark = pytest.mark.slow

ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
SCREENSHOT = os.path.join(ARTIFACTS, "demo.png")
CDN = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"
STATIC = os.path.join(ROOT, "realtimemagic", "static")


@pytest.fixture
def demo_server(tmp_path):
    port = free_port()
    with run_process(rtm_serve_plain(port), port, tmp_path, name="rtm-serve") as server:
        yield server


def offline_context(browser, blocked: List[str], **options):
    """A browser context that reaches 127.0.0.1 only; ``blocked`` collects the rest."""
    context = browser.new_context(**options)

    def only_localhost(route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_localhost)
    return context


def open_demo(context, url: str, transport_label: str):
    from playwright.sync_api import expect
    tab = context.new_page()
    tab.set_default_timeout(10000)
    tab.goto(url)
    expect(tab.locator("#status")).to_have_text("connected")
    expect(tab.locator("#transport")).to_have_text(transport_label)
    return tab


def subscribe(tab, channel: str) -> None:
    tab.get_by_label("Channel", exact=True).fill(channel)
    tab.get_by_role("button", name="Subscribe", exact=True).click()


def publish(tab, channel: str, text: str) -> None:
    tab.get_by_label("To channel", exact=True).fill(channel)
    tab.get_by_label("Message", exact=True).fill(text)
    tab.get_by_role("button", name="Publish", exact=True).click()


def test_the_server_serves_sockjs_client_from_its_npm_package(demo_server):
    """The shipped copy is sockjs-client 1.6.1's dist/sockjs.min.js, byte for byte (the one
    tests/js installs from npm), with its MIT licence; /iframe.html and the demo load it."""
    need(os.path.isfile(SOCKJS_MIN_JS),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")
    with urlopen(demo_server.url + "/pubsub/sockjs.min.js", timeout=5) as response:
        assert response.headers["Content-Type"] == "application/javascript; charset=UTF-8"
        assert response.read() == read(SOCKJS_MIN_JS)
    with open(os.path.join(STATIC, "sockjs-client-1.6.1.LICENSE"), encoding="utf-8") as licence:
        assert "The MIT License" in licence.read()
    with urlopen(demo_server.url + "/pubsub/iframe.html", timeout=5) as response:
        assert re.findall(r'<script src="([^"]*)"', response.read().decode()) == [
            "/pubsub/sockjs.min.js"]
    with urlopen(demo_server.url + "/", timeout=5) as response:
        page = response.read().decode()
    assert 'data-sockjs-url="/pubsub/sockjs.min.js"' in page and "cdn" not in page.lower()


def test_demo_page_offline(browser, demo_server):
    from playwright.sync_api import expect

    server = demo_server
    blocked: List[str] = []
    console: List[str] = []
    context = offline_context(browser, blocked, viewport={"width": 900, "height": 900})
    try:
        tabs = []
        for _ in range(2):
            tab = context.new_page()
            tab.set_default_timeout(10000)
            tab.on("console", lambda message: console.append(message.text))
            tab.on("pageerror", lambda error: console.append("pageerror: %s" % error))
            tab.goto(server.url + "/")
            expect(tab.locator("#status")).to_have_text("connected")
            expect(tab.locator("#transport")).to_have_text("(SockJS, websocket)")
            tabs.append(tab)
        first, second = tabs

        # The first tab subscribes and publishes through the page's form.
        subscribe(first, "demo-test")
        expect(first.locator("#subscriptions")).to_contain_text("demo-test")
        publish(first, "demo-test", "Hello from the demo test")
        hello = first.locator("#messages li", has_text="Hello from the demo test")
        expect(hello).to_be_visible()
        expect(hello).to_contain_text("demo-test")
        expect(first.get_by_label("Message", exact=True)).to_have_value("")

        # The second tab, subscribed too (its own message back shows it), gets the first's.
        second.locator("#channel").fill("demo-test")
        second.locator("#subscribe").click()
        second.locator("#publish-channel").fill("demo-test")
        second.locator("#message").fill("second tab here")
        second.locator("#message").press("Enter")
        expect(second.locator("#messages li", has_text="second tab here")).to_be_visible()
        expect(first.locator("#messages li", has_text="second tab here")).to_be_visible()
        first.locator("#message").fill("Hello, second tab <b>not bold</b>")
        first.locator("#publish").click()
        for tab in tabs:
            expect(tab.locator("#messages li", has_text="Hello, second tab <b>not bold</b>")
                   ).to_be_visible()
        assert second.locator("#messages b").count() == 0, "message text went in as HTML"

        os.makedirs(ARTIFACTS, exist_ok=True)
        first.screenshot(path=SCREENSHOT, full_page=True)
        texts = first.locator("#messages li .text").all_text_contents()
        errors = first.locator("#errors").text_content()
    finally:
        context.close()

    assert texts == ["Hello from the demo test", "second tab here",
                     "Hello, second tab <b>not bold</b>"], texts
    assert errors == "", errors
    assert blocked == [], "the page asked for more than its server: %s" % blocked
    assert os.path.getsize(SCREENSHOT) > 1000
    assert not [line for line in console if line.startswith("pageerror")], console


def test_demo_page_offline_over_xhr_streaming(browser, demo_server):
    """sockjs-client forced to xhr-streaming (its transports option, from ?transports=): the
    HTTP transports work with no CDN either."""
    from playwright.sync_api import expect

    blocked: List[str] = []
    requests: List[str] = []
    context = offline_context(browser, blocked)
    try:
        context.on("request", lambda request: requests.append(request.url))
        tab = open_demo(context, demo_server.url + "/?transports=xhr-streaming",
                        "(SockJS, xhr-streaming)")
        subscribe(tab, "demo-xhr")
        expect(tab.locator("#subscriptions")).to_contain_text("demo-xhr")
        publish(tab, "demo-xhr", "over xhr-streaming")
        expect(tab.locator("#messages li", has_text="over xhr-streaming")).to_be_visible()
        assert tab.evaluate("window.demoClient.socket.transport") == "xhr-streaming"
    finally:
        context.close()
    assert blocked == [], blocked
    assert any(re.search(r"/pubsub/[^/]+/[^/]+/xhr_streaming", url) for url in requests)
    assert not any("/websocket" in url for url in requests), requests


def test_a_refused_subscription_leaves_the_list(browser, tmp_path):
    """With --max-subscriptions 1 the server refuses a second channel: the page says so, and the
    channel leaves the list and the client's channels (no re-subscribe on reconnection)."""
    from playwright.sync_api import expect

    port = free_port()
    command = rtm_serve_plain(port) + ["--max-subscriptions", "1"]
    blocked: List[str] = []
    with run_process(command, port, tmp_path, name="rtm-serve") as server:
        context = offline_context(browser, blocked)
        try:
            tab = open_demo(context, server.url + "/", "(SockJS, websocket)")
            subscribe(tab, "first-one")
            expect(tab.locator("#subscriptions li .channel")).to_have_text(["first-one"])
            subscribe(tab, "second-one")
            expect(tab.locator("#errors")).to_contain_text("The server refused: limit")
            expect(tab.locator("#errors")).to_contain_text("on second-one")
            expect(tab.locator("#subscriptions li .channel")).to_have_text(["first-one"])
            assert tab.evaluate("window.demoClient.channels()") == ["first-one"]
            # Still subscribed to the first: its messages arrive.
            publish(tab, "first-one", "still here")
            expect(tab.locator("#messages li", has_text="still here")).to_be_visible()
        finally:
            context.close()
    assert blocked == [], blocked


def test_long_channel_names_and_messages_wrap(browser, demo_server):
    from playwright.sync_api import expect

    blocked: List[str] = []
    context = offline_context(browser, blocked, viewport={"width": 400, "height": 800})
    channel = "c" * 200
    message = "m" * 2000
    try:
        tab = open_demo(context, demo_server.url + "/", "(SockJS, websocket)")
        subscribe(tab, channel)
        expect(tab.locator("#subscriptions")).to_contain_text(channel)
        publish(tab, channel, message)
        expect(tab.locator("#messages li .text")).to_have_text([message])
        widths = tab.evaluate("""() => ({
            page: document.documentElement.scrollWidth,
            view: document.documentElement.clientWidth,
            items: Array.from(document.querySelectorAll('li')).map(
                (item) => item.getBoundingClientRect().right)})""")
    finally:
        context.close()
    assert widths["page"] <= widths["view"], widths
    assert max(widths["items"]) <= widths["view"], widths


def test_demo_page_with_sockjs_url_set(browser, tmp_path):
    """With --sockjs-url the page (and /iframe.html) load sockjs-client from there: the CDN's
    address, answered by the browser's routing with tests/js/node_modules' sockjs.min.js."""
    from playwright.sync_api import expect

    need(os.path.isfile(SOCKJS_MIN_JS),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")
    body = read(SOCKJS_MIN_JS)
    port = free_port()
    served: List[str] = []
    requests: List[str] = []

    def cdn_from_disk(route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        elif url == CDN:
            served.append(url)
            route.fulfill(status=200, body=body, headers={
                "Content-Type": "application/javascript; charset=utf-8",
                "Access-Control-Allow-Origin": "*"})
        else:
            route.abort("internetdisconnected")

    command = rtm_serve_plain(port) + ["--sockjs-url", CDN]
    with run_process(command, port, tmp_path, name="rtm-serve") as server:
        with urlopen(server.url + "/pubsub/iframe.html", timeout=5) as response:
            assert re.findall(r'<script src="([^"]*)"', response.read().decode()) == [CDN]
        context = browser.new_context()
        context.route("**/*", cdn_from_disk)
        try:
            context.on("request", lambda request: requests.append(request.url))
            page = open_demo(context, server.url + "/", "(SockJS, websocket)")
            subscribe(page, "sockjs-demo")
            publish(page, "sockjs-demo", "through sockjs-client")
            expect(page.locator("#messages li", has_text="through sockjs-client")
                   ).to_be_visible()
        finally:
            context.close()
    assert served == [CDN], served
    assert not any(url.endswith("/pubsub/sockjs.min.js") for url in requests), requests
