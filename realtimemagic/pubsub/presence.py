"""Who is subscribed to presence channels, kept in this process (the memory:// broker)."""
from typing import Any, Dict, List


class MemoryPresence:

    def __init__(self) -> None:
        self._members: Dict[str, Dict[str, Any]] = {}

    def add(self, channel: str, key: str, info: Any) -> None:
        self._members.setdefault(channel, {})[key] = info

    def remove(self, channel: str, key: str) -> None:
        members = self._members.get(channel)
        if members is not None:
            members.pop(key, None)
            if not members:
                del self._members[channel]

    def members(self, channel: str) -> List[Any]:
        return list(self._members.get(channel, {}).values())
