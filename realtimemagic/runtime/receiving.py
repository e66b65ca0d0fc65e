"""The HTTP transports' receiving request: a :class:`Receiver` the session wakes up, and the
one loop (:func:`stream_frames`) that writes a session's frames to the request until
``response_limit``, whatever the transport's framing.  (A WebSocket's receiver writes the
frames the moment the session has them: :mod:`.websocket`.)"""
import socket
from typing import Iterator, List, Optional, Tuple

import gevent
from gevent.event import Event
from gevent.select import select

from ..sockjs.frames import Frame
from ..transports.base import HttpTransport


class Receiver:
    """One request receiving for a session.  The session calls ``wakeup`` when it has
    something; a watcher on the socket sets ``interrupted`` when the client goes away."""

    __slots__ = ("event", "interrupted", "sock")

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        self.event = Event()
        self.interrupted = False
        self.sock = sock

    def offer(self, message: object) -> bool:
        """A request takes what it writes from the session's outbox (stream_frames)."""
        return False

    def wakeup(self) -> None:
        if not self.event.is_set():  # a broadcast wakes many receivers many times: once is enough
            self.event.set()

    def wait(self) -> None:
        self.event.wait()
        self.event.clear()

    def client_gone(self) -> bool:
        """Without waiting: has the client closed its end?  The watcher notices this too, but a
        new request may be served before the watcher runs, and must not be told that the gone
        one is "still open"."""
        if self.interrupted:
            return True
        if self.sock is None:
            return False
        try:
            readable, _, _ = select([self.sock], [], [], 0)
            gone = bool(readable) and not self.sock.recv(1, socket.MSG_PEEK)
        except OSError:
            gone = True
        if gone:
            self.interrupted = True
            self.wakeup()
        return gone


def watch_disconnect(receiver: Receiver) -> Optional[gevent.Greenlet]:
    """Notice at once when the client closes the connection under a pending request (WSGI servers
    do not tell the application).  Peeks, so a pipelined next request is left unread."""
    sock = receiver.sock
    if sock is None:
        return None

    def watch() -> None:
        try:
            data = sock.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if not data:
            receiver.interrupted = True
            receiver.wakeup()

    return gevent.spawn(watch)


def stream_frames(transport: HttpTransport, state: object, session, receiver: Receiver,
                  first: Tuple[List[Frame], bool], response_limit: int,
                  clock) -> Iterator[bytes]:
    """The one receiving loop of every HTTP transport, as a WSGI body iterator.

    Writes the prelude and the first frames, then waits for the session; a polling transport
    ends after one write, a streaming one once ``response_limit`` bytes of frames are written.
    The session is detached however this ends; an early end (the client went away, a write
    failed) counts as an interruption and closes the session with 1002.
    """
    watcher = watch_disconnect(receiver)
    completed = False
    written = 0
    try:
        prelude = transport.prelude(state)
        if prelude:
            yield prelude
        pending, finished = first
        while True:
            if not transport.streaming:
                # One frame per poll, as sockjs-node: a close frame after messages is not
                # lost, the closing session gives it again to the next poll.
                pending = pending[:1]
            for frame in pending:
                chunk = transport.encode(frame, state)
                written += len(chunk)
                yield chunk
            if finished or (pending and not transport.streaming) or written >= response_limit:
                completed = True
                return
            receiver.wait()
            if receiver.interrupted:
                return
            pending, finished = session.pull(clock())
    finally:
        if watcher is not None:
            watcher.kill()
        session.detach(receiver, clock(), interrupted=not completed)
