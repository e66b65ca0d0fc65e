"""The envelope a message travels in between instances, as JSON: ``o`` the sending instance,
``c`` the channel, ``m`` the message, ``a`` the action when not "message", ``s``/``k`` its
numbers (:mod:`.sequence`); a history message carries ``n`` (offset) and ``e`` (epoch) too."""
from typing import Any, Dict, Optional

from .. import jsoncodec
from ..exceptions import BadRequest
from .sequence import Numbers


def encode_envelope(origin: str, channel: str, message: Any, action: str = "message",
                    numbers: Optional[Numbers] = None) -> str:
    envelope = {"o": origin, "c": channel, "m": message}
    if action != "message":
        envelope["a"] = action
    if numbers is not None:
        envelope["s"], envelope["k"] = numbers
    return jsoncodec.dumps(envelope)


def decode_envelope(data: Any) -> Optional[Dict[str, Any]]:
    """The envelope in ``data`` (bytes or str); None if it is malformed."""
    # Strict, as every entrance: a NaN or a lone surrogate put in the broker by another
    # program would otherwise reach the fan-out, whose encoder refuses it.
    try:
        envelope = jsoncodec.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (BadRequest, UnicodeDecodeError, TypeError):
        envelope = None
    if not (isinstance(envelope, dict) and isinstance(envelope.get("o"), str)
            and isinstance(envelope.get("c"), str)):
        return None
    return envelope


def numbers_of(envelope: Dict[str, Any]) -> Optional[Numbers]:
    sent, on_channel = envelope.get("s"), envelope.get("k")
    if type(sent) is int and type(on_channel) is int:
        return Numbers(sent, on_channel)
    return None  # from a sender that does not number its messages
