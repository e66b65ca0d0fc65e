"""WebSocket, for both SockJS-over-WebSocket (``/<server>/<session>/websocket``) and the raw
WebSocket (``/websocket``): the handshake, and two framings of a session's frames as bytes.

No I/O here: the runtime (:mod:`realtimemagic.runtime.websocket`) reads and writes the socket,
and :mod:`.websocket_protocol` is the protocol state of one connection.
"""
import base64
import binascii
from typing import List, Optional, Protocol

from wsproto.utilities import generate_accept_token

from ..exceptions import BadRequest
from ..http import Headers, Request
from ..sockjs import frames
from ..sockjs.frames import Close, OutgoingMessage
from .websocket_protocol import WebSocketProtocol, text_frame

#: A client that has not answered the previous heartbeat's ping when the next one is due.
PING_TIMEOUT = (4008, "Ping timeout")
#: How a connection ends when one of its frames cannot be made (a bug, never the client's
#: doing: what clients send is checked where it comes in).
WRITE_FAILED = Close(1011, "Internal error")
#: What a client that breaks SockJS's framing gets.
BROKEN_FRAMING = (3000, "Broken framing.")


def handshake_error(request: Request) -> Optional[str]:
    """Why this request cannot be upgraded, or None when it can."""
    if request.environ.get("SERVER_PROTOCOL") == "HTTP/1.0":
        return "WebSocket needs HTTP/1.1."
    if (request.header("Upgrade") or "").lower() != "websocket":
        return 'Can "Upgrade" only to "WebSocket".'
    connection = [token.strip().lower() for token in (request.header("Connection") or "").split(",")]
    if "upgrade" not in connection:
        return '"Connection" must be "Upgrade".'
    if request.header("Sec-WebSocket-Version") not in ("8", "13"):
        return "Only supported WebSocket protocol is RFC 6455."
    key = request.header("Sec-WebSocket-Key") or ""
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return "Invalid Sec-WebSocket-Key."
    except (binascii.Error, ValueError):
        return "Invalid Sec-WebSocket-Key."
    return None


def accept_headers(request: Request) -> Headers:
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", generate_accept_token(
                (request.header("Sec-WebSocket-Key") or "").encode("ascii")).decode("ascii"))]


def _sockjs_frame(message: OutgoingMessage) -> bytes:
    return text_frame("a[" + message.quoted + "]")


def _raw_frame(message: OutgoingMessage) -> bytes:
    return text_frame(message.text)


class WebSocketFraming(Protocol):
    """What one WebSocket flavour makes of a session's frames (the HTTP transports'
    equivalent is :class:`~.base.HttpTransport`)."""

    def encode(self, protocol: WebSocketProtocol, frame: frames.Frame) -> bytes:
        """The bytes of ``frame`` (open, heartbeat, close or a batch of messages); b"" when
        there is nothing to send in the protocol's state."""

    def encode_message(self, protocol: WebSocketProtocol, message: OutgoingMessage) -> bytes:
        """The bytes of one message alone (the same bytes for every recipient)."""

    def decode(self, text: str) -> List[str]:
        """The messages in one text message from the client; raises BadRequest."""


class SockJSFraming:
    """SockJS frames as text messages; the client sends JSON arrays of strings.  A heartbeat
    is the SockJS ``h`` frame and a ping."""

    def encode(self, protocol: WebSocketProtocol, frame: frames.Frame) -> bytes:
        if not protocol.open:
            return b""
        if isinstance(frame, list) and len(frame) == 1:
            return self.encode_message(protocol, frame[0])
        data = text_frame(frames.render(frame))
        if frame == frames.HEARTBEAT:
            return data + protocol.ping()
        if isinstance(frame, Close):
            return data + protocol.close(1000, "Normal closure")
        return data

    def encode_message(self, protocol: WebSocketProtocol, message: OutgoingMessage) -> bytes:
        return message.encoded("ws-sockjs", _sockjs_frame) if protocol.open else b""

    def decode(self, text: str) -> List[str]:
        if not text:
            return []
        return frames.decode_messages(text, allow_single=True)


class RawFraming:
    """Plain WebSocket: one message per text frame, heartbeats as pings, a real close code."""

    def encode(self, protocol: WebSocketProtocol, frame: frames.Frame) -> bytes:
        if isinstance(frame, list):  # frames shared by every recipient
            return b"".join(self.encode_message(protocol, message) for message in frame)
        if isinstance(frame, Close):
            return protocol.close(frame.code, frame.reason)
        if frame == frames.HEARTBEAT:
            return protocol.ping()
        return b""

    def encode_message(self, protocol: WebSocketProtocol, message: OutgoingMessage) -> bytes:
        return message.encoded("ws-raw", _raw_frame) if protocol.open else b""

    def decode(self, text: str) -> List[str]:
        return [text]
