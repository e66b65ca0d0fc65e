"""The realtime server of the example site: ``rtm-serve examples.django_site.realtime:rtm``.

It reads the visitor's Django session from the cookie the browser sends (the site's settings,
database and SECRET_KEY), and allows:

- ``user:<id>``: that user only (the page of views.home listens to it);
- ``group:<name>``: the members of that Django group (a query, the seed's way);
- any other channel: every logged-in user.  Anonymous connections get nothing.

``rtm-serve`` makes psycopg2 cooperative (psycogreen) before importing this module, so with
PostgreSQL a check waiting on the database holds up no other client.
"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from realtimemagic import RealTimeMagic  # noqa: E402
from realtimemagic.auth.contrib import AuthenticationError, DjangoAuthenticator  # noqa: E402

#: Tests only: with DJANGO_SITE_TEST_HOOKS=1, a connection opened with ?pg_sleep=SECONDS
#: makes each of its checks wait that long in PostgreSQL first.
TEST_HOOKS = os.environ.get("DJANGO_SITE_TEST_HOOKS") == "1"


class SiteAuthenticator(DjangoAuthenticator):
    error_message = "You must be logged in."

    def check(self, conn, channel):
        if TEST_HOOKS and "pg_sleep" in conn.info.query:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(%s)", [float(conn.info.query["pg_sleep"])])
        user = self.get_user(conn)
        if not user.is_authenticated:
            raise AuthenticationError(self.error_message)
        kind, _, name = channel.partition(":")
        if kind == "user" and name != str(user.pk):
            raise AuthenticationError("This is not your channel.")
        if kind == "group" and not user.groups.filter(name=name).exists():
            raise AuthenticationError("You are not a member of %s." % name)


rtm = RealTimeMagic()
# At most this many checks use the database at once (each holds a connection meanwhile).
rtm.authenticators["default"].append(SiteAuthenticator(max_database_connections=int(
    os.environ.get("DJANGO_SITE_REALTIME_DB_CONNECTIONS", "10"))))
