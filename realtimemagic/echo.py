"""The echo application: every message comes back to its sender.  ``rtm-serve`` serves it until
an application is named; the protocol tests use it."""
from .runtime.connection import SockJSConnection, SockJSHandler


class EchoHandler(SockJSHandler):

    def on_message(self, connection: SockJSConnection, message: str) -> None:
        connection.send(message)


class CloseHandler(SockJSHandler):
    """Closes every session as soon as it opens, with 3000 "Go away!"."""

    def on_open(self, connection: SockJSConnection) -> None:
        connection.close(3000, "Go away!")
