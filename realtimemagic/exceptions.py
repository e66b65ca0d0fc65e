"""The exceptions of realtimemagic, one tree with one root::

    RealTimeMagicError
    +-- ConfigError                 a setting is wrong (ours, at start-up)
    |   +-- MissingExtra            an optional dependency is not installed (also an ImportError)
    |   +-- ListenError             the server cannot listen on its address
    +-- PeerError                   the client's fault; the server lives on
    |   +-- BadRequest              malformed body, frame or message
    |   +-- MessageTooLarge         over a size limit (max_frame_size, max_message_size)
    |   +-- IncompleteRequest       a request body cut short or badly chunked (HTTP 400)
    |   |   +-- BodyTimeout         a request body not complete within body_timeout (HTTP 408)
    |   +-- RequestRefused          a pub/sub request the server refuses; carries its error code
    |   |                           (``ProtocolError`` is its old name, kept as an alias)
    |   +-- AuthenticationError     an authenticator refused a channel or a message (forbidden)
    |   +-- SendStalled             a client took nothing for send_timeout (also an OSError:
    |                               its connection is dropped like any broken socket)
    +-- SessionError                a session cannot do what was asked
    |   +-- IllegalTransition       the session state machine has no such move: a bug of ours,
    |   |                           so also an AssertionError, as wsproto and websockets do
    |   +-- OutboxFull              a slow client's outbox is full; the session is closed
    +-- MonitorError                a monitor cannot run as configured
    |   +-- ConnectionLost          a monitor's connection stopped answering in time
    +-- PublishError                the internal API did not take a publish (rtm-publish)
    +-- RoutesUnavailable           the session directory or a process's inbox cannot be reached

Peer errors other than ``SendStalled`` carry the answer the client gets.  An application hook
that raises anything else is logged with its traceback and answered with the ``internal`` error
code, nothing more.  Wire errors of the WebSocket framing are wsproto's own (``RemoteProtocolError``
and ``LocalProtocolError``); nothing here is called a protocol error.
"""
from typing import Optional, Union


class RealTimeMagicError(Exception):
    """Root of every realtimemagic exception."""


class ConfigError(RealTimeMagicError):
    """A setting has a wrong value or an unknown name."""


class MissingExtra(ConfigError, ImportError):
    """A feature needs a package that is not installed; the message names the extra."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__("%s needs %s: pip install 'realtimemagic[%s]'" % (feature, package,
                                                                           extra))


class ListenError(ConfigError):
    """The listening socket cannot be had; ``reason`` is short (``address in use``)."""

    def __init__(self, host: str, port: int, reason: str, errno: int = 0) -> None:
        super().__init__("cannot listen on %s:%d: %s" % (host, port, reason))
        self.host, self.port, self.reason, self.errno = host, port, reason, errno


class PeerError(RealTimeMagicError):
    """Something the client sent is wrong.  ``str(error)`` is the reason it is told."""


class BadRequest(PeerError):
    """Malformed request body, frame or message."""


class MessageTooLarge(PeerError):
    """An incoming message or body is larger than its limit."""


class IncompleteRequest(PeerError):
    """The request body ended before its announced length, or its chunked framing is broken."""


class BodyTimeout(IncompleteRequest):
    """The request body did not arrive whole within ``body_timeout``."""


class RequestRefused(PeerError):
    """A pub/sub request refused with an error ``code`` of the wire protocol (SPEC section 3):
    ``bad_request``, ``too_large``, ``rate_limited``, ``limit``.  A hook raises it to answer
    with an error of its choice."""

    def __init__(self, code: str, reason: str, channel: Optional[str] = None,
                 request_id: Union[str, int, None] = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.channel = channel
        self.request_id = request_id


#: The name ``RequestRefused`` had in 0.1, documented for hooks; kept so that their
#: ``raise ProtocolError(code, reason)`` and ``except ProtocolError`` work unchanged.
ProtocolError = RequestRefused


class AuthenticationError(PeerError):
    """Raised by an authenticator to refuse; its message is the ``forbidden`` reason the
    client reads."""


class SendStalled(PeerError, OSError):
    """A write to a client made no progress for ``send_timeout`` seconds."""


class SessionError(RealTimeMagicError):
    """A session cannot do what was asked."""


class IllegalTransition(SessionError, AssertionError):
    """The session state machine has no such move from its current state: an invariant of ours
    broken, never the client's doing."""


class OutboxFull(SessionError):
    """A client reads too slowly: its bounded outbox is full."""


class MonitorError(RealTimeMagicError):
    """A monitor cannot run as configured (a RedisMonitor without monkey-patching)."""


class ConnectionLost(MonitorError):
    """A monitor's connection stopped answering in time (the other losses are the client
    library's own errors)."""


class PublishError(RealTimeMagicError):
    """A publish through the internal API failed: not reachable, not a realtimemagic API, or
    refused.  The message says which."""


class RoutesUnavailable(RealTimeMagicError):
    """The broker's session directory could not be asked or told, or a message for another
    process surely cannot arrive (its inbox has no listener)."""
