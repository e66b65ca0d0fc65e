"""The one writer of a connection's socket.

A write is made at once, in the caller's greenlet (a fan-out loop's, the sweeper's, the
reader's), when nothing is waiting and the socket takes it all: one non-blocking send, with no
event, no switch to another greenlet and no lock.  What the socket does not take waits in a
backlog, in order, and a flusher greenlet writes it: that greenlet exists only while there is a
backlog.  Two greenlets never write to the socket at once: while the flusher runs, every write
joins its backlog.
"""
import socket
from typing import List, Optional, Protocol, Union

import gevent
from gevent.socket import socket as GeventSocket

from ..exceptions import SendStalled

Chunk = Union[bytes, memoryview]


class WriterOwner(Protocol):
    """Who is told what happened to the writes (the connection)."""

    def drained(self) -> None:
        """The backlog is written: writes go straight to the socket again."""

    def write_failed(self, error: OSError) -> None:
        """Nothing more can be written (an error, or no progress for ``send_timeout``).
        Called from a fan-out loop too: record, do no application work."""


class Writer:
    """Writes to ``sock`` for ``owner``; a write that makes no progress for ``send_timeout``
    seconds fails (the client stopped reading, or vanished without a FIN)."""

    __slots__ = ("sock", "raw", "send_timeout", "owner", "backlog", "flusher", "failed")

    def __init__(self, sock: socket.socket, send_timeout: float, owner: WriterOwner) -> None:
        self.sock = sock
        # gevent's socket wraps a non-blocking one: sending on that directly is one send(2)
        # that never waits, without gevent's wrapper (profiled: it is the hot path).  Not for
        # TLS, whose wrapper encrypts.
        self.raw = sock._sock if type(sock) is GeventSocket else None  # type: ignore
        self.send_timeout = send_timeout
        self.owner = owner
        #: What waits for the flusher; None when writes go straight to the socket.
        self.backlog: Optional[List[Chunk]] = None
        self.flusher: Optional[gevent.Greenlet] = None
        self.failed = False

    def write(self, data: bytes) -> None:
        if self.backlog is not None:
            self.backlog.append(data)
            return
        if self.failed or not data:
            return
        try:
            if self.raw is not None:
                sent = self.raw.send(data)
            else:  # with timeout 0, gevent's send never waits either
                sent = self.sock.send(data, 0, timeout=0.0)  # type: ignore[call-arg]
        except (BlockingIOError, TypeError):  # the buffer is full; or not gevent's socket
            sent = 0  # (no timeout keyword): the flusher's sendall writes it
        except OSError as error:
            self._fail(error)
            return
        if sent < len(data):
            self.backlog = [memoryview(data)[sent:]]
            self.flusher = gevent.spawn(self._flush)

    def _flush(self) -> None:
        try:
            while self.backlog:
                data = b"".join(self.backlog)
                self.backlog = []
                with gevent.Timeout(self.send_timeout, SendStalled(
                        "no progress writing to the client for %g s" % self.send_timeout)):
                    self.sock.sendall(data)
        except OSError as error:  # SendStalled is one
            self.flusher = None
            self._fail(error)
            return
        self.backlog = None
        self.flusher = None
        self.owner.drained()

    def _fail(self, error: OSError) -> None:
        self.failed = True
        self.backlog = None
        self.owner.write_failed(error)

    def finish(self, timeout: float) -> None:
        """Give the backlog up to ``timeout`` seconds to go out, then stop writing."""
        flusher = self.flusher
        if flusher is not None:
            flusher.join(timeout)
            flusher.kill()
        self.failed = True
        self.backlog = None
