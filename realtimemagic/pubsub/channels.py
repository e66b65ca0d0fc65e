"""Who is subscribed to what, and the fan-out of a publish: encoded once, the same object queued
to every subscriber.  No I/O and no gevent: subscribers are anything with ``deliver(message)``.

A delivery may close a subscriber that is too slow (its outbox is full).  What that sets off
(unsubscribing, which may reach the broker, and the application's close hooks) must not run in
the middle of the loop over the recipients: the closing side hands it to :meth:`after_fanout`,
which keeps it until the loop is over.
"""
import logging
from typing import Any, Callable, Dict, Iterable, List, Optional

from ..sockjs.frames import OutgoingMessage
from . import protocol

log = logging.getLogger(__name__)


class Delivery(OutgoingMessage):
    """A published message on its way to subscribers: its channel and, on a history channel,
    its offset (used to join a replayed history to the live stream without a duplicate)."""

    __slots__ = ("channel", "offset")

    def __init__(self, text: str, channel: str, offset: Optional[int] = None) -> None:
        super().__init__(text)
        self.channel = channel
        self.offset = offset


class ChannelRegistry:
    """Channels by name, each an insertion-ordered set of subscribers.

    ``on_first(channel)`` and ``on_last(channel)`` are called when a channel gets its first local
    subscriber and loses its last one (a broker subscribes only to channels with local
    subscribers).
    """

    def __init__(self, on_first: Optional[Callable[[str], None]] = None,
                 on_last: Optional[Callable[[str], None]] = None) -> None:
        self._channels: Dict[str, Dict[Any, None]] = {}
        self.on_first = on_first
        self.on_last = on_last
        self._after: Optional[List[Callable[[], None]]] = None  # a list while fanning out

    def after_fanout(self, work: Callable[[], None]) -> None:
        """Run ``work`` now or, inside a fan-out, once the loop is over."""
        if self._after is None:
            work()
        else:
            self._after.append(work)

    def subscribe(self, channel: str, subscriber: Any) -> bool:
        """True if ``subscriber`` was not subscribed yet."""
        subscribers = self._channels.get(channel)
        if subscribers is None:
            subscribers = self._channels[channel] = {}
            if self.on_first is not None:
                self.on_first(channel)
        if subscriber in subscribers:
            return False
        subscribers[subscriber] = None
        return True

    def unsubscribe(self, channel: str, subscriber: Any) -> bool:
        """True if ``subscriber`` was subscribed."""
        subscribers = self._channels.get(channel)
        if subscribers is None or subscriber not in subscribers:
            return False
        del subscribers[subscriber]
        if not subscribers:
            del self._channels[channel]
            if self.on_last is not None:
                self.on_last(channel)
        return True

    def unsubscribe_all(self, subscriber: Any, channels: Iterable[str]) -> None:
        for channel in list(channels):
            self.unsubscribe(channel, subscriber)

    def subscribers(self, channel: str) -> Iterable[Any]:
        return tuple(self._channels.get(channel, ()))

    def publish(self, channel: str, message: Any, action: str = "message",
                extra: Optional[Dict[str, Any]] = None) -> int:
        """Deliver ``message`` (for ``join``/``leave``: the client's description) to the
        channel's subscribers; the number reached.  ``extra`` (offset and epoch on history
        channels) goes into the payload."""
        subscribers = self._channels.get(channel)
        if not subscribers:
            return 0
        payload = {"channel": channel, "client" if action != "message" else "message": message}
        if extra:
            payload.update(extra)
        outgoing = Delivery(protocol.encode({"action": action, "payload": payload}), channel,
                            extra.get("offset") if extra else None)
        # A snapshot: a delivery may close a slow subscriber, which unsubscribes it later.
        recipients = tuple(subscribers)
        if self._after is not None:  # a publish from inside a fan-out: the outer one waits
            for subscriber in recipients:
                subscriber.deliver(outgoing)
            return len(recipients)
        after: List[Callable[[], None]] = []
        self._after = after
        try:
            for subscriber in recipients:
                subscriber.deliver(outgoing)
        finally:
            self._after = None
        for work in after:
            try:
                work()
            except Exception:  # one closing subscriber's trouble is not the next one's
                log.exception("work after a fan-out on %r failed", channel)
        return len(recipients)

    def __contains__(self, channel: str) -> bool:
        return channel in self._channels

    def __len__(self) -> int:
        return len(self._channels)
