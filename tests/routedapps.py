"""The protocol suite's application (examples/sockjs_endpoints.py) for the routing tests: every
response closes its connection, so that each request of a browser is a new connection, which
the kernel hands to any gunicorn worker (a browser's keep-alive connections would otherwise
often carry all of a session's requests to one worker, and nothing would be routed)."""
from typing import Any, Dict

from examples.sockjs_endpoints import app as endpoints


class OneRequestPerConnection:
    def __init__(self, app: Any) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:  # endpoints, startup, shutdown, close_all
        return getattr(self.app, name)

    def __call__(self, environ: Dict, start_response):
        def closing(status, headers, exc_info=None):
            if status.startswith("101"):  # a WebSocket upgrade keeps its connection
                return start_response(status, headers, exc_info)
            headers = [(name, value) for name, value in headers
                       if name.lower() != "connection"] + [("Connection", "close")]
            return start_response(status, headers, exc_info)
        return self.app(environ, closing)


app = OneRequestPerConnection(endpoints)
