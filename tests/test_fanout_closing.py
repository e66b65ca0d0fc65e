"""A publish to 1,000 subscribers of which 500 are too slow (their outbox overflows: 4001): inside
the loop over the recipients nothing calls the broker or runs a close hook; both happen after
it (STYLE.md: a callback from a lower layer records, the work runs after the loop).

In-process, with real xhr-polling sessions over real sockets; an instrumented broker and a
closer record whether the loop over the recipients was running when they were called (the
test tracks the loop itself, by wrapping each delivery)."""
import http.client
import json
import uuid

import gevent
import pytest

from inprocess import in_thread, serving
from realtimemagic import RealTimeMagic
from realtimemagic.brokers.memory import MemoryBroker
from realtimemagic.pubsub.connection import Connection

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SUBSCRIBERS = 1000
SLOW = 500
OUTBOX = 5  # outbox_max_frames


class Loop:
    """Whether the test's publish is between its first and its last delivery."""

    def __init__(self, channel):
        self.channel = channel
        self.delivered = 0
        self.inside = False


class RecordingBroker(MemoryBroker):
    """The in-process broker, recording each subscribe/unsubscribe and whether the fan-out
    loop was running then."""

    def __init__(self, deliver, loop):
        super().__init__(deliver)
        self.loop = loop
        self.calls = []

    def subscribe(self, channel):
        self.calls.append(("subscribe", channel, self.loop.inside))

    def unsubscribe(self, channel):
        self.calls.append(("unsubscribe", channel, self.loop.inside))


def open_sessions(port, tag):
    """1,000 xhr-polling sessions: the first 500 subscribed to fill, wide and a channel of
    their own, the others to wide only.  None polls again: their outboxes fill up."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(path, body=""):
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        return response.status, response.read().decode()

    for number in range(SUBSCRIBERS):
        path = "/pubsub/000/%s-%d/" % (tag, number)
        assert post(path + "xhr") == (200, "o\n")
        channels = ["wide-" + tag]
        if number < SLOW:
            channels += ["fill-" + tag, "own-%s-%d" % (tag, number)]
        requests = [json.dumps({"action": "subscribe", "payload": {"channel": channel}})
                    for channel in channels]
        assert post(path + "xhr_send", json.dumps(requests))[0] == 204
    connection.close()


def test_closing_slow_subscribers_waits_until_the_fanout_is_over(monkeypatch):
    tag = uuid.uuid4().hex[:8]
    wide = "wide-" + tag
    loop = Loop(wide)
    rtm = RealTimeMagic(outbox_max_frames=OUTBOX, disconnect_delay=120, rate_limit=10000,
                        max_subscriptions=10)
    rtm.broker = RecordingBroker(rtm._deliver, loop)
    closers = []
    rtm.closers.append(lambda conn: closers.append((conn.session_id, loop.inside)))

    deliver = Connection.deliver

    def tracked(conn, message):
        if getattr(message, "channel", None) == loop.channel:
            loop.delivered += 1
            loop.inside = True
        deliver(conn, message)
        if loop.delivered == SUBSCRIBERS:
            loop.inside = False

    monkeypatch.setattr(Connection, "deliver", tracked)

    with serving(rtm) as server:
        in_thread(open_sessions, server.address[1], tag)
        with gevent.Timeout(30):
            while len(rtm.channels.subscribers(wide)) < SUBSCRIBERS or len(
                    rtm.channels.subscribers("own-%s-%d" % (tag, SLOW - 1))) < 1:
                gevent.sleep(0.05)
        for number in range(OUTBOX):  # the slow ones' outboxes are full now
            rtm.publish("fill-" + tag, number)
        calls_before = len(rtm.broker.calls)

        rtm.publish(wide, "the one too many")  # runs here and now, in this greenlet

        assert loop.delivered == SUBSCRIBERS and not loop.inside
        during = [call for call in rtm.broker.calls[calls_before:] if call[2]]
        assert during == [], "broker called inside the fan-out: %s" % during[:5]
        unsubscribed = {channel for kind, channel, _ in rtm.broker.calls[calls_before:]
                        if kind == "unsubscribe"}
        assert unsubscribed == {"own-%s-%d" % (tag, number) for number in range(SLOW)} | {
            "fill-" + tag}, "each slow subscriber's last channel was left, after the loop"
        with gevent.Timeout(10):
            while len(closers) < SLOW:
                gevent.sleep(0.05)
        assert not any(inside for _, inside in closers), "a closer ran inside the fan-out"
        sessions = {session.key: session for session in rtm.app.endpoints[0].sessions}
        slow = ["%s-%d" % (tag, number) for number in range(SLOW)]
        assert {sessions[key].close_code for key in slow} == {4001}
        assert sorted(session_id for session_id, _ in closers) == sorted(slow)
        assert all(sessions["%s-%d" % (tag, number)].is_open
                   for number in range(SLOW, SUBSCRIBERS))
        assert len(rtm.channels.subscribers(wide)) == SUBSCRIBERS - SLOW
