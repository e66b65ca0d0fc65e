"""The client's socket as the WSGI servers we run under hand it over, and the few things done
to it directly."""
import socket
from typing import Dict, Optional


def client_socket(environ: Dict) -> Optional[socket.socket]:
    """The client's socket, from our handler, gunicorn, or gevent's pywsgi input stream."""
    sock = environ.get("realtimemagic.socket") or environ.get("gunicorn.socket")
    if sock is not None:
        return sock
    stream = environ.get("wsgi.input")
    raw = getattr(getattr(getattr(stream, "rfile", None), "raw", None), "_sock", None)
    return raw


def set_nodelay(environ: Dict) -> None:
    """Frames are small and latency matters: without TCP_NODELAY a keep-alive response can wait
    for a delayed ACK (about 40 ms on Linux)."""
    sock = client_socket(environ)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass


def shutdown(sock: socket.socket) -> None:
    """End both directions (a read blocked on it returns); the WSGI server closes the socket
    itself."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def peer(sock: socket.socket) -> str:
    """The client's address, for a log line."""
    try:
        return str(sock.getpeername()[0])
    except (OSError, IndexError, TypeError):
        return "?"
