"""The session directory and inboxes in PostgreSQL.

The directory is the table ``realtimemagic_sessions`` (key, owning process, expiry), refreshed
by each process for its own sessions in one statement.  Each process's inbox is the NOTIFY
channel ``rtm_i_<process id>``; a message longer than NOTIFY takes goes through the table
``realtimemagic_inbox`` (the notification carries the row, deleted as it is read).  Orphan rows
and expired entries are deleted by the refreshes.
"""
import json
import logging
import socket
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional

import gevent
from gevent.queue import LifoQueue
from gevent.socket import wait_read

from .. import pgdriver  # psycopg2, or psycopg2cffi on PyPy (registered as psycopg2)
from ..backoff import Backoff
from ..config import FIXED
from ..exceptions import RoutesUnavailable
from ..runtime.routes import Message
from . import wire

import psycopg2  # noqa: E402 (after pgdriver, which makes it importable on PyPy)

log = logging.getLogger("realtimemagic.routing")

SESSIONS = "realtimemagic_sessions"
INBOX = "realtimemagic_inbox"
NOTIFY_LIMIT = FIXED.postgres_notify_limit  # bytes of payload PostgreSQL accepts
POOL_SIZE = FIXED.routing_postgres_pool_size  # besides the listener's connection
RECONNECT = FIXED.routing_reconnect
ORPHAN_SECONDS = FIXED.routing_orphan_seconds
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS %s (key text PRIMARY KEY, node text NOT NULL, "
    "expires_at timestamptz NOT NULL)" % SESSIONS,
    "CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, body text NOT NULL, "
    "created_at timestamptz NOT NULL DEFAULT now())" % INBOX,
]
# Takes the entries given (%s: keys, node, ttl) unless a live other node holds them.
UPSERT = (
    "INSERT INTO {0} (key, node, expires_at) SELECT key, %s, now() + %s * interval '1 second' "
    "FROM unnest(%s::text[]) AS key ON CONFLICT (key) DO UPDATE SET node = EXCLUDED.node, "
    "expires_at = EXCLUDED.expires_at WHERE {0}.node = EXCLUDED.node OR {0}.expires_at < now() "
    "RETURNING key").format(SESSIONS)


class PostgresRoutes:
    def __init__(self, url: str, node: str, ttl: float) -> None:
        self.url = url
        self.node = node
        self.ttl = ttl
        self._pool: "LifoQueue[Any]" = LifoQueue()
        self._opened = 0
        self._schema_ready = False
        self._listener: Optional[gevent.Greenlet] = None

    def _connect(self, role: str) -> Any:
        connection = pgdriver.connect(self.url, application_name="realtimemagic-" + role,
                                      connect_timeout=5, keepalives=1, keepalives_idle=10,
                                      keepalives_interval=5, keepalives_count=3)
        connection.autocommit = True
        return connection

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor on a pooled connection; a broken connection is dropped, not pooled."""
        if self._pool.empty() and self._opened < POOL_SIZE:
            self._opened += 1
            try:
                connection = self._connect("routing")
            except psycopg2.Error as error:
                self._opened -= 1
                raise RoutesUnavailable(str(error)) from None
        else:
            connection = self._pool.get()
        try:
            with connection.cursor() as cursor:
                if not self._schema_ready:
                    for statement in SCHEMA:
                        cursor.execute(statement)
                    self._schema_ready = True
                yield cursor
        except BaseException as error:  # GreenletExit included: the connection is mid-query
            self._opened -= 1
            connection.close()
            if isinstance(error, psycopg2.Error):
                raise RoutesUnavailable(str(error)) from None
            raise
        self._pool.put(connection)

    def start(self, on_message: Callable[[Message], None]) -> None:
        pgdriver.make_cooperative()
        self._listener = gevent.spawn(self._listen_forever, on_message)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.kill(block=False)
            self._listener = None

    def claim(self, key: str) -> Optional[str]:
        with self._cursor() as cursor:
            cursor.execute(UPSERT, (self.node, self.ttl, [key]))
            if cursor.fetchone() is not None:
                return self.node
            cursor.execute("SELECT node FROM %s WHERE key = %%s" % SESSIONS, (key,))
            row = cursor.fetchone()
        return row[0] if row else None

    def owner(self, key: str) -> Optional[str]:
        with self._cursor() as cursor:
            cursor.execute("SELECT node FROM %s WHERE key = %%s AND expires_at > now()"
                           % SESSIONS, (key,))
            row = cursor.fetchone()
        return row[0] if row else None

    def release(self, key: str, node: str) -> None:
        with self._cursor() as cursor:
            cursor.execute("DELETE FROM %s WHERE key = %%s AND node = %%s" % SESSIONS,
                           (key, node))

    def refresh(self, keys: List[str]) -> List[str]:
        with self._cursor() as cursor:
            cursor.execute(UPSERT, (self.node, self.ttl, keys))
            kept = {row[0] for row in cursor.fetchall()}
            cursor.execute("DELETE FROM %s WHERE expires_at < now() - interval '%d seconds'"
                           % (SESSIONS, ORPHAN_SECONDS))
            cursor.execute("DELETE FROM %s WHERE created_at < now() - interval '%d seconds'"
                           % (INBOX, ORPHAN_SECONDS))
        return [key for key in keys if key not in kept]

    def post(self, node: str, message: Message) -> None:
        payload = wire.dump(message)
        with self._cursor() as cursor:
            if len(payload.encode("utf-8")) > NOTIFY_LIMIT:
                cursor.execute("INSERT INTO %s (body) VALUES (%%s) RETURNING id" % INBOX,
                               (payload,))
                payload = json.dumps({"row": cursor.fetchone()[0]})
            cursor.execute("SELECT pg_notify(%s, %s)", ("rtm_i_" + node, payload))

    def _listen_forever(self, on_message: Callable[[Message], None]) -> None:
        backoff = Backoff(*RECONNECT)
        while True:
            started = time.monotonic()
            try:
                self._listen(on_message)
            except (psycopg2.Error, OSError, RoutesUnavailable) as error:
                log.warning("routing inbox lost: %s", error)
            if time.monotonic() - started > RECONNECT[1]:
                backoff.reset()
            gevent.sleep(backoff.next())

    def _listen(self, on_message: Callable[[Message], None]) -> None:
        connection = self._connect("inbox")
        try:
            with connection.cursor() as cursor:
                cursor.execute('LISTEN "rtm_i_%s"' % self.node)
            while True:
                try:
                    wait_read(connection.fileno(), timeout=10.0)
                except socket.timeout:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT 1")  # a half-open connection is found here
                connection.poll()
                while connection.notifies:
                    message = self._parse(connection.notifies.pop(0).payload)
                    if message is not None:
                        on_message(message)
        finally:
            connection.close()

    def _parse(self, payload: str) -> Optional[Message]:
        """The message of a notification: in it, or in the inbox table (read once)."""
        message = wire.load(payload)
        if message is not None and "row" in message:
            with self._cursor() as cursor:
                cursor.execute("DELETE FROM %s WHERE id = %%s RETURNING body" % INBOX,
                               (message["row"],))
                row = cursor.fetchone()
            message = wire.load(row[0]) if row else None
        return message
