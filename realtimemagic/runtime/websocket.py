"""One WebSocket connection at run time: a single greenlet reads, and the session's frames are
written the moment the session has them, by whoever gave them -- a fan-out loop, the sweeper's
heartbeat, the reader -- through the connection's :class:`~.writer.Writer`.  An idle connection
holds one greenlet (its reader) and no events.

The framing (SockJS or raw) and the protocol state are the transports' (pure, no I/O); here
they meet the socket.

A read that brings several messages (a server that falls behind reads many at once) holds the
writes of every delivery until the loop has run what is ready (:class:`HeldWrites`): each
connection then gets one frame with all it was sent, one write instead of one per message.
The more a server falls behind, the fewer writes each delivery costs, which is how it catches
up.
"""
import socket
from typing import Callable, List, Optional, Tuple

import gevent

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
    """While the server is behind, the writes of every delivery wait until the loop has run
    what is ready: then each connection gets one frame with everything it was sent meanwhile.

    Behind means a read brought several messages (they queued in the socket while the server
    was busy).  The writes are released by a greenlet spawned then, which runs once the
    greenlets and callbacks ready before it have run -- the deliveries of that read included,
    whether they fan out in the reader (a broadcast) or in the per-message greenlets of
    pub/sub -- so nothing waits longer than one pass of the loop."""

    __slots__ = ("holding", "connections")

    def __init__(self) -> None:
        self.holding = False
        self.connections: List["WebSocketConnection"] = []

    def hold(self) -> None:
        if not self.holding:
            self.holding = True
            gevent.spawn(self.release)

    def release(self) -> None:
        self.holding = False
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
                or HELD.holding):
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
        if HELD.holding:
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
                self._await_close_answer()

    def _await_close_answer(self) -> None:
        self.closer = gevent.spawn_later(CLOSE_TIMEOUT, shutdown, self.sock)

    def drained(self) -> None:
        if self.closing:
            self._await_close_answer()  # the close frame was in the backlog
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
                if len(messages) > 1:
                    HELD.hold()
                    deliver(self.session, messages)
                    # Let the writes go (and the others run) before reading on: a reader
                    # that always finds more to read would hold them forever.
                    gevent.sleep(0)
                elif messages:
                    deliver(self.session, messages)
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
