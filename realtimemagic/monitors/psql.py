"""PostgreSQL LISTEN/NOTIFY monitors (SPEC section 8)::

    from realtimemagic.monitors.psql import PsqlMonitor
    psql = PsqlMonitor(dsn='dbname=test host=127.0.0.1')

    @psql.monitor('status')                   # LISTEN status
    def status_changes(notification, pubsub):
        pubsub.publish('client_channel', json.loads(notification.payload))

    rtm.monitors.append(status_changes)

``notification`` is psycopg2's ``Notify`` (psycopg2cffi's on PyPy, see
:mod:`realtimemagic.pgdriver`): ``.channel``, ``.payload`` (text, at most 8000 bytes) and
``.pid`` (the sending backend's process id); ``pubsub`` is the RealTimeMagic object.  One
connection serves all the channels of a PsqlMonitor; it is made cooperative by psycogreen's wait
callback (``realtimemagic.patch_all()``, which ``rtm-serve`` calls; if no wait callback is set
when the monitor starts, it installs psycogreen's and says so in the log).  Supervision: see
:mod:`realtimemagic.monitors.base` and docs/monitors.md.
"""
import logging
import math
import time
from typing import Any, Callable, Dict, List

import gevent
import gevent.select

from ..config import FIXED
from ..exceptions import MissingExtra

try:
    from .. import pgdriver  # psycopg2, or psycopg2cffi on PyPy
except ImportError as error:
    raise MissingExtra("PsqlMonitor", "psycopg2", "postgresql") from error

from ..pgdriver import psycopg2
from .base import TCP_KEEPALIVE_PROBES, ConnectionLost, Monitor, MonitorError, MonitorFunction

log = logging.getLogger("realtimemagic.monitors")

DEFAULT_DSN = "dbname=test host=127.0.0.1"
# pg_stat_activity.application_name of the monitor's session, unless the DSN names one.
APPLICATION_NAME = "realtimemagic-monitor"
NOTIFY_PAYLOAD_LIMIT = FIXED.postgres_notify_limit  # bytes: longer NOTIFY payloads are refused


class PsqlMonitor(Monitor):
    """One LISTEN connection for the channels of its functions.  ``dsn`` is a libpq connection
    string or URL; ``application_name`` is used when the DSN has none.  The other keywords are
    the supervision timings of :class:`~realtimemagic.monitors.base.Monitor`."""

    kind = "psql"
    connection_errors = (psycopg2.Error, ConnectionLost, OSError)

    def __init__(self, dsn: str = DEFAULT_DSN, *, application_name: str = APPLICATION_NAME,
                 **timings: float) -> None:
        self.dsn = dsn
        parameters = pgdriver.parse_dsn(dsn)
        super().__init__(_without_password(parameters), **timings)
        self._parameters = dict(self._connection_defaults(application_name), **parameters)

    def monitor(self, channel: str) -> Callable[[Callable], MonitorFunction]:
        """Decorator: ``fn(notification, pubsub)`` is called for each NOTIFY on ``channel``.
        The name is taken as written (quoted in LISTEN): ``NOTIFY status`` reaches
        ``monitor('status')``, ``pg_notify('Status', ...)`` reaches ``monitor('Status')``."""
        if not isinstance(channel, str) or not channel:
            raise ValueError("a PostgreSQL channel is a non-empty string, not %r" % (channel,))
        return self._decorator(channel)

    def _connection_defaults(self, application_name: str) -> Dict[str, Any]:
        """libpq parameters that find a dead peer: TCP keepalives after keepalive_interval idle
        seconds, then TCP_KEEPALIVE_PROBES probes within check_timeout; unacknowledged writes
        time out after check_timeout (libpq 12 and later)."""
        defaults = {"application_name": application_name,
                    "connect_timeout": max(2, math.ceil(self.connect_timeout)),
                    "keepalives": 1,
                    "keepalives_idle": max(1, math.ceil(self.keepalive_interval)),
                    "keepalives_interval": max(1, math.ceil(
                        self.check_timeout / TCP_KEEPALIVE_PROBES)),
                    "keepalives_count": TCP_KEEPALIVE_PROBES}
        if pgdriver.libpq_version() >= 120000:
            defaults["tcp_user_timeout"] = math.ceil(self.check_timeout * 1000)  # ms
        return defaults

    # -- the connection --------------------------------------------------------------------------

    def _open(self) -> Any:
        _require_wait_callback()
        connection = psycopg2.connect(pgdriver.make_dsn(**self._parameters))
        connection.autocommit = True  # LISTEN takes effect at once, not at a COMMIT
        return connection

    def _subscribe(self, connection: Any, keys: List[str]) -> None:
        self._execute(connection, "LISTEN", keys)

    def _unsubscribe(self, connection: Any, keys: List[str]) -> None:
        self._execute(connection, "UNLISTEN", keys)

    @staticmethod
    def _execute(connection: Any, command: str, channels: List[str]) -> None:
        statements = "; ".join(command + " " + pgdriver.quote_identifier(channel)
                               for channel in channels)
        with connection.cursor() as cursor:
            cursor.execute(statements)

    def _listen(self, connection: Any) -> None:
        next_check = time.monotonic() + self.keepalive_interval
        while True:
            self._sync(connection)
            while connection.notifies:
                notification = connection.notifies.pop(0)
                self._deliver(notification.channel, notification)
            now = time.monotonic()
            if now >= next_check:
                self._check(connection)
                next_check = time.monotonic() + self.keepalive_interval
            elif gevent.select.select([connection], [], [], next_check - now)[0]:
                connection.poll()  # reads the notifications; raises if the connection is lost

    def _check(self, connection: Any) -> None:
        """``SELECT 1`` answered within check_timeout, or the connection is lost.  (A timeout
        may stop a read mid-message: the connection is closed then, never used again.)"""
        with gevent.Timeout(self.check_timeout, ConnectionLost(
                "no answer to SELECT 1 within %g s" % self.check_timeout)):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")

    def _close(self, connection: Any) -> None:
        try:
            connection.close()
        except psycopg2.Error as error:
            log.debug("%s: closing: %s", self.name, error)


def _require_wait_callback() -> None:
    """psycopg2 must wait through gevent, or every query would stop the whole server."""
    try:
        installed = pgdriver.make_cooperative()
    except ImportError:
        raise MonitorError("PsqlMonitor needs psycogreen (pip install psycogreen) to make "
                           "psycopg2 cooperative") from None
    if installed:
        log.warning("psycopg2 had no wait callback: the PsqlMonitor installed psycogreen's; "
                    "call realtimemagic.patch_all() first thing in your program (rtm-serve does)")


def _without_password(parameters: Dict[str, str]) -> str:
    shown = {name: value for name, value in parameters.items() if name != "password"}
    return pgdriver.make_dsn(**shown) if shown else "libpq defaults"


__all__ = ["PsqlMonitor", "MonitorFunction", "DEFAULT_DSN", "APPLICATION_NAME",
           "NOTIFY_PAYLOAD_LIMIT"]
