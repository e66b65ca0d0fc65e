"""The server lifecycle on gevent's pywsgi: ``start``, ``serve_forever``, ``stop(timeout)``."""
import errno
import logging
import os
import signal
import socket
import time
import weakref
from typing import Any, Callable, Optional, Tuple

import gevent
from gevent.event import Event
from gevent.pool import Pool

from .. import config
from ..exceptions import ListenError
from .handler import Handler
from .wsgi_server import WSGIServer

log = logging.getLogger("realtimemagic.server")

SHUTDOWN = (1001, "Server shutting down")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Why a socket cannot listen, in the words of the one-line error.
_REASONS = {errno.EADDRINUSE: "address in use", errno.EACCES: "permission denied",
            errno.EADDRNOTAVAIL: "address not available on this machine"}


def configure_logging(level: str = "info") -> None:
    """Log to stderr at ``level``, unless the application configured logging itself (the root
    logger has handlers already): the lines of ``rtm-serve`` and of ``rtm.start()``."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)


class Server:
    """Serve a WSGI application (a :class:`Router` or :class:`SockJSEndpoint`) on one address.

    ``app`` may have ``startup()``, ``shutdown()`` and ``close_all(code, reason)``; they are
    called at the matching moments.  ``settings`` gives the bounds on what clients send
    (``header_timeout``, ``body_timeout``, ``max_connections``); the defaults when None.
    ``host``, ``port`` and ``shutdown_timeout`` left None are those of ``settings``.
    """

    def __init__(self, app: Callable, host: Optional[str] = None, port: Optional[int] = None,
                 shutdown_timeout: Optional[float] = None,
                 settings: Optional[config.Settings] = None) -> None:
        settings = settings or config.Settings()
        self.app = app
        self.shutdown_timeout = (settings.shutdown_timeout if shutdown_timeout is None
                                 else shutdown_timeout)
        address = (settings.host if host is None else host,
                   settings.port if port is None else port)
        # A pool (unbounded: max_connections bounds the sessions and, in the server, the
        # half-open connections), so that stop() can wait for the connections to finish.
        self.wsgi = bounded_server(address, app, settings, spawn=Pool())
        self.wsgi.handlers = weakref.WeakSet()
        self._stopped = Event()

    @property
    def address(self) -> Tuple[str, int]:
        """The bound (host, port); the port is the real one when 0 was asked for."""
        return self.wsgi.address[:2]

    @property
    def url(self) -> str:
        host, port = self.address
        return "http://%s:%d" % (host, port)

    def start(self) -> None:
        try:
            self.wsgi.init_socket()  # bound now, so that the address is known
        except OSError as error:
            host, port = self.wsgi.address[:2]
            number = error.errno or 0
            raise ListenError(host, port, _REASONS.get(number, error.strerror or str(error)),
                              number) from error
        if hasattr(self.app, "startup"):
            self.app.startup()  # the broker before the first client, when it can be had
        self.wsgi.start()
        log.info("listening on %s", self.url)

    def serve_forever(self, install_signals: bool = True) -> None:
        """Serve until :meth:`stop` or SIGINT/SIGTERM (a second signal exits at once)."""
        self.start()
        if install_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                gevent.signal_handler(signum, self._on_signal)
        self._stopped.wait()

    def _on_signal(self) -> None:
        if self._stopping:
            log.warning("second signal: exiting now")
            os._exit(1)
        log.info("stopping (a second signal exits at once)")
        self._stopping = True
        gevent.spawn(self.stop)

    _stopping = False

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop accepting, send every session a close frame (1001 "Server shutting down"), give
        requests and hooks ``timeout`` seconds (default: ``shutdown_timeout``) to finish, then
        close what is left."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self.wsgi.stop_accepting()
        if hasattr(self.app, "close_all"):
            self.app.close_all(*SHUTDOWN)
        pool = self.wsgi.pool
        while len(pool) and time.monotonic() < deadline:
            # Requests that delivered their close frame leave keep-alive connections behind.
            for handler in list(self.wsgi.handlers):
                handler.close_if_idle()
            pool.join(timeout=0.1)
        self.wsgi.stop(timeout=max(0.0, deadline - time.monotonic()))
        if hasattr(self.app, "shutdown"):
            self.app.shutdown(max(0.0, deadline - time.monotonic()))
        self._stopped.set()


def listen(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening socket; ``reuse_port`` lets every worker of a gunicorn process bind it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port and hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(config.FIXED.listen_backlog)
    sock.setblocking(False)
    return sock


def bounded_server(listener: Any, app: Callable, settings: config.Settings,
                   **keywords: Any) -> WSGIServer:
    """pywsgi with our handler, the bounds of ``settings`` and our loggers."""
    server = WSGIServer(listener, app, header_timeout=settings.header_timeout,
                        body_timeout=settings.body_timeout,
                        max_half_open=settings.max_connections, handler_class=Handler, log=None,
                        error_log=logging.getLogger("realtimemagic.wsgi"), **keywords)
    server.access_log = logging.getLogger("realtimemagic.access")
    return server
