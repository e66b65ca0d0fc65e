"""One greenlet per message from a bounded pool: a connection's messages reach the hooks in
order while other connections' hooks wait on I/O, and its pub/sub requests complete in order."""
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

BLOCK_SECONDS = 8


@pytest.fixture(scope="module")
def ordering(serve_module):
    return serve_module("testapps:ordering")


def test_a_thousand_messages_in_order_while_other_hooks_block(ordering, connect):
    blockers = [connect(ordering) for _ in range(3)]
    for blocker in blockers:
        blocker.send({"block": BLOCK_SECONDS})
    started = time.monotonic()
    client = connect(ordering)
    for n in range(1000):
        client.send({"n": n})
    received = [client.recv(timeout=BLOCK_SECONDS)["n"] for _ in range(1000)]
    elapsed = time.monotonic() - started
    assert received == list(range(1000))
    assert elapsed < BLOCK_SECONDS, "the blocked hooks held up another connection"
    for blocker in blockers:
        assert blocker.recv(timeout=BLOCK_SECONDS + 5) == {"unblocked": True}


def test_hooks_of_one_connection_overlap_when_they_wait(ordering, connect):
    """The seed's 'slow' promise holds within one connection too: a hook waiting on I/O does not
    hold up the next message's hook (which is still called after it)."""
    client = connect(ordering)
    started = time.monotonic()
    client.send({"block": 1})
    client.send({"block": 1})
    client.send({"block": 1})
    for _ in range(3):
        assert client.recv(timeout=5) == {"unblocked": True}
    assert time.monotonic() - started < 2.5


def test_subscribe_completes_before_the_next_publish_even_when_its_check_waits(ordering,
                                                                               connect):
    client = connect(ordering)
    client.subscribe("slowauth:room")  # its authenticator sleeps 0.3 s
    client.publish("slowauth:room", "mine", request_id="p")
    answers = [client.recv(), client.recv()]
    assert {"action": "message",
            "payload": {"channel": "slowauth:room", "message": "mine"}} in answers
