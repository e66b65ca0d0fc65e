"""gevent's pywsgi handler, with the socket exposed to the application (for the WebSocket
upgrade and for noticing clients that go away) and TCP_NODELAY on every connection."""
import socket

from gevent import pywsgi


class SocketExposingMixin:
    """For any pywsgi handler: TCP_NODELAY, and the socket in ``environ``."""

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

    def handle_one_response(self):
        super().handle_one_response()
        if getattr(self, "code", None) == 101:
            # After a WebSocket the connection is done: whatever the client still sends (its
            # answer to our close frame) is not an HTTP request.
            self.close_connection = True


class Handler(SocketExposingMixin, pywsgi.WSGIHandler):
    """rtm-serve's handler.  It tells the server when its connection is idle (a keep-alive
    connection waiting for its next request), so that a stopping server can close those at once
    instead of waiting for the shutdown timeout."""

    idle = False

    def __init__(self, sock, address, server, rfile=None):
        super().__init__(sock, address, server, rfile)
        handlers = getattr(server, "handlers", None)
        if handlers is not None:
            handlers.add(self)

    def read_requestline(self):
        self.idle = True
        try:
            return super().read_requestline()
        finally:
            self.idle = False

    def close_if_idle(self) -> None:
        if self.idle:
            try:
                self.socket.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass

    def log_request(self):
        # Long-polling and streaming requests would flood the access log; log at debug level
        # through the server's logger instead.
        log = getattr(self.server, "access_log", None)
        if log is not None:
            log.debug(self.format_request())
