"""WebSocket, for both SockJS-over-WebSocket (``/<server>/<session>/websocket``) and the raw
WebSocket (``/websocket``): one implementation, two framings.

Framing is wsproto's; the socket is the client's own, taken over after the 101 answer, which
the WSGI server (gevent's pywsgi, gunicorn's gevent worker) writes for us.  One greenlet reads,
one (the pump) writes the session's frames; every write goes through one lock, so control frames
(pong, close) from the reader never interleave with a data frame.
"""
import base64
import binascii
import logging
import struct
from typing import Callable, Optional

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (BytesMessage, CloseConnection, Message, Ping, TextMessage)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import generate_accept_token

from ..exceptions import BadRequest
from ..sockjs import frames
from ..sockjs.frames import Close
from .base import Receiver, Request, client_socket

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
#: Seconds we wait for the client's answer to our close frame.
CLOSE_TIMEOUT = 2.0


class SendStalled(OSError):
    """A write made no progress for ``send_timeout`` seconds."""


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


def accept_headers(request: Request):
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", generate_accept_token(
                request.header("Sec-WebSocket-Key").encode("ascii")).decode("ascii"))]


class WebSocket:
    """A server-side WebSocket over a taken-over socket: wsproto plus one write lock."""

    def __init__(self, sock, max_size: int, send_timeout: float = 30.0) -> None:
        self.sock = sock
        self.max_size = max_size
        self.send_timeout = send_timeout
        self.protocol = Connection(ConnectionType.SERVER)
        self.write_lock = Semaphore()
        #: (code, reason) of the close the client sent, if it sent one.
        self.client_close = None

    def _send(self, event) -> None:
        with self.write_lock:
            if self.protocol.state is not ConnectionState.OPEN and not (
                    isinstance(event, CloseConnection)
                    and self.protocol.state is ConnectionState.REMOTE_CLOSING):
                return
            data = self.protocol.send(event)
            self._sendall(data)

    def send_text(self, text: str) -> None:
        self._send(TextMessage(data=text))

    def send_frames(self, data: bytes) -> None:
        """Whole text frames already encoded (see :func:`text_frame`), shared by many sockets.
        wsproto keeps no state for whole outgoing data frames of a server, so they may bypass
        it."""
        with self.write_lock:
            if self.protocol.state is ConnectionState.OPEN:
                self._sendall(data)

    def _sendall(self, data: bytes) -> None:
        """Write, or give up on a client that takes nothing for ``send_timeout`` seconds (it
        stopped reading, or vanished without a FIN): the connection is then done.

        The hot path is one non-blocking send: gevent's ``sendall`` asks the kernel for
        SO_SNDBUF on every call, and a timer per write costs as much again (profiled).  Only
        a client that does not take everything at once gets the timer and ``sendall``."""
        try:
            sent = self.sock.send(data, 0, timeout=0.0)
        except BlockingIOError:  # the socket's buffer is full
            sent = 0
        except TypeError:  # not a gevent socket (no timeout keyword)
            sent = 0
        if sent < len(data):
            with gevent.Timeout(self.send_timeout, SendStalled(
                    "no progress writing to the client for %g s" % self.send_timeout)):
                self.sock.sendall(memoryview(data)[sent:])

    def ping(self) -> None:
        self._send(Ping())

    def close(self, code: int = 1000, reason: str = "") -> None:
        try:
            self._send(CloseConnection(code=code, reason=reason))
        except OSError:
            pass

    @property
    def open(self) -> bool:
        return self.protocol.state is ConnectionState.OPEN

    def messages(self):
        """Yield each complete text message; ends when the connection closes.  Protocol errors
        close with wsproto's code (1002, 1007); an oversized message with 1009."""
        parts, size = [], 0
        while True:
            try:
                data = self.sock.recv(READ_SIZE)
            except OSError:
                data = b""
            if not data:
                self.protocol.receive_data(None)
                return
            self.protocol.receive_data(data)
            for event in self.protocol.events():
                if isinstance(event, Message):
                    if isinstance(event, BytesMessage):
                        self.close(CloseReason.UNSUPPORTED_DATA, "Text frames only.")
                        return
                    size += len(event.data)
                    if size > self.max_size:
                        self.close(CloseReason.MESSAGE_TOO_BIG,
                                   "Message larger than %d bytes." % self.max_size)
                        return
                    parts.append(event.data)
                    if event.message_finished:
                        text = parts[0] if len(parts) == 1 else "".join(parts)
                        parts, size = [], 0
                        yield text
                elif isinstance(event, Ping):
                    self._send(event.response())
                elif isinstance(event, CloseConnection):
                    if self.protocol.state is ConnectionState.REMOTE_CLOSING:
                        self.client_close = (event.code, event.reason)
                        self.close(event.code if event.code not in (1005, 1006) else 1000,
                                   event.reason or "")
                    else:
                        # A protocol error found by wsproto (1002, 1007), or the answer to ours.
                        self.close(event.code, event.reason or "")
                    return


def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2), as a server
    sends it."""
    payload = text.encode("utf-8")
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


def _sockjs_frame(message) -> bytes:
    return text_frame("a[" + message.quoted + "]")


def _raw_frame(message) -> bytes:
    return text_frame(message.text)


class SockJSFraming:
    """SockJS frames as text messages; the client sends JSON arrays of strings."""

    def write(self, websocket: WebSocket, frame) -> None:
        if isinstance(frame, list) and len(frame) == 1:
            # One message: the same frame bytes for every WebSocket recipient.
            websocket.send_frames(frame[0].encoded("ws-sockjs", _sockjs_frame))
            return
        websocket.send_text(frames.render(frame))
        if isinstance(frame, Close):
            websocket.close(1000, "Normal closure")

    def decode(self, text: str):
        if not text:
            return []
        return frames.decode_messages(text, allow_single=True)


class RawFraming:
    """Plain WebSocket: one message per text frame, heartbeats as pings, a real close code."""

    def write(self, websocket: WebSocket, frame) -> None:
        if isinstance(frame, list):
            # Frames shared by every recipient, written in one call.
            websocket.send_frames(b"".join(message.encoded("ws-raw", _raw_frame)
                                           for message in frame))
        elif isinstance(frame, Close):
            websocket.close(frame.code, frame.reason)
        elif frame == frames.HEARTBEAT:
            websocket.ping()

    def decode(self, text: str):
        return [text]


def serve(websocket: WebSocket, framing, session, first, clock: Callable[[], float],
          on_messages: Callable[[object, list], None]) -> None:
    """Run one WebSocket session until either side closes.  This greenlet reads; a second one
    (the pump) writes what the session has for the client."""
    receiver = session.receiver
    reader_done = Event()

    def pump() -> None:
        pending, finished = first
        try:
            while True:
                for frame in pending:
                    framing.write(websocket, frame)
                if finished or not websocket.open:
                    return
                receiver.wait()
                if receiver.interrupted:
                    return
                pending, finished = session.pull(clock())
        except OSError:
            return
        finally:
            # Give the client a moment to answer our close frame, so that the socket is not
            # closed under unread data (which would reset the connection and could lose the
            # close frame), then wake the reader by shutting the socket down.
            reader_done.wait(CLOSE_TIMEOUT)
            shutdown(websocket.sock)

    pump_greenlet = gevent.spawn(pump)
    try:
        for text in websocket.messages():
            try:
                messages = framing.decode(text)
            except BadRequest:
                websocket.close(3000, "Broken framing.")
                break
            if messages:
                on_messages(session, messages)
    finally:
        reader_done.set()
        receiver.interrupted = True
        receiver.wakeup()
        pump_greenlet.join()
        websocket.close()
        shutdown(websocket.sock)


def shutdown(sock) -> None:
    try:
        sock.shutdown(2)  # socket.SHUT_RDWR; the WSGI server closes the socket itself
    except OSError:
        pass


__all__ = ["WebSocket", "SockJSFraming", "RawFraming", "serve", "handshake_error",
           "accept_headers", "client_socket", "Receiver"]
