"""The HTTP helpers of every WSGI application of the server (the SockJS endpoint, the static
files, the internal API): the request wrapper, a small complete response, and the headers the
SockJS transports share (CORS and OPTIONS, caching, the JSESSIONID cookie) with the callback
check of JSONP and htmlfile.

Pure: no gevent, no sockets; below the transports, the runtime and the API alike.
"""
import re
import time
from email.utils import formatdate
from http import HTTPStatus
from http.cookies import _unquote  # the standard library's cookie unquoting, as Django uses
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs

from .config import FIXED
from .exceptions import BadRequest, BodyTimeout, IncompleteRequest, MessageTooLarge

CACHE_SECONDS = FIXED.sockjs_cache_seconds

Headers = List[Tuple[str, str]]

NO_CACHE = ("Cache-Control", "no-store, no-cache, no-transform, must-revalidate, max-age=0")
TEXT_PLAIN = ("Content-Type", "text/plain; charset=UTF-8")
JAVASCRIPT = ("Content-Type", "application/javascript; charset=UTF-8")

_CALLBACK = re.compile(r"[a-zA-Z0-9\-_.]{1,32}")  # used with fullmatch: "$" allows a final \n


class Request:
    """The parts of a WSGI environ the transports read."""

    def __init__(self, environ: Dict) -> None:
        self.environ = environ
        self.method = environ["REQUEST_METHOD"].upper()
        self.query = {key: values[0] for key, values in
                      parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            return self.environ.get(key, default) or default
        return self.environ.get("HTTP_" + key, default)

    @property
    def cookies(self) -> Dict[str, str]:
        """The Cookie header's pairs, read as Django reads them (parse_cookie): one pair that
        SimpleCookie rejects (a JSON value, a space in a name) hides none of the others."""
        cookies: Dict[str, str] = {}
        for chunk in self.environ.get("HTTP_COOKIE", "").split(";"):
            name, equals, value = chunk.partition("=")
            if not equals:
                name, value = "", name
            name, value = name.strip(), value.strip()
            if name or value:
                cookies[name] = _unquote(value)
        return cookies

    @property
    def remote_addr(self) -> Optional[str]:
        return self.environ.get("REMOTE_ADDR")

    def read_body(self, limit: int) -> bytes:
        """The whole body, refused with :class:`MessageTooLarge` before reading more than
        ``limit`` bytes; :class:`BodyTimeout` when the server's ``body_timeout`` passes
        first."""
        stream = self.environ["wsgi.input"]
        length_text = self.environ.get("CONTENT_LENGTH") or ""
        if length_text.strip():
            try:
                length = int(length_text)
            except ValueError:
                raise BadRequest("Invalid Content-Length.") from None
            if length > limit:
                raise MessageTooLarge("Body larger than %d bytes." % limit)
        else:
            length = limit + 1  # chunked: read one byte more to see the overflow
        try:
            body = stream.read(length) if length > 0 else b""
        except TimeoutError:  # the handler's deadline (runtime.handler.DeadlineReader)
            raise BodyTimeout("Request body not complete in time.") from None
        except (OSError, ValueError) as error:  # cut short, or broken chunked framing
            raise IncompleteRequest("Incomplete request body: %s." % error) from None
        if len(body) > limit:
            raise MessageTooLarge("Body larger than %d bytes." % limit)
        return body


def respond(start_response, status: int, headers: Headers, body: str = "") -> List[bytes]:
    data = body.encode("utf-8")
    if status not in (204, 304):
        headers = headers + [("Content-Length", str(len(data)))]
    start_response("%d %s" % (status, HTTPStatus(status).phrase), headers)
    return [data] if data else []


def cors_headers(request: Request) -> Headers:
    """Echo the Origin with credentials (``*`` when there is none), as sockjs-node; a page
    from a ``file:`` URL sends ``Origin: null`` and gets ``null`` back."""
    origin = request.header("Origin")
    if not origin:
        headers = [("Access-Control-Allow-Origin", "*")]
    else:
        headers = [("Access-Control-Allow-Origin", origin),
                   ("Access-Control-Allow-Credentials", "true")]
    headers.append(("Vary", "Origin"))
    requested = request.header("Access-Control-Request-Headers")
    if requested:
        headers.append(("Access-Control-Allow-Headers", requested))
    return headers


def cache_headers(seconds: int = CACHE_SECONDS) -> Headers:
    return [("Cache-Control", "public, max-age=%d" % seconds),
            ("Expires", formatdate(time.time() + seconds, usegmt=True))]


def jsessionid_headers(request: Request, enabled: bool) -> Headers:
    """Set-Cookie JSESSIONID (echoing the client's) so cookie-sticky balancers keep the session
    on one instance."""
    if not enabled:
        return []
    value = request.cookies.get("JSESSIONID", "dummy")
    return [("Set-Cookie", "JSESSIONID=%s; path=/" % value)]


def options_headers(request: Request, methods: str, cookie_needed: bool) -> Headers:
    """Headers of a CORS preflight answer (204)."""
    return (jsessionid_headers(request, cookie_needed) + cors_headers(request) +
            cache_headers() + [("Access-Control-Allow-Methods", methods),
                               ("Access-Control-Max-Age", str(CACHE_SECONDS))])


def callback_name(request: Request) -> str:
    """The JSONP/htmlfile callback, validated: it is written into a script, so only
    ``[a-zA-Z0-9-_.]``, at most 32 characters."""
    name = request.query.get("c", request.query.get("callback"))
    if name is None:
        raise BadRequest('"callback" parameter required')
    if not _CALLBACK.fullmatch(name):
        raise BadRequest('invalid "callback" parameter')
    return name
