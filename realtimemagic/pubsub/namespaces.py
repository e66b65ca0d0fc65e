"""Per-namespace options: history, presence, join/leave events (docs/history.md)."""
import json
from dataclasses import dataclass, fields
from typing import Any, Dict, Mapping

from ..exceptions import ConfigError
from .protocol import namespace

DEFAULT = "default"  # the namespace of channels without one


@dataclass(frozen=True)
class NamespaceOptions:
    history_size: int = 0      # messages kept per channel; 0: no history
    history_ttl: float = 0.0   # seconds a message is kept; 0: as long as the store keeps it
    presence: bool = False     # who is subscribed can be asked
    join_leave: bool = False   # subscribers get join and leave events

    def __post_init__(self) -> None:
        if self.history_size < 0 or self.history_ttl < 0:
            raise ConfigError("history_size and history_ttl must not be negative")
        if self.join_leave and not self.presence:
            raise ConfigError("join_leave needs presence")

    @property
    def history(self) -> bool:
        return self.history_size > 0


OFF = NamespaceOptions()


def parse(text: str) -> Dict[str, NamespaceOptions]:
    """The ``namespaces`` setting: a JSON object, namespace -> options."""
    try:
        raw = json.loads(text or "{}")
    except ValueError as error:
        raise ConfigError("namespaces must be JSON: %s" % error) from None
    if not isinstance(raw, dict):
        raise ConfigError("namespaces must be a JSON object")
    return {name: build(options) for name, options in raw.items()}


def build(options: Mapping[str, Any]) -> NamespaceOptions:
    known = {field.name for field in fields(NamespaceOptions)}
    unknown = set(options) - known
    if unknown:
        raise ConfigError("unknown namespace options: %s" % ", ".join(sorted(unknown)))
    return NamespaceOptions(**options)


def lookup(namespaces: Mapping[str, NamespaceOptions], channel: str) -> NamespaceOptions:
    """The options of ``channel``'s namespace (``default`` for a channel without one)."""
    return namespaces.get(namespace(channel) or DEFAULT, OFF)
