"""All sessions of one endpoint, and the sweep that expires them and raises heartbeats.

One sweeper (in the runtime) calls :meth:`SessionRegistry.sweep` every tick for all sessions,
instead of one timer per session.
"""
import itertools
from typing import Callable, Dict, Hashable, Iterator, List, Optional

from .session import Outbox, Session


class SessionRegistry:
    """Sessions by key.  URL session ids are strings; websocket sessions get private keys
    (integers, one object less per session than a tagged tuple) so that no URL can reach
    them."""

    def __init__(self, heartbeat_interval: float, disconnect_delay: float,
                 outbox_max_frames: int, outbox_max_bytes: int,
                 on_closed: Optional[Callable[[Session], None]] = None) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.disconnect_delay = disconnect_delay
        self.outbox_max_frames = outbox_max_frames
        self.outbox_max_bytes = outbox_max_bytes
        self.on_closed = on_closed
        self._sessions: Dict[Hashable, Session] = {}
        self._private_keys = itertools.count(1)

    def get(self, key: Hashable) -> Optional[Session]:
        return self._sessions.get(key)

    def create(self, key: Optional[str], now: float) -> Session:
        """A new session under ``key``, or under a private key when ``key`` is None."""
        registry_key: Hashable = key
        if key is None:
            registry_key = next(self._private_keys)
        session = Session(registry_key, now, self.heartbeat_interval, self.disconnect_delay,
                          Outbox(self.outbox_max_frames, self.outbox_max_bytes), self.on_closed)
        self._sessions[registry_key] = session
        return session

    def end(self, session: Session) -> None:
        """Expire ``session`` now and forget it."""
        session.expire()
        self._sessions.pop(session.key, None)

    def sweep(self, now: float) -> List[Session]:
        """Heartbeats for attached receivers; expiry for sessions left alone too long.
        Returns the sessions that expired (already removed)."""
        expired = [session for session in list(self._sessions.values()) if session.sweep(now)]
        for session in expired:
            self._sessions.pop(session.key, None)
        return expired

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))
