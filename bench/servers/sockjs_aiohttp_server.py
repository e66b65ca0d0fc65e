"""aio-libs sockjs 0.13 (aiohttp) broadcast server for bench/run.py: every message received goes
to every client, through the session manager's own broadcast (encodes once).

    python sockjs_aiohttp_server.py PORT [PREFIX]      (binds 127.0.0.1)
"""
import logging
import sys

import sockjs
from aiohttp import web


async def broadcast(manager, session, message):
    if message.type == sockjs.MsgType.MESSAGE:
        manager.broadcast(message.data)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    prefix = sys.argv[2] if len(sys.argv) > 2 else "/broadcast"
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = web.Application()
    sockjs.add_endpoint(app, broadcast, name="broadcast", prefix=prefix, cookie_needed=False)
    print("aio-libs sockjs listening on 127.0.0.1:%d" % port, flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
