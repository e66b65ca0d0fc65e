"""The gunicorn worker: ``gunicorn -k realtimemagic.gunicorn.Worker -w 4 module:rtm``.

gunicorn's stock ``-k gevent`` worker also serves every transport (WebSocket included); this one
adds what a realtime server wants from its process manager:

- psycopg2 made cooperative (psycogreen) along with gevent's monkey-patching;
- pywsgi with TCP_NODELAY on every connection;
- the application's background work (broker, monitors, sweeper) started when the worker boots,
  not at its first request;
- on shutdown, every session is sent a close frame (1001 "Server shutting down") before the
  graceful timeout runs;
- more than one worker with the in-process broker is refused at boot with a clear message:
  each worker would have its own channels, and messages would not cross between them;
- with a redis:// or postgresql:// broker any worker serves any request, WebSocket or HTTP
  transport: a session another worker holds is served through it (realtimemagic.routing); with
  routing off (another broker, or routing=false) more than one worker is warned about.
"""
import sys

import gevent
from gunicorn.arbiter import Arbiter
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from . import routing
from .runtime.handler import SocketExposingMixin

SHUTDOWN = (1001, "Server shutting down")


class Handler(SocketExposingMixin, PyWSGIHandler):
    pass


class Worker(GeventPyWSGIWorker):
    wsgi_handler = Handler

    def patch(self):
        super().patch()
        try:
            from . import pgdriver
            pgdriver.make_cooperative()
        except ImportError:  # no PostgreSQL driver (or psycogreen) installed: nothing to patch
            pass

    def load_wsgi(self):
        super().load_wsgi()
        app = self.wsgi
        broker = getattr(app, "broker", None)
        if broker is not None and self.cfg.workers > 1 and not getattr(broker, "shared", False):
            message = ("realtimemagic: %d workers with the in-process broker (%s) would not "
                       "share channels: set RTM_BROKER=redis://..., postgresql://... or "
                       "nats://... in gunicorn's environment, or run -w 1"
                       % (self.cfg.workers, broker.url))
            self.log.error(message)
            sys.stderr.write(message + "\n")
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        if broker is not None:
            app.startup(shared_listeners=True)  # routes its endpoints itself
        else:
            routing.enable(app)  # a Router or endpoint: through its settings' broker
            if hasattr(app, "startup"):
                app.startup()
        endpoints = routing.endpoints_of(app)
        if self.cfg.workers > 1 and endpoints and endpoints[0].remote is None:
            self.log.warning(
                "realtimemagic: %d workers share one port and SockJS routing is off (it needs "
                "a redis:// or postgresql:// broker and routing on): a session over an HTTP "
                "transport needs all its requests on one process, so only WebSocket clients "
                "are safe here (docs/deployment.md)", self.cfg.workers)

    def handle_quit(self, sig, frame):
        close_all = getattr(self.wsgi, "close_all", None)
        if close_all is not None:
            gevent.spawn(close_all, *SHUTDOWN)
        super().handle_quit(sig, frame)
