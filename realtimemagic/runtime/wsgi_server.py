"""gevent's pywsgi server with bounds on what connections cost before they are requests.

- Half-open connections (accepted, their request's line and headers not complete yet; see
  :class:`.handler.Handler`) are counted in ``half_open``; past ``max_half_open`` a new
  connection is answered 503 and closed at once.  Each has ``header_timeout`` seconds.
- Out of file descriptors (``accept`` fails with EMFILE or ENFILE), the accept loop neither
  spins nor logs a traceback each time, as gevent's does: a descriptor kept in reserve is given
  back for a moment to accept the waiting connection, answer it 503 and close it, so that no
  client waits in the backlog for nothing.  Without a reserve, accepting pauses (10 ms doubling
  to 1 s) and resumes as soon as one of the server's connections closes.  Each refusal is an
  incident (counted, logged at most once per interval).
"""
import errno
import os
import socket
import weakref
from typing import Optional

from gevent import pywsgi
from gevent.monkey import get_original

from ..incidents import incidents
from ..config import FIXED
from .handler import answer

#: accept() errors that mean "no descriptor (or no memory for one) just now".
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_PAUSE = FIXED.accept_pause  # seconds: first and longest pause without descriptors
# gevent's patched os.close defers closing a descriptor that is not a regular file to the next
# loop iteration; the reserve must be free before the accept that follows.
_close_now = get_original("os", "close")


def refusal(reason: str) -> bytes:
    body = reason.encode("ascii")
    return (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
            b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


TOO_MANY_HALF_OPEN = refusal("Too many connections: this server is at max_connections.\n")
NO_DESCRIPTORS = refusal("Too many connections: this server is out of file descriptors.\n")


#: The servers of this process, for the statistics.
servers: "weakref.WeakSet[WSGIServer]" = weakref.WeakSet()


def half_open() -> int:
    """Connections of every server of this process waiting for their request headers."""
    return sum(server.half_open for server in list(servers))


class WSGIServer(pywsgi.WSGIServer):
    """``header_timeout`` and ``body_timeout`` (seconds) are read by the handler; ``None``
    leaves the client all the time it wants.  ``max_half_open`` None: no bound."""

    def __init__(self, listener, application, header_timeout: Optional[float] = None,
                 body_timeout: Optional[float] = None, max_half_open: Optional[int] = None,
                 **keywords) -> None:
        super().__init__(listener, application, **keywords)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_half_open = max_half_open
        self.half_open = 0
        #: Sockets the application kept after their handler ended (Handler.hand_over).
        self.handed_over: set = set()
        self._reserve: Optional[int] = None
        self._pause = ACCEPT_PAUSE[0]
        self._paused = False
        servers.add(self)

    def start(self) -> None:
        if self._reserve is None:
            self._reserve = _open_reserve()
        super().start()

    def close(self) -> None:
        super().close()
        if self._reserve is not None:
            _close_now(self._reserve)
            self._reserve = None

    def handle(self, sock, address) -> None:
        if self.max_half_open is not None and self.half_open >= self.max_half_open:
            incidents.record("half_open_limit", "from %s" % (address[0],))
            answer(sock, TOO_MANY_HALF_OPEN)
            return  # the server closes the socket
        super().handle(sock, address)

    # -- accepting without descriptors -------------------------------------------------------

    def do_read(self):
        try:
            accepted = super().do_read()
        except OSError as error:
            if error.errno not in OUT_OF_DESCRIPTORS:
                raise
            if self._refuse_one():
                outcome = "a waiting connection was answered 503"
            else:
                self._pause_accepting()
                outcome = "accepting paused until a connection closes"
            incidents.record("descriptors_exhausted", "accept: %s; %s" % (
                os.strerror(error.errno), outcome))
            return None
        self._pause = ACCEPT_PAUSE[0]
        return accepted

    def _refuse_one(self) -> bool:
        """Accept the waiting connection with the reserve descriptor and refuse it."""
        if self._reserve is None:
            return False
        _close_now(self._reserve)
        try:
            fd, _ = self.socket._accept()
        except OSError:  # taken by another process meanwhile, or nobody waits any more
            fd = None
        if fd is not None:
            with socket.socket(fileno=fd) as sock:
                answer(sock, NO_DESCRIPTORS)
        self._reserve = _open_reserve()
        return fd is not None

    def _pause_accepting(self) -> None:
        self.stop_accepting()
        self._paused = True
        self._timer = self.loop.timer(self._pause)
        self._timer.start(self._resume_accepting)
        self._pause = min(ACCEPT_PAUSE[1], self._pause * 2)

    def _resume_accepting(self) -> None:
        if self._paused:
            self._paused = False
            self.stop_accepting()  # the timer
            if self.started:
                self.start_accepting()

    def stop_accepting(self) -> None:
        self._paused = False
        super().stop_accepting()

    def do_close(self, sock, *args) -> None:
        if sock in self.handed_over:  # the application's now (Handler.hand_over)
            self.handed_over.discard(sock)
            return
        super().do_close(sock, *args)
        if self._paused:  # a descriptor is free again
            self._resume_accepting()


def _open_reserve() -> Optional[int]:
    try:
        return os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
