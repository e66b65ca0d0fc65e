"""WebSocket, for both SockJS-over-WebSocket (``/<server>/<session>/websocket``) and the raw
WebSocket (``/websocket``): one implementation, two framings.

The socket is the client's own, taken over after the 101 answer, which the WSGI server (gevent's
pywsgi, gunicorn's gevent worker) writes for us; :mod:`.websocket_connection` speaks WebSocket on
it.  One greenlet reads, one (the pump) writes the session's frames; every write goes through one
lock, so control frames (pong, close) from the reader never interleave with a data frame.
"""
import base64
import binascii
import logging
from typing import Any, Callable, List, Optional, Protocol

import gevent
from gevent.event import Event
from wsproto.utilities import generate_accept_token

from ..config import FIXED
from ..exceptions import BadRequest
from ..http import Request
from ..incidents import incidents
from ..sockjs import frames
from ..sockjs.frames import Close
from .base import Receiver, client_socket
from .websocket_connection import WebSocket, text_frame

log = logging.getLogger(__name__)

#: Seconds we wait for the client's answer to our close frame.
CLOSE_TIMEOUT = FIXED.websocket_close_timeout
#: A client that has not answered the previous heartbeat's ping when the next one is due.
PING_TIMEOUT = (4008, "Ping timeout")
#: How a connection ends when one of its frames cannot be written (a bug, never the client's
#: doing: what clients send is checked where it comes in).
WRITE_FAILED = Close(1011, "Internal error")


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
                (request.header("Sec-WebSocket-Key") or "").encode("ascii")).decode("ascii"))]


def _sockjs_frame(message) -> bytes:
    return text_frame("a[" + message.quoted + "]")


def _raw_frame(message) -> bytes:
    return text_frame(message.text)


class WebSocketFraming(Protocol):
    """What one WebSocket flavour says about its messages (the HTTP transports' equivalent is
    :class:`~.base.HttpTransport`)."""

    def write(self, websocket: WebSocket, frame: frames.Frame) -> None:
        """Send ``frame`` (open, heartbeat, close or a batch of messages) its way."""

    def decode(self, text: str) -> List[str]:
        """The messages in one text message from the client; raises BadRequest."""


class SockJSFraming:
    """SockJS frames as text messages; the client sends JSON arrays of strings.  A heartbeat
    is the SockJS ``h`` frame and a ping (see :func:`serve`)."""

    def write(self, websocket: WebSocket, frame: frames.Frame) -> None:
        if isinstance(frame, list) and len(frame) == 1:
            # One message: the same frame bytes for every WebSocket recipient.
            websocket.send_frames(frame[0].encoded("ws-sockjs", _sockjs_frame))
            return
        websocket.send_text(frames.render(frame))
        if frame == frames.HEARTBEAT:
            websocket.ping()
        if isinstance(frame, Close):
            websocket.close(1000, "Normal closure")

    def decode(self, text: str) -> List[str]:
        if not text:
            return []
        return frames.decode_messages(text, allow_single=True)


class RawFraming:
    """Plain WebSocket: one message per text frame, heartbeats as pings, a real close code."""

    def write(self, websocket: WebSocket, frame: frames.Frame) -> None:
        if isinstance(frame, list):
            # Frames shared by every recipient, written in one call.
            websocket.send_frames(b"".join(message.encoded("ws-raw", _raw_frame)
                                           for message in frame))
        elif isinstance(frame, Close):
            websocket.close(frame.code, frame.reason)
        elif frame == frames.HEARTBEAT:
            websocket.ping()

    def decode(self, text: str) -> List[str]:
        return [text]


def serve(websocket: WebSocket, framing: WebSocketFraming, session, first, clock: Callable[[], float],
          on_messages: Callable[[Any, List[str]], None]) -> None:
    """Run one WebSocket session until either side closes.  This greenlet reads; a second one
    (the pump) writes what the session has for the client.

    Each heartbeat pings the client; one that has not answered the previous ping when the next
    heartbeat is due is closed with 4008 "Ping timeout".  That is what bounds a client that
    stopped in the middle of a frame (its pong cannot come before the frame's end), or vanished:
    the reader is never given a timeout, which could cut a frame in two."""
    receiver = session.receiver
    reader_done = Event()

    def pump() -> None:
        pending, finished = first
        try:
            while True:
                for frame in pending:
                    if frame == frames.HEARTBEAT and websocket.ping_unanswered:
                        incidents.record("ping_timeout", "from %s" % _peer(websocket.sock))
                        websocket.close(*PING_TIMEOUT)
                        return
                    framing.write(websocket, frame)
                if finished or not websocket.open:
                    return
                receiver.wait()
                if receiver.interrupted:
                    return
                pending, finished = session.pull(clock())
        except OSError:
            return
        except Exception as error:
            # This connection alone ends, with a close frame; counted, and logged in one line
            # without a traceback: one per subscriber of a broadcast would flood the log.
            incidents.record("write_failed", "from %s: %s: %s" % (
                _peer(websocket.sock), type(error).__name__, str(error)[:200]))
            try:
                framing.write(websocket, WRITE_FAILED)
            except OSError:
                pass
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


def _peer(sock) -> str:
    try:
        return str(sock.getpeername()[0])
    except (OSError, IndexError, TypeError):
        return "?"


def shutdown(sock) -> None:
    try:
        sock.shutdown(2)  # socket.SHUT_RDWR; the WSGI server closes the socket itself
    except OSError:
        pass


__all__ = ["WebSocket", "SockJSFraming", "RawFraming", "serve", "handshake_error",
           "accept_headers", "client_socket", "Receiver"]
