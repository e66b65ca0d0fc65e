"""What every HTTP transport shares: the request wrapper, CORS and OPTIONS, cache headers, the
JSESSIONID cookie, callback validation, reading a send body with a size limit, and the one
streaming/polling loop that writes a session's frames until ``response_limit``.

A transport module only says how its frames look on the wire (see :class:`HttpTransport`).
"""
import re
import socket
import time
from email.utils import formatdate
from http.cookies import _unquote  # the standard library's cookie unquoting, as Django uses
from typing import Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs

import gevent
from gevent.event import Event
from gevent.select import select

from ..exceptions import BadRequest, BodyTimeout, IncompleteRequest, MessageTooLarge
from ..sockjs.frames import Frame
from ..sockjs.info import CACHE_SECONDS

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


def client_socket(environ: Dict) -> Optional[socket.socket]:
    """The client's socket, from our handler, gunicorn, or gevent's pywsgi input stream."""
    sock = environ.get("realtimemagic.socket") or environ.get("gunicorn.socket")
    if sock is not None:
        return sock
    stream = environ.get("wsgi.input")
    raw = getattr(getattr(getattr(stream, "rfile", None), "raw", None), "_sock", None)
    return raw


def set_nodelay(environ: Dict) -> None:
    """Frames are small and latency matters: without TCP_NODELAY a keep-alive response can wait
    for a delayed ACK (about 40 ms on Linux)."""
    sock = client_socket(environ)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass


# -- headers --------------------------------------------------------------------------------

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


# -- the transports -------------------------------------------------------------------------

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


class Receiver:
    """One request receiving for a session.  The session calls ``wakeup`` when it has
    something; a watcher on the socket sets ``interrupted`` when the client goes away."""

    __slots__ = ("event", "interrupted", "sock")

    def __init__(self, sock: Optional[socket.socket] = None) -> None:
        self.event = Event()
        self.interrupted = False
        self.sock = sock

    def wakeup(self) -> None:
        if not self.event.is_set():  # a broadcast wakes many receivers many times: once is enough
            self.event.set()

    def wait(self) -> None:
        self.event.wait()
        self.event.clear()

    def client_gone(self) -> bool:
        """Without waiting: has the client closed its end?  The watcher notices this too, but a
        new request may be served before the watcher runs, and must not be told that the gone
        one is "still open"."""
        if self.interrupted:
            return True
        if self.sock is None:
            return False
        try:
            readable, _, _ = select([self.sock], [], [], 0)
            gone = bool(readable) and not self.sock.recv(1, socket.MSG_PEEK)
        except OSError:
            gone = True
        if gone:
            self.interrupted = True
            self.wakeup()
        return gone


def watch_disconnect(receiver: Receiver) -> Optional[gevent.Greenlet]:
    """Notice at once when the client closes the connection under a pending request (WSGI servers
    do not tell the application).  Peeks, so a pipelined next request is left unread."""
    sock = receiver.sock
    if sock is None:
        return None

    def watch() -> None:
        try:
            data = sock.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if not data:
            receiver.interrupted = True
            receiver.wakeup()

    return gevent.spawn(watch)


def stream_frames(transport: HttpTransport, state: object, session, receiver: Receiver,
                  first: Tuple[List[Frame], bool], response_limit: int,
                  clock) -> Iterator[bytes]:
    """The one receiving loop of every HTTP transport, as a WSGI body iterator.

    Writes the prelude and the first frames, then waits for the session; a polling transport
    ends after one write, a streaming one once ``response_limit`` bytes of frames are written.
    The session is detached however this ends; an early end (the client went away, a write
    failed) counts as an interruption and closes the session with 1002.
    """
    watcher = watch_disconnect(receiver)
    completed = False
    written = 0
    try:
        prelude = transport.prelude(state)
        if prelude:
            yield prelude
        pending, finished = first
        while True:
            if not transport.streaming:
                # One frame per poll, as sockjs-node: a close frame after messages is not
                # lost, the closing session gives it again to the next poll.
                pending = pending[:1]
            for frame in pending:
                chunk = transport.encode(frame, state)
                written += len(chunk)
                yield chunk
            if finished or (pending and not transport.streaming) or written >= response_limit:
                completed = True
                return
            receiver.wait()
            if receiver.interrupted:
                return
            pending, finished = session.pull(clock())
    finally:
        if watcher is not None:
            watcher.kill()
        session.detach(receiver, clock(), interrupted=not completed)
