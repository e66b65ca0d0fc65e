"""One SockJS endpoint as a WSGI application: routing, the static resources, the receivers and
senders of every transport, and the sweeper greenlet of its sessions."""
import logging
import time
from typing import Callable, Dict, Iterable, Optional

import gevent
from gevent.pool import Group

from .. import config
from ..exceptions import BadRequest, BodyTimeout, IncompleteRequest, MessageTooLarge
from ..sockjs import info as static
from ..sockjs.registry import SessionRegistry
from ..sockjs.routing import RECEIVERS, SOCKJS_CLIENT_PATH, Route, allowed, resolve
from ..sockjs.session import Session
from ..transports import HTTP_RECEIVERS, websocket
from ..http import (NO_CACHE, TEXT_PLAIN, Headers, Request, cache_headers, cors_headers,
                    jsessionid_headers, options_headers, respond)
from ..transports.jsonp import decode_jsonp_send
from ..transports.origins import OriginRule, listed, page_origin
from ..transports.xhr import decode_xhr_send
from .connection import ConnectionInfo, SockJSConnection, SockJSHandler
from .receiving import Receiver, stream_frames
from .sockets import client_socket, set_nodelay
from .websocket import WebSocketConnection
from .static import StaticFile
from .remote import RemoteSessions

log = logging.getLogger(__name__)

NOT_FOUND = "404 Error: Page not found\n"
TOO_MANY = "Too many connections: this server is at max_connections.\n"
#: sockjs-client 1.6.1 from its npm package (dist/sockjs.min.js; MIT, see its LICENSE file).
SOCKJS_CLIENT = StaticFile("sockjs-client-1.6.1.min.js", "application/javascript; charset=UTF-8")
# Request headers worth keeping in ConnectionInfo (sockjs-node keeps the same kind).
_INFO_HEADERS = ("referer", "x-client-ip", "x-forwarded-for", "x-forwarded-host",
                 "x-forwarded-port", "x-cluster-client-ip", "via", "x-real-ip",
                 "x-forwarded-proto", "x-ssl", "dnt", "host", "user-agent", "accept-language",
                 "origin", "authorization")


class SockJSEndpoint:
    """A SockJS endpoint at ``settings.prefix``, serving ``handler``.

    ``clock`` gives seconds (monotonic); tests may pass their own.
    """

    def __init__(self, handler: SockJSHandler, settings: Optional[config.Settings] = None,
                 clock: Callable[[], float] = time.monotonic, **overrides) -> None:
        base = settings or config.build()
        self.settings = base.replace(**overrides) if overrides else base
        self.prefix = self.settings.prefix
        self.handler = handler
        self.clock = clock
        self.sessions = SessionRegistry(
            self.settings.heartbeat_interval, self.settings.disconnect_delay,
            self.settings.outbox_max_frames, self.settings.outbox_max_bytes,
            on_closed=self._session_closed)
        self.iframe_html, self.iframe_etag = static.iframe_page(self.sockjs_url)
        origins = self.settings.origins
        #: Which pages may use the endpoint; None: any (see restrict_origins).
        self.origin_rule: Optional[OriginRule] = listed(origins) if origins is not None else None
        self._sweeper: Optional[gevent.Greenlet] = None
        #: The readers of WebSocket connections that outlive their request (hand_over).
        self.readers = Group()
        #: Set by route_through: sessions other processes hold are served through them.
        self.remote: Optional[RemoteSessions] = None

    def route_through(self, remote: RemoteSessions) -> None:
        """Serve requests for sessions other processes hold through ``remote``."""
        self.remote = remote
        remote.add(self)

    @property
    def sockjs_url(self) -> str:
        """The sockjs-client that pages load: the ``sockjs_url`` setting, else our copy."""
        return self.settings.sockjs_url or self.prefix + SOCKJS_CLIENT_PATH

    def restrict_origins(self, rule: OriginRule) -> None:
        """Only pages whose origin ``rule`` accepts may use the endpoint (the others get 403);
        requests that no page of another origin made pass (see transports.origins)."""
        self.origin_rule = rule

    # -- lifecycle -------------------------------------------------------------------------

    def startup(self) -> None:
        """Start the sweeper (also started by the first request, for servers that have no
        start hook, such as gunicorn's stock worker)."""
        if self._sweeper is None or self._sweeper.dead:
            self._sweeper = gevent.spawn(self._sweep_forever)
        if self.remote is not None:
            self.remote.start()

    def shutdown(self, timeout: float = 0.0) -> None:
        # Their close frames went out (close_all): give the clients ``timeout`` to answer.
        self.readers.join(timeout)
        self.readers.kill(block=False)
        if self._sweeper is not None:
            self._sweeper.kill()
            self._sweeper = None
        if self.remote is not None:
            self.remote.stop()

    def close_all(self, code: int, reason: str) -> None:
        for session in self.sessions:
            session.close(code, reason)

    def _sweep_forever(self) -> None:
        while True:
            gevent.sleep(self.settings.tick)
            try:
                expired = self.sessions.sweep(self.clock())
                if self.remote is not None:
                    self.remote.ended(self, expired)
            except Exception:
                log.exception("session sweep failed")

    # -- the application's callbacks, isolated ---------------------------------------------

    def _call(self, what: str, *args) -> None:
        try:
            getattr(self.handler, what)(*args)
        except Exception:
            log.exception("%s raised in %s", what, type(self.handler).__name__)

    def _session_opened(self, session: Session, request: Request, transport: str) -> None:
        headers = {name: value for name in _INFO_HEADERS
                   for value in [request.header(name)] if value is not None}
        session.connection = SockJSConnection(session, ConnectionInfo(
            request.remote_addr, headers, request.cookies, dict(request.query),
            request.environ.get("PATH_INFO", ""), transport))
        self._call("on_open", session.connection)

    def _session_closed(self, session: Session) -> None:
        if session.connection is not None:
            self._call("on_close", session.connection)

    def deliver(self, session: Session, messages: Iterable[str]) -> None:
        """Hand the client's messages to the application, in order."""
        for message in messages:
            if not session.is_open:
                return
            self._call("on_message", session.connection, message)

    # -- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ: Dict, start_response) -> Iterable[bytes]:
        if self._sweeper is None:
            self.startup()
        request = Request(environ)
        path = environ.get("PATH_INFO", "")
        route = resolve(path[len(self.prefix):]) if path.startswith(self.prefix) else None
        if route is None:
            return respond(start_response, 404, [TEXT_PLAIN], NOT_FOUND)
        if request.method not in allowed(route):
            return respond(start_response, 405, [("Allow", ", ".join(allowed(route)))])
        if not self._origin_allowed(request):
            return respond(start_response, 403, [TEXT_PLAIN], "Origin not allowed.\n")
        try:
            return self._dispatch(route, request, start_response)
        except MessageTooLarge as error:
            return respond(start_response, 413, [TEXT_PLAIN], str(error))
        except BodyTimeout as error:
            return respond(start_response, 408, [TEXT_PLAIN, ("Connection", "close")], str(error))
        except IncompleteRequest as error:
            return respond(start_response, 400, [TEXT_PLAIN, ("Connection", "close")], str(error))
        except BadRequest as error:
            # SockJS answers malformed requests with 500 and the reason (as sockjs-node does).
            return respond(start_response, 500, [TEXT_PLAIN], str(error))

    def _origin_allowed(self, request: Request) -> bool:
        if self.origin_rule is None:
            return True
        origin = page_origin(request)
        return origin is None or self.origin_rule(origin, request.header("Host"))

    def _full(self) -> bool:
        return len(self.sessions) >= self.settings.max_connections

    def _dispatch(self, route: Route, request: Request, start_response) -> Iterable[bytes]:
        resource = route.resource
        if request.method == "OPTIONS":
            methods = "OPTIONS, GET" if resource == "info" else "OPTIONS, POST"
            return respond(start_response, 204, options_headers(
                request, methods, self.settings.cookie_needed))
        if resource == "greeting":
            return respond(start_response, 200, [TEXT_PLAIN], static.GREETING)
        if resource == "info":
            return respond(start_response, 200, [
                ("Content-Type", "application/json; charset=UTF-8"), NO_CACHE]
                + cors_headers(request), static.info_body(self.settings.websocket_enabled,
                                                          self.settings.cookie_needed))
        if resource == "iframe":
            if request.header("If-None-Match") == self.iframe_etag:
                return respond(start_response, 304, [])
            # With restricted origins each load must reach the check: a cached copy would let
            # any page frame it (and the iframe's requests are of the server's own origin).
            caching = cache_headers() if self.origin_rule is None else [NO_CACHE]
            return respond(start_response, 200, [
                ("Content-Type", "text/html; charset=UTF-8"), ("ETag", self.iframe_etag)]
                + caching, self.iframe_html)
        if resource == "sockjs_client":
            return SOCKJS_CLIENT(request.environ, start_response)
        if resource in ("websocket", "raw_websocket"):
            return self._websocket(request, start_response, resource == "raw_websocket")
        if resource == "xhr_send":
            return self._send(request, route, start_response, decode_xhr_send, 204,
                              [TEXT_PLAIN, NO_CACHE] + cors_headers(request), "")
        if resource == "jsonp_send":
            return self._send(request, route, start_response, decode_jsonp_send, 200,
                              [TEXT_PLAIN, NO_CACHE], "ok")
        assert resource in RECEIVERS
        return self._receive(request, route, start_response)

    def _send(self, request: Request, route: Route, start_response, decode, status: int,
              headers: Headers, body: str) -> Iterable[bytes]:
        headers = jsessionid_headers(request, self.settings.cookie_needed) + headers
        messages = decode(request, request.read_body(self.settings.max_frame_size))
        session_id = str(route.session_id)  # a sender's route always has one
        session = self.sessions.get(session_id)
        if session is not None:
            self.deliver(session, messages)
        elif self.remote is None or not self.remote.send(self, session_id, messages):
            return respond(start_response, 404, [TEXT_PLAIN], NOT_FOUND)
        return respond(start_response, status, headers, body)

    def _receive(self, request: Request, route: Route, start_response) -> Iterable[bytes]:
        transport = HTTP_RECEIVERS[route.resource]
        state = transport.prepare(request)
        set_nodelay(request.environ)
        receiver = Receiver(client_socket(request.environ))
        now = self.clock()
        session_id = str(route.session_id)  # a receiver's route always has one
        session = self.sessions.get(session_id)
        headers = jsessionid_headers(request, self.settings.cookie_needed)
        if request.environ.get("SERVER_PROTOCOL") == "HTTP/1.0":
            # No chunking in HTTP/1.0: the end of the connection is the end of the body.
            headers.append(("Connection", "close"))
        headers += transport.headers(request)
        if session is None:
            if self._full():
                return respond(start_response, 503, [TEXT_PLAIN], TOO_MANY)
            if self.remote is not None:
                body = self.remote.receive(self, session_id, request, transport, state,
                                           start_response, headers)
                if body is not None:
                    return body
                # Another request may have created it while the directory answered.
                session = self.sessions.get(session_id)
                now = self.clock()
            if session is None:
                session = self.sessions.create(session_id, now)
        previous = session.receiver
        if previous is not None and previous.client_gone():
            session.detach(previous, now, interrupted=True)
        opening = session.connection is None
        first = session.attach(receiver, now)
        start_response("200 OK", headers)
        if opening and session.is_open:
            self._session_opened(session, request, transport.name)
        return stream_frames(transport, state, session, receiver, first,
                             self.settings.response_limit, self.clock)

    def _websocket(self, request: Request, start_response, raw: bool) -> Iterable[bytes]:
        if not self.settings.websocket_enabled:
            return respond(start_response, 404, [TEXT_PLAIN] + cache_headers(), NOT_FOUND)
        error = websocket.handshake_error(request)
        if error is not None:
            return respond(start_response, 400, [TEXT_PLAIN], error)
        if self._full():
            return respond(start_response, 503, [TEXT_PLAIN], TOO_MANY)
        sock = client_socket(request.environ)
        if sock is None:
            return respond(start_response, 500, [TEXT_PLAIN],
                           "This WSGI server does not give the application its socket.")
        set_nodelay(request.environ)
        write = start_response("101 Switching Protocols", websocket.accept_headers(request))
        write(b"")
        now = self.clock()
        session = self.sessions.create(None, now)
        framing = websocket.RawFraming() if raw else websocket.SockJSFraming()
        hand_over = request.environ.get("realtimemagic.hand_over")
        if hand_over is not None:
            # Our server lets the connection outlive its request: the handler's greenlet, read
            # buffer and request state go, and a greenlet of our own reads.
            sock = hand_over()
        connection = WebSocketConnection(session, sock, framing, self.clock,
                                         self.settings.max_frame_size, self.settings.send_timeout)
        # The open frame goes out before on_open, which may send.
        connection.write(*session.attach(connection, now))
        self._session_opened(session, request, "websocket-raw" if raw else "websocket")
        if hand_over is not None:
            self.readers.spawn(self._read_websocket, connection, True)
        else:
            self._read_websocket(connection, False)
        return []

    def _read_websocket(self, connection: WebSocketConnection, owned: bool) -> None:
        """Serve a WebSocket until either side closes; ``owned``: its socket is ours to close."""
        session = connection.session
        try:
            connection.run(self.deliver)
        finally:
            try:
                session.connection.client_close = connection.client_close
                session.detach(connection, self.clock(), interrupted=True)
                self.sessions.end(session)
            finally:
                if owned:
                    connection.sock.close()
