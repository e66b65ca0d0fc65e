"""The htmlfile receiver: a forever-loading HTML page calling ``parent.<callback>``."""
import json

from ..sockjs import frames
from ..http import NO_CACHE, callback_name
from .base import HttpTransport

_TEMPLATE = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>"""


class HtmlFile(HttpTransport):
    name = "htmlfile"
    content_type = ("Content-Type", "text/html; charset=UTF-8")
    streaming = True

    def prepare(self, request):
        return callback_name(request)

    def headers(self, request):
        return [self.content_type, NO_CACHE]

    def prelude(self, callback) -> bytes:
        page = _TEMPLATE.format(callback=callback)
        # Padded past 1 KiB (browsers render nothing of a page before that), to the byte as
        # sockjs-node, which pads the template before putting the callback in.
        padding = 1024 + 13 - (len(page) - len(callback) + len("{{ callback }}"))
        return (page + " " * padding + "\r\n\r\n").encode("utf-8")

    def encode(self, frame, callback) -> bytes:
        # '<' is escaped so that no message can end the script element ("</script>").
        literal = json.dumps(frames.render(frame)).replace("<", "\\u003c")
        return ("<script>\np(" + literal + ");\n</script>\r\n").encode("utf-8")
