"""A SockJS session as a state machine, with its bounded outbox.

A session outlives the HTTP requests that carry it: a polling client attaches a new *receiver*
(one request) for each poll.  The session keeps what the receivers have not taken yet, knows when
a heartbeat is due and when it has been without a receiver for too long.  Time is passed in as
``now`` (seconds, any monotonic clock), so all of this is tested without sleeping.

The session's moves and what each does in each state are one table, :data:`TRANSITIONS`; the
methods only look their move up and run the effect it names (anything missing raises
:class:`IllegalTransition`)::

    NEW --attach--> OPEN --close--> CLOSING --expire--> CLOSED
     |               |  (detach interrupted,               ^
     |               |   outbox full)                      |
     +----expire-----+--------------expire-----------------+

The runtime calls up through three callbacks only: ``receiver.offer(message)``, which may take
a message at once when nothing is queued (a WebSocket writes it; True: taken, nothing to
queue), ``receiver.wakeup()`` when there is something to pull, and ``on_closed(session)``
exactly once when the session leaves OPEN.
"""
import enum
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

from ..exceptions import IllegalTransition, OutboxFull
from . import frames
from .frames import OutgoingMessage


class State(str, enum.Enum):  # str: hashed in C (a table lookup on every move)
    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Move(str, enum.Enum):
    ATTACH = "attach"    # a request wants to receive
    DETACH = "detach"    # that request has finished
    PULL = "pull"        # the attached request takes what is waiting
    SEND = "send"        # the application queues a message
    CLOSE = "close"      # the application (or a bound) closes the session
    EXPIRE = "expire"    # the sweeper (or the server) ends it


#: (state, move) -> (next state, the Session method that does the move's work).  The only place
#: that says what a move does in a state; a pair that is not here is an illegal move.
TRANSITIONS: Dict[Tuple[State, Move], Tuple[State, str]] = {
    (State.NEW, Move.ATTACH): (State.OPEN, "_greet"),           # o + queued; stays
    (State.OPEN, Move.ATTACH): (State.OPEN, "_resume"),         # queued; stays
    (State.CLOSING, Move.ATTACH): (State.CLOSING, "_show_close"),  # queued + c[..]; finishes
    (State.CLOSED, Move.ATTACH): (State.CLOSED, "_go_away"),    # c[3000,"Go away!"]; finishes
    (State.OPEN, Move.DETACH): (State.OPEN, "_let_go"),         # expiry starts; 1002 if cut
    (State.CLOSING, Move.DETACH): (State.CLOSING, "_let_go"),
    (State.CLOSED, Move.DETACH): (State.CLOSED, "_let_go"),
    (State.OPEN, Move.PULL): (State.OPEN, "_deliver"),          # queued, or a due heartbeat
    (State.CLOSING, Move.PULL): (State.CLOSING, "_finish"),     # queued + c[..]; finishes
    (State.CLOSED, Move.PULL): (State.CLOSED, "_finish"),
    (State.NEW, Move.SEND): (State.NEW, "_refuse"),             # goes nowhere
    (State.OPEN, Move.SEND): (State.OPEN, "_queue"),            # a full outbox closes (4001)
    (State.CLOSING, Move.SEND): (State.CLOSING, "_refuse"),
    (State.CLOSED, Move.SEND): (State.CLOSED, "_refuse"),
    (State.NEW, Move.CLOSE): (State.NEW, "_refuse"),
    (State.OPEN, Move.CLOSE): (State.CLOSING, "_announce_close"),  # receivers get c[..]
    (State.CLOSING, Move.CLOSE): (State.CLOSING, "_refuse"),
    (State.CLOSED, Move.CLOSE): (State.CLOSED, "_refuse"),
    (State.NEW, Move.EXPIRE): (State.CLOSED, "_drop"),          # the outbox is dropped
    (State.OPEN, Move.EXPIRE): (State.CLOSED, "_drop"),
    (State.CLOSING, Move.EXPIRE): (State.CLOSED, "_drop"),
    (State.CLOSED, Move.EXPIRE): (State.CLOSED, "_drop"),
}

ANOTHER_CONNECTION = (2010, "Another connection still open")
INTERRUPTED = (1002, "Connection interrupted")
GO_AWAY = (3000, "Go away!")
TOO_SLOW = (4001, "Client too slow")


class Outbox:
    """Messages waiting for a receiver, bounded in count and in characters of text.

    A list, not a deque: it is only appended to and taken whole, and an empty list is 56 bytes
    where an empty deque is 760 (its first block), held by every idle session."""

    __slots__ = ("max_frames", "max_bytes", "_messages", "size")

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._messages: List[OutgoingMessage] = []
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
        taken = self._messages
        if not taken:
            return []  # a list of the caller's own: the outbox keeps its empty one
        self._messages = []
        self.size = 0
        return taken

    def __len__(self) -> int:
        return len(self._messages)


class Session:
    """One SockJS session.  ``key`` is its registry key (the URL's session id, or a private
    key for websocket sessions, which cannot be reached by URL)."""

    # One per connection: no per-instance dict.
    __slots__ = ("key", "state", "heartbeat_interval", "disconnect_delay", "outbox", "on_closed",
                 "receiver", "connection", "close_code", "close_reason", "expires_at",
                 "heartbeat_at", "heartbeat_due")

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

    def _move(self, move: Move, *args: Any) -> Any:
        """Look ``move`` up in :data:`TRANSITIONS`, enter the next state, run its effect."""
        try:
            new_state, effect = TRANSITIONS[(self.state, move)]
        except KeyError:
            raise IllegalTransition("%s cannot %s a %s session" % (
                self.key, move.value, self.state.value)) from None
        left_open = self.state is State.OPEN and new_state is not State.OPEN
        self.state = new_state
        if left_open and self.on_closed is not None:
            self.on_closed(self)
        return getattr(self, effect)(*args)

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    @property
    def close_frame(self) -> frames.Close:
        """What receivers are told once the session is not open (``Go away!`` when it expired
        without being closed)."""
        if self.close_code is None or self.close_reason is None:
            return frames.Close(*GO_AWAY)
        return frames.Close(self.close_code, self.close_reason)

    # -- the moves -----------------------------------------------------------------------

    def attach(self, receiver: Any, now: float) -> Tuple[List[frames.Frame], bool]:
        """A request wants to receive.  Returns the frames to write at once and whether the
        request must then finish (it does not stay attached)."""
        if self.receiver is not None:  # one receiver at a time, in every state
            return [frames.Close(*ANOTHER_CONNECTION)], True
        result: Tuple[List[frames.Frame], bool] = self._move(Move.ATTACH, receiver, now)
        return result

    def detach(self, receiver: Any, now: float, interrupted: bool = False) -> None:
        """The request has finished.  ``interrupted``: the client went away mid-request, which
        closes an open session with 1002 "Connection interrupted"."""
        if self.receiver is receiver and receiver is not None:
            self._move(Move.DETACH, now, interrupted)

    def pull(self, now: float) -> Tuple[List[frames.Frame], bool]:
        """Frames for the attached receiver, and whether it must finish after writing them."""
        result: Tuple[List[frames.Frame], bool] = self._move(Move.PULL, now)
        return result

    def send(self, message: OutgoingMessage) -> bool:
        """Queue a message.  False when the session is not open (the message goes nowhere).
        A full outbox closes the session with 4001 and raises :class:`OutboxFull`."""
        queued: bool = self._move(Move.SEND, message)
        return queued

    def close(self, code: int = GO_AWAY[0], reason: str = GO_AWAY[1]) -> bool:
        """Close the session: receivers get ``c[code,"reason"]``.  False if not open."""
        if self.state is State.OPEN:  # recorded before the move: on_closed may read them
            self.close_code, self.close_reason = code, reason
        closed: bool = self._move(Move.CLOSE)
        return closed

    def expire(self) -> None:
        """End the session now (its receiver, if any, must be gone or going)."""
        self._move(Move.EXPIRE)

    # -- the effects named in TRANSITIONS --------------------------------------------------

    def _hold(self, receiver: Any, now: float) -> None:
        self.receiver = receiver
        self.expires_at = None
        self.heartbeat_at = now + self.heartbeat_interval

    def _greet(self, receiver: Any, now: float) -> Tuple[List[frames.Frame], bool]:
        self._hold(receiver, now)
        return [frames.OPEN] + self._take_frames(), False

    def _resume(self, receiver: Any, now: float) -> Tuple[List[frames.Frame], bool]:
        self._hold(receiver, now)
        return self._take_frames(), False

    def _show_close(self, receiver: Any, now: float) -> Tuple[List[frames.Frame], bool]:
        # A new request saw the close: the session lives another disconnect_delay.
        self.expires_at = now + self.disconnect_delay
        return self._finish(now)

    def _finish(self, now: float) -> Tuple[List[frames.Frame], bool]:
        return self._take_frames() + [self.close_frame], True

    def _go_away(self, receiver: Any, now: float) -> Tuple[List[frames.Frame], bool]:
        return [frames.Close(*GO_AWAY)], True

    def _let_go(self, now: float, interrupted: bool) -> None:
        self.receiver = None
        self.heartbeat_at = None
        self.heartbeat_due = False
        if self.state is not State.CLOSED:
            self.expires_at = now + self.disconnect_delay
        if interrupted:
            self.close(*INTERRUPTED)

    def _deliver(self, now: float) -> Tuple[List[frames.Frame], bool]:
        pending = self._take_frames()
        if not pending and self.heartbeat_due:
            pending = [frames.HEARTBEAT]
        if pending:
            self.heartbeat_due = False
            self.heartbeat_at = now + self.heartbeat_interval
        return pending, False

    def _queue(self, message: OutgoingMessage) -> bool:
        receiver = self.receiver
        if receiver is not None and not self.outbox and receiver.offer(message):
            return True  # written at once: nothing was waiting, and the client could take it
        try:
            self.outbox.push(message)
        except OutboxFull:
            self.close(*TOO_SLOW)
            raise
        self._wakeup()
        return True

    def _refuse(self, *ignored: Any) -> bool:
        return False

    def _announce_close(self) -> bool:
        self._wakeup()
        return True

    def _drop(self) -> None:
        self.outbox.take()
        self.expires_at = None

    def _take_frames(self) -> List[frames.Frame]:
        messages = self.outbox.take()
        return [messages] if messages else []

    def _wakeup(self) -> None:
        if self.receiver is not None:
            self.receiver.wakeup()

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

    def __repr__(self) -> str:
        return "<Session %s %s>" % (self.key, self.state.value)
