"""The pub/sub wire protocol (SPEC section 3) over a real connection, on both a WebSocket and a
polling transport: delivery, replies, every error code, and the connection living on."""
import time

import pytest

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def plain(serve_module):
    return serve_module("realtimemagic.magic:RealTimeMagic")


@pytest.fixture(scope="module")
def faulty(serve_module):
    return serve_module("testapps:faulty")


def delivery(channel, message):
    return {"action": "message", "payload": {"channel": channel, "message": message}}


def still_works(client, channel="alive"):
    client.subscribed(channel)
    client.publish(channel, "ping")
    assert client.expect(lambda m: m.get("action") == "message") == delivery(channel, "ping")
    return True


def error_of(client):
    return client.expect(lambda m: m.get("action") == "error")


def test_delivery_reaches_subscribers_only_and_the_publisher_too(plain, connect):
    subscriber, publisher, bystander = connect(plain), connect(plain), connect(plain)
    subscriber.subscribed("news")
    publisher.subscribed("news")
    bystander.subscribed("other")
    publisher.publish("news", {"headline": "caf\u00e9 \U0001F600", "n": [1, 2]})
    expected = delivery("news", {"headline": "caf\u00e9 \U0001F600", "n": [1, 2]})
    assert subscriber.recv() == expected
    assert publisher.recv() == expected
    assert bystander.nothing_within(0.5)


def test_unsubscribe_stops_delivery(plain, connect):
    subscriber, publisher = connect(plain), connect(plain)
    subscriber.subscribed("c1")
    subscriber.unsubscribe("c1", request_id=7)
    assert subscriber.recv() == {"action": "unsubscribed", "payload": {"channel": "c1"}, "id": 7}
    publisher.publish("c1", "nobody listens")
    assert subscriber.nothing_within(0.5)


def test_replies_echo_the_id_and_come_only_when_asked(plain, connect):
    client = connect(plain)
    client.subscribe("c2")  # no id: no reply
    client.subscribe("c2", request_id="s")
    assert client.recv() == {"action": "subscribed", "payload": {"channel": "c2"}, "id": "s"}
    client.publish("c2", 1, request_id=99)
    replies = [client.recv(), client.recv()]
    assert delivery("c2", 1) in replies
    assert {"action": "published", "payload": {"channel": "c2"}, "id": 99} in replies


@pytest.mark.parametrize("sent,reason_part", [
    ("this is not JSON", "not JSON"),
    ({"action": "dance", "payload": {}, "id": 1}, "unknown action"),
    ({"action": "subscribe", "id": 2}, "payload"),
    ({"action": "subscribe", "payload": {"channel": ""}, "id": 3}, "channel"),
    ({"action": "subscribe", "payload": {"channel": "has space"}, "id": 4}, "channel"),
    ({"action": "subscribe", "payload": {"channel": "x" * 201}, "id": 5}, "channel"),
    ({"action": "subscribe", "payload": {"channel": 12}, "id": 6}, "channel"),
    ({"action": "publish", "payload": {"channel": "c"}, "id": 7}, "message"),
    ({"action": "subscribe", "payload": {"channel": "c"}, "id": [1]}, "id"),
    ([1, 2, 3], "not a pub/sub request"),
])
def test_bad_request(plain, connect, sent, reason_part):
    client = connect(plain)
    if isinstance(sent, str):
        client.send_text(sent)
    else:
        client.send(sent)
    error = error_of(client)
    assert error["payload"]["code"] == "bad_request"
    assert reason_part in error["payload"]["reason"]
    if isinstance(sent, dict) and isinstance(sent.get("id"), int):
        assert error["id"] == sent["id"]
    assert still_works(client)


def test_too_large(faulty, connect):
    client = connect(faulty)
    client.publish("big", "x" * 2000, request_id="big")
    error = error_of(client)
    assert error["payload"]["code"] == "too_large"
    assert still_works(client)


def test_limit_on_subscriptions(faulty, connect):
    client = connect(faulty)
    for channel in ("a1", "a2", "a3"):
        client.subscribed(channel)
    client.subscribe("a4", request_id="one-too-many")
    error = error_of(client)
    assert error["payload"] == {"code": "limit", "reason": error["payload"]["reason"],
                                "channel": "a4"}
    assert error["id"] == "one-too-many"
    client.unsubscribe("a3")
    assert still_works(client, "a5")


def test_rate_limited_then_closed_if_it_goes_on(faulty, connect):
    client = connect(faulty)  # faulty allows 20 messages a second, bursts of 40
    # 60 at once: refused after 40, and not yet closed (that takes 40 refused in a row).
    client.send_many([{"action": "publish", "payload": {"channel": "flood", "message": n}}
                      for n in range(60)])
    error = error_of(client)
    assert error["payload"]["code"] == "rate_limited"
    time.sleep(2.5)  # the bucket refills: the connection is usable again
    assert still_works(client)
    try:  # a client that does not slow down is closed
        client.send_many([{"action": "publish", "payload": {"channel": "flood", "message": n}}
                          for n in range(200)])
    except Exception:
        pass  # the close came while sending
    assert client.wait_closed(10) == (4029, "Rate limit exceeded")


def test_internal_error_when_a_hook_raises(faulty, connect):
    client = connect(faulty)
    client.send({"do": "something"})  # reaches the faulty app's receiver, which passes
    client.send("explode")
    error = error_of(client)
    assert error["payload"]["code"] == "internal"
    assert "boom" not in error["payload"]["reason"], "tracebacks stay in the server log"
    assert still_works(client)
    client.send("refuse")
    error = error_of(client)
    assert error["payload"] == {"code": "bad_request", "reason": "refused by the application"}
    assert still_works(client)


def test_openings_and_closers_run_once(faulty, connect):
    watcher = connect(faulty)
    watcher.subscribed("goodbyes")
    client = connect(faulty)
    hello = client.expect(lambda m: "hello" in m)
    assert hello["transport"] == ("websocket-raw" if client.transport == "websocket"
                                  else "xhr")
    client.close()
    ours = delivery("goodbyes", hello["hello"])  # other tests' sessions say goodbye too
    assert watcher.expect(lambda m: m == ours, timeout=15)
    with pytest.raises(Exception):
        watcher.expect(lambda m: m == ours, timeout=1.5)


def test_plain_messages_without_a_receiver_get_bad_request(plain, connect):
    client = connect(plain)
    client.send("just text")
    assert error_of(client)["payload"]["code"] == "bad_request"
    assert still_works(client)
