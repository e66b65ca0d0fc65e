"""Which page a request comes from, and the rules that say whether that page may use the
endpoint (``allowed_origins``; docs/authentication.md, "Origins").

A browser names the page in the ``Origin`` header on every WebSocket handshake, every CORS
request and every POST.  It leaves it out of GET requests that need no CORS: a same-origin
page's eventsource, htmlfile, jsonp and /info requests, and any page's script tags and iframes
(jsonp, htmlfile, iframe.html).  For those, :func:`page_origin` takes the origin of the
``Referer``, and a browser request marked ``Sec-Fetch-Site: same-site|cross-site`` that has
neither is from an unknown page of another origin (``null``).
"""
from typing import Callable, FrozenSet, Optional
from urllib.parse import urlsplit

from ..http import Request

#: ``rule(origin, host)``: may a page of ``origin`` (``scheme://host[:port]``, or ``null``)
#: use the endpoint?  ``host`` is the request's Host header (None when it had none).
OriginRule = Callable[[str, Optional[str]], bool]

#: Sec-Fetch-Site values of a request that a page of another origin made.
_OTHER_ORIGINS = ("same-site", "cross-site")


def page_origin(request: Request) -> Optional[str]:
    """The origin of the page that made ``request``, or None when no page of another origin
    did (a same-origin GET, a typed URL, a client that is not a browser)."""
    origin = request.header("Origin")
    if origin is not None:
        return origin.rstrip("/")
    referer = request.header("Referer")
    if referer:
        return origin_of(referer)
    if request.header("Sec-Fetch-Site") in _OTHER_ORIGINS:
        return "null"
    return None


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, else ``null``."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "null"
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "null"
    return "%s://%s" % (parts.scheme.lower(), parts.netloc.rpartition("@")[2].lower())


def listed(origins: FrozenSet[str]) -> OriginRule:
    """The rule of an explicit ``allowed_origins`` list: exactly these."""
    return lambda origin, host: origin in origins


def is_own(origin: str, host: Optional[str]) -> bool:
    """A page of the server itself (its iframe.html, a page behind the same proxy): the
    origin's host and port are the request's Host.  The scheme is not compared: behind a
    TLS-terminating proxy the server cannot know its own."""
    if not host:
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()
