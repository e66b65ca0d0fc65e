"""A request for a session held by its own process asks nothing of the broker (the WSGI app
called in-process, its directory replaced by one that counts what it is asked)."""
import io
from typing import Dict, List, Optional, Tuple

from realtimemagic import config
from realtimemagic.echo import EchoHandler
from realtimemagic.runtime.endpoint import SockJSEndpoint
from realtimemagic.runtime.remote import RemoteSessions


class CountingRoutes:
    """A directory of one process, in memory, recording every question."""

    node = "this-process"

    def __init__(self) -> None:
        self.calls: List[str] = []
        self.directory: Dict[str, str] = {}

    def start(self, on_message) -> None:
        pass

    def stop(self) -> None:
        pass

    def claim(self, key: str) -> Optional[str]:
        self.calls.append("claim")
        return self.directory.setdefault(key, self.node)

    def owner(self, key: str) -> Optional[str]:
        self.calls.append("owner")
        return self.directory.get(key)

    def release(self, key: str, node: str) -> None:
        self.calls.append("release")

    def refresh(self, keys: List[str]) -> List[str]:
        self.calls.append("refresh")
        return []

    def post(self, node: str, message) -> None:
        self.calls.append("post")


def call(app, path: str, body: bytes = b"") -> Tuple[str, bytes]:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}
    status = []
    chunks = app(environ, lambda line, headers, exc_info=None: status.append(line))
    data = b"".join(chunks)
    return status[0], data


def test_local_requests_ask_nothing_of_the_broker():
    endpoint = SockJSEndpoint(EchoHandler(), config.build({}, environ={}))
    routes = CountingRoutes()
    endpoint.route_through(RemoteSessions(routes, 10.0, 100))
    try:
        assert call(endpoint, "/pubsub/000/s1/xhr") == ("200 OK", b"o\n")
        assert routes.calls == ["claim"]  # a new session is entered in the directory
        for number in range(5):
            assert call(endpoint, "/pubsub/000/s1/xhr_send", b'["m%d"]' % number)[0] == (
                "204 No Content")
            assert call(endpoint, "/pubsub/000/s1/xhr") == ("200 OK", b'a["m%d"]\n' % number)
        assert routes.calls == ["claim"]  # and nothing more while it is here
        # A session nobody holds: the directory is asked, 404 as for one process.
        assert call(endpoint, "/pubsub/000/nobody/xhr_send", b'["x"]')[0] == "404 Not Found"
        assert routes.calls == ["claim", "owner"]
    finally:
        endpoint.shutdown()
