"""What the application holds for one SockJS session, and the handler interface it implements."""
import logging
from typing import Any, Dict, NamedTuple, Optional, Tuple

from ..exceptions import OutboxFull
from ..sockjs.frames import OutgoingMessage
from ..sockjs.session import Session

log = logging.getLogger(__name__)


class ConnectionInfo(NamedTuple):
    """Where a session came from, as seen by the request that opened it."""
    ip: Optional[str]
    headers: Dict[str, str]
    cookies: Dict[str, str]
    query: Dict[str, str]
    path: str
    transport: str


class SockJSConnection:
    """One client session, whatever its transport.  One per connection, so no per-instance
    dict: an application keeps what it knows of a connection in its own structures (a dict
    keyed by the connection, or a weak one)."""

    __slots__ = ("session", "info", "client_close", "__weakref__")

    def __init__(self, session: Session, info: ConnectionInfo) -> None:
        self.session = session
        self.info = info
        #: (code, reason) of the WebSocket close frame the client sent, if it sent one.
        self.client_close: Optional[Tuple[int, str]] = None

    @property
    def session_id(self) -> str:
        key = self.session.key
        return key if isinstance(key, str) else "private-%s" % key

    @property
    def transport(self) -> str:
        return self.info.transport

    @property
    def is_open(self) -> bool:
        return self.session.is_open

    def send(self, message: Any) -> bool:
        """Queue a text message (or an :class:`OutgoingMessage` shared by many sessions) for
        this client.  Never blocks.  False when the session is no longer open; a client too
        slow to keep up is closed with 4001 "Client too slow" and gets nothing more."""
        if not isinstance(message, OutgoingMessage):
            message = OutgoingMessage(message)
        try:
            return self.session.send(message)
        except OutboxFull as error:
            log.warning("closing %s: outbox full (%s)", self.session_id, error)
            return False

    def close(self, code: int = 3000, reason: str = "Go away!") -> bool:
        """Close the session; the client sees ``code`` and ``reason``."""
        return self.session.close(code, reason)

    def __repr__(self) -> str:
        return "<SockJSConnection %s %s>" % (self.session_id, self.info.transport)


class SockJSHandler:
    """The application's side of an endpoint.  Each method is called with isolation: one that
    raises is logged with its traceback and the connection lives on."""

    def on_open(self, connection: SockJSConnection) -> None:
        """A session has opened."""

    def on_message(self, connection: SockJSConnection, message: str) -> None:
        """The client sent a message (text, as sent)."""

    def on_close(self, connection: SockJSConnection) -> None:
        """The session has ended, however it ended.  Called once."""
