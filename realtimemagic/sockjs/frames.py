"""SockJS frames: what the server sends (``o``, ``h``, ``a[...]``, ``c[...]``) and the decoding of
what the client sends (a JSON array of strings).

Outgoing messages are wrapped in :class:`OutgoingMessage`, which encodes its JSON string literal
once, however many sessions it is queued to: a broadcast costs one encode, not one per recipient.
"""
import re
from json.encoder import encode_basestring
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

from .. import jsoncodec
from ..exceptions import BadRequest

OPEN = "o"
HEARTBEAT = "h"

# Characters that some browsers or proxies mangle inside a JSON string; sockjs-node escapes the
# same set, and the protocol suite checks that we do.
_ESCAPABLE = re.compile("[\x00-\x1f\ud800-\udfff\u200c-\u200f\u2028-\u202f\u2060-\u206f"
                        "\ufff0-\uffff]")


def _escape(match: "re.Match[str]") -> str:
    return "\\u%04x" % ord(match.group(0))


def quote(text: str) -> str:
    """The JSON string literal of ``text``, with the characters browsers mangle escaped."""
    # What json.dumps(text, ensure_ascii=False) returns, without building an encoder per call:
    # that function is what it calls for a str (the C one where there is one).
    quoted = encode_basestring(text)
    if _ESCAPABLE.search(quoted) is None:
        return quoted
    return _ESCAPABLE.sub(_escape, quoted)


class OutgoingMessage:
    """One message on its way to one or many sessions.  Its literal, and what transports make of
    it (``encoded``), are computed once, by the first recipient that needs them."""

    __slots__ = ("text", "_quoted", "_encoded")

    def __init__(self, text: str) -> None:
        self.text = text
        self._quoted: Optional[str] = None
        self._encoded: Optional[Dict[str, bytes]] = None

    @property
    def quoted(self) -> str:
        if self._quoted is None:
            self._quoted = quote(self.text)
        return self._quoted

    def encoded(self, kind: str, encode: Callable[["OutgoingMessage"], bytes]) -> bytes:
        """``encode(self)``, computed once per ``kind`` (say, a WebSocket frame) and shared by
        every recipient."""
        if self._encoded is None:
            self._encoded = {}
        data = self._encoded.get(kind)
        if data is None:
            data = self._encoded[kind] = encode(self)
        return data

    def __len__(self) -> int:
        return len(self.text)

    def __repr__(self) -> str:
        return "OutgoingMessage(%r)" % (self.text[:40],)


def messages_frame(messages: Sequence[OutgoingMessage]) -> str:
    """``a[...]``: one frame carrying every message in order."""
    if len(messages) == 1:
        return "a[" + messages[0].quoted + "]"
    return "a[" + ",".join(message.quoted for message in messages) + "]"


def close_frame(code: int, reason: str) -> str:
    """``c[code,"reason"]``."""
    return "c[%d,%s]" % (code, quote(reason))


class Close(NamedTuple):
    """The close frame, kept structured so that the raw WebSocket can send a real close."""
    code: int
    reason: str


#: What a session hands its receiver: ``OPEN``, ``HEARTBEAT``, a :class:`Close`, or a batch of
#: messages (a list of :class:`OutgoingMessage`).  Transports turn it into bytes.
Frame = Union[str, Close, List[OutgoingMessage]]


def render(frame: Frame) -> str:
    """The SockJS text of a frame."""
    if isinstance(frame, list):
        return messages_frame(frame)
    if isinstance(frame, Close):
        return close_frame(frame.code, frame.reason)
    return frame


def decode_messages(payload: Union[str, bytes], allow_single: bool = False) -> List[str]:
    """The messages of a client payload: a JSON array of strings.

    ``allow_single`` accepts a lone JSON string too (the websocket transport does).
    Raises :class:`BadRequest` with the reason sockjs-node gives.
    """
    if not payload:
        raise BadRequest("Payload expected.")
    try:
        decoded = jsoncodec.loads_lenient(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurd nesting
        raise BadRequest("Broken JSON encoding.") from None
    if isinstance(decoded, str) and allow_single:
        return [decoded]
    if not isinstance(decoded, list) or not all(isinstance(item, str) for item in decoded):
        raise BadRequest("Broken JSON encoding.")
    return decoded
