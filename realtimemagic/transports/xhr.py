"""xhr-polling and xhr-streaming receivers, and the xhr_send endpoint."""
from ..sockjs import frames
from ..http import Request
from .base import HttpTransport

# 2048 bytes before the first frame: some browsers deliver nothing of a streaming response
# before they have seen about 2 KiB.
STREAMING_PRELUDE = b"h" * 2048 + b"\n"


class XhrPolling(HttpTransport):
    name = "xhr"
    cors = True

    def encode(self, frame, state) -> bytes:
        return (frames.render(frame) + "\n").encode("utf-8")


class XhrStreaming(XhrPolling):
    name = "xhr_streaming"
    streaming = True

    def prelude(self, state) -> bytes:
        return STREAMING_PRELUDE


def decode_xhr_send(request: Request, body: bytes) -> list:
    """The messages of an xhr_send body: a JSON array of strings."""
    return frames.decode_messages(body)

