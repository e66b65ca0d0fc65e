"""gevent's pywsgi handler, with the socket exposed to the application (for the WebSocket
upgrade and for noticing clients that go away), TCP_NODELAY on every connection, and deadlines
on what the client sends: its request line and headers (``header_timeout``) and its body
(``body_timeout``)."""
import socket
import time
from typing import Callable, Optional

import gevent
from gevent import pywsgi

from ..incidents import incidents

BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class SocketExposingMixin:
    """For any pywsgi handler: TCP_NODELAY, the socket in ``environ``, and malformed requests
    answered 400 and counted, without gevent's traceback and log line for each."""

    def __init__(self, sock, address, server, rfile=None):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP (a Unix socket)
        super().__init__(sock, address, server, rfile)

    def get_environ(self):
        environ = super().get_environ()
        environ["realtimemagic.socket"] = self.socket
        return environ

    def _check_http_version(self):
        # gevent raises IndexError (logged as a crash) on a version like "HTTP/1"; it is just
        # a bad request.
        try:
            return super()._check_http_version()
        except (IndexError, ValueError):
            return False

    def _handle_client_error(self, error):
        # gevent logs each one at ERROR (over 100 headers: with a traceback); an attacker
        # would fill the log.
        incidents.record("malformed_request", "from %s: %.200r" % (
            _peer(self.client_address), str(error) or type(error).__name__))
        return ("400", BAD_REQUEST)

    def handle_one_response(self):
        super().handle_one_response()
        if getattr(self, "code", None) == 101:
            # After a WebSocket the connection is done: whatever the client still sends (its
            # answer to our close frame) is not an HTTP request.
            self.close_connection = True


class Handler(SocketExposingMixin, pywsgi.WSGIHandler):
    """rtm-serve's handler, for a :class:`.wsgi_server.WSGIServer`.

    While it waits for a request's line and headers (a connection just accepted, or a kept-alive
    one between two requests) the connection is *half-open*: it counts in the server's
    ``half_open`` and has the server's ``header_timeout`` seconds (None: no limit) to complete
    them.  The head of a connection's first request that does not arrive in
    time is answered 408; a kept-alive connection that stays idle is just closed.  A request
    body has ``body_timeout`` seconds from the end of the head, whoever reads it (the
    application, or pywsgi discarding what it left).  Either read is abandoned, never resumed:
    the connection is closed.

    It also tells the server when it is half-open, so that a stopping server can close those
    connections at once instead of waiting for the shutdown timeout.
    """

    waiting = False  # for a request's line and headers
    handed_over = False  # the application keeps the socket (see hand_over)
    _head_deadline: Optional[gevent.Timeout] = None
    _requests = 0

    def __init__(self, sock, address, server, rfile=None):
        super().__init__(sock, address, server, rfile)
        handlers = getattr(server, "handlers", None)
        if handlers is not None:
            handlers.add(self)

    def handle_one_request(self):
        try:
            result = super().handle_one_request()
        except gevent.Timeout as timeout:
            if timeout is not self._head_deadline:
                raise
            if self._requests:
                return None  # an idle kept-alive connection
            incidents.record("header_timeout", "from %s" % _peer(self.client_address))
            result = ("408", REQUEST_TIMEOUT)
        finally:
            self._head_done()
            self._requests += 1
        if isinstance(result, tuple):
            # An error answer before the application (400, 408, 414): pywsgi would send it with
            # sendall, and log a traceback when the client is gone already.
            answer(self.socket, result[1])
            return None
        return result

    def read_requestline(self):
        self.waiting = True
        self.server.half_open += 1
        if self.server.header_timeout is not None:
            self._head_deadline = gevent.Timeout.start_new(self.server.header_timeout)
        return super().read_requestline()

    def read_request(self, raw_requestline):
        try:
            return super().read_request(raw_requestline)
        finally:
            self._head_done()

    def _head_done(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.close()  # kept: handle_one_request recognizes it
        if self.waiting:
            self.waiting = False
            self.server.half_open -= 1

    def get_environ(self):
        environ = super().get_environ()
        environ["realtimemagic.hand_over"] = self.hand_over
        body_timeout = self.server.body_timeout
        if body_timeout is not None and self.wsgi_input is not None:
            self.wsgi_input.rfile = DeadlineReader(self.rfile, time.monotonic() + body_timeout,
                                                   self._body_timed_out)
        return environ

    def _body_timed_out(self) -> None:
        self.close_connection = True
        incidents.record("body_timeout", "from %s: %s %.100r" % (
            _peer(self.client_address), self.command, self.path))

    def close_if_idle(self) -> None:
        if self.waiting:
            try:
                self.socket.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass

    def hand_over(self):
        """The connection's socket, for the application to keep after its response (a
        WebSocket): the handler neither reads nor closes it any more, and its greenlet, buffers
        and request state go as soon as the response returns.  The application closes the
        socket when it is done."""
        self.handed_over = True
        self.environ.pop("realtimemagic.hand_over", None)  # a cycle that would hold the buffers
        self.server.handed_over.add(self.socket)
        return self.socket

    def handle_one_response(self):
        super().handle_one_response()
        if self.handed_over:
            self.socket = None  # pywsgi's handle() ends without draining or closing it

    def log_request(self):
        # Long-polling and streaming requests would flood the access log; log at debug level
        # through the server's logger instead.
        log = getattr(self.server, "access_log", None)
        if log is not None:
            log.debug(self.format_request())


class DeadlineReader:
    """A request's input stream that gives up at ``deadline`` (``time.monotonic()``): the read
    in progress raises ``TimeoutError`` and ``on_expired`` is called once.  What was read of the
    body is lost, so the connection must be closed (``on_expired`` sees to it)."""

    def __init__(self, rfile, deadline: float, on_expired: Callable[[], None]) -> None:
        self.rfile = rfile
        self.deadline = deadline
        self.on_expired: Optional[Callable[[], None]] = on_expired

    def read(self, *size):
        return self._bounded(self.rfile.read, *size)

    def readline(self, *size):
        return self._bounded(self.rfile.readline, *size)

    def _bounded(self, read, *size):
        expired = TimeoutError("request body not complete within its deadline")
        with gevent.Timeout(max(0.0, self.deadline - time.monotonic()), expired):
            try:
                return read(*size)
            except TimeoutError as error:
                if error is expired and self.on_expired is not None:
                    self.on_expired()
                    self.on_expired = None
                raise

    def __getattr__(self, name):
        return getattr(self.rfile, name)


def answer(sock, response: bytes) -> None:
    """Send a short answer before closing, best effort, never waiting: the client may not read
    at all, or be gone."""
    try:
        sock.settimeout(0)
        sock.send(response)
    except OSError:
        pass


def _peer(address) -> str:
    return address[0] if isinstance(address, tuple) else str(address)
