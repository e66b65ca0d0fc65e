"""How the messages of one connection are handled: each in its own greenlet of the shared
bounded pool, started in arrival order, with an ordered part.

Each job gets two events: ``previous`` (set when the job before it has finished its ordered
part) and ``mine`` (to set when its own ordered part is done).  The pub/sub requests of a
connection (subscribe, unsubscribe, publish, with their authenticators and push traps) run in
the ordered part, so they complete in order; an application receiver after them runs in its
message's greenlet while the next message starts, so a hook that waits on I/O holds up neither
other clients nor the next message of its own client.  Hooks are still called in arrival order.
"""
from typing import Any, Callable, Optional

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore
from gevent.pool import Pool

Job = Callable[[Event, Event], None]


class _Done:
    """The ``previous`` of a job submitted when nothing else is in hand: an event that is set
    for good.  One for all idle connections, which then hold no event of their own; not a
    gevent Event, which would be bound to one thread's hub."""

    __slots__ = ()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return True

    def is_set(self) -> bool:
        return True

    ready = is_set


_DONE: Any = _Done()


class Lane:
    """The jobs of one connection.  At most ``limit`` messages are in hand at once; the producer
    (the greenlet reading the client) waits beyond that, which stops reading the socket:
    backpressure, never loss."""

    __slots__ = ("pool", "slots", "_last")

    def __init__(self, pool: Pool, limit: int) -> None:
        self.pool = pool
        self.slots = BoundedSemaphore(limit)
        self._last = _DONE

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
            if self._last is mine:  # the last job: let its event go
                self._last = _DONE
            if counted:
                self.slots.release()
