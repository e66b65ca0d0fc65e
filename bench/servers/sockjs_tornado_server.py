"""sockjs-tornado 1.0.7 broadcast server for bench/run.py: every message received goes to every
client, through sockjs-tornado's own broadcast (encodes once).

    python sockjs_tornado_server.py PORT [PREFIX]      (binds 127.0.0.1)
"""
import logging
import signal
import sys

from sockjs.tornado import SockJSConnection, SockJSRouter
from tornado import ioloop, web


class Broadcast(SockJSConnection):
    clients = set()

    def on_open(self, info):
        self.clients.add(self)

    def on_message(self, message):
        self.broadcast(self.clients, message)

    def on_close(self):
        self.clients.discard(self)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    prefix = sys.argv[2] if len(sys.argv) > 2 else "/broadcast"
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    router = SockJSRouter(Broadcast, prefix)
    app = web.Application(router.urls)
    app.listen(port, address="127.0.0.1")
    loop = ioloop.IOLoop.current()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: loop.add_callback_from_signal(loop.stop))
    print("sockjs-tornado listening on 127.0.0.1:%d" % port, flush=True)
    loop.start()


if __name__ == "__main__":
    main()
