"""One connection's incoming work, run in arrival order on the shared bounded pool.

Each message is handled in a greenlet of the pool, so a hook that waits on I/O stalls nobody
else; the messages of one connection run one after the other, in the order they came.
"""
from collections import deque
from typing import Callable, Deque

import gevent
from gevent.event import Event
from gevent.pool import Pool


class Mailbox:
    """Jobs of one connection.  At most ``limit`` wait; the producer (the greenlet reading the
    client) waits for room beyond that, which stops reading the socket: backpressure, not loss."""

    def __init__(self, pool: Pool, limit: int) -> None:
        self.pool = pool
        self.limit = limit
        self.jobs: Deque[Callable[[], None]] = deque()
        self.running = False
        self.room = Event()
        self.room.set()

    def put(self, job: Callable[[], None], wait: bool = True) -> None:
        """Queue ``job``.  ``wait=False`` (for the end-of-session work) never blocks: it is
        queued beyond the limit and, if the pool is full, run outside it."""
        while wait and len(self.jobs) >= self.limit:
            self.room.clear()
            self.room.wait()
        self.jobs.append(job)
        if not self.running:
            self.running = True
            if wait or not self.pool.full():
                self.pool.spawn(self._drain)
            else:
                gevent.spawn(self._drain)

    def _drain(self) -> None:
        try:
            while self.jobs:
                job = self.jobs.popleft()
                self.room.set()
                job()
        finally:
            self.running = False
            self.room.set()

    def __len__(self) -> int:
        return len(self.jobs)
