"""The demo page (realtimemagic/static/demo.html) that ``rtm-serve`` with no application serves
at ``/``, in headless Chromium with no access beyond 127.0.0.1: every other request is aborted
by the browser context's routing, so sockjs-client cannot come from the CDN and the page falls
back to the plain WebSocket.  Two tabs subscribe and publish through the page's own form; the
test leaves a screenshot at tests/artifacts/demo.png for people to look at."""
import os
from typing import List
from urllib.parse import urlsplit

import pytest

from conftest import ROOT, free_port, need, run_process
from test_js_client_browser import rtm_serve_plain
from test_sockjs_client_browser import SOCKJS_MIN_JS, read

ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
SCREENSHOT = os.path.join(ARTIFACTS, "demo.png")
CDN = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"


@pytest.fixture
def demo_server(tmp_path):
    port = free_port()
    with run_process(rtm_serve_plain(port), port, tmp_path, name="rtm-serve") as server:
        yield server


def test_demo_page_offline(browser, demo_server):
    from playwright.sync_api import expect

    server = demo_server
    context = browser.new_context(viewport={"width": 900, "height": 900})
    blocked: List[str] = []
    console: List[str] = []

    def only_localhost(route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_localhost)
    try:
        tabs = []
        for _ in range(2):
            tab = context.new_page()
            tab.set_default_timeout(10000)
            tab.on("console", lambda message: console.append(message.text))
            tab.on("pageerror", lambda error: console.append("pageerror: %s" % error))
            tab.goto(server.url + "/")
            expect(tab.locator("#status")).to_have_text("connected")
            expect(tab.locator("#transport")).to_have_text("(plain WebSocket)")
            tabs.append(tab)
        first, second = tabs

        # The first tab subscribes and publishes through the page's form.
        first.get_by_label("Channel", exact=True).fill("demo-test")
        first.get_by_role("button", name="Subscribe", exact=True).click()
        expect(first.locator("#subscriptions")).to_contain_text("demo-test")
        first.get_by_label("To channel", exact=True).fill("demo-test")
        first.get_by_label("Message", exact=True).fill("Hello from the demo test")
        first.get_by_role("button", name="Publish", exact=True).click()
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
        assert first.get_by_text("Hello from the demo test").is_visible()
        texts = first.locator("#messages li .text").all_text_contents()
        errors = first.locator("#errors").text_content()
    finally:
        context.close()

    assert texts == ["Hello from the demo test", "second tab here",
                     "Hello, second tab <b>not bold</b>"], texts
    assert errors == "", errors
    assert CDN in blocked, "the page did not try the CDN: %s" % blocked
    assert all(urlsplit(url).hostname != "127.0.0.1" for url in blocked), blocked
    assert os.path.getsize(SCREENSHOT) > 1000
    assert not [line for line in console if line.startswith("pageerror")], console


def test_demo_page_with_sockjs_from_the_cdn(browser, demo_server):
    """The same page when the CDN answers: the CDN's address is answered by the browser's
    routing with tests/js/node_modules' sockjs.min.js (the same bytes as the npm package that
    the CDN serves, so the page's integrity hash must match), and the page uses SockJS."""
    from playwright.sync_api import expect

    need(os.path.isfile(SOCKJS_MIN_JS),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")
    body = read(SOCKJS_MIN_JS)
    server = demo_server
    context = browser.new_context()
    served: List[str] = []

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

    context.route("**/*", cdn_from_disk)
    try:
        page = context.new_page()
        page.set_default_timeout(10000)
        page.goto(server.url + "/")
        expect(page.locator("#status")).to_have_text("connected")
        expect(page.locator("#transport")).to_have_text("(SockJS, websocket)")
        page.locator("#channel").fill("sockjs-demo")
        page.locator("#subscribe").click()
        page.locator("#publish-channel").fill("sockjs-demo")
        page.locator("#message").fill("through sockjs-client")
        page.locator("#publish").click()
        expect(page.locator("#messages li", has_text="through sockjs-client")).to_be_visible()
    finally:
        context.close()
    assert served == [CDN], served
