"""How routing messages look in a broker: JSON objects, read as strictly as every other entrance
(a message another program put in an inbox is ignored, with a warning, unless it is one)."""
import json
import logging
from typing import Any, Optional

from ..exceptions import BadRequest
from ..pubsub import protocol
from ..runtime.routes import Message

log = logging.getLogger("realtimemagic.routing")


def dump(message: Message) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def load(data: Any) -> Optional[Message]:
    try:
        message = protocol.parse_json(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (BadRequest, UnicodeDecodeError, TypeError):
        message = None
    if not isinstance(message, dict):
        log.warning("routing inbox: ignoring a malformed message")
        return None
    return message
