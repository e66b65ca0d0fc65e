"""What the monitor tests share: deliveries, waiting until something arrives, timed round trips."""
import json
import queue
import time
import uuid
from typing import Any, Callable, List, Tuple


def delivery(channel: str, message: Any) -> dict:
    return {"action": "message", "payload": {"channel": channel, "message": message}}


def is_delivery(message: Any) -> bool:
    return isinstance(message, dict) and message.get("action") == "message"


def unique(prefix: str) -> str:
    """A name no other test run uses (the database and Redis are shared)."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def first_delivery(send: Callable[[int], None], client, expected: Callable[[int], Any],
                   started: float, timeout: float = 15.0, every: float = 0.1) -> Tuple[float, int]:
    """``send(n)`` with n = 0, 1, 2... every ``every`` s until ``client`` receives
    ``expected(n)`` for one of them: (seconds since ``started``, that n)."""
    wanted = {}
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        wanted[_key(expected(n))] = n
        send(n)
        n += 1
        try:
            message = client.expect(lambda m: _key(m) in wanted, timeout=every)
        except queue.Empty:
            continue
        return time.monotonic() - started, wanted[_key(message)]
    raise AssertionError("nothing arrived within %.0f s (%d sent)" % (timeout, n))


def _key(message: Any) -> str:
    return json.dumps(message, sort_keys=True)


def round_trips(sender, receiver, channel: str, count: int) -> List[float]:
    """Seconds for each of ``count`` publish -> delivery round trips between two clients."""
    times = []
    for n in range(count):
        started = time.monotonic()
        sender.publish(channel, n)
        assert receiver.expect(is_delivery, timeout=5) == delivery(channel, n)
        times.append(time.monotonic() - started)
    return times


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               every: float = 0.05) -> Any:
    """The first true value of ``condition()``, polled, or AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("%s: not within %.0f s" % (what, timeout))
