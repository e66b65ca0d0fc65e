"""Calling into the server's gevent loop from another OS thread."""
from typing import Callable

import gevent
from gevent import monkey

# The real thread identity: once threading is monkey-patched, its get_ident names greenlets.
_real_get_ident = monkey.get_original("_thread", "get_ident")


class LoopThread:
    """The OS thread whose gevent hub serves the application."""

    def __init__(self) -> None:
        self.bind()

    def bind(self) -> None:
        """Adopt the calling thread (the one that runs the server)."""
        self.ident = _real_get_ident()
        self.loop = gevent.get_hub().loop

    def call(self, function: Callable, *args) -> None:
        """Run ``function(*args)`` now when called from the loop's thread, else as soon as the
        loop can (thread-safe, never blocks the caller)."""
        if _real_get_ident() == self.ident:
            function(*args)
        else:
            self.loop.run_callback_threadsafe(function, *args)
