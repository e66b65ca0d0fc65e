"""A TCP proxy in front of a service, to cut the service off in two ways:

- ``freeze()``: a network cut without a FIN or RST, so both ends believe the connection is open
  and nothing more arrives (a half-open connection); new connections work;
- ``stop()`` then ``start()``: a restart: the open connections are closed and new ones refused
  until ``start()`` listens on the same port again.

    with FreezeProxy(("127.0.0.1", 5432)) as proxy:   # listens on proxy.port
        ...
"""
import select
import socket
import threading
from typing import List, Tuple

POLL_INTERVAL = 0.05  # s: how often the pumps look at their flags
CHUNK = 65536         # bytes read at once


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.frozen = threading.Event()
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.server):
            try:
                sock.close()
            except OSError:
                pass


class FreezeProxy:
    def __init__(self, target: Tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.links: List[_Link] = []
        self.lock = threading.Lock()
        self.start()

    def start(self) -> None:
        """Listen (again, on the same port after a stop)."""
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def __enter__(self) -> "FreezeProxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def freeze(self) -> int:
        """Freeze every connection open now; the number frozen."""
        with self.lock:
            live = [link for link in self.links if not link.closed.is_set()]
        for link in live:
            link.frozen.set()
        return len(live)

    def stop(self) -> None:
        """Close every connection and refuse new ones."""
        self.running = False
        self.listener.close()
        with self.lock:
            links, self.links = list(self.links), []
        for link in links:
            link.close()

    def _accept(self, listener: socket.socket) -> None:
        while self.running and listener is self.listener:
            try:
                if not select.select([listener], [], [], POLL_INTERVAL)[0]:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):  # closed by stop()
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            link = _Link(client, server)
            with self.lock:
                self.links.append(link)
            threading.Thread(target=self._pump, args=(link, client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(link, server, client), daemon=True).start()

    @staticmethod
    def _pump(link: _Link, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not link.closed.is_set():
                if link.frozen.is_set():
                    link.closed.wait(POLL_INTERVAL)  # read nothing, send nothing, close nothing
                    continue
                if not select.select([source], [], [], POLL_INTERVAL)[0]:
                    continue
                data = source.recv(CHUNK)
                if not data:
                    break
                if not link.frozen.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        if not link.frozen.is_set():
            link.close()
