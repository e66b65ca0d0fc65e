"""How the messages of one connection are handled: each in its own greenlet of the shared
bounded pool, started in arrival order, with an ordered part.

Each job gets two events: ``previous`` (set when the job before it has finished its ordered
part) and ``mine`` (to set when its own ordered part is done).  The pub/sub requests of a
connection (subscribe, unsubscribe, publish, with their authenticators and push traps) run in
the ordered part, so they complete in order; an application receiver after them runs in its
message's greenlet while the next message starts, so a hook that waits on I/O holds up neither
other clients nor the next message of its own client.  Hooks are still called in arrival order.
"""
from typing import Callable

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore
from gevent.pool import Pool

Job = Callable[[Event, Event], None]


class Lane:
    """The jobs of one connection.  At most ``limit`` messages are in hand at once; the producer
    (the greenlet reading the client) waits beyond that, which stops reading the socket:
    backpressure, never loss."""

    def __init__(self, pool: Pool, limit: int) -> None:
        self.pool = pool
        self.slots = BoundedSemaphore(limit)
        self._last = Event()
        self._last.set()

    def submit(self, job: Job, wait: bool = True) -> None:
        """Start ``job(previous, mine)``.  ``wait=False`` (the end-of-session work) never blocks:
        it takes no slot and, when the pool is full, runs outside it."""
        if wait:
            self.slots.acquire()
        previous, mine = self._last, Event()
        self._last = mine
        spawn = self.pool.spawn if wait or not self.pool.full() else gevent.spawn
        spawn(self._run, job, previous, mine, wait)

    def _run(self, job: Job, previous: Event, mine: Event, counted: bool) -> None:
        try:
            job(previous, mine)
        finally:
            mine.set()
            if counted:
                self.slots.release()
