"""Brokers connect the processes that share channels.  Selected by URL (SPEC section 7)."""
from typing import Any, Callable

from ..exceptions import ConfigError
from .memory import MemoryBroker


def from_url(url: str, deliver: Callable[[str, Any], int]):
    """The broker for ``url``; ``deliver(channel, message)`` hands a message to this process's
    subscribers."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryBroker(deliver)
    raise ConfigError("unsupported broker %r: this version has memory:// only" % url)
