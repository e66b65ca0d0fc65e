"""The in-process broker: one process, nothing to connect to.  History and presence live in
this process (lost when it stops)."""
import gc
import time
from typing import Any, Callable, Dict, List, Optional

from ..config import FIXED
from ..pubsub.history import MemoryHistory, Snapshot
from ..pubsub.namespaces import NamespaceOptions
from ..pubsub.presence import MemoryPresence
from .interface import Broker, BrokerSettings, HistoryFigures

COLLECT_AFTER = FIXED.memory_collect_after  # expired channels worth a full collection


class MemoryBroker(Broker):
    """Publishing is delivering: every subscriber lives in this process."""

    url = "memory://"
    url_for_logs = url
    shared = False  # other processes do not see what is published here
    keeps_history = True

    def __init__(self, deliver: Callable[..., int],
                 settings: Optional[BrokerSettings] = None) -> None:
        settings = settings or BrokerSettings()
        self.deliver = deliver
        self.history = MemoryHistory(settings.history_max_channels, settings.history_max_bytes)
        self.presence = MemoryPresence()
        self._freed = 0  # history channels forgotten since the last full collection

    def start(self) -> None:
        """Nothing to connect to."""

    def stop(self) -> None:
        """Nothing runs in the background."""

    def wait_connected(self, timeout: float) -> bool:
        return True

    def publish(self, channel: str, message: Any,
                options: Optional[NamespaceOptions] = None) -> None:
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

    def snapshot(self, channel: str, options: NamespaceOptions) -> Snapshot:
        return self.history.snapshot(channel, options.history_ttl, time.time())

    def presence_add(self, channel: str, key: str, info: Any) -> None:
        self.presence.add(channel, key, info)

    def presence_remove(self, channel: str, key: str) -> None:
        self.presence.remove(channel, key)

    def presence_members(self, channel: str) -> List[Any]:
        return self.presence.members(channel)

    def maintain(self, ttl_of: Callable[[str], float]) -> None:
        """Forget expired histories, and give their memory back."""
        self._freed += self.history.sweep(ttl_of, time.time())
        if self._freed >= COLLECT_AFTER and len(self.history) < self._freed:
            # Most of the history went.  CPython's free lists still hold up to 2,000 of its
            # tuples, scattered, each pinning a 1 MiB arena (15 MB after 200,000 channels);
            # only a full collection empties them.
            gc.collect()
            self._freed = 0

    def history_figures(self) -> HistoryFigures:
        return HistoryFigures(len(self.history), self.history.entry_count, self.history.bytes,
                              self.history.dropped)

    def status(self) -> Dict[str, Any]:
        return {"url": self.url, "state": "connected"}
