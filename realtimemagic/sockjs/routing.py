"""Which SockJS resource a path names, and which methods it takes.  No I/O."""
import re
from typing import NamedTuple, Optional, Tuple

# Receivers open (or reuse) a session; senders post to an existing one.
RECEIVERS = ("websocket", "xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp")
SENDERS = ("xhr_send", "jsonp_send")

# What each resource answers to; anything else is 405 with an Allow header, as sockjs-node.
METHODS = {
    "greeting": ("GET",),
    "info": ("GET", "OPTIONS"),
    "iframe": ("GET",),
    "raw_websocket": ("GET",),
    "websocket": ("GET",),
    "xhr": ("POST", "OPTIONS"),
    "xhr_send": ("POST", "OPTIONS"),
    "xhr_streaming": ("POST", "OPTIONS"),
    "eventsource": ("GET",),
    "htmlfile": ("GET",),
    "jsonp": ("GET",),
    "jsonp_send": ("POST",),
    "sockjs_client": ("GET", "HEAD"),
}
#: Where an endpoint serves its copy of sockjs-client (for /iframe.html and pages), under its
#: prefix.
SOCKJS_CLIENT_PATH = "/sockjs.min.js"

_SESSION_PATH = re.compile(r"^/([^/.]+)/([^/.]+)/([a-z_]+)/?$")
_IFRAME_PATH = re.compile(r"^/iframe[0-9\-.a-z_]*\.html/?$")


class Route(NamedTuple):
    resource: str
    server_id: Optional[str] = None
    session_id: Optional[str] = None


def resolve(path: str) -> Optional[Route]:
    """The resource named by ``path`` (the part after the prefix), or None for 404."""
    if path in ("", "/"):
        return Route("greeting")
    if path in ("/info", "/info/"):
        return Route("info")
    if path in ("/websocket", "/websocket/"):
        return Route("raw_websocket")
    if _IFRAME_PATH.match(path):
        return Route("iframe")
    if path == SOCKJS_CLIENT_PATH:
        return Route("sockjs_client")
    match = _SESSION_PATH.match(path)
    if match and match.group(3) in METHODS and match.group(3) in RECEIVERS + SENDERS:
        return Route(match.group(3), match.group(1), match.group(2))
    return None


def allowed(route: Route) -> Tuple[str, ...]:
    return METHODS[route.resource]
