"""RealTimeMagic: a pub/sub server with plain-Python hooks (SPEC section 2).

    from realtimemagic import RealTimeMagic
    rtm = RealTimeMagic()      # 127.0.0.1:9000, SockJS at /pubsub, in-process broker
    rtm.start()                # blocks; SIGINT/SIGTERM stop it gracefully

The server's lifecycle around the hook dispatcher (:mod:`realtimemagic.pubsub.dispatcher`,
which holds the hooks, the channels and publishing): the broker chosen by ``settings.broker``,
the WSGI application, start-up and shutdown, the internal API, the supervised monitors and the
broker's upkeep.
"""
import html
import logging
import time
from typing import Any, Callable, List, Optional

import gevent

from . import brokers, config, routing
from .api import start_api
from .auth.origins import automatic_rule
from .backoff import Backoff
from .config import FIXED
from .exceptions import ConfigError
from .pubsub import namespaces
from .pubsub.dispatcher import HookDispatcher
from .runtime.endpoint import SockJSEndpoint
from .runtime.router import Router
from .runtime.static import StaticFile

log = logging.getLogger("realtimemagic")

MONITOR_BACKOFF = FIXED.monitor_restart_backoff  # s: first and longest wait before a restart
BROKER_START_TIMEOUT = FIXED.broker_start_timeout  # s start-up waits for the broker


class RealTimeMagic(HookDispatcher):
    """The server: the hook dispatcher with its lifecycle.  Keywords are the settings of
    :mod:`realtimemagic.config`."""

    broker: brokers.Broker

    def __init__(self, **keywords: Any) -> None:
        super().__init__(config.build(keywords))
        #: fn(rtm), each run as a supervised greenlet.
        self.monitors: List[Callable] = []
        self.broker = brokers.from_url(self.settings.broker, self._deliver, self.settings)
        self._app: Optional[Router] = None
        self._monitor_greenlets: List[gevent.Greenlet] = []
        self.api_server: Any = None  # a WSGIServer while the internal API runs
        self._started = False

    def configure(self, **keywords: Any) -> None:
        """Change settings before the server starts (``rtm-serve`` flags use this)."""
        if self._app is not None:
            raise RuntimeError("configure() must come before the server starts")
        self.settings = self.settings.replace(**keywords)
        self.broker = brokers.from_url(self.settings.broker, self._deliver, self.settings)
        if "namespaces" in keywords:
            self.namespaces.update(namespaces.parse(self.settings.namespaces))

    # -- serving -------------------------------------------------------------------------

    @property
    def app(self) -> Router:
        """The WSGI application: the SockJS endpoint at ``settings.prefix``, the JavaScript
        client at ``{prefix}/realtimemagic.js`` and, with ``demo``, the demo page at ``/``."""
        if self._app is None:
            prefix = self.settings.prefix
            endpoint = SockJSEndpoint(self, self.settings)
            routes = {prefix + "/realtimemagic.js": StaticFile(
                "realtimemagic.js", "application/javascript; charset=UTF-8")}
            if self.settings.demo:
                routes["/"] = StaticFile("demo.html", "text/html; charset=UTF-8", {
                    "{{prefix}}": html.escape(prefix),
                    "{{sockjs_url}}": html.escape(endpoint.sockjs_url)})
            self._app = Router([endpoint], routes=routes)
        return self._app

    def __call__(self, environ, start_response):
        # WSGI, for servers that call the application directly (gunicorn's stock worker).
        if not self._started:
            self.startup()
        return self.app(environ, start_response)

    def startup(self, shared_listeners: bool = False) -> None:
        """Start the background work: the sweeper, the broker, the monitors, the internal API
        (``shared_listeners``: several worker processes bind its port, as under gunicorn)."""
        if self._started:
            return
        self._started = True
        self.loop_thread.bind()
        self._check_namespaces()
        self._choose_origins()
        routing.enable(self)
        self.app.startup()
        if self.settings.api:
            self.api_server = start_api(self, reuse_port=shared_listeners)
        self.broker.start()
        if not self.broker.shared:
            log.info("broker %s (this process only)", self.broker.url_for_logs)
        elif not self.broker.wait_connected(BROKER_START_TIMEOUT):
            log.error("broker %s not reachable yet; serving local clients meanwhile",
                      self.broker.url_for_logs)
        self._monitor_greenlets = [gevent.spawn(self._supervise, monitor)
                                   for monitor in self.monitors]
        self._monitor_greenlets.append(gevent.spawn(self._maintain_forever))

    def _choose_origins(self) -> None:
        """allowed_origins left automatic: with cookie authentication, only the origins it
        trusts (decided once, with the authenticators installed at startup)."""
        rule = automatic_rule(self.settings, self.authenticators)
        if rule is not None:
            for endpoint in self.app.endpoints:
                endpoint.restrict_origins(rule)

    def shutdown(self, timeout: float = 0.0) -> None:
        """Stop the background work; running hooks get up to ``timeout`` seconds to finish."""
        if self._pool is not None and not self._pool.join(timeout=timeout):
            log.warning("%d hooks still running at shutdown", len(self._pool))
        if self.api_server is not None:
            self.api_server.stop(timeout=1)
            self.api_server = None
        for greenlet in self._monitor_greenlets:
            greenlet.kill(block=False)
        self.broker.stop()
        if self._app is not None:
            self._app.shutdown()
        self._started = False

    def close_all(self, code: int, reason: str) -> None:
        self.app.close_all(code, reason)

    def start(self) -> None:
        """Serve until SIGINT or SIGTERM (the seed's ``rtm.start()``).  Logs as ``rtm-serve``
        does (at info level, to stderr) unless the application configured logging."""
        from .runtime.server import Server, configure_logging
        configure_logging()
        Server(self, self.settings.host, self.settings.port, self.settings.shutdown_timeout,
               self.settings).serve_forever()

    def _supervise(self, monitor: Callable) -> None:
        """Run a monitor forever: one that raises or returns is logged and restarted, with
        backoff."""
        backoff = Backoff(*MONITOR_BACKOFF)
        while True:
            started = time.monotonic()
            try:
                monitor(self)
                log.warning("monitor %s returned; restarting", getattr(monitor, "__name__", monitor))
            except Exception:
                log.exception("monitor %s raised; restarting",
                              getattr(monitor, "__name__", monitor))
            if time.monotonic() - started > MONITOR_BACKOFF[1]:
                backoff.reset()
            gevent.sleep(backoff.next())

    def _check_namespaces(self) -> None:
        wanted = [name for name, options in self.namespaces.items()
                  if options.history or options.presence]
        if wanted and not self.broker.keeps_history:
            raise ConfigError("namespaces %s want history or presence, which the broker %s does "
                              "not keep: use memory:// or redis://" % (
                                  ", ".join(sorted(wanted)), self.broker.url_for_logs))

    def _maintain_forever(self) -> None:
        while True:
            gevent.sleep(self.settings.maintenance_interval)
            try:
                self.broker.maintain(lambda channel: self.options_for(channel).history_ttl)
            except Exception:
                log.exception("maintenance failed")

