"""The internal API, on its own listener (default 127.0.0.1, port + 1), for other programs:

- ``POST /api/publish`` ``{"channel": c, "message": m}`` (``Authorization: Bearer <api_key>``
  when an API key is set) -> ``{"published": true}``; a body that is not strict JSON in UTF-8
  (NaN, a lone surrogate, too deep, cut short...) or not that object -> 400, over
  ``max_frame_size`` -> 413, not whole within ``body_timeout`` -> 408, always with
  ``{"error": reason}``
- ``GET /api/stats``: JSON, see :mod:`realtimemagic.stats`
- ``GET /metrics``: Prometheus text
- ``GET /healthz``: 200 while the process serves
"""
import errno
import hmac
import json
import logging
from typing import Any, Dict, Iterable, Optional, Tuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .exceptions import BadRequest, BodyTimeout, IncompleteRequest, MessageTooLarge, PeerError
from .http import Request, respond
from .pubsub import protocol
from .runtime.server import bounded_server, listen
from .runtime.wsgi_server import WSGIServer
from .stats import StatsCollector, stats

JSON = ("Content-Type", "application/json")
EXPECTED = 'expected a JSON object {"channel": ..., "message": ...}'

log = logging.getLogger("realtimemagic.server")


class InternalAPI:
    """The API as a WSGI application."""

    def __init__(self, rtm: Any) -> None:
        self.rtm = rtm
        self.registry = CollectorRegistry()
        self.registry.register(StatsCollector(rtm))

    def __call__(self, environ: Dict, start_response) -> Iterable[bytes]:
        request = Request(environ)
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return respond(start_response, 200, [("Content-Type", "text/plain")], "ok\n")
        if path == "/metrics" and request.method == "GET":
            body = generate_latest(self.registry).decode("utf-8")
            return respond(start_response, 200, [("Content-Type", CONTENT_TYPE_LATEST)], body)
        if path == "/api/stats" and request.method == "GET":
            return respond(start_response, 200, [JSON], json.dumps(stats(self.rtm)))
        if path == "/api/publish":
            if request.method != "POST":
                return respond(start_response, 405, [("Allow", "POST")])
            return self.publish(request, start_response)
        return respond(start_response, 404, [JSON], json.dumps({"error": "not found"}))

    def authorized(self, request: Request) -> bool:
        key = self.rtm.settings.api_key
        if not key:
            return True
        given = request.header("Authorization") or ""
        token = given[len("Bearer "):] if given.startswith("Bearer ") else ""
        return hmac.compare_digest(token.encode("utf-8"), key.encode("utf-8"))

    def publish(self, request: Request, start_response) -> Iterable[bytes]:
        if not self.authorized(request):
            return respond(start_response, 401, [JSON, ("WWW-Authenticate", "Bearer")],
                           json.dumps({"error": "an API key is required"}))
        try:
            channel, message = self.read_publish(request)
        except MessageTooLarge as error:
            return respond(start_response, 413, [JSON], json.dumps({"error": str(error)}))
        except BodyTimeout as error:
            return respond(start_response, 408, [JSON, ("Connection", "close")],
                           json.dumps({"error": str(error)}))
        except IncompleteRequest as error:  # what is left of the stream cannot be trusted
            return respond(start_response, 400, [JSON, ("Connection", "close")],
                           json.dumps({"error": str(error)}))
        except PeerError as error:
            return respond(start_response, 400, [JSON], json.dumps({"error": str(error)}))
        self.rtm.publish(channel, message)
        return respond(start_response, 200, [JSON], json.dumps({"published": True}))

    def read_publish(self, request: Request) -> Tuple[str, Any]:
        """The channel and message of a publish body, parsed strictly; raises a
        :class:`PeerError` saying what is wrong."""
        body = request.read_body(self.rtm.settings.max_frame_size)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the body is not UTF-8") from None
        try:
            data = protocol.parse_json(text)
        except BadRequest as error:
            raise BadRequest("the body is %s" % error) from None
        if not isinstance(data, dict) or "channel" not in data or "message" not in data:
            raise BadRequest(EXPECTED)
        problem = protocol.channel_error(data["channel"])
        if problem:
            raise BadRequest(problem)
        return data["channel"], data["message"]


def start_api(rtm: Any, reuse_port: bool = False) -> Optional[WSGIServer]:
    """Start the internal API of ``rtm`` on its own listener, or log why it cannot (the
    application calls this at start-up; the runtime knows nothing of the API)."""
    settings = rtm.settings
    port = settings.api_port
    if port == -1:
        port = settings.port + 1 if settings.port else 0
    try:
        listener = listen(settings.api_host, port, reuse_port)
    except OSError as error:
        # The pub/sub service goes on without its side door, loudly.
        log.error("internal API not started: cannot listen on %s:%d (%s)", settings.api_host,
                  port, errno.errorcode.get(error.errno or 0, error))
        return None
    server = bounded_server(listener, InternalAPI(rtm), settings)
    server.start()
    log.info("internal API on http://%s:%d", *server.address[:2])
    return server
