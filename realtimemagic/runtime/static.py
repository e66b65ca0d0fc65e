"""Small static files the server serves itself (the JavaScript client, the demo page)."""
import hashlib
import os
from typing import Dict, Iterable, Optional

from ..http import respond

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")


class StaticFile:
    """One file, read once, revalidated by ETag (so a new release reaches browsers at once)."""

    def __init__(self, name: str, content_type: str,
                 substitutions: Optional[Dict[str, str]] = None) -> None:
        """``substitutions``: placeholder -> text, replaced once when the file is read."""
        with open(os.path.join(STATIC_DIR, name), encoding="utf-8") as source:
            self.body = source.read()
        for placeholder, text in (substitutions or {}).items():
            self.body = self.body.replace(placeholder, text)
        self.content_type = content_type
        self.etag = '"%s"' % hashlib.sha1(self.body.encode("utf-8")).hexdigest()[:20]

    def __call__(self, environ: Dict, start_response) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return respond(start_response, 405, [("Allow", "GET, HEAD")])
        if environ.get("HTTP_IF_NONE_MATCH") == self.etag:
            return respond(start_response, 304, [("ETag", self.etag)])
        headers = [("Content-Type", self.content_type), ("ETag", self.etag),
                   ("Cache-Control", "no-cache"), ("Access-Control-Allow-Origin", "*")]
        body = respond(start_response, 200, headers, self.body)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else body
