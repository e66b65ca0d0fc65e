"""The broker side of "any process serves any request" (realtimemagic.runtime.remote): a session
directory and one inbox per process, in Redis or PostgreSQL.

:func:`enable` is called once the application is built (rtm-serve, the gunicorn worker,
``RealTimeMagic.startup``); it gives every SockJS endpoint of the application one shared
:class:`~realtimemagic.runtime.remote.RemoteSessions` when the broker is ``redis://`` (also
``redis+sentinel://`` and Redis shards) or ``postgresql://`` and ``routing`` is on.  Any other broker leaves routing off (the memory broker
is one process; a broker without a directory needs sticky load balancing, logged at startup, and
the gunicorn worker warns about -w N then).
"""
import logging
import os
import uuid
from typing import Any, List, Optional

from ..runtime.remote import RemoteSessions

log = logging.getLogger("realtimemagic.routing")


def endpoints_of(app: Any) -> List[Any]:
    """The SockJS endpoints of a RealTimeMagic, a Router or an endpoint."""
    app = getattr(app, "app", app)  # RealTimeMagic -> its Router
    if hasattr(app, "endpoints"):
        return list(app.endpoints)
    return [app] if hasattr(app, "sessions") and hasattr(app, "route_through") else []


def routes_for(url: str, ttl: float) -> Optional[Any]:
    """The directory and inboxes for the broker ``url``, or None for a broker without them."""
    scheme = url.split("://", 1)[0].lower()
    node = "%d-%s" % (os.getpid(), uuid.uuid4().hex[:12])  # the pid helps whoever reads it
    if scheme in ("redis", "rediss", "unix", "redis+sentinel"):
        from ..brokers.redis_urls import split_shards
        from .redis import RedisRoutes
        # Redis shards: the directory and the inboxes on the first (every instance lists the
        # same shards in the same order).
        return RedisRoutes(split_shards(url)[0], node, ttl)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresRoutes
        return PostgresRoutes(url, node, ttl)
    return None


def enable(app: Any) -> Optional[RemoteSessions]:
    """Route the SockJS requests of ``app``'s endpoints through the broker of their settings
    (once; later calls return the same object).  None when routing stays off."""
    endpoints = endpoints_of(app)
    if not endpoints:
        return None
    if endpoints[0].remote is not None:
        return endpoints[0].remote
    settings = endpoints[0].settings
    if not settings.routing or settings.broker.startswith("memory:"):
        return None
    routes = routes_for(settings.broker, settings.routing_ttl)
    if routes is None:
        log.info("broker %s keeps no session directory: SockJS routing is off, a session over "
                 "an HTTP transport needs all its requests on one process (sticky load "
                 "balancing, docs/deployment.md)", settings.broker.split("://", 1)[0] + "://")
        return None
    # Owners remembered: as many as the sessions a process holds itself.
    remote = RemoteSessions(routes, settings.routing_ttl, settings.max_connections)
    for endpoint in endpoints:
        endpoint.route_through(remote)
    return remote
