"""A server-side WebSocket over a socket taken over after the 101 answer: wsproto's state
machine for reading and for control frames, one write lock, and text frames that many sockets
can share (a published message is framed once)."""
import struct

import gevent
from gevent.lock import Semaphore
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason

from ..exceptions import SendStalled
from ..config import FIXED

READ_SIZE = FIXED.websocket_read_size


class WebSocket:
    """A server-side WebSocket over a taken-over socket: wsproto plus one write lock."""

    def __init__(self, sock, max_size: int, send_timeout: float) -> None:
        self.sock = sock
        self.max_size = max_size
        self.send_timeout = send_timeout
        self.protocol = Connection(ConnectionType.SERVER)
        self.write_lock = Semaphore()
        #: (code, reason) of the close the client sent, if it sent one.
        self.client_close = None
        #: A ping went out and no pong came back yet.
        self.ping_unanswered = False

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
        self.ping_unanswered = True
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
                elif isinstance(event, Pong):
                    self.ping_unanswered = False
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
