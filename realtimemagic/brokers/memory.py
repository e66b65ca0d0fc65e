"""The in-process broker: one process, nothing to connect to."""
from typing import Any, Callable


class MemoryBroker:
    """Publishing is delivering: every subscriber lives in this process."""

    url = "memory://"
    shared = False  # other processes do not see what is published here

    def __init__(self, deliver: Callable[[str, Any], int]) -> None:
        self.deliver = deliver

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def publish(self, channel: str, message: Any) -> None:
        self.deliver(channel, message)

    def subscribe(self, channel: str) -> None:
        """Called when ``channel`` gets its first local subscriber."""

    def unsubscribe(self, channel: str) -> None:
        """Called when ``channel`` loses its last local subscriber."""

    def status(self) -> dict:
        return {"url": self.url, "state": "connected"}
