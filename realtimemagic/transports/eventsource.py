"""The eventsource (Server-Sent Events) receiver."""
from ..sockjs import frames
from ..http import NO_CACHE, cors_headers
from .base import HttpTransport

# The characters that would end an SSE line or event early, %-escaped as sockjs-node does
# (and '%' itself, so that the escaping can be undone).
_ESCAPES = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A", "\x00": "%00"})


class EventSource(HttpTransport):
    name = "eventsource"
    content_type = ("Content-Type", "text/event-stream")
    streaming = True

    def headers(self, request):
        return [self.content_type, NO_CACHE] + cors_headers(request)

    def prelude(self, state) -> bytes:
        return b"\r\n"

    def encode(self, frame, state) -> bytes:
        return ("data: " + frames.render(frame).translate(_ESCAPES) + "\r\n\r\n").encode("utf-8")
