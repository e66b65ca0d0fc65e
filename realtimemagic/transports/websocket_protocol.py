"""One server-side WebSocket connection's protocol, without I/O (the layout of websockets and
wsproto): wsproto's state machine reads what the client sends and makes the control frames; the
data frames the server sends are made here, once, and shared by every recipient.

The runtime feeds in what it reads (:meth:`WebSocketProtocol.receive`) and writes out the bytes
it is handed (:mod:`realtimemagic.runtime.websocket`)."""
import struct
from typing import List, NamedTuple, Optional, Tuple

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, Pong
from wsproto.frame_protocol import CloseReason


class Received(NamedTuple):
    """What one read brought."""
    messages: List[str]  # complete text messages, in order
    reply: bytes         # to write back at once: pongs, the answer to a close
    ended: bool          # the connection is done: read no more


class WebSocketProtocol:
    """wsproto's connection, plus the reassembly of fragmented text messages (bounded by
    ``max_size`` characters: 1009 beyond) and the ping bookkeeping of heartbeats."""

    __slots__ = ("connection", "max_size", "client_close", "ping_unanswered", "_parts", "_size")

    def __init__(self, max_size: int) -> None:
        self.connection = Connection(ConnectionType.SERVER)
        self.max_size = max_size
        #: (code, reason) of the close the client sent, if it sent one.
        self.client_close: Optional[Tuple[int, str]] = None
        #: A ping went out and no pong came back yet.
        self.ping_unanswered = False
        self._parts: Optional[List[str]] = None  # a fragmented message so far
        self._size = 0

    @property
    def open(self) -> bool:
        """Data frames may be sent (no close sent or received yet)."""
        return self.connection.state is ConnectionState.OPEN

    def _send(self, event: Event) -> bytes:
        state = self.connection.state
        if state is not ConnectionState.OPEN and not (
                isinstance(event, CloseConnection) and state is ConnectionState.REMOTE_CLOSING):
            return b""
        return self.connection.send(event)

    def ping(self) -> bytes:
        self.ping_unanswered = True
        return self._send(Ping())

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """Our close frame; nothing once a close went out."""
        return self._send(CloseConnection(code=code, reason=reason))

    def receive(self, data: Optional[bytes]) -> Received:
        """Feed what was read (``None`` or ``b""``: the client's end closed).  Protocol errors
        close with wsproto's code (1002, 1007); a binary message with 1003; an oversized one
        with 1009."""
        self.connection.receive_data(data or None)
        messages: List[str] = []
        reply = b""
        for event in self.connection.events():
            if isinstance(event, Message):
                if isinstance(event, BytesMessage):
                    return Received(messages, reply + self.close(CloseReason.UNSUPPORTED_DATA,
                                                                 "Text frames only."), True)
                self._size += len(event.data)
                if self._size > self.max_size:
                    return Received(messages, reply + self.close(
                        CloseReason.MESSAGE_TOO_BIG,
                        "Message larger than %d bytes." % self.max_size), True)
                if event.message_finished and self._parts is None:
                    messages.append(event.data)
                    self._size = 0
                    continue
                if self._parts is None:
                    self._parts = []
                self._parts.append(event.data)
                if event.message_finished:
                    messages.append("".join(self._parts))
                    self._parts, self._size = None, 0
            elif isinstance(event, Ping):
                reply += self._send(event.response())
            elif isinstance(event, Pong):
                self.ping_unanswered = False
            elif isinstance(event, CloseConnection):
                if self.connection.state is ConnectionState.REMOTE_CLOSING:
                    self.client_close = (event.code, event.reason or "")
                    answer = self.close(event.code if event.code not in (1005, 1006) else 1000,
                                        event.reason or "")
                else:
                    # A protocol error found by wsproto (1002, 1007), or the answer to ours.
                    answer = self.close(event.code, event.reason or "")
                return Received(messages, reply + answer, True)
        return Received(messages, reply, False)


def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2), as a server
    sends it.  wsproto keeps no state for whole data frames a server sends, so frames made here
    may be shared by many connections."""
    payload = text.encode("utf-8")
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload
