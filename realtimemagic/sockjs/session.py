"""A SockJS session as a state machine, with its bounded outbox.

A session outlives the HTTP requests that carry it: a polling client attaches a new *receiver*
(one request) for each poll.  The session keeps what the receivers have not taken yet, knows when
a heartbeat is due and when it has been without a receiver for too long.  Time is passed in as
``now`` (seconds, any monotonic clock), so all of this is tested without sleeping.

States and moves (anything else raises :class:`IllegalTransition`)::

    NEW --open--> OPEN --close--> CLOSING --expire--> CLOSED
     |              |                                  ^
     +---expire-----+----------------expire------------+

The runtime calls up through two callbacks only: ``receiver.wakeup()`` when there is something
to pull, and ``on_closed(session)`` exactly once when the session leaves OPEN.
"""
import enum
from collections import deque
from typing import Any, Callable, Deque, Hashable, List, Optional, Tuple

from ..exceptions import IllegalTransition, OutboxFull
from . import frames
from .frames import OutgoingMessage


class State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Move(enum.Enum):
    OPEN = "open"
    CLOSE = "close"
    EXPIRE = "expire"


TRANSITIONS = {
    (State.NEW, Move.OPEN): State.OPEN,
    (State.NEW, Move.EXPIRE): State.CLOSED,
    (State.OPEN, Move.CLOSE): State.CLOSING,
    (State.OPEN, Move.EXPIRE): State.CLOSED,
    (State.CLOSING, Move.EXPIRE): State.CLOSED,
}

ANOTHER_CONNECTION = (2010, "Another connection still open")
INTERRUPTED = (1002, "Connection interrupted")
GO_AWAY = (3000, "Go away!")
TOO_SLOW = (4001, "Client too slow")


class Outbox:
    """Messages waiting for a receiver, bounded in count and in characters of text."""

    __slots__ = ("max_frames", "max_bytes", "_messages", "size")

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._messages: Deque[OutgoingMessage] = deque()
        self.size = 0

    def push(self, message: OutgoingMessage) -> None:
        """Queue ``message`` or raise :class:`OutboxFull`; never drops anything silently."""
        size = self.size + len(message.text)  # once: this runs for every recipient
        if size > self.max_bytes or len(self._messages) >= self.max_frames:
            raise OutboxFull("%d messages, %d characters waiting" % (
                len(self._messages), self.size))
        self._messages.append(message)
        self.size = size

    def take(self) -> List[OutgoingMessage]:
        """Everything queued, oldest first; the outbox is empty afterwards."""
        taken = list(self._messages)
        self._messages.clear()
        self.size = 0
        return taken

    def __len__(self) -> int:
        return len(self._messages)


class Session:
    """One SockJS session.  ``key`` is its registry key (the URL's session id, or a private
    key for websocket sessions, which cannot be reached by URL)."""

    def __init__(self, key: Hashable, now: float, heartbeat_interval: float,
                 disconnect_delay: float, outbox: Outbox,
                 on_closed: Optional[Callable[["Session"], None]] = None) -> None:
        self.key = key
        self.state = State.NEW
        self.heartbeat_interval = heartbeat_interval
        self.disconnect_delay = disconnect_delay
        self.outbox = outbox
        self.on_closed = on_closed
        self.receiver: Any = None
        #: The application's object for this session (set by the runtime).
        self.connection: Any = None
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.expires_at: Optional[float] = now + disconnect_delay
        self.heartbeat_at: Optional[float] = None
        self.heartbeat_due = False

    # -- state machine -------------------------------------------------------------------

    def _move(self, move: Move) -> State:
        try:
            new_state = TRANSITIONS[(self.state, move)]
        except KeyError:
            raise IllegalTransition("%s cannot %s a %s session" % (
                self.key, move.value, self.state.value)) from None
        left_open = self.state is State.OPEN
        self.state = new_state
        if left_open and self.on_closed is not None:
            self.on_closed(self)
        return new_state

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    @property
    def close_frame(self) -> frames.Close:
        return frames.Close(self.close_code, self.close_reason)

    # -- receivers -----------------------------------------------------------------------

    def attach(self, receiver: Any, now: float) -> Tuple[List[frames.Frame], bool]:
        """A request wants to receive.  Returns the frames to write at once and whether the
        request must then finish (it does not stay attached)."""
        if self.receiver is not None:
            return [frames.Close(*ANOTHER_CONNECTION)], True
        if self.state is State.CLOSING:
            self.expires_at = now + self.disconnect_delay
            return self._take_frames() + [self.close_frame], True
        if self.state is State.CLOSED:
            return [frames.Close(*GO_AWAY)], True
        self.receiver = receiver
        self.expires_at = None
        self.heartbeat_at = now + self.heartbeat_interval
        if self.state is State.NEW:
            self._move(Move.OPEN)
            return [frames.OPEN] + self._take_frames(), False
        return self._take_frames(), False

    def detach(self, receiver: Any, now: float, interrupted: bool = False) -> None:
        """The request has finished.  ``interrupted``: the client went away mid-request, which
        closes the session with 1002 "Connection interrupted"."""
        if self.receiver is not receiver:
            return
        self.receiver = None
        self.heartbeat_at = None
        self.heartbeat_due = False
        if self.state is not State.CLOSED:
            self.expires_at = now + self.disconnect_delay
        if interrupted and self.state is State.OPEN:
            self.close(*INTERRUPTED)

    def pull(self, now: float) -> Tuple[List[frames.Frame], bool]:
        """Frames for the attached receiver, and whether it must finish after writing them."""
        if self.state is not State.OPEN:
            return self._take_frames() + [self.close_frame], True
        pending = self._take_frames()
        if not pending and self.heartbeat_due:
            pending = [frames.HEARTBEAT]  # type: List[frames.Frame]
        if pending:
            self.heartbeat_due = False
            self.heartbeat_at = now + self.heartbeat_interval
        return pending, False

    def _take_frames(self) -> List[frames.Frame]:
        messages = self.outbox.take()
        return [messages] if messages else []

    def _wakeup(self) -> None:
        if self.receiver is not None:
            self.receiver.wakeup()

    # -- what the application does -------------------------------------------------------

    def send(self, message: OutgoingMessage) -> bool:
        """Queue a message.  False when the session is not open (the message goes nowhere).
        A full outbox closes the session with 4001 and raises :class:`OutboxFull`."""
        if self.state is not State.OPEN:
            return False
        try:
            self.outbox.push(message)
        except OutboxFull:
            self.close(*TOO_SLOW)
            raise
        self._wakeup()
        return True

    def close(self, code: int = 3000, reason: str = "Go away!") -> bool:
        """Close the session: receivers get ``c[code,"reason"]``.  False if not open."""
        if self.state is not State.OPEN:
            return False
        self.close_code, self.close_reason = code, reason
        self._move(Move.CLOSE)
        self._wakeup()
        return True

    # -- the sweeper ---------------------------------------------------------------------

    def sweep(self, now: float) -> bool:
        """Called by the sweeper.  Raises a heartbeat when due; returns True when the session
        has expired (no receiver for ``disconnect_delay``) and is now CLOSED."""
        if self.receiver is not None:
            if self.heartbeat_at is not None and now >= self.heartbeat_at and self.is_open:
                self.heartbeat_due = True
                self.heartbeat_at = now + self.heartbeat_interval
                self.receiver.wakeup()
            return False
        if self.expires_at is not None and now >= self.expires_at:
            self.expire()
            return True
        return False

    def expire(self) -> None:
        """End the session now (its receiver, if any, must be gone or going)."""
        if self.state is not State.CLOSED:
            self._move(Move.EXPIRE)
        self.outbox.take()
        self.expires_at = None

    def __repr__(self) -> str:
        return "<Session %s %s>" % (self.key, self.state.value)
