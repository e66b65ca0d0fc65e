"""A plain SockJS broadcast server with no pub/sub layer: the base the seed compared with.

    rtm-serve examples.stress.base:app --port 9000
"""
from realtimemagic.runtime.connection import SockJSHandler
from realtimemagic.runtime.endpoint import SockJSEndpoint
from realtimemagic.sockjs.frames import OutgoingMessage


class Broadcast(SockJSHandler):
    """Every message goes to every connected client, encoded once."""

    def __init__(self):
        self.clients = {}

    def on_open(self, connection):
        self.clients[connection] = None

    def on_message(self, connection, message):
        outgoing = OutgoingMessage(message)
        for client in tuple(self.clients):
            client.send(outgoing)

    def on_close(self, connection):
        self.clients.pop(connection, None)


app = SockJSEndpoint(Broadcast(), prefix='/pubsub')

if __name__ == '__main__':
    from realtimemagic.cli import main
    main(['examples.stress.base:app'])
