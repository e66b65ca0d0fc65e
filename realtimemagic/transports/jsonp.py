"""jsonp-polling: the receiver (a script calling the callback) and the jsonp_send endpoint."""
import json
from urllib.parse import parse_qs

from ..exceptions import BadRequest
from ..sockjs import frames
from ..http import JAVASCRIPT, NO_CACHE, Request, callback_name
from .base import HttpTransport


class JsonpPolling(HttpTransport):
    name = "jsonp"

    def prepare(self, request):
        return callback_name(request)

    def headers(self, request):
        return [JAVASCRIPT, NO_CACHE, ("X-Content-Type-Options", "nosniff")]

    def encode(self, frame, callback) -> bytes:
        # "/**/" keeps a callback name from being read as something else by Flash (CVE-2014-4671).
        literal = json.dumps(frames.render(frame))
        return ("/**/" + callback + "(" + literal + ");\r\n").encode("utf-8")


def decode_jsonp_send(request: Request, body: bytes) -> list:
    """The messages of a jsonp_send body: form-encoded ``d=<json>`` or the raw JSON."""
    content_type = (request.header("Content-Type") or "").split(";")[0].strip()
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadRequest("Broken JSON encoding.") from None
        body = (form.get("d") or [""])[0].encode("utf-8")
    return frames.decode_messages(body)
