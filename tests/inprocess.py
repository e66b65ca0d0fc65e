"""Run a server inside the test process, with clients in real threads.

The server runs on gevent in the test's main thread; a client (blocking stdlib sockets) runs in
gevent's thread pool, so while the test waits for it the hub keeps serving.  This lets a test
look inside the server (its sessions, a ticker greenlet) while talking to it over real sockets.
"""
from contextlib import contextmanager
from typing import Callable, Iterator

import gevent

from realtimemagic.runtime.server import Server


@contextmanager
def serving(app: Callable) -> Iterator[Server]:
    server = Server(app, "127.0.0.1", 0)
    server.start()
    try:
        yield server
    finally:
        server.stop(timeout=1)


def in_thread(function: Callable, *args, **kwargs):
    """Run a blocking client function in a real thread; the server goes on meanwhile."""
    return gevent.get_hub().threadpool.apply(function, args, kwargs)
