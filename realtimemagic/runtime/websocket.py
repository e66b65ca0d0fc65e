"""One WebSocket connection at run time: a single greenlet reads, and the session's frames are
written the moment the session has them, by whoever gave them -- a fan-out loop, the sweeper's
heartbeat, the reader -- through the connection's :class:`~.writer.Writer`.  An idle connection
holds one greenlet (its reader) and no events.

The framing (SockJS or raw) and the protocol state are the transports' (pure, no I/O); here
they meet the socket.

A read that brings several messages (a server that falls behind reads many at once) holds the
writes its deliveries cause until they are all handled: each connection they reach then gets
one frame with all of them, one write instead of one per message.  The more a server falls
behind, the fewer writes each delivery costs, which is how it catches up.
"""
import socket
from typing import Callable, List, Optional, Tuple

import gevent
from greenlet import getcurrent

from ..config import FIXED
from ..exceptions import BadRequest
from ..incidents import incidents
from ..sockjs import frames
from ..sockjs.session import Session
from ..transports.websocket import (BROKEN_FRAMING, PING_TIMEOUT, WRITE_FAILED,
                                    WebSocketFraming)
from ..transports.websocket_protocol import WebSocketProtocol
from .sockets import peer, shutdown
from .writer import Writer

READ_SIZE = FIXED.websocket_read_size
#: Seconds we wait for the client's answer to our close frame.
CLOSE_TIMEOUT = FIXED.websocket_close_timeout

Deliver = Callable[[Session, List[str]], None]


class HeldWrites:
    """The writes held back while one greenlet delivers what one read brought."""

    __slots__ = ("owner", "connections")

    def __init__(self) -> None:
        self.owner: Optional[object] = None  # the greenlet delivering, while it does
        self.connections: List["WebSocketConnection"] = []

    def deliver(self, deliver: Deliver, session: Session, messages: List[str]) -> None:
        if len(messages) == 1 or self.owner is not None:
            deliver(session, messages)
            return
        self.owner = getcurrent()
        try:
            deliver(session, messages)
        finally:
            self.owner = None
            held, self.connections = self.connections, []
            for connection in held:
                connection.held = False
                connection.wakeup()


HELD = HeldWrites()


class WebSocketConnection:
    """A session's receiver over one WebSocket: ``wakeup`` (the session has frames) pulls and
    writes them at once; :meth:`run` reads until either side closes."""

    __slots__ = ("session", "sock", "protocol", "framing", "clock", "writer", "interrupted",
                 "busy", "held", "closing", "closer")

    def __init__(self, session: Session, sock: socket.socket, framing: WebSocketFraming,
                 clock: Callable[[], float], max_size: int, send_timeout: float) -> None:
        self.session = session
        self.sock = sock
        self.protocol = WebSocketProtocol(max_size)
        self.framing = framing
        self.clock = clock
        self.writer = Writer(sock, send_timeout, self)
        #: The connection is done: nothing more is pulled.
        self.interrupted = False
        self.busy = False  # pulling and writing now (a wakeup from inside is not needed)
        self.held = False  # in HELD.connections
        #: Our close frame is out: the client has CLOSE_TIMEOUT seconds to answer it.
        self.closing = False
        self.closer: Optional[gevent.Greenlet] = None

    @property
    def client_close(self) -> Optional[Tuple[int, str]]:
        return self.protocol.client_close

    # -- the session's side: write what it has ---------------------------------------------

    def offer(self, message: frames.OutgoingMessage) -> bool:
        """Write ``message`` now if nothing stands before it: one non-blocking send, made by
        whoever sends (a fan-out loop), with no switch to another greenlet."""
        if (self.busy or self.held or self.closing or self.interrupted
                or self.writer.backlog is not None
                or (HELD.owner is not None and HELD.owner is getcurrent())):
            return False
        try:
            data = self.framing.encode_message(self.protocol, message)
        except Exception:  # the queued path writes it again, and says what failed
            return False
        if not data:
            return False
        self.writer.write(data)
        return True

    def wakeup(self) -> None:
        if HELD.owner is not None and HELD.owner is getcurrent():
            if not self.held:
                self.held = True
                HELD.connections.append(self)
            return
        if self.busy or self.interrupted or self.closing or self.writer.backlog is not None:
            return  # the flusher asks again once the backlog is written (drained)
        self.busy = True
        try:
            pending, finished = self.session.pull(self.clock())
            self.write(pending, finished)
        finally:
            self.busy = False

    def write(self, pending: List[frames.Frame], finished: bool) -> None:
        """Write a session's frames; ``finished``: the session has ended, close."""
        for frame in pending:
            if frame == frames.HEARTBEAT and self.protocol.ping_unanswered:
                incidents.record("ping_timeout", "from %s" % peer(self.sock))
                self.writer.write(self.protocol.close(*PING_TIMEOUT))
                self._close()
                return
            try:
                data = self.framing.encode(self.protocol, frame)
            except Exception as error:
                # This connection alone ends, with a close frame; counted, and logged in one
                # line without a traceback: one per subscriber of a broadcast would flood.
                incidents.record("write_failed", "from %s: %s: %s" % (
                    peer(self.sock), type(error).__name__, str(error)[:200]))
                self.writer.write(self.framing.encode(self.protocol, WRITE_FAILED))
                self._close()
                return
            self.writer.write(data)
        if finished or not self.protocol.open:
            self._close()

    def _close(self) -> None:
        """Our close frame is written (or on its way): give the client a moment to answer it,
        so that the socket is not closed under unread data (which would reset the connection
        and could lose the close frame), then shut the socket down, which ends the reader."""
        if not self.closing:
            self.closing = True
            if self.writer.backlog is None:
                self.closer = gevent.spawn_later(CLOSE_TIMEOUT, shutdown, self.sock)

    def drained(self) -> None:
        if self.closing:
            self.closer = gevent.spawn_later(CLOSE_TIMEOUT, shutdown, self.sock)
        else:
            self.wakeup()  # what the session queued while the backlog was written

    def write_failed(self, error: OSError) -> None:
        # Maybe inside a fan-out loop: only stop, and wake the reader, which ends the session.
        self.interrupted = True
        shutdown(self.sock)

    # -- the reader ------------------------------------------------------------------------

    def run(self, deliver: Deliver) -> None:
        """Read the client's messages and hand them to ``deliver`` until either side closes.

        Each heartbeat pings the client; one that has not answered the previous ping when the
        next heartbeat is due is closed with 4008 "Ping timeout".  That is what bounds a client
        that stopped in the middle of a frame (its pong cannot come before the frame's end), or
        vanished: the read is never given a timeout, which could cut a frame in two."""
        try:
            while True:
                try:
                    data = self.sock.recv(READ_SIZE)
                except OSError:
                    data = b""
                received = self.protocol.receive(data)
                self.writer.write(received.reply)
                messages: List[str] = []
                broken = False
                for text in received.messages:
                    try:
                        messages += self.framing.decode(text)
                    except BadRequest:
                        broken = True
                        break
                if messages:
                    HELD.deliver(deliver, self.session, messages)
                if broken:
                    self.writer.write(self.protocol.close(*BROKEN_FRAMING))
                    return
                if received.ended:
                    return
        finally:
            self.interrupted = True
            if self.closer is not None:
                self.closer.kill()
            self.writer.write(self.protocol.close())  # nothing when a close went out already
            self.writer.finish(CLOSE_TIMEOUT)
            shutdown(self.sock)
