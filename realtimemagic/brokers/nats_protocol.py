"""The part of the NATS client protocol the NATS broker speaks, without I/O: the commands it sends
(CONNECT, PUB, SUB, UNSUB, PING, PONG), a parser of what the server sends (INFO, MSG, PING, PONG,
+OK, -ERR), and the mapping of channel names to subjects.

See https://docs.nats.io/reference/reference-protocols/nats-protocol.  The broker never asks for
headers, so the server sends MSG, never HMSG.

Subjects: a channel name may hold characters a subject may not ('.' separates a subject's tokens,
'*' and '>' are wildcards), so ``rtm.`` is followed by the channel's UTF-8 bytes with every byte
outside ``A-Z a-z 0-9 - _ :`` written as ``%XX``.  The encoding is reversible (so two channels
never share a subject) and leaves common names readable (``chat:room1`` is ``rtm.chat:room1``);
a subject is at most 4 + 3 x 800 bytes, well within the server's 4096-byte control line.
"""
import json
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

from ..config import FIXED

SUBJECT_PREFIX = "rtm."
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:")
MAX_CONTROL_LINE = FIXED.nats_max_control_line  # bytes: longest line from the server accepted

PING = b"PING\r\n"
PONG = b"PONG\r\n"


class NatsProtocolError(Exception):
    """The server sent something this client does not understand, or an -ERR."""


def subject_for(channel: str) -> str:
    return SUBJECT_PREFIX + "".join(
        chr(byte) if byte in _PLAIN else "%%%02X" % byte for byte in channel.encode("utf-8"))


def connect(name: str, user: Optional[str] = None, password: Optional[str] = None,
            token: Optional[str] = None) -> bytes:
    """CONNECT: no +OK for each command (verbose off), no headers, this client's name."""
    options: Dict[str, Any] = {"verbose": False, "pedantic": False, "lang": "python",
                               "version": "realtimemagic", "protocol": 1, "name": name,
                               "headers": False}
    if user is not None:
        options.update(user=user, **{"pass": password or ""})
    if token is not None:
        options["auth_token"] = token
    return b"CONNECT " + json.dumps(options, separators=(",", ":")).encode("utf-8") + b"\r\n"


def pub(subject: str, payload: bytes) -> bytes:
    return b"PUB %s %d\r\n%s\r\n" % (subject.encode("ascii"), len(payload), payload)


def sub(subject: str, sid: int) -> bytes:
    return b"SUB %s %d\r\n" % (subject.encode("ascii"), sid)


def unsub(sid: int) -> bytes:
    return b"UNSUB %d\r\n" % sid


class Msg(NamedTuple):
    subject: str
    sid: int
    payload: bytes


class Info(NamedTuple):
    options: Dict[str, Any]


class Control(NamedTuple):
    """PING, PONG, +OK, or -ERR (with its ``text``)."""
    op: str
    text: str = ""


Event = Union[Msg, Info, Control]


class Parser:
    """What the server sends, fed in pieces of any size; ``feed`` returns the complete events.
    A payload longer than ``max_payload`` bytes or a line longer than MAX_CONTROL_LINE raises."""

    def __init__(self, max_payload: int = FIXED.nats_max_payload) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._message: Optional[Tuple[str, int, int]] = None  # a MSG waiting for its payload

    def feed(self, data: bytes) -> List[Event]:
        self._buffer += data
        events: List[Event] = []
        position = 0
        while True:
            if self._message is not None:
                subject, sid, size = self._message
                end = position + size
                if len(self._buffer) < end + 2:
                    break
                if self._buffer[end:end + 2] != b"\r\n":
                    raise NatsProtocolError("MSG payload not followed by CRLF")
                events.append(Msg(subject, sid, bytes(self._buffer[position:end])))
                self._message = None
                position = end + 2
                continue
            end = self._buffer.find(b"\r\n", position)
            if end < 0:
                if len(self._buffer) - position > MAX_CONTROL_LINE:
                    raise NatsProtocolError("line longer than %d bytes" % MAX_CONTROL_LINE)
                break
            line = bytes(self._buffer[position:end])
            position = end + 2
            event = self._line(line)
            if event is not None:
                events.append(event)
        del self._buffer[:position]
        return events

    def _line(self, line: bytes) -> Optional[Event]:
        op, _, rest = line.partition(b" ")
        op = op.upper()
        if op == b"MSG":
            self._message = self._msg_line(rest)
            return None
        if op in (b"PING", b"PONG", b"+OK"):
            return Control(op.decode("ascii"))
        if op == b"-ERR":
            return Control("-ERR", rest.decode("utf-8", "replace").strip().strip("'"))
        if op == b"INFO":
            try:
                return Info(json.loads(rest))
            except ValueError:
                raise NatsProtocolError("malformed INFO") from None
        raise NatsProtocolError("unknown operation %r" % op[:20])

    def _msg_line(self, rest: bytes) -> Tuple[str, int, int]:
        # MSG <subject> <sid> [reply-to] <#bytes>
        fields = rest.split()
        if len(fields) not in (3, 4):
            raise NatsProtocolError("malformed MSG line")
        try:
            subject, sid, size = fields[0].decode("ascii"), int(fields[1]), int(fields[-1])
        except ValueError:
            raise NatsProtocolError("malformed MSG line") from None
        if not 0 <= size <= self.max_payload:
            raise NatsProtocolError("MSG of %d bytes (at most %d)" % (size, self.max_payload))
        return subject, sid, size
