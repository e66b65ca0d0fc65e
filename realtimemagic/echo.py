"""The echo application: every message comes back to its sender.  The SockJS protocol tests serve
it (examples/sockjs_endpoints.py); ``rtm-serve`` without an application serves pub/sub instead."""
from .runtime.connection import SockJSConnection, SockJSHandler


class EchoHandler(SockJSHandler):

    def on_message(self, connection: SockJSConnection, message: str) -> None:
        connection.send(message)


class CloseHandler(SockJSHandler):
    """Closes every session as soon as it opens, with 3000 "Go away!"."""

    def on_open(self, connection: SockJSConnection) -> None:
        connection.close(3000, "Go away!")
