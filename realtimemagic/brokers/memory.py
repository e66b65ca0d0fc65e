"""The in-process broker: one process, nothing to connect to.  History and presence live in
this process (lost when it stops)."""
import time
from typing import Any, Callable, List

from ..pubsub.history import MemoryHistory, Snapshot
from ..pubsub.presence import MemoryPresence


class MemoryBroker:
    """Publishing is delivering: every subscriber lives in this process."""

    url = "memory://"
    url_for_logs = url
    shared = False  # other processes do not see what is published here
    keeps_history = True

    def __init__(self, deliver: Callable[..., int]) -> None:
        self.deliver = deliver
        self.history = MemoryHistory()
        self.presence = MemoryPresence()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def publish(self, channel: str, message: Any, options: Any = None) -> None:
        if options is not None and options.history:
            offset, epoch = self.history.append(channel, message, options.history_size,
                                                options.history_ttl, time.time())
            self.deliver(channel, message, "message", {"offset": offset, "epoch": epoch})
        else:
            self.deliver(channel, message)

    def publish_event(self, channel: str, action: str, client: Any) -> None:
        self.deliver(channel, client, action)

    def subscribe(self, channel: str) -> None:
        """Called when ``channel`` gets its first local subscriber."""

    def unsubscribe(self, channel: str) -> None:
        """Called when ``channel`` loses its last local subscriber."""

    def wait_subscribed(self, channel: str, timeout: float) -> bool:
        return True

    def snapshot(self, channel: str, options: Any) -> Snapshot:
        return self.history.snapshot(channel, options.history_ttl, time.time())

    def presence_add(self, channel: str, key: str, info: Any) -> None:
        self.presence.add(channel, key, info)

    def presence_remove(self, channel: str, key: str) -> None:
        self.presence.remove(channel, key)

    def presence_members(self, channel: str) -> List[Any]:
        return self.presence.members(channel)

    def maintain(self, ttl_of: Callable[[str], float]) -> None:
        """Periodic upkeep: forget expired histories."""
        self.history.sweep(ttl_of, time.time())

    def status(self) -> dict:
        return {"url": self.url, "state": "connected"}
