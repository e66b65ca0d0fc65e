"""One connection to a NATS server, blocking (cooperative under gevent once the process is
patched, like redis-py): the handshake, writes under a lock (several greenlets subscribe on the
listener's connection), reads through the sans-I/O parser, and PING round trips.

URL: ``nats://[user:password@|token@]host[:port][,host2[:port2]...]``; the port defaults to 4222;
with several servers (one cluster), each connection tries them in turn.  TLS is not supported:
a server that requires it is refused with a clear error.
"""
import socket
import threading
import time
from collections import deque
from typing import Callable, Deque, List, Optional, Tuple
from urllib.parse import unquote

from gevent import monkey

from ..config import FIXED
from ..exceptions import ConfigError
from . import nats_protocol as protocol

DEFAULT_PORT = 4222
CONNECT_TIMEOUT = FIXED.nats_connect_timeout  # s: TCP connect, INFO and the handshake's PONG
WRITE_TIMEOUT = FIXED.nats_write_timeout  # s: a server that takes nothing for this long is gone
RECEIVE_SIZE = FIXED.nats_receive_size

# A zero-timeout readiness check needs no cooperation: the real select never waits.
_select = monkey.get_original("select", "select")


class NatsUrl:
    """The parts of a ``nats://`` URL."""

    def __init__(self, url: str) -> None:
        scheme, _, rest = url.partition("://")
        if scheme.lower() != "nats" or not rest:
            raise ConfigError("not a NATS URL: %r (nats://host:port)" % url)
        credentials, _, hosts = rest.split("/", 1)[0].rpartition("@")
        self.user: Optional[str] = None
        self.password: Optional[str] = None
        self.token: Optional[str] = None
        if ":" in credentials:
            user, _, password = credentials.partition(":")
            self.user, self.password = unquote(user), unquote(password)
        elif credentials:
            self.token = unquote(credentials)
        self.servers: List[Tuple[str, int]] = []
        for server in hosts.split(","):
            host, _, port = server.rpartition(":") if ":" in server else (server, "", "")
            try:
                self.servers.append((host.strip("[]") or "127.0.0.1",
                                     int(port) if port else DEFAULT_PORT))
            except ValueError:
                raise ConfigError("bad port in NATS URL %r" % server) from None


class NatsConnection:
    """A connected, handshaken NATS connection.  ``on_pong`` callbacks run in the order of the
    PINGs they were sent with (the server answers them in order, after everything before)."""

    def __init__(self, url: NatsUrl, name: str, attempt: int = 0,
                 timeout: float = CONNECT_TIMEOUT) -> None:
        host, port = url.servers[attempt % len(url.servers)]
        self.sock = socket.create_connection((host, port), timeout)
        self._write_lock = threading.Lock()
        self.pongs: Deque[Tuple[float, Optional[Callable[[], None]]]] = deque()
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            self.parser = protocol.Parser()
            self._events: Deque[protocol.Event] = deque()
            info = self.next_event(timeout)
            if not isinstance(info, protocol.Info):
                raise protocol.NatsProtocolError("expected INFO, got %r" % (info,))
            if info.options.get("tls_required"):
                raise ConfigError("the NATS server %s:%d requires TLS, which the NATS broker "
                                  "does not speak" % (host, port))
            self.max_payload = int(info.options.get("max_payload", FIXED.nats_server_max_payload))
            self.parser.max_payload = self.max_payload  # nothing larger can come either
            self.send(protocol.connect(name, url.user, url.password, url.token))
            self.flush(timeout)  # an authorization error arrives as -ERR before the PONG
        except BaseException:
            self.close()
            raise

    def send(self, data: bytes) -> None:
        """Write ``data`` whole; a write that fails midway leaves the stream unusable: close."""
        with self._write_lock:
            try:
                self.sock.sendall(data)
            except BaseException:
                self.close()
                raise

    def ping(self, on_pong: Optional[Callable[[], None]] = None) -> None:
        with self._write_lock:
            self.pongs.append((time.monotonic(), on_pong))
            try:
                self.sock.sendall(protocol.PING)
            except BaseException:
                self.close()
                raise

    def oldest_ping_age(self) -> float:
        """Seconds the oldest unanswered PING has waited (0 when none waits)."""
        return time.monotonic() - self.pongs[0][0] if self.pongs else 0.0

    def next_event(self, timeout: float) -> Optional[protocol.Event]:
        """The next MSG, INFO or PONG from the server, or None after ``timeout`` seconds
        without one.  PINGs are answered here; a PONG runs the callback of its PING; -ERR
        raises."""
        while True:
            while self._events:
                event = self._events.popleft()
                if isinstance(event, protocol.Control):
                    if event.op == "-ERR":
                        raise protocol.NatsProtocolError("server error: " + event.text)
                    if event.op == "PING":
                        self.send(protocol.PONG)
                        continue
                    if event.op == "PONG" and self.pongs:
                        callback = self.pongs.popleft()[1]
                        if callback is not None:
                            callback()
                    elif event.op == "+OK":
                        continue
                return event
            self.sock.settimeout(timeout)
            try:
                data = self.sock.recv(RECEIVE_SIZE)
            except (socket.timeout, BlockingIOError):
                return None
            finally:  # writes (from other greenlets too) block, within a bound
                self.sock.settimeout(WRITE_TIMEOUT)
            if not data:
                raise ConnectionError("the NATS server closed the connection")
            self._events.extend(self.parser.feed(data))

    def flush(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """A PING round trip: returns once the server has handled everything sent before.
        For a connection with no subscriptions (a publisher): anything else received is
        dropped."""
        answered: List[bool] = []
        self.ping(lambda: answered.append(True))
        deadline = time.monotonic() + timeout
        while not answered:
            left = deadline - time.monotonic()
            if left <= 0 or self.next_event(left) is None:
                raise socket.timeout("no PONG from the NATS server in %.1f s" % timeout)

    def poll(self) -> None:
        """Handle what the server sent without waiting (its PINGs, an -ERR, the end of the
        connection), so that a publisher that only writes notices a closed connection before
        writing into it."""
        while _select([self.sock], [], [], 0)[0]:
            if self.next_event(0.0) is None:
                return

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
