"""The pub/sub wire protocol (SPEC section 3) without I/O: reading requests, writing deliveries,
replies and errors.

Every server-to-client message is the JSON text of one object; a delivery is encoded once per
publish, whatever the number of recipients.

Strict JSON both ways (RFC 8259): ``NaN``, ``Infinity``, numbers out of the float range and lone
surrogates (``"\\ud800"``: valid JSON syntax, not valid Unicode, and no UTF-8 encoder takes it)
are refused where a message comes in, so that nothing published can break the connection of a
subscriber.  The checks cost nothing on the common path: they run once per incoming message or
publish, never per recipient, and walk the value only when the text could hold such a thing.
"""
import json
import re
from typing import Any, Dict, NamedTuple, Optional, Union

from .. import jsoncodec
from ..exceptions import BadRequest, RequestRefused

ACTIONS = ("subscribe", "unsubscribe", "publish", "presence")
REPLIES = {"subscribe": "subscribed", "unsubscribe": "unsubscribed", "publish": "published",
           "presence": "presence"}

# 1 to 200 characters, no control characters (C0, DEL, C1) and no whitespace (SPEC section 3).
# Used with fullmatch: "$" would let a final newline through.
_CHANNEL = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,200}")

BAD_REQUEST = "bad_request"
FORBIDDEN = "forbidden"
TOO_LARGE = "too_large"
RATE_LIMITED = "rate_limited"
LIMIT = "limit"
INTERNAL = "internal"


class Position(NamedTuple):
    """Where a client is in a channel's history."""
    offset: int
    epoch: str


class Request(NamedTuple):
    action: str
    channel: str
    message: Any = None
    request_id: Union[str, int, None] = None
    since: Optional[Position] = None  # subscribe: recover from this position


def channel_error(channel: Any) -> Optional[str]:
    """Why ``channel`` is not a valid channel name, or None."""
    if not isinstance(channel, str):
        return "channel must be a string"
    if not _CHANNEL.fullmatch(channel):
        return "channel must be 1 to 200 characters without whitespace or control characters"
    return None


def namespace(channel: str) -> Optional[str]:
    """``chat`` for ``chat:room1``; None for a channel without a namespace."""
    name, separator, _ = channel.partition(":")
    return name if separator else None


def request_id_of(message: Any) -> Union[str, int, None]:
    """The ``id`` of a request, when it has a valid one (a string or an integer)."""
    if isinstance(message, dict):
        value = message.get("id")
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return value
    return None


def is_pubsub_request(message: Any) -> bool:
    """A JSON object whose ``action`` the pub/sub handler knows."""
    return isinstance(message, dict) and message.get("action") in ACTIONS


def parse_request(message: dict) -> Request:
    """Check a pub/sub request; raises :class:`RequestRefused` (``bad_request``) naming the
    field that is missing or wrong."""
    request_id = request_id_of(message)
    if "id" in message and request_id is None:
        raise RequestRefused(BAD_REQUEST, "id must be a string or an integer")
    payload = message.get("payload")
    if not isinstance(payload, dict):
        raise RequestRefused(BAD_REQUEST, "payload must be an object", request_id=request_id)
    channel: Any = payload.get("channel")  # checked just below
    problem = channel_error(channel)
    if problem:
        raise RequestRefused(BAD_REQUEST, problem, request_id=request_id)
    action = message["action"]
    if action == "publish" and "message" not in payload:
        raise RequestRefused(BAD_REQUEST, "publish needs payload.message", channel, request_id)
    since = None
    if action == "subscribe" and payload.get("since") is not None:
        since = payload["since"]
        offset = since.get("offset") if isinstance(since, dict) else None
        epoch = since.get("epoch") if isinstance(since, dict) else None
        if (not isinstance(offset, int) or isinstance(offset, bool) or offset < 0
                or not isinstance(epoch, str)):
            raise RequestRefused(BAD_REQUEST, "since must be {\"offset\": integer >= 0, "
                                 "\"epoch\": string}", channel, request_id)
        since = Position(offset, epoch)
    return Request(action, channel, payload.get("message"), request_id, since)


def reply(action: str, channel: str, request_id: Union[str, int, None],
          **details: Any) -> dict:
    answer: Dict[str, Any] = {"action": REPLIES[action],
                              "payload": dict(details, channel=channel)}
    if request_id is not None:
        answer["id"] = request_id
    return answer


def error(code: str, reason: str, channel: Optional[str] = None,
          request_id: Union[str, int, None] = None) -> dict:
    payload: Dict[str, Any] = {"code": code, "reason": reason}
    if channel is not None:
        payload["channel"] = channel
    answer: Dict[str, Any] = {"action": "error", "payload": payload}
    if request_id is not None:
        answer["id"] = request_id
    return answer


# -- strict JSON (RFC 8259), both ways: realtimemagic.jsoncodec ------------------------------

_lone_surrogate = jsoncodec.lone_surrogate


def encode(value: Any) -> str:
    """JSON text, compact, UTF-8 characters kept as they are.  Raises ValueError for what is
    not JSON (NaN, infinities, a lone surrogate in a string) and TypeError for what JSON has no
    type for."""
    return jsoncodec.dumps(value)


def check_value(value: Any) -> None:
    """Raise ValueError (or TypeError) when ``value`` cannot be published: what
    :func:`encode` would refuse.  For values that come from Python (``rtm.publish``), not from a
    client (those are parsed strictly)."""
    jsoncodec.dumps(value)


def check_text(text: str, limit: int) -> None:
    """Refuse a client message over ``limit`` bytes of UTF-8 (``too_large``) or that is not
    valid Unicode (``bad_request``: a lone surrogate, which only the escapes of a SockJS frame
    can carry in).  One pass over non-ASCII text at most, none over ASCII text."""
    if text.isascii() or len(text) > limit:  # one byte a character at least
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise RequestRefused(BAD_REQUEST, "message is not valid Unicode: a lone surrogate"
                                 ) from None
    if size > limit:
        raise RequestRefused(TOO_LARGE, "message larger than %d bytes" % limit)


def parse_json(text: str) -> Any:
    """Strict JSON (RFC 8259) from valid Unicode text (see :func:`check_text`).  Raises
    :class:`BadRequest` saying why not: not JSON at all, ``NaN``/``Infinity``, a number out of
    range, a lone surrogate escape, nesting too deep for the parser."""
    return jsoncodec.loads(text)


class Incoming(NamedTuple):
    """A client's message: parsed from JSON when it is JSON, else its text as sent."""
    message: Any
    #: Why it is not JSON (None when it is).
    problem: Optional[str]
    #: The request's ``id``, when it has a valid one (even in text that is not strict JSON).
    request_id: Union[str, int, None]


def parse_message(text: str) -> Incoming:
    """The one parse of a client's message (valid Unicode text, see :func:`check_text`)."""
    try:
        message = parse_json(text)
    except BadRequest as error:
        return Incoming(text, "message is %s" % error, _lenient_id(text))
    return Incoming(message, None, request_id_of(message))


def _lenient_id(text: str) -> Union[str, int, None]:
    """The id of a request that is JSON but for a NaN or a lone surrogate, so that the client
    can match the error to its request.  Only on the error path: a second parse is fine."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        request_id = request_id_of(json.loads(text))
    except (ValueError, RecursionError):
        return None
    if isinstance(request_id, str) and _lone_surrogate(request_id):
        return None
    return request_id
