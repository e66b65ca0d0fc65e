"""Several SockJS endpoints (and an optional fallback WSGI app) behind one WSGI callable."""
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence

from ..http import TEXT_PLAIN, respond
from .endpoint import NOT_FOUND, SockJSEndpoint


class Router:
    """Exact paths first (``routes``), then endpoints by path prefix, longest prefix first;
    ``fallback`` gets everything else."""

    def __init__(self, endpoints: Sequence[SockJSEndpoint],
                 fallback: Optional[Callable] = None,
                 routes: Optional[Mapping[str, Callable]] = None) -> None:
        self.endpoints = sorted(endpoints, key=lambda endpoint: len(endpoint.prefix),
                                reverse=True)
        self.fallback = fallback
        self.routes = dict(routes or {})

    def endpoint_for(self, path: str) -> Optional[SockJSEndpoint]:
        for endpoint in self.endpoints:
            prefix = endpoint.prefix
            if path == prefix or path.startswith(prefix + "/"):
                return endpoint
        return None

    def startup(self) -> None:
        for endpoint in self.endpoints:
            endpoint.startup()

    def shutdown(self, timeout: float = 0.0) -> None:
        for endpoint in self.endpoints:
            endpoint.shutdown(timeout)

    def close_all(self, code: int, reason: str) -> None:
        for endpoint in self.endpoints:
            endpoint.close_all(code, reason)

    def __call__(self, environ: Dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        route = self.routes.get(path)
        if route is not None:
            return route(environ, start_response)
        endpoint = self.endpoint_for(path)
        if endpoint is not None:
            return endpoint(environ, start_response)
        if self.fallback is not None:
            return self.fallback(environ, start_response)
        return respond(start_response, 404, [TEXT_PLAIN], NOT_FOUND)
