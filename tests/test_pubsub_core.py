"""Level 1: the pub/sub protocol, the channel registry and the rate limiter, without I/O."""
import ast
import json
import os

import pytest

from realtimemagic.exceptions import ProtocolError
from realtimemagic.pubsub import protocol
from realtimemagic.pubsub.channels import ChannelRegistry
from realtimemagic.pubsub.ratelimit import TokenBucket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Subscriber:
    def __init__(self):
        self.got = []

    def deliver(self, message):
        self.got.append(message)


def test_publish_encodes_once_and_fans_out_the_same_object():
    registry = ChannelRegistry()
    subscribers = [Subscriber() for _ in range(50)]
    for subscriber in subscribers:
        registry.subscribe("c", subscriber)
    assert registry.publish("c", {"x": 1}) == 50
    first = subscribers[0].got[0]
    assert all(s.got == [first] for s in subscribers), "one object for every recipient"
    assert json.loads(first.text) == {"action": "message",
                                      "payload": {"channel": "c", "message": {"x": 1}}}


def test_registry_tells_the_broker_about_first_and_last_subscribers():
    events = []
    registry = ChannelRegistry(on_first=lambda c: events.append(("first", c)),
                               on_last=lambda c: events.append(("last", c)))
    a, b = Subscriber(), Subscriber()
    assert registry.subscribe("c", a) and registry.subscribe("c", b)
    assert not registry.subscribe("c", a)
    registry.unsubscribe("c", a)
    assert "c" in registry
    registry.unsubscribe_all(b, ["c", "other"])
    assert "c" not in registry and len(registry) == 0
    assert events == [("first", "c"), ("last", "c")]


def test_a_subscriber_leaving_during_a_publish_does_not_break_it():
    registry = ChannelRegistry()

    class Leaver(Subscriber):
        def deliver(self, message):
            super().deliver(message)
            registry.unsubscribe("c", self)

    subscribers = [Leaver(), Subscriber(), Leaver()]
    for subscriber in subscribers:
        registry.subscribe("c", subscriber)
    assert registry.publish("c", "m") == 3
    assert all(len(s.got) == 1 for s in subscribers)
    assert registry.subscribers("c") == (subscribers[1],)


@pytest.mark.parametrize("channel,ok", [
    ("a", True), ("chat:room-1", True), ("x" * 200, True), ("\u00e9t\u00e9", True),
    ("", False), ("x" * 201, False), ("a b", False), ("a\tb", False), ("a\x00", False),
    ("a\u3000b", False), (None, False), (3, False),
])
def test_channel_names(channel, ok):
    assert (protocol.channel_error(channel) is None) is ok


def test_namespace():
    assert protocol.namespace("chat:room1") == "chat"
    assert protocol.namespace("a:b:c") == "a"
    assert protocol.namespace("plain") is None


def test_parse_request_and_its_errors():
    request = protocol.parse_request({"action": "publish", "id": "x",
                                      "payload": {"channel": "c", "message": None}})
    assert request == protocol.Request("publish", "c", None, "x")
    with pytest.raises(ProtocolError) as error:
        protocol.parse_request({"action": "publish", "id": 5, "payload": {"channel": "c"}})
    assert (error.value.code, error.value.channel, error.value.request_id) == (
        "bad_request", "c", 5)
    with pytest.raises(ProtocolError):
        protocol.parse_request({"action": "subscribe", "id": True, "payload": {"channel": "c"}})


def test_parse_message_keeps_text_that_is_not_json():
    assert protocol.parse_message('{"a": 1, "id": 3}') == ({"a": 1, "id": 3}, None, 3)
    assert protocol.parse_message('"s"') == ("s", None, None)
    assert protocol.parse_message("plain") == ("plain", "message is not JSON", None)
    assert protocol.parse_message("[" * 100000) == (
        "[" * 100000, "message is not JSON: nested too deeply", None)


@pytest.mark.parametrize("text,why", [
    ("NaN", "NaN is not a JSON value"),
    ('{"a": [1, -Infinity]}', "-Infinity is not a JSON value"),
    ('{"a": Infinity, "id": "x"}', "Infinity is not a JSON value"),
    ("[1e999]", "number 1e999 is out of range"),
    ('{"action": "publish", "id": 7, "payload": {"channel": "c", "message": "a\\ud800b"}}',
     "lone surrogate"),
    ('{"\\udc00": 1}', "lone surrogate"),  # in a key
    ('[[[{"k": ["\\ud83d"]}]]]', "lone surrogate"),  # deep, a high surrogate without its pair
    ('["\\ude00\\ud83d"]', "lone surrogate"),  # a pair in the wrong order
])
def test_parse_message_refuses_what_rfc_8259_does_not_allow(text, why):
    """Text that Python's json reads but that is not JSON, or not valid Unicode: the text as
    sent, the reason, and the id when the request had one (the error reply carries it)."""
    message, problem, request_id = protocol.parse_message(text)
    assert message == text and why in problem and problem.startswith("message is not JSON")
    assert request_id == (7 if '"id": 7' in text else "x" if '"id": "x"' in text else None)


def test_parse_message_takes_surrogate_pairs_and_escaped_backslashes():
    assert protocol.parse_message('["\\ud83d\\ude00", "\\\\ud800", 1.5e300]') == (
        ["\U0001F600", "\\ud800", 1.5e300], None, None)


def test_check_text_refuses_a_lone_surrogate_and_measures_in_utf8():
    protocol.check_text("caf\u00e9", 5)
    with pytest.raises(ProtocolError) as error:
        protocol.check_text("caf\u00e9", 4)
    assert error.value.code == "too_large"
    with pytest.raises(ProtocolError) as error:
        protocol.check_text("a\ud800b", 100)
    assert error.value.code == "bad_request" and "surrogate" in error.value.reason
    with pytest.raises(ProtocolError) as error:
        protocol.check_text("\ud800" * 101, 100)
    assert error.value.code == "too_large"


@pytest.mark.parametrize("value", [float("nan"), [float("inf")], {"a": -float("inf")},
                                   "a\ud800b", {"\udfff": 1}, [[["\ud83d"]]]])
def test_encode_refuses_what_is_not_json(value):
    with pytest.raises(ValueError):
        protocol.encode(value)
    with pytest.raises(ValueError):
        protocol.check_value(value)


def test_answers():
    assert protocol.error("limit", "too many", "c", 3) == {
        "action": "error", "payload": {"code": "limit", "reason": "too many", "channel": "c"},
        "id": 3}
    assert protocol.error("internal", "x") == {"action": "error",
                                               "payload": {"code": "internal", "reason": "x"}}
    assert protocol.reply("unsubscribe", "c", "i") == {
        "action": "unsubscribed", "payload": {"channel": "c"}, "id": "i"}


def test_token_bucket():
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert all(bucket.take(0.0) for _ in range(20))
    assert not bucket.take(0.0) and bucket.refused_in_a_row == 1
    assert not bucket.take(0.05)
    assert bucket.take(0.2) and bucket.refused_in_a_row == 0
    assert sum(bucket.take(10.0) for _ in range(100)) == 20


def test_source_stays_python_3_9_compatible():
    """PyPy 3 (Debian's is 3.9) runs the server unchanged."""
    for folder in ("realtimemagic", "examples"):
        for directory, _, names in os.walk(os.path.join(ROOT, folder)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    with open(path, encoding="utf-8") as source:
                        ast.parse(source.read(), path, feature_version=(3, 9))
