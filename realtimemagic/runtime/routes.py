"""What the runtime asks of a broker to route SockJS requests between processes
(realtimemagic.runtime.remote): a session directory and one inbox per process; the routing
brokers are in realtimemagic.routing."""
from typing import Any, Callable, Dict, List, Optional, Protocol

Message = Dict[str, Any]  # between processes, a JSON object; "k" says what it is


class Routes(Protocol):
    """What the runtime asks of a broker's session directory and inboxes."""

    node: str  # this process's id

    def start(self, on_message: Callable[[Message], None]) -> None:
        """Listen to this process's inbox, calling ``on_message`` for each message."""

    def stop(self) -> None: ...

    def claim(self, key: str) -> Optional[str]:
        """Make this process the owner of ``key`` unless a live one holds it; the owner."""

    def owner(self, key: str) -> Optional[str]: ...

    def release(self, key: str, node: str) -> None:
        """Forget ``key`` if ``node`` still owns it."""

    def refresh(self, keys: List[str]) -> List[str]:
        """Keep this process's entries alive; the keys another process holds now."""

    def post(self, node: str, message: Message) -> None:
        """Into ``node``'s inbox, after this process's earlier posts; raises
        :class:`RoutesUnavailable` when it surely cannot arrive."""
