"""What every HTTP transport shares: how it answers and how its frames look on the wire (see
:class:`HttpTransport`).  The request wrapper and the shared headers are in
:mod:`realtimemagic.http`; the loop that writes a session's frames to a request is the runtime's
(:func:`realtimemagic.runtime.receiving.stream_frames`)."""
from ..http import JAVASCRIPT, NO_CACHE, Headers, Request, cors_headers
from ..sockjs.frames import Frame


class HttpTransport:
    """An HTTP receiver transport: its headers, its prelude and how a frame is written."""

    name = ""
    content_type = JAVASCRIPT
    #: Streaming transports keep the response open until response_limit; polling ones end it
    #: after the first frames.
    streaming = False
    cors = False

    def prepare(self, request: Request) -> object:
        """Validate the request; the result is passed to ``prelude`` and ``encode``."""
        return None

    def headers(self, request: Request) -> Headers:
        return [self.content_type, NO_CACHE] + (cors_headers(request) if self.cors else [])

    def prelude(self, state: object) -> bytes:
        return b""

    def encode(self, frame: Frame, state: object) -> bytes:
        raise NotImplementedError
