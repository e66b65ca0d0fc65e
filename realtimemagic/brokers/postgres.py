"""The PostgreSQL broker: LISTEN/NOTIFY between instances.

Each local channel is LISTENed to as ``rtm_<digest>`` (PostgreSQL channel names are identifiers
of at most 63 bytes; ours may be 200 characters).  NOTIFY carries at most 8000 bytes: a larger
message is stored in the table ``realtimemagic_messages`` and the notification carries its id;
rows older than ``LARGE_MESSAGE_SECONDS`` are deleted.  NOTIFY keeps nothing for a listener that
is not connected: while an instance is disconnected it misses what the others publish.

psycopg2 (psycopg2cffi on PyPy, :mod:`realtimemagic.pgdriver`) must be cooperative (psycogreen):
``realtimemagic.patch_all()`` does it, and the broker installs psycogreen's wait callback at start
if nobody has.
"""
import hashlib
import json
import socket
import time
from typing import Any, Callable, List

from gevent.socket import wait_read

from ..config import FIXED
from ..exceptions import MissingExtra

try:
    from .. import pgdriver  # psycopg2, or psycopg2cffi on PyPy
except ImportError as error:
    raise MissingExtra("postgresql://", "psycopg2", "postgresql") from error

from .base import COMMAND_LATENCY, NetworkBroker, log
from .interface import BrokerSettings, Deliver, WithoutHistory

NOTIFY_LIMIT = FIXED.postgres_notify_limit  # bytes of payload PostgreSQL accepts
LARGE_MESSAGE_SECONDS = FIXED.postgres_large_message_seconds
TABLE = "realtimemagic_messages"


def pg_channel(channel: str) -> str:
    return "rtm_" + hashlib.sha1(channel.encode("utf-8")).hexdigest()[:40]


class PostgresBroker(WithoutHistory, NetworkBroker):
    """LISTEN/NOTIFY, without history or presence."""

    def __init__(self, url: str, deliver: Deliver, settings: BrokerSettings) -> None:
        super().__init__(url, deliver, settings)
        self._listener: Any = None  # the listening connection, used by the listener greenlet only
        self._last_cleanup = 0.0

    def start(self) -> None:
        pgdriver.make_cooperative()
        super().start()

    def _connect(self, role: str):
        connection = pgdriver.connect(self.url, application_name="realtimemagic-" + role,
                                      connect_timeout=5, keepalives=1, keepalives_idle=10,
                                      keepalives_interval=5, keepalives_count=3)
        connection.autocommit = True
        return connection

    # -- publishing ------------------------------------------------------------------------

    def connect_publisher(self):
        connection = self._connect("publisher")
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, "
                           "body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
                           % TABLE)
        return connection

    def _ping_publisher(self, connection) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            self._cleanup(cursor)

    def send_payload(self, connection, channel: str, payload: str) -> None:
        with connection.cursor() as cursor:
            if len(payload.encode("utf-8")) > NOTIFY_LIMIT:
                cursor.execute("INSERT INTO %s (body) VALUES (%%s) RETURNING id" % TABLE,
                               (payload,))
                row_id = cursor.fetchone()[0]
                payload = json.dumps({"o": self.origin, "c": channel, "r": row_id})
            cursor.execute("SELECT pg_notify(%s, %s)", (pg_channel(channel), payload))

    def _cleanup(self, cursor) -> None:
        if time.monotonic() - self._last_cleanup > LARGE_MESSAGE_SECONDS / 10:
            self._last_cleanup = time.monotonic()
            cursor.execute("DELETE FROM %s WHERE created_at < now() - interval '%d seconds'"
                           % (TABLE, LARGE_MESSAGE_SECONDS))

    # -- listening -------------------------------------------------------------------------

    def maintain(self, ttl_of: Callable[[str], float]) -> None:
        """Nothing: no history here, and the publisher greenlet deletes expired large
        messages on its own connection."""

    def _listen_forever(self) -> None:
        connection = self._listener = self._connect("listener")
        try:
            self._listen_to_all(self._send_listens)
            self._came_up()
            checked = time.monotonic()
            while True:
                # LISTEN and UNLISTEN queued by other greenlets go out between two waits; a
                # quiet connection is checked with SELECT 1 every health_interval.
                self._send_commands(self._send_listen, self._send_unlisten)
                try:
                    wait_read(connection.fileno(), timeout=COMMAND_LATENCY)
                except socket.timeout:
                    if time.monotonic() - checked < self.settings.health_interval:
                        continue
                    self._execute("SELECT 1")
                else:
                    connection.poll()
                    self._drain()
                checked = time.monotonic()
        finally:
            self._listener = None
            try:
                connection.close()
            except Exception:
                pass

    def _execute(self, query: str, arguments=None):
        with self._listener.cursor() as cursor:
            cursor.execute(query, arguments)
            result = cursor.fetchone() if cursor.description else None
        self._drain()
        return result

    def _drain(self) -> None:
        connection = self._listener
        while connection is not None and connection.notifies:
            envelope = self.parse_envelope(connection.notifies.pop(0).payload)
            if envelope is not None and "r" in envelope and envelope.get("o") != self.origin:
                envelope = self._large_message(envelope["r"])
            if envelope is not None:
                self.accept(envelope)

    def _large_message(self, row_id: Any):
        row = self._execute("SELECT body FROM %s WHERE id = %%s" % TABLE, (row_id,))
        if row is None:
            log.warning("broker %s: large message %s expired before it was read",
                        self.url_for_logs, row_id)
            return None
        return self.parse_envelope(row[0])

    def _send_listens(self, channels: List[str]) -> None:
        for channel in channels:
            self._send_listen(channel)

    def _send_listen(self, channel: str) -> None:
        self._execute('LISTEN "%s"' % pg_channel(channel))
        self._confirm(channel)

    def _send_unlisten(self, channel: str) -> None:
        self._execute('UNLISTEN "%s"' % pg_channel(channel))
