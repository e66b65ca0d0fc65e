"""Django authentication: the user of a connection from the Django session cookie (SPEC
section 9).

::

    import django
    django.setup()                     # DJANGO_SETTINGS_MODULE names the site's settings
    from realtimemagic.auth.contrib import DjangoAuthenticator, AuthenticationError

    class OwnChannel(DjangoAuthenticator):
        error_message = "This is not your channel."

        def check(self, conn, channel):
            user = self.get_user(conn)
            if not user.is_authenticated or channel != 'user:%s' % user.pk:
                raise AuthenticationError(self.error_message)

    rtm.authenticators['user'].append(OwnChannel())

The realtime server and the Django site share the session store and ``SECRET_KEY`` (the same
settings), and the browser sends the site's session cookie to the realtime server: same host
(cookies are not port-specific), or a parent domain in ``SESSION_COOKIE_DOMAIN``.

The ORM under gevent: each check runs in its own greenlet, and Django's connections belong to
the greenlet that opened them, so a check's connections are closed when it returns (whatever the
check does, and whatever ``CONN_MAX_AGE`` says): none is left open by greenlets that are gone.
With PostgreSQL through psycopg2, made cooperative by psycogreen (``rtm-serve`` and the gunicorn
worker do that), a slow query holds up no other client.  Other databases (SQLite, MySQL,
psycopg 3) block the whole process while a query runs: fine for a demo, not for a server.
"""
import contextvars
import functools
import importlib
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional
from urllib.parse import urlsplit

from gevent.lock import BoundedSemaphore

from ..exceptions import AuthenticationError, ConfigError, MissingExtra

try:
    import django
except ImportError as error:
    raise MissingExtra("DjangoAuthenticator", "Django", "django") from error

from . import Authenticator

__all__ = ["AuthenticationError", "DjangoAuthenticator", "closing_connections"]

log = logging.getLogger(__name__)

#: How deep the current greenlet is in checks: the connections are closed at the outermost.
_depth: "contextvars.ContextVar[int]" = contextvars.ContextVar("realtimemagic_django_depth",
                                                               default=0)
#: The methods whose ORM connections are closed when they return, in subclasses too.
CLOSING_METHODS = ("get_user", "check", "check_channel", "check_message")
_CLASS_VALUE: Any = object()  # a keyword not given: the class attribute's value


@contextmanager
def closing_connections(slots: Optional[Any] = None) -> Iterator[None]:
    """Close the Django database connections of this greenlet when the outermost such block
    ends (they belong to it: no other greenlet could reuse them).  For ORM code in other hooks
    (openings, receivers).  ``slots``: a semaphore the outermost block holds meanwhile, to
    bound the connections open at once."""
    outermost = _depth.get() == 0
    if outermost and slots is not None:
        slots.acquire()
    token = _depth.set(_depth.get() + 1)
    try:
        yield
    finally:
        _depth.reset(token)
        if outermost:
            try:
                from django.db import connections
                connections.close_all()
            finally:
                if slots is not None:
                    slots.release()


def _closing(method: Callable) -> Callable:
    if getattr(method, "_closes_connections", False):
        return method

    @functools.wraps(method)
    def closing(self: Any, *args: Any, **keywords: Any) -> Any:
        with closing_connections(getattr(self, "database_slots", None)):
            return method(self, *args, **keywords)

    closing._closes_connections = True  # type: ignore[attr-defined]
    return closing


class DjangoAuthenticator(Authenticator):
    """Refuses anonymous users; subclass and override ``check(conn, channel)`` for more (use
    ``self.get_user(conn)`` and the ORM freely: the connections are closed afterwards).

    Django must be configured (``DJANGO_SETTINGS_MODULE`` or ``settings.configure()``); the
    constructor calls ``django.setup()`` when nobody has yet.

    ``max_database_connections``: at most this many of its checks run at once in this process
    (each may hold a database connection of its own); the others wait for their turn, so that
    a crowd of clients connecting at once does not exceed the database's ``max_connections``.
    None: no limit."""

    error_message = "You must be logged in."
    max_database_connections: Optional[int] = 10
    uses_cookies = True  # the session cookie: see trusts_origin

    def __init_subclass__(cls, **keywords: Any) -> None:
        super().__init_subclass__(**keywords)
        for name in CLOSING_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _closing(cls.__dict__[name]))

    def __init__(self, max_database_connections: Optional[int] = _CLASS_VALUE) -> None:
        from django.apps import apps
        if not apps.ready:
            django.setup()
        if max_database_connections is not _CLASS_VALUE:
            self.max_database_connections = max_database_connections
        limit = self.max_database_connections
        if limit is not None and limit < 1:
            raise ConfigError("max_database_connections must be at least 1, or None")
        self.database_slots = BoundedSemaphore(limit) if limit is not None else None
        for problem in blocking_databases():
            log.warning("%s: its queries block every client of this process while they run",
                        problem)

    def session_key(self, conn: Any) -> str:
        """The Django session cookie's value (``settings.SESSION_COOKIE_NAME``), or ''."""
        from django.conf import settings
        return conn.info.cookies.get(settings.SESSION_COOKIE_NAME) or ""

    def get_user(self, conn: Any) -> Any:
        """The user of the connection's session, as ``django.contrib.auth.get_user`` finds it
        for a request carrying that session (the session engine of ``SESSION_ENGINE``, the
        user through ``AUTHENTICATION_BACKENDS`` and the session hash check): a user, or an
        ``AnonymousUser``.  The session is read, never written."""
        from django.contrib import auth
        from django.contrib.auth.models import AnonymousUser
        session_key = self.session_key(conn)
        if not session_key:
            return AnonymousUser()
        return auth.get_user(_SessionRequest(read_only_session(session_key)))

    def trusts_origin(self, origin: str) -> bool:
        """Pages of ``origin`` may connect with the session cookie (when ``allowed_origins``
        is left automatic) when Django trusts it: listed in ``CSRF_TRUSTED_ORIGINS`` (as
        Django's CSRF check matches them: exactly, or ``https://*.example.com``), or one of
        the ``ALLOWED_HOSTS`` (``.example.com``: it and its subdomains; ``*``: any) over http
        or https on the scheme's default port.  ALLOWED_HOSTS names no port, and another
        port of the same host is another origin: list such origins in
        CSRF_TRUSTED_ORIGINS, as Django asks for a form posted from them."""
        return django_trusts_origin(origin)

    def trusted_origins(self) -> str:
        from django.conf import settings
        return "CSRF_TRUSTED_ORIGINS %s and ALLOWED_HOSTS %s (http/https, default ports)" % (
            list(settings.CSRF_TRUSTED_ORIGINS), allowed_hosts())

    def check(self, conn: Any, channel: str) -> None:
        """Anonymous users are refused with ``error_message``."""
        if not self.get_user(conn).is_authenticated:
            raise AuthenticationError(self.error_message)

    def check_channel(self, conn: Any, channel: str) -> None:
        self.check(conn, channel)

    def check_message(self, conn: Any, channel: str, message: Any) -> None:
        self.check(conn, channel)


for _name in CLOSING_METHODS:
    setattr(DjangoAuthenticator, _name, _closing(getattr(DjangoAuthenticator, _name)))


DEFAULT_PORTS = {"http": "80", "https": "443"}


def allowed_hosts() -> List[str]:
    """``ALLOWED_HOSTS``, or what Django allows when it is empty and ``DEBUG`` is on."""
    from django.conf import settings
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]  # as HttpRequest.get_host()
    return list(settings.ALLOWED_HOSTS)


def django_trusts_origin(origin: str) -> bool:
    """See :meth:`DjangoAuthenticator.trusts_origin`."""
    from django.conf import settings
    from django.http.request import split_domain_port, validate_host
    from django.utils.http import is_same_domain
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS:
        return False
    for pattern in trusted:  # CsrfViewMiddleware's allowed_origin_subdomains
        if "*" in pattern:
            wildcard = urlsplit(pattern)
            if wildcard.scheme == parts.scheme and is_same_domain(
                    parts.netloc, wildcard.netloc.lstrip("*")):
                return True
    domain, port = split_domain_port(parts.netloc)
    return (bool(domain) and port in ("", DEFAULT_PORTS[parts.scheme])
            and validate_host(domain, allowed_hosts()))


class _SessionRequest:
    """What ``django.contrib.auth.get_user`` reads of a request: its session."""

    def __init__(self, session: Any) -> None:
        self.session = session


#: What a read-only session does instead of writing (see read_only_session).
_WRITES = ("save", "delete", "cycle_key", "create")


def read_only_session(session_key: str) -> Any:
    """The session ``session_key`` of ``settings.SESSION_ENGINE``'s ``SessionStore``, made
    read-only: a realtime connection cannot send the browser a new cookie, so it must not
    rotate the session key (``get_user`` does, for a hash made with a ``SECRET_KEY_FALLBACKS``
    key) nor delete the session (for a hash that no longer verifies, after a password change):
    the user is refused meanwhile, and Django does both at the site's next request.  (The
    writes are switched off on the instance, not in a subclass: the class's name is part of
    the salt the session data is signed with.)"""
    from django.conf import settings
    store = importlib.import_module(settings.SESSION_ENGINE).SessionStore
    session = store(session_key)
    for name in _WRITES:
        setattr(session, name, _ignore)
    return session


def _ignore(*args: Any, **keywords: Any) -> None:
    return None


def blocking_databases() -> List[str]:
    """The configured databases whose queries would block the gevent loop."""
    from django.conf import settings
    problems = []
    for alias, database in settings.DATABASES.items():
        engine = database.get("ENGINE", "")
        if engine.endswith("postgresql") or "postgis" in engine:
            problem = _postgresql_problem()
            if problem:
                problems.append("database %r (%s)" % (alias, problem))
        else:
            problems.append("database %r (%s)" % (alias, engine))
    return problems


def _postgresql_problem() -> str:
    try:
        from django.db.backends.postgresql.psycopg_any import is_psycopg3
    except ImportError:  # pragma: no cover - Django without psycopg_any
        is_psycopg3 = False
    if is_psycopg3:
        return "psycopg 3, which psycogreen does not make cooperative"
    import psycopg2.extensions
    if psycopg2.extensions.get_wait_callback() is None:
        return "psycopg2 without psycogreen: call realtimemagic.patch_all() first"
    return ""
