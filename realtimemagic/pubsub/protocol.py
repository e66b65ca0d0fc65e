"""The pub/sub wire protocol (SPEC section 3) without I/O: reading requests, writing deliveries,
replies and errors.

Every server-to-client message is the JSON text of one object; a delivery is encoded once per
publish, whatever the number of recipients.
"""
import json
import re
from typing import Any, NamedTuple, Optional, Tuple, Union

from ..exceptions import ProtocolError

ACTIONS = ("subscribe", "unsubscribe", "publish", "presence")
REPLIES = {"subscribe": "subscribed", "unsubscribe": "unsubscribed", "publish": "published",
           "presence": "presence"}

# 1 to 200 characters, no control characters (C0, DEL, C1) and no whitespace (SPEC section 3).
# Used with fullmatch: "$" would let a final newline through.
_CHANNEL = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{1,200}")

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
    """Check a pub/sub request; raises :class:`ProtocolError` (``bad_request``) naming the
    field that is missing or wrong."""
    request_id = request_id_of(message)
    if "id" in message and request_id is None:
        raise ProtocolError(BAD_REQUEST, "id must be a string or an integer")
    payload = message.get("payload")
    if not isinstance(payload, dict):
        raise ProtocolError(BAD_REQUEST, "payload must be an object", request_id=request_id)
    channel = payload.get("channel")
    problem = channel_error(channel)
    if problem:
        raise ProtocolError(BAD_REQUEST, problem, request_id=request_id)
    action = message["action"]
    if action == "publish" and "message" not in payload:
        raise ProtocolError(BAD_REQUEST, "publish needs payload.message", channel, request_id)
    since = None
    if action == "subscribe" and payload.get("since") is not None:
        since = payload["since"]
        offset = since.get("offset") if isinstance(since, dict) else None
        epoch = since.get("epoch") if isinstance(since, dict) else None
        if (not isinstance(offset, int) or isinstance(offset, bool) or offset < 0
                or not isinstance(epoch, str)):
            raise ProtocolError(BAD_REQUEST, "since must be {\"offset\": integer >= 0, "
                                "\"epoch\": string}", channel, request_id)
        since = Position(offset, epoch)
    return Request(action, channel, payload.get("message"), request_id, since)


def encode(value: Any) -> str:
    """JSON text, compact, UTF-8 characters kept as they are."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def reply(action: str, channel: str, request_id: Union[str, int, None],
          **details: Any) -> dict:
    answer = {"action": REPLIES[action], "payload": dict(details, channel=channel)}
    if request_id is not None:
        answer["id"] = request_id
    return answer


def error(code: str, reason: str, channel: Optional[str] = None,
          request_id: Union[str, int, None] = None) -> dict:
    payload = {"code": code, "reason": reason}
    if channel is not None:
        payload["channel"] = channel
    answer = {"action": "error", "payload": payload}
    if request_id is not None:
        answer["id"] = request_id
    return answer


def parse_message(text: str) -> Tuple[Any, bool]:
    """The client's message parsed from JSON when it is JSON, else its text as sent; and
    whether it was JSON."""
    try:
        return json.loads(text), True
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return text, False
