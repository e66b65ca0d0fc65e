"""DjangoAuthenticator and the Django app, with the example site (examples/django_site/): a real
Django site (``manage.py runserver``) and its realtime server (``rtm-serve
examples.django_site.realtime:rtm``), sharing a PostgreSQL schema of their own in the database
``test`` (dropped at the end).

Users log in through Django's own LoginView (a POST with the CSRF token, from Python), then
connect to the realtime server with the session cookie, over a raw WebSocket and over SockJS
xhr-polling:

1. a user may subscribe to ``user:<own id>``; another user's channel, a Django group the user is
   not in, anonymous connections, forged and logged-out sessions are refused with ``forbidden``
   and the authenticator's message;
2. a check waiting 1.5 s in PostgreSQL (``SELECT pg_sleep``) holds up no other client: their
   checks, which query the database too, are answered meanwhile;
3. after 200 checks no database connection of the realtime server is left open
   (pg_stat_activity, by application_name), although CONN_MAX_AGE asks Django to keep them;
   and no more than max_database_connections checks hold one at once;
4. headless Chromium logs in with the login form, loads the page rendered with
   ``{% realtime_endpoint %}``, connects with the cookie the browser sends to the other port,
   and shows what Python publishes to the user's channel (and nothing published to another's).

And the site's token view (tokens for pages of other origins), the app's label, system checks
and tag, and the example as shipped, with SQLite: the same site, the same rules.
"""
import importlib.util
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from typing import Dict, NamedTuple

import pytest
import requests
import websocket

from clients import Client, WebSocketClient, XhrPollingClient
from conftest import ROOT, ServerProcess, free_port, need, rtm_serve_command, run_process

pytestmark = pytest.mark.timeout(90)

DSN = "dbname=test host=127.0.0.1"
TOKEN_KEY = "test-site-token-key-" + secrets.token_hex(16)
DB_CONNECTIONS = 3  # the realtime server's max_database_connections
REALTIME_APP = "examples.django_site.realtime:rtm"
SETTINGS = "examples.django_site.settings"
NOT_LOGGED_IN = "You must be logged in."
NOT_YOURS = "This is not your channel."


@pytest.fixture(scope="module", autouse=True)
def django_installed():
    need(importlib.util.find_spec("django") is not None and
         importlib.util.find_spec("jwt") is not None,
         "Django or PyJWT is not installed: pip install 'realtimemagic[django,jwt]'")


# -- the site and its realtime server ------------------------------------------------------------

class Site(NamedTuple):
    web: ServerProcess           # the Django site
    realtime: ServerProcess      # rtm-serve with the DjangoAuthenticator
    api_url: str                 # the realtime server's internal API
    users: Dict[str, int]        # username -> id
    application_name: str        # the realtime server's, in pg_stat_activity


def postgres():
    """A connection for the test itself (autocommit), or None when PostgreSQL is away."""
    try:
        import psycopg2
        connection = psycopg2.connect(DSN, connect_timeout=3)
    except Exception:  # ImportError, OperationalError
        return None
    connection.autocommit = True
    return connection


def site_environment(database: Dict[str, str]) -> Dict[str, str]:
    return dict(database, DJANGO_SETTINGS_MODULE=SETTINGS, DJANGO_SITE_FAST_PASSWORDS="1",
                DJANGO_SITE_DEBUG="0", DJANGO_SITE_SECRET_KEY=secrets.token_hex(32),
                DJANGO_SITE_TOKEN_KEY=TOKEN_KEY)


def create_users(environment: Dict[str, str]) -> Dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-m", "examples.django_site.users", "alice:alice-password",
         "bob:bob-password:editors"],
        cwd=ROOT, env=dict(os.environ, **environment), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def serve_site(environment: Dict[str, str], tmp_path, realtime_environment=None):
    """The Django site and its realtime server, on free ports, stopped at the end."""
    users = create_users(environment)
    realtime_port, api_port, web_port = free_port(), free_port(), free_port()
    with ExitStack() as stack:
        realtime = stack.enter_context(run_process(
            rtm_serve_command(REALTIME_APP, realtime_port, "--api-port", str(api_port)),
            realtime_port, tmp_path, env=dict(environment, **(realtime_environment or {})),
            name="realtime"))
        web = stack.enter_context(run_process(
            [sys.executable, "-m", "django", "runserver", "127.0.0.1:%d" % web_port,
             "--noreload"], web_port, tmp_path, name="django",
            env=dict(environment, DJANGO_SITE_REALTIME_ENDPOINT=realtime.url + "/pubsub")))
        yield web, realtime, "http://127.0.0.1:%d" % api_port, users


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    connection = postgres()
    need(connection is not None, "PostgreSQL is not reachable at 127.0.0.1:5432 (database test)")
    schema = "rtm_auth_%s" % secrets.token_hex(5)
    application_name = schema + "_realtime"
    environment = site_environment({
        "DJANGO_SITE_DATABASE": "postgresql", "DJANGO_SITE_PG_NAME": "test",
        "DJANGO_SITE_PG_HOST": "127.0.0.1", "DJANGO_SITE_PG_SCHEMA": schema,
        "DJANGO_SITE_PG_APPLICATION_NAME": schema + "_web"})
    try:
        with serve_site(environment, tmp_path_factory.mktemp("django"), {
                "DJANGO_SITE_PG_APPLICATION_NAME": application_name,
                "DJANGO_SITE_TEST_HOOKS": "1",
                "DJANGO_SITE_REALTIME_DB_CONNECTIONS": str(DB_CONNECTIONS),
                # Django would keep each connection for a minute: the authenticator must not.
                "DJANGO_SITE_CONN_MAX_AGE": "60"}) as (web, realtime, api_url, users):
            yield Site(web, realtime, api_url, users, application_name)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS %s CASCADE" % schema)
        connection.close()


def login(web: ServerProcess, username: str, password: str) -> requests.Session:
    """Log in through Django's LoginView, as a browser's form would: GET for the CSRF cookie
    and token, POST them with the credentials."""
    session = requests.Session()
    page = session.get(web.url + "/accounts/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = session.post(web.url + "/accounts/login/", timeout=10, allow_redirects=False, data={
        "username": username, "password": password, "csrfmiddlewaretoken": csrf, "next": "/"})
    assert done.status_code == 302 and done.headers["Location"] == "/", done.text[:500]
    assert session.cookies.get("sessionid")
    return session


def cookie_header(session: requests.Session) -> str:
    return "; ".join("%s=%s" % item for item in session.cookies.get_dict().items())


def publish_through_api(site: Site, channel: str, message) -> None:
    done = requests.post(site.api_url + "/api/publish", timeout=5,
                         json={"channel": channel, "message": message})
    assert done.status_code == 200, done.text


# -- pub/sub clients that send a Cookie header ---------------------------------------------------

class CookieWebSocketClient(WebSocketClient):
    def __init__(self, server, cookie: str = "", query: str = "") -> None:
        Client.__init__(self)
        self.ws = websocket.create_connection(
            "%s/pubsub/websocket%s" % (server.ws_url, query), timeout=10,
            cookie=cookie or None, skip_utf8_validation=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()


class CookieXhrPollingClient(XhrPollingClient):
    """The session opens with the first poll: that request carries the cookie (a browser's
    would carry it on every request)."""

    def __init__(self, server, cookie: str = "", query: str = "") -> None:
        self.cookie = cookie
        super().__init__(server, query=query)

    def _poll_once(self) -> str:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        self.poller.request("POST", self.path + "xhr" + self.query, body=b"", headers=headers)
        return self.poller.getresponse().read().decode("utf-8")


CLIENTS = {"websocket": CookieWebSocketClient, "xhr-polling": CookieXhrPollingClient}


@pytest.fixture(params=list(CLIENTS))
def connect_as(request):
    """``connect_as(server, cookie="", query="")`` over the test's transport."""
    made = []

    def connect(server, cookie: str = "", query: str = ""):
        client = CLIENTS[request.param](server, cookie=cookie, query=query)
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()


def subscribe(client, channel, timeout=10.0):
    request_id = "sub-%s-%d" % (channel, time.monotonic_ns())
    client.subscribe(channel, request_id)
    return client.expect(lambda m: m.get("id") == request_id, timeout)


def assert_refused(client, channel, reason):
    reply = subscribe(client, channel)
    assert reply == {"action": "error", "id": reply["id"], "payload": {
        "code": "forbidden", "reason": reason, "channel": channel}}


def connections_of(connection, application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                       (application_name,))
        return cursor.fetchone()[0]


def wait_for_connections(connection, application_name: str, count: int,
                         timeout: float = 10.0) -> int:
    """Wait until the server has ``count`` connections (backends end shortly after their
    client closes them); the last count seen."""
    deadline = time.monotonic() + timeout
    while True:
        seen = connections_of(connection, application_name)
        if seen == count or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


# -- 1. who may subscribe ------------------------------------------------------------------------

def test_logged_in_user_may_subscribe_to_own_channel_only(site, connect_as):
    alice, bob = site.users["alice"], site.users["bob"]
    client = connect_as(site.realtime, cookie=cookie_header(login(site.web, "alice",
                                                                  "alice-password")))
    assert subscribe(client, "user:%d" % alice)["action"] == "subscribed"
    assert subscribe(client, "news")["action"] == "subscribed"  # any logged-in user
    assert_refused(client, "user:%d" % bob, NOT_YOURS)
    assert_refused(client, "group:editors", "You are not a member of editors.")
    client.publish("user:%d" % bob, "sneaky", request_id="pub")
    assert client.expect(lambda m: m.get("id") == "pub")["payload"]["reason"] == NOT_YOURS
    publish_through_api(site, "user:%d" % alice, {"hello": "alice"})
    assert client.expect(lambda m: m.get("action") == "message") == {
        "action": "message", "payload": {"channel": "user:%d" % alice,
                                         "message": {"hello": "alice"}}}

    other = connect_as(site.realtime, cookie=cookie_header(login(site.web, "bob",
                                                                 "bob-password")))
    assert_refused(other, "user:%d" % alice, NOT_YOURS)
    assert subscribe(other, "group:editors")["action"] == "subscribed"  # bob is an editor


@pytest.mark.parametrize("cookie", [
    "", "sessionid=", "sessionid=forgedforgedforgedforgedforgedfo", "csrftoken=abc",
    "sessionid=\"quoted; junk\"",
], ids=["none", "empty", "forged", "other-cookie", "garbage"])
def test_anonymous_connections_are_refused(site, connect_as, cookie):
    client = connect_as(site.realtime, cookie=cookie)
    assert_refused(client, "user:%d" % site.users["alice"], NOT_LOGGED_IN)
    assert_refused(client, "news", NOT_LOGGED_IN)


def test_session_cookie_found_among_cookies_simplecookie_rejects(site, connect_as):
    session_id = login(site.web, "alice", "alice-password").cookies["sessionid"]
    client = connect_as(site.realtime, cookie='prefs={"theme":"dark"}; sessionid=%s; a b=c'
                        % session_id)
    assert subscribe(client, "user:%d" % site.users["alice"])["action"] == "subscribed"


def test_logged_out_session_is_refused(site, connect_as):
    session = login(site.web, "alice", "alice-password")
    cookie = cookie_header(session)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                     session.get(site.web.url + "/", timeout=10).text).group(1)
    done = session.post(site.web.url + "/accounts/logout/", data={"csrfmiddlewaretoken": csrf},
                        allow_redirects=False, timeout=10)
    assert done.status_code == 302
    client = connect_as(site.realtime, cookie=cookie)  # the old cookie
    assert_refused(client, "user:%d" % site.users["alice"], NOT_LOGGED_IN)


def test_page_renders_the_endpoint(site):
    session = login(site.web, "alice", "alice-password")
    page = session.get(site.web.url + "/", timeout=10).text
    endpoint = site.realtime.url + "/pubsub"
    assert '<script src="%s/realtimemagic.js"></script>' % endpoint in page
    assert "new realtimeMagic.Client('%s')" % endpoint in page
    assert "var channel = 'user:%d';" % site.users["alice"] in page
    anonymous = requests.get(site.web.url + "/", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.headers["Location"]


def test_site_mints_tokens_for_its_users(site):
    from realtimemagic.auth.token import TokenAuthenticator
    session = login(site.web, "alice", "alice-password")
    minted = session.get(site.web.url + "/realtime-token/", timeout=10).json()
    claims = TokenAuthenticator(TOKEN_KEY).decode(minted["token"])
    alice = "user:%d" % site.users["alice"]
    assert (minted["channel"], claims["sub"], claims["channels"]) == (
        alice, str(site.users["alice"]), [alice])
    anonymous = requests.get(site.web.url + "/realtime-token/", allow_redirects=False,
                             timeout=10)
    assert anonymous.status_code == 302


# -- 2. and 3. the ORM under gevent --------------------------------------------------------------

def test_slow_check_holds_up_no_other_client(site):
    alice_cookie = cookie_header(login(site.web, "alice", "alice-password"))
    bob_cookie = cookie_header(login(site.web, "bob", "bob-password"))
    slow = CookieWebSocketClient(site.realtime, cookie=alice_cookie, query="?pg_sleep=1.5")
    fast = CookieWebSocketClient(site.realtime, cookie=bob_cookie)
    watcher = postgres()
    try:
        started = time.monotonic()
        slow.subscribe("user:%d" % site.users["alice"], "slow")
        time.sleep(0.2)  # the slow check is in pg_sleep now
        with watcher.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                           "AND query LIKE 'SELECT pg_sleep%%'", (site.application_name,))
            assert cursor.fetchone()[0] == 1, "the slow check should be waiting in PostgreSQL"
        answered = []
        for n in range(5):  # each one a check that queries the database (the session, the user)
            assert subscribe(fast, "user:%d" % site.users["bob"])["action"] == "subscribed"
            answered.append(time.monotonic() - started)
        reply = slow.expect(lambda m: m.get("id") == "slow", timeout=10)
        slow_answered = time.monotonic() - started
    finally:
        slow.close()
        fast.close()
        watcher.close()
    assert reply["action"] == "subscribed"
    assert slow_answered >= 1.4, slow_answered
    assert answered[-1] < 1.3, "the other client waited for the slow check: %r" % answered
    print("\ndjango: 5 checks of another client answered after %.2f s, the slow one after %.2f s"
          % (answered[-1], slow_answered))


def test_no_database_connection_left_open_after_200_checks(site):
    watcher = postgres()
    cookies = [cookie_header(login(site.web, name, name + "-password"))
               for name in ("alice", "bob")]
    clients = [CookieWebSocketClient(site.realtime, cookie=cookies[n % 2]) for n in range(4)]
    try:
        assert wait_for_connections(watcher, site.application_name, 0) == 0
        for n, client in enumerate(clients):  # 4 x 50 checks in flight at once
            for m in range(50):
                client.subscribe("user:%d" % site.users["alice"], "%d-%d" % (n, m))
        replies = [client.expect(lambda reply, n=n: reply.get("id") == "%d-49" % n, timeout=30)
                   for n, client in enumerate(clients)]
        assert [reply["action"] for reply in replies] == ["subscribed", "error"] * 2
        left = wait_for_connections(watcher, site.application_name, 0)
        assert left == 0, "%d database connections left open after 200 checks" % left
    finally:
        for client in clients:
            client.close()
        watcher.close()


def test_checks_use_at_most_max_database_connections(site):
    cookie = cookie_header(login(site.web, "alice", "alice-password"))
    clients = [CookieWebSocketClient(site.realtime, cookie=cookie, query="?pg_sleep=0.6")
               for _ in range(2 * DB_CONNECTIONS)]
    watcher = postgres()
    try:
        started = time.monotonic()
        for n, client in enumerate(clients):  # one check each, all at once
            client.subscribe("user:%d" % site.users["alice"], "s%d" % n)
        peak = 0
        while time.monotonic() - started < 1.0:
            peak = max(peak, connections_of(watcher, site.application_name))
            time.sleep(0.02)
        replies = [client.expect(lambda m, n=n: m.get("id") == "s%d" % n, timeout=10)
                   for n, client in enumerate(clients)]
        elapsed = time.monotonic() - started
    finally:
        for client in clients:
            client.close()
        watcher.close()
    assert all(reply["action"] == "subscribed" for reply in replies), replies
    assert 2 <= peak <= DB_CONNECTIONS, peak
    assert elapsed >= 1.15, "%d checks of 0.6 s, %d at a time, took %.2f s" % (
        len(clients), DB_CONNECTIONS, elapsed)


# -- 4. in Chromium ------------------------------------------------------------------------------

def test_browser_page_receives_the_users_messages(site, browser):  # noqa: F811
    alice, bob = site.users["alice"], site.users["bob"]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(site.web.url + "/")  # redirected to the login form
        assert "/accounts/login/" in page.url
        page.fill("#id_username", "alice")
        page.fill("#id_password", "alice-password")
        page.click("button[type=submit]")
        page.wait_for_url(site.web.url + "/")
        assert page.text_content("#channel") == "user:%d" % alice
        page.wait_for_function("document.getElementById('status').textContent === 'connected'")
        publish_through_api(site, "user:%d" % bob, "for bob")
        # onopen comes when the subscription was sent: publish until it is in place.
        deadline = time.monotonic() + 10
        while page.locator("#messages li").count() == 0:
            assert time.monotonic() < deadline, "nothing arrived: status %r" % \
                page.text_content("#status")
            publish_through_api(site, "user:%d" % alice, "hello alice")
            page.wait_for_timeout(300)
        texts = page.locator("#messages li").all_text_contents()
        assert texts and set(texts) == {"hello alice"}, texts
        assert page.text_content("#status") == "connected"
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        assert cookies["sessionid"]["domain"] == "127.0.0.1"  # sent to the other port too
    finally:
        context.close()


# -- the example as shipped: SQLite ---------------------------------------------------------------

def test_example_with_sqlite(tmp_path):
    environment = site_environment({"DJANGO_SITE_DATABASE": "sqlite",
                                    "DJANGO_SITE_SQLITE": str(tmp_path / "db.sqlite3")})
    with serve_site(environment, tmp_path) as (web, realtime, api_url, users):
        client = CookieWebSocketClient(realtime, cookie=cookie_header(
            login(web, "alice", "alice-password")))
        anonymous = CookieWebSocketClient(realtime)
        try:
            assert subscribe(client, "user:%d" % users["alice"])["action"] == "subscribed"
            assert_refused(client, "user:%d" % users["bob"], NOT_YOURS)
            assert_refused(anonymous, "user:%d" % users["alice"], NOT_LOGGED_IN)
        finally:
            client.close()
            anonymous.close()
        assert "block every client" in realtime.log()  # SQLite is not cooperative: said so


def test_postgresql_is_cooperative_and_no_check_raised(site):
    log = site.realtime.log()
    assert "block every client" not in log  # psycopg2 with psycogreen: no warning
    assert " raised (session " not in log  # no check failed with anything but a refusal



# -- the app: its label and its system checks ----------------------------------------------------

CHECKS = """
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                                   "realtimemagic.contrib.django"],
                   TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                               "APP_DIRS": True}], **%s)
django.setup()
from django.apps import apps
from django.core import checks
from django.template import Context, Template
print(apps.get_app_config("realtimemagic").name)
print(sorted(message.id for message in checks.run_checks()))
print(Template("{%% load realtimemagic %%}{%% realtime_endpoint %%}").render(Context()))
"""


@pytest.mark.parametrize("setting,messages,rendered", [
    ({}, "['realtimemagic.W001']", "http://127.0.0.1:9000/pubsub"),
    ({"REALTIMEMAGIC_ENDPOINT": "https://rtm.example.com/pubsub/"}, "[]",
     "https://rtm.example.com/pubsub"),
    ({"REALTIMEMAGIC_ENDPOINT": "/pubsub"}, "[]", "/pubsub"),
    ({"REALTIMEMAGIC_ENDPOINT": "javascript:alert(1)"}, "['realtimemagic.E001']",
     "javascript:alert(1)"),
    ({"REALTIMEMAGIC_ENDPOINT": "http://x/'<b>"}, "['realtimemagic.E001']",
     "http://x/&#x27;&lt;b&gt;"),
])
def test_app_label_checks_and_tag(setting, messages, rendered):
    done = subprocess.run([sys.executable, "-c", CHECKS % repr(setting)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["realtimemagic.contrib.django", messages, rendered]
