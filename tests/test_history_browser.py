"""History and recovery (docs/history.md) with the project's JavaScript client in headless
Chromium: the client rides over a server restart (Redis broker, history on) and shows every
message published while it was away.

1. A page subscribed to ``hist:<unique>`` shows 5 messages; rtm-serve stops (SIGTERM); while it
   is down a second rtm-serve on another port, with the same Redis and namespaces, publishes 20
   more (its internal API); the first server starts again on the same port.  The page reconnects
   by itself, subscribes again with ``since`` (the position of message 5), and its list shows the
   25 messages exactly once and in order, then a live message published after the restart.
   ``client.recoveryFailed`` stays empty.
2. The same, but the channel's history is deleted from Redis while the server is down: the
   re-subscription gets ``"recovered": false``, the page's ``onrecoveryfailed`` runs and
   ``client.recoveryFailed[channel]`` is true; live messages (of a new epoch, with offsets that
   start again at 1) still show.

Each run uses its own channel, so what earlier runs left in Redis does not matter (and the test
deletes its keys at the end).  The page uses the plain WebSocket endpoint (the first test also
runs over sockjs-client's websocket when tests/js has it).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Dict, List

import pytest

from conftest import free_port, need, run_process
from conftest import REDIS_URL, redis_available
from test_sockjs_client_browser import SOCKJS_MIN_JS, StaticServer, read

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

JAVASCRIPT = "application/javascript; charset=UTF-8"
HTML = "text/html; charset=UTF-8"
WAIT_MS = 10000
NAMESPACES = json.dumps({"hist": {"history_size": 200, "history_ttl": 600}})
BEFORE, AWAY = 5, 20


def rtm_serve(port: int, api_port: int) -> List[str]:
    return [sys.executable, "-m", "realtimemagic.cli", "--port", str(port),
            "--api-port", str(api_port), "--broker", REDIS_URL, "--namespaces", NAMESPACES,
            "--log-level", "warning"]


def api_publish(api_port: int, channel: str, message: Any, timeout: float = 10.0) -> None:
    """POST /api/publish on an instance's internal API (retried while it is not up yet)."""
    body = json.dumps({"channel": channel, "message": message}).encode("utf-8")
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(
            "http://127.0.0.1:%d/api/publish" % api_port, data=body, method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                assert json.loads(response.read()) == {"published": True}
                return
        except (urllib.error.URLError, ConnectionError) as error:
            if isinstance(error, urllib.error.HTTPError) or time.monotonic() > deadline:
                raise


def redis_client():
    import redis
    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)


def channel_keys(channel: str) -> List[bytes]:
    """The Redis keys of `channel`'s history and presence (rtm:h:, rtm:n:, rtm:e:, rtm:p:...)."""
    return [key for key in redis_client().scan_iter(match="rtm:*" + channel + "*", count=1000)
            if key.decode("utf-8", "replace").endswith(":" + channel)]


def delete_channel_keys(channel: str) -> int:
    keys = channel_keys(channel)
    return redis_client().delete(*keys) if keys else 0


def wait_for_offset(channel: str, offset: int, timeout: float = 10.0) -> None:
    """Wait until Redis gave out `offset` on `channel` (publishing is asynchronous: the API
    answers when the message is queued for the broker)."""
    deadline = time.monotonic() + timeout
    key = "rtm:n:" + channel
    value = None
    while time.monotonic() < deadline:
        value = redis_client().get(key)
        if value is not None and int(value) >= offset:
            return
        time.sleep(0.05)
    raise AssertionError("Redis %s is %r after %.0f s, expected %d" % (key, value, timeout,
                                                                       offset))


def page_html(server_url: str, channel: str, sockjs: bool) -> bytes:
    """A page whose client is subscribed to `channel` and shows its messages in a list."""
    return ("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>history</title>
%s<script src="%s/pubsub/realtimemagic.js"></script>
</head><body>
<p>Connection: <span id="status">connecting</span></p>
<ol id="messages"></ol>
<script>
window.shown = []; window.metas = []; window.failures = []; window.opens = 0; window.closes = 0;
var client = window.client = new realtimeMagic.Client(%s, {minDelay: 100, maxDelay: 400});
var channel = %s;
client.subscribe(channel, function (message, channel, meta) {
  var item = document.createElement('li');
  item.textContent = String(message);
  document.getElementById('messages').appendChild(item);
  window.shown.push(message);
  window.metas.push(meta || null);
});
client.onrecoveryfailed = function (channel, reply) {
  window.failures.push({channel: channel, reply: reply});
  document.getElementById('status').textContent = 'recovery failed: reload';
};
client.onopen = function () {
  window.opens += 1;
  document.getElementById('status').textContent = 'connected';
};
client.onclose = function () { window.closes += 1; };
</script></body></html>
""" % ("<script src=\"/sockjs.min.js\"></script>\n" if sockjs else "", server_url,
       json.dumps(server_url + "/pubsub"), json.dumps(channel))).encode("utf-8")


class Frames:
    """The protocol messages the page sent, per WebSocket connection, and its console."""

    def __init__(self, page) -> None:
        self.connections: List[List[Any]] = []
        self.console: List[str] = []
        page.on("websocket", self._websocket)
        page.on("console", lambda message: self.console.append(
            "%s: %s" % (message.type, message.text)))
        page.on("pageerror", lambda error: self.console.append("pageerror: %s" % error))

    def _websocket(self, ws) -> None:
        sent: List[Any] = []
        self.connections.append(sent)
        ws.on("framesent", lambda payload: sent.extend(self._messages(payload)))

    @staticmethod
    def _messages(frame: Any) -> List[Any]:
        try:
            value = json.loads(frame)
        except (TypeError, ValueError):
            return [frame]
        if isinstance(value, list):  # SockJS framing: an array of messages
            return [json.loads(item) for item in value]
        return [value]

    def opened(self) -> List[List[Any]]:
        """The connections that sent something (failed attempts send nothing)."""
        return [sent for sent in self.connections if sent]

    def subscribes(self, index: int) -> List[Dict]:
        return [m for m in self.opened()[index]
                if isinstance(m, dict) and m.get("action") == "subscribe"]

    def __repr__(self) -> str:
        return "sent: %s\nconsole: %s" % ([c[:5] for c in self.opened()], self.console[-20:])


def wait_for(page, expression: str, frames: Frames, what: str, timeout: int = WAIT_MS) -> None:
    try:
        page.wait_for_function(expression, timeout=timeout)
    except Exception as error:  # playwright's TimeoutError
        state = page.evaluate("({shown: window.shown, failures: window.failures, opens:"
                              " window.opens, closes: window.closes, connected:"
                              " client.connected, recoveryFailed: client.recoveryFailed})")
        raise AssertionError("%s: %s\npage state: %s\n%s" % (what, error, state, frames))


@pytest.fixture(scope="module")
def static_server():
    files: Dict[str, Any] = {}
    if os.path.isfile(SOCKJS_MIN_JS):
        files["/sockjs.min.js"] = (JAVASCRIPT, read(SOCKJS_MIN_JS))
    with StaticServer(files) as server:
        yield server


@pytest.fixture
def channel():
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
    name = "hist:%d-%s" % (os.getpid(), uuid.uuid4().hex[:10])
    yield name
    try:
        delete_channel_keys(name)
    except Exception:
        pass


def open_page(browser, static_server, url: str, channel: str, sockjs: bool):
    path = "/history-%s-%s.html" % (uuid.uuid4().hex[:8], "sockjs" if sockjs else "plain")
    static_server.files[path] = (HTML, page_html(url, channel, sockjs))
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    frames = Frames(page)
    page.goto(static_server.url + path)
    return context, page, frames


def shown_count(count: int) -> str:
    return "window.shown.length >= %d" % count


@pytest.mark.parametrize("variant", ["websocket", "sockjs"])
def test_recovers_what_was_published_while_away(browser, static_server, channel, tmp_path,
                                                variant):
    sockjs = variant == "sockjs"
    if sockjs:
        need(os.path.isfile(SOCKJS_MIN_JS),
             "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")
    port, api_port = free_port(), free_port()
    other_port, other_api_port = free_port(), free_port()
    url = "http://127.0.0.1:%d" % port
    context = None
    try:
        with run_process(rtm_serve(port, api_port), port, tmp_path, name="rtm-serve-1"):
            context, page, frames = open_page(browser, static_server, url, channel, sockjs)
            wait_for(page, "window.opens === 1", frames, "no connection")
            # The client's subscribe carries an id; its reply ("subscribed") means the
            # subscription is in place: wait for its position before publishing.
            wait_for(page, "client.position(%s) !== null || window.shown.length > 0"
                     % json.dumps(channel), frames,
                     "no position from the subscribed reply (is history on for 'hist'?)")
            for number in range(1, BEFORE + 1):
                api_publish(api_port, channel, "message %d" % number)
            wait_for(page, shown_count(BEFORE), frames, "the first messages did not show")
            position = page.evaluate("client.position(%s)" % json.dumps(channel))
        # The first server is stopped (SIGTERM, by run_process).
        wait_for(page, "!client.connected && window.closes >= 1", frames,
                 "the page did not see the server go")

        with run_process(rtm_serve(other_port, other_api_port), other_port, tmp_path,
                         name="rtm-serve-other"):
            for number in range(BEFORE + 1, BEFORE + AWAY + 1):
                api_publish(other_api_port, channel, "message %d" % number)
            wait_for_offset(channel, position["offset"] + AWAY)
        assert page.evaluate("window.shown.length") == BEFORE, "the page was away"

        with run_process(rtm_serve(port, api_port), port, tmp_path,
                         name="rtm-serve-1-again") as again:
            wait_for(page, "window.opens === 2", frames, "the page did not reconnect")
            wait_for(page, shown_count(BEFORE + AWAY), frames,
                     "the messages published while away did not show")
            api_publish(api_port, channel, "live after the restart")
            wait_for(page, shown_count(BEFORE + AWAY + 1), frames,
                     "the live message after the restart did not show")
            page.wait_for_timeout(300)  # a duplicate would arrive by now
            shown = page.evaluate("window.shown")
            items = page.locator("#messages li").all_text_contents()
            metas = page.evaluate("window.metas")
            failures = page.evaluate("window.failures")
            recovery_failed = page.evaluate("client.recoveryFailed")
            closes = page.evaluate("window.closes")
            server_log = again.log()
    finally:
        if context is not None:
            context.close()

    expected = ["message %d" % n for n in range(1, BEFORE + AWAY + 1)] + [
        "live after the restart"]
    assert shown == expected, "%s\n%s\n%s" % (shown, frames, server_log)
    assert items == expected, items
    assert failures == [] and recovery_failed == {}, (failures, recovery_failed)
    offsets = [meta["offset"] for meta in metas]
    assert offsets == list(range(offsets[0], offsets[0] + len(expected))), metas
    assert len({meta["epoch"] for meta in metas}) == 1, metas
    # Over the wire: a plain subscribe (with an id) first, then one with since = message 5's
    # position on the new connection.
    assert len(frames.opened()) == 2, frames
    assert closes >= 2, "failed attempts while the server was away: %s" % closes
    first, second = frames.subscribes(0), frames.subscribes(1)
    assert len(first) == 1 and "since" not in first[0]["payload"] and "id" in first[0], first
    assert len(second) == 1 and second[0]["payload"]["since"] == position, (second, position)
    assert position["offset"] == offsets[BEFORE - 1], (position, offsets)


def test_recovery_fails_when_the_history_is_gone(browser, static_server, channel, tmp_path):
    port, api_port = free_port(), free_port()
    url = "http://127.0.0.1:%d" % port
    context = None
    try:
        with run_process(rtm_serve(port, api_port), port, tmp_path, name="rtm-serve-1"):
            context, page, frames = open_page(browser, static_server, url, channel, False)
            wait_for(page, "window.opens === 1 && client.position(%s) !== null"
                     % json.dumps(channel), frames, "no connection or no position")
            for number in range(1, 4):
                api_publish(api_port, channel, "old %d" % number)
            wait_for(page, shown_count(3), frames, "the first messages did not show")
        wait_for(page, "!client.connected", frames, "the page did not see the server go")
        deleted = delete_channel_keys(channel)
        assert deleted >= 1, "no Redis key of %s to delete" % channel
        assert channel_keys(channel) == []

        with run_process(rtm_serve(port, api_port), port, tmp_path, name="rtm-serve-1-again"):
            wait_for(page, "window.opens === 2", frames, "the page did not reconnect")
            wait_for(page, "window.failures.length >= 1", frames,
                     "onrecoveryfailed was not called")
            recovery_failed = page.evaluate("client.recoveryFailed")
            failures = page.evaluate("window.failures")
            status = page.locator("#status").text_content()
            # Live messages of the new history: offsets start again, and still show.
            api_publish(api_port, channel, "new 1")
            api_publish(api_port, channel, "new 2")
            wait_for(page, shown_count(5), frames, "the live messages did not show")
            page.wait_for_timeout(200)
            shown = page.evaluate("window.shown")
    finally:
        if context is not None:
            context.close()

    assert recovery_failed == {channel: True}, recovery_failed
    assert len(failures) == 1, failures
    assert failures[0]["channel"] == channel
    assert failures[0]["reply"]["recovered"] is False, failures
    assert status == "recovery failed: reload", status
    assert shown == ["old 1", "old 2", "old 3", "new 1", "new 2"], shown
    second = frames.subscribes(1)
    assert len(second) == 1 and second[0]["payload"]["since"]["offset"] >= 3, second


def test_recovers_on_a_channel_that_had_no_message_yet(browser, static_server, channel,
                                                       tmp_path):
    """A page that saw no message yet has the position of its "subscribed" reply (offset 0, and
    the epoch "" of a channel with no history yet) and still gets what was published while it
    was away."""
    port, api_port = free_port(), free_port()
    other_port, other_api_port = free_port(), free_port()
    url = "http://127.0.0.1:%d" % port
    context = None
    try:
        with run_process(rtm_serve(port, api_port), port, tmp_path, name="rtm-serve-1"):
            context, page, frames = open_page(browser, static_server, url, channel, False)
            wait_for(page, "window.opens === 1 && client.position(%s) !== null"
                     % json.dumps(channel), frames, "no position from the subscribed reply")
            position = page.evaluate("client.position(%s)" % json.dumps(channel))
        wait_for(page, "!client.connected", frames, "the page did not see the server go")
        with run_process(rtm_serve(other_port, other_api_port), other_port, tmp_path,
                         name="rtm-serve-other"):
            for number in range(1, 4):
                api_publish(other_api_port, channel, "away %d" % number)
            wait_for_offset(channel, 3)
        with run_process(rtm_serve(port, api_port), port, tmp_path, name="rtm-serve-1-again"):
            wait_for(page, "window.opens === 2", frames, "the page did not reconnect")
            wait_for(page, shown_count(3) + " || window.failures.length > 0", frames,
                     "the messages published while away did not show")
            api_publish(api_port, channel, "live")
            wait_for(page, shown_count(4), frames, "the live message did not show")
            page.wait_for_timeout(200)
            shown = page.evaluate("window.shown")
            failures = page.evaluate("window.failures")
    finally:
        if context is not None:
            context.close()

    assert position == {"offset": 0, "epoch": position["epoch"]}, position
    assert failures == [], "recovery from the subscribed reply's position failed: %s" % failures
    assert shown == ["away 1", "away 2", "away 3", "live"], shown
    assert frames.subscribes(1)[0]["payload"]["since"] == position, frames
