"""realtimemagic.pgdriver: the same PostgreSQL driver API on CPython (psycopg2) and PyPy
(psycopg2cffi), cooperative under gevent after patch_all().  Runs in both test jobs."""
import json
import platform
import subprocess
import sys
import time

import pytest

from conftest import POSTGRES_URL, ROOT, need, postgres_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PYPY = platform.python_implementation() == "PyPy"


def test_the_driver_of_this_interpreter():
    from realtimemagic import pgdriver
    assert pgdriver.CFFI == PYPY
    assert pgdriver.psycopg2.__name__ == ("psycopg2cffi" if PYPY else "psycopg2")


@pytest.mark.parametrize("dsn, parsed", [
    ("dbname=test host=127.0.0.1", {"dbname": "test", "host": "127.0.0.1"}),
    ("host=h application_name='a b\\'c'", {"host": "h", "application_name": "a b'c"}),
    ("postgresql://u:secret@h:5433/db?application_name=x",
     {"user": "u", "password": "secret", "host": "h", "port": "5433", "dbname": "db",
      "application_name": "x"}),
])
def test_parse_dsn_and_make_dsn_round_trip(dsn, parsed):
    from realtimemagic import pgdriver
    assert pgdriver.parse_dsn(dsn) == parsed
    assert pgdriver.parse_dsn(pgdriver.make_dsn(**parsed)) == parsed


def test_a_bad_dsn_is_the_drivers_programming_error():
    from realtimemagic import pgdriver
    with pytest.raises(pgdriver.psycopg2.ProgrammingError, match="invalid dsn"):
        pgdriver.parse_dsn("no-equals-sign here")


def test_libpq_version():
    from realtimemagic import pgdriver
    assert pgdriver.libpq_version() >= 90000


def test_connect_merges_keywords_into_a_url_and_quotes_identifiers():
    need(postgres_available(), "PostgreSQL at 127.0.0.1:5432 (database test) is needed")
    from realtimemagic import pgdriver
    connection = pgdriver.connect(POSTGRES_URL, application_name="rtm pgdriver 'test'",
                                  connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('application_name'), 1 AS %s"
                           % pgdriver.quote_identifier('odd "name"'))
            assert cursor.fetchone() == ("rtm pgdriver 'test'", 1)
            assert cursor.description[1][0] == 'odd "name"'
    finally:
        connection.close()


COOPERATIVE = r"""
from realtimemagic import patch_all
patch_all()
import json, sys, time
import gevent
import psycopg2  # psycopg2cffi on PyPy, registered by patch_all
import psycopg2.extensions

def sleep_in_database():
    connection = psycopg2.connect(sys.argv[1])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(1)")
    finally:
        connection.close()

started = time.monotonic()
gevent.joinall([gevent.spawn(sleep_in_database) for _ in range(3)], raise_error=True)
print(json.dumps({"module": psycopg2.__name__, "elapsed": time.monotonic() - started,
                  "callback": psycopg2.extensions.get_wait_callback().__module__}))
"""


def test_patch_all_makes_the_driver_cooperative():
    """Three 1 s queries in three greenlets take about 1 s, not 3, and an application's own
    ``import psycopg2`` works on PyPy too."""
    need(postgres_available(), "PostgreSQL at 127.0.0.1:5432 (database test) is needed")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", COOPERATIVE, POSTGRES_URL], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"] == ("psycopg2cffi" if PYPY else "psycopg2")
    assert report["callback"] == "psycogreen.gevent"
    assert 0.9 < report["elapsed"] < 2.0, (report, time.monotonic() - started)
