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
   and shows what Python publishes to the user's channel (and nothing published to another's);
5. origins, with allowed_origins left at its default: the realtime server trusts what Django
   trusts (CSRF_TRUSTED_ORIGINS, ALLOWED_HOSTS on the default ports); in Chromium a page on
   another port of 127.0.0.1, whose requests carry alice's session cookie, is refused with 403
   on the WebSocket handshake and on xhr-streaming, and with ``--allowed-origins '*'`` the same
   page subscribes to alice's channel (and the server warned at startup).

And the site's token view (tokens for pages of other origins), the app's label, system checks
and tag, and the example as shipped, with SQLite: the same site, the same rules.
"""
import http.server
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
from typing import Dict, List, NamedTuple

import pytest
import requests
import websocket

from clients import Client, WebSocketClient, XhrPollingClient
from conftest import ROOT, ServerProcess, free_port, need, rtm_serve_command, run_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

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
    environment: Dict[str, str]  # the realtime server's


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


def serve_realtime(environment: Dict[str, str], tmp_path, *flags: str):
    """The site's realtime server on a free port (its API on another), logging at info."""
    port = free_port()
    return run_process(rtm_serve_command(REALTIME_APP, port, "--log-level", "info", *flags),
                       port, tmp_path, env=environment, name="realtime")


@contextmanager
def serve_site(environment: Dict[str, str], tmp_path, realtime_environment=None):
    """The Django site and its realtime server, on free ports, stopped at the end; the site's
    origin (runserver's port) is in CSRF_TRUSTED_ORIGINS."""
    users = create_users(environment)
    api_port, web_port = free_port(), free_port()
    environment = dict(environment, DJANGO_SITE_TRUSTED_ORIGINS="http://127.0.0.1:%d" % web_port)
    realtime_environment = dict(environment, **(realtime_environment or {}))
    with ExitStack() as stack:
        realtime = stack.enter_context(serve_realtime(realtime_environment, tmp_path,
                                                      "--api-port", str(api_port)))
        web = stack.enter_context(run_process(
            [sys.executable, "-m", "django", "runserver", "127.0.0.1:%d" % web_port,
             "--noreload"], web_port, tmp_path, name="django",
            env=dict(environment, DJANGO_SITE_REALTIME_ENDPOINT=realtime.url + "/pubsub")))
        yield web, realtime, "http://127.0.0.1:%d" % api_port, users, realtime_environment


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
                "DJANGO_SITE_CONN_MAX_AGE": "60"}) as (web, realtime, api_url, users,
                                                       realtime_environment):
            yield Site(web, realtime, api_url, users, application_name, realtime_environment)
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


# -- 5. origins: the cookie authenticator's default ---------------------------------------------

# The page of another origin: what any page could do with the realtime server, by hand (no
# /info first, as sockjs-client would: an attacker needs none): subscribe over the plain
# WebSocket and over SockJS xhr-streaming (its sends with xhr_send), with credentials.
ATTACK_PAGE = """<!doctype html><html><body><p>another origin</p><script>
window.events = {'websocket': [], 'xhr-streaming': []};
function record(name, entry) { window.events[name].push(entry); }
function subscribeRequest(channel) {
  return JSON.stringify({action: 'subscribe', payload: {channel: channel}, id: 'attack'});
}
function connectWebSocket(url, channel) {
  var ws = new WebSocket(url.replace(/^http/, 'ws') + '/pubsub/websocket');
  ws.onopen = function () { record('websocket', {kind: 'open'}); ws.send(subscribeRequest(channel)); };
  ws.onmessage = function (event) { record('websocket', JSON.parse(event.data)); };
  ws.onerror = function () { record('websocket', {kind: 'error'}); };
  ws.onclose = function (event) { record('websocket', {kind: 'close', code: event.code}); };
}
function connectXhrStreaming(url, channel) {
  var base = url + '/pubsub/000/' + Math.random().toString(36).slice(2) + '/';
  var xhr = new XMLHttpRequest(), done = 0;
  xhr.open('POST', base + 'xhr_streaming');
  xhr.withCredentials = true;
  xhr.onprogress = function () {
    var end = xhr.responseText.lastIndexOf('\\n');
    if (end < done) return;
    var lines = xhr.responseText.slice(done, end).split('\\n');
    done = end + 1;
    lines.forEach(function (line) {
      if (line === 'o') {
        record('xhr-streaming', {kind: 'open'});
        var send = new XMLHttpRequest();
        send.open('POST', base + 'xhr_send');
        send.withCredentials = true;
        send.send(JSON.stringify([subscribeRequest(channel)]));
      } else if (line.charAt(0) === 'a') {
        JSON.parse(line.slice(1)).forEach(function (m) { record('xhr-streaming', JSON.parse(m)); });
      }
    });
  };
  xhr.onerror = function () { record('xhr-streaming', {kind: 'error', status: xhr.status}); };
  xhr.send();
}
</script></body></html>"""
ATTACKS = {"websocket": "connectWebSocket", "xhr-streaming": "connectXhrStreaming"}


@pytest.fixture(scope="module")
def other_origin():
    """A page on another port of 127.0.0.1: another origin, but the same site, so the browser
    sends the site's cookies (host-only, whatever the port) with its requests."""
    body = ATTACK_PAGE.encode("utf-8")

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *arguments) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


class NetworkLog:
    """Chromium's own account of the page's requests (DevTools protocol): the status the
    server answered (a page cannot see it when CORS refuses the response) and the Cookie
    header the browser sent; for WebSockets, the handshake's error (DevTools shows neither
    the cookie nor the status of a refused handshake)."""

    def __init__(self, context, page) -> None:
        self.urls: Dict[str, str] = {}
        self.status: Dict[str, int] = {}
        self.cookies: Dict[str, str] = {}
        self.websocket_errors: List[str] = []
        page.on("websocket", lambda ws: ws.on(
            "socketerror", lambda error: self.websocket_errors.append(error)))
        session = context.new_cdp_session(page)
        session.send("Network.enable")
        session.on("Network.requestWillBeSent", lambda event: self.urls.setdefault(
            event["requestId"], event["request"]["url"]))
        session.on("Network.webSocketCreated", lambda event: self.urls.setdefault(
            event["requestId"], event["url"]))
        session.on("Network.requestWillBeSentExtraInfo", lambda event: self.cookies.setdefault(
            event["requestId"], {name.lower(): value for name, value in
                                 event["headers"].items()}.get("cookie", "")))
        session.on("Network.responseReceivedExtraInfo", lambda event: self.status.setdefault(
            event["requestId"], event["statusCode"]))

    def requests(self, fragment: str):
        """(status, Cookie header) of each request whose URL holds ``fragment``."""
        return [(self.status.get(request_id), self.cookies.get(request_id))
                for request_id, url in self.urls.items() if fragment in url]


def log_in(context, site: Site, same_site: str = "None") -> str:
    """Log in as alice through the site's form; then, for ``same_site="None"``, make her
    session cookie SameSite=None (Secure: Chromium refuses SameSite=None without it, and
    counts http://127.0.0.1 as a secure context), as deployments with embedded pages set it:
    sent with every request from any page.  ``"Lax"``: the site's own setting, sent with
    requests from pages of the same site (any port).  Returns the cookie's value."""
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(site.web.url + "/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-password")
    page.click("button[type=submit]")
    page.wait_for_url(site.web.url + "/")
    page.close()
    if same_site == "None":
        session = [cookie for cookie in context.cookies() if cookie["name"] == "sessionid"][0]
        context.add_cookies([dict(session, sameSite="None", secure=True)])
    cookie = [cookie for cookie in context.cookies() if cookie["name"] == "sessionid"][0]
    assert cookie["sameSite"] == same_site
    return cookie["value"]


def wait_for_events(page, transport: str, predicate: str, timeout: float = 10000):
    page.wait_for_function("window.events[%r].some(function (e) { return %s; })"
                           % (transport, predicate), timeout=timeout)
    return page.evaluate("window.events[%r]" % transport)


def attack(context, origin: str, realtime: ServerProcess, transport: str, channel: str):
    """Open the page of ``origin`` and let it connect to ``realtime`` over ``transport``."""
    page = context.new_page()
    page.set_default_timeout(15000)
    network = NetworkLog(context, page)
    page.goto(origin + "/")
    page.evaluate("([url, channel]) => %s(url, channel)" % ATTACKS[transport],
                  [realtime.url, channel])
    return page, network


@pytest.mark.parametrize("same_site", ["None", "Lax"])
def test_page_of_another_port_is_refused_with_the_users_cookie(site, browser, other_origin,
                                                               same_site):
    """Acceptance: allowed_origins left at its default with DjangoAuthenticator.  The site's
    page (an origin Django trusts) connects as alice; a page on another port of 127.0.0.1,
    whose requests carry alice's session cookie (SameSite=None; and Lax, Django's default:
    another port is the same site), is refused with 403 on the WebSocket handshake and on
    xhr-streaming, and so never subscribes to her channel."""
    alice = "user:%d" % site.users["alice"]
    context = browser.new_context()
    try:
        session_id = log_in(context, site, same_site)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(site.web.url + "/")
        page.wait_for_function("document.getElementById('status').textContent === 'connected'")
        deadline = time.monotonic() + 10
        while page.locator("#messages li").count() == 0:  # subscribed as alice
            assert time.monotonic() < deadline, page.text_content("#status")
            publish_through_api(site, alice, "hello alice")
            page.wait_for_timeout(300)

        other, network = attack(context, other_origin, site.realtime, "websocket", alice)
        events = wait_for_events(other, "websocket", "e.kind === 'close'")
        assert [event["kind"] for event in events] == ["error", "close"], events
        assert network.websocket_errors == [
            "Error during WebSocket handshake: Unexpected response code: 403"]
        other.close()

        other, network = attack(context, other_origin, site.realtime, "xhr-streaming", alice)
        events = wait_for_events(other, "xhr-streaming", "e.kind === 'error'")
        assert events == [{"kind": "error", "status": 0}], events  # CORS hides the status
        refused = network.requests("/xhr_streaming")
        assert [status for status, _ in refused] == [403], refused
        # the browser did send alice's cookie: only the origin check stopped the page (the
        # WebSocket carries it too: see the next test, where '*' lets the same page in)
        assert "sessionid=%s" % session_id in refused[0][1], refused
        other.close()
    finally:
        context.close()
    assert re.search(r"allowed_origins automatic, for cookie authentication \(SiteAuthenticator\)"
                     r": pages of this server and of CSRF_TRUSTED_ORIGINS \['%s'\] and "
                     r"ALLOWED_HOSTS \['127.0.0.1', 'localhost'\]" % re.escape(site.web.url),
                     site.realtime.log())


def handshake_status(server: ServerProcess, origin=None) -> int:
    options = {"origin": origin} if origin else {}
    try:
        websocket.create_connection(server.ws_url + "/pubsub/websocket", timeout=10,
                                    **options).close()
    except websocket.WebSocketBadStatusException as error:
        return error.status_code
    return 101


def test_the_example_trusts_what_django_trusts(site):
    """ALLOWED_HOSTS ['127.0.0.1', 'localhost'] on the default ports, CSRF_TRUSTED_ORIGINS
    [the site's origin], and the realtime server's own origin."""
    expected = {
        site.web.url: 101,                             # CSRF_TRUSTED_ORIGINS
        "http://localhost": 101, "https://localhost": 101, "http://127.0.0.1": 101,
        "http://localhost:%d" % site.web.port: 403,    # not the site's origin: another host
        "http://127.0.0.1:%d" % free_port(): 403,      # another port of the site's host
        "https://127.0.0.1:%d" % site.web.port: 403,   # another scheme
        "http://sub.localhost": 403, "https://evil.example": 403, "null": 403,
        None: 101,                                     # websocket-client: the server's own
    }
    assert {origin: handshake_status(site.realtime, origin) for origin in expected} == expected


DJANGO_TRUST = """
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"], **%s)
django.setup()
from realtimemagic.auth.contrib import django_trusts_origin
print([django_trusts_origin(origin) for origin in %r])
"""


@pytest.mark.parametrize("setting,trusted,refused", [
    ({"ALLOWED_HOSTS": [".example.com"]},
     ["https://example.com", "http://a.b.example.com", "https://example.com:443"],
     ["https://example.com:8443", "https://badexample.com", "ws://example.com", "null"]),
    ({"ALLOWED_HOSTS": ["*"]}, ["https://anything.example", "http://[::1]"],
     ["http://anything.example:8080"]),
    ({"ALLOWED_HOSTS": [], "DEBUG": True}, ["http://localhost", "http://a.localhost",
                                            "http://127.0.0.1", "http://[::1]"],
     ["http://127.0.0.1:8000", "http://example.com"]),
    ({"ALLOWED_HOSTS": [], "DEBUG": False}, [], ["http://localhost", "http://127.0.0.1"]),
    ({"CSRF_TRUSTED_ORIGINS": ["https://*.example.com", "http://127.0.0.1:8000"]},
     ["https://example.com", "https://a.example.com", "http://127.0.0.1:8000"],
     ["http://a.example.com", "https://a.example.com:8443", "http://127.0.0.1:8001",
      "https://127.0.0.1:8000"]),
], ids=["leading-dot", "star", "debug-defaults", "no-hosts", "csrf-trusted-origins"])
def test_django_trusts_origins_as_django_does(setting, trusted, refused):
    origins = trusted + refused
    done = subprocess.run([sys.executable, "-c", DJANGO_TRUST % (repr(setting), origins)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr([origin in trusted for origin in origins])


@pytest.fixture(scope="module")
def realtime_any_origin(site, tmp_path_factory):
    """The site's realtime server again, with ``--allowed-origins '*'`` set explicitly."""
    api_port = free_port()
    with serve_realtime(site.environment, tmp_path_factory.mktemp("any-origin"),
                        "--allowed-origins", "*", "--api-port", str(api_port)) as server:
        yield server, "http://127.0.0.1:%d" % api_port


@pytest.mark.parametrize("transport", list(ATTACKS))
def test_explicit_star_lets_the_other_port_connect_as_the_user(site, browser, other_origin,
                                                               realtime_any_origin, transport):
    """Acceptance: with ``--allowed-origins '*'`` the same page connects and subscribes to
    alice's channel with her cookie (what the default stops), and the server warned at
    startup."""
    realtime, api_url = realtime_any_origin
    alice = "user:%d" % site.users["alice"]
    context = browser.new_context()
    try:
        log_in(context, site)
        page, _ = attack(context, other_origin, realtime, transport, alice)
        wait_for_events(page, transport, "e.action === 'subscribed'")
        done = requests.post(api_url + "/api/publish", timeout=5,
                             json={"channel": alice, "message": "private to alice"})
        assert done.status_code == 200, done.text
        events = wait_for_events(page, transport, "e.action === 'message'")
        assert {"action": "message", "payload": {
            "channel": alice, "message": "private to alice"}} in events
    finally:
        context.close()
    assert ("WARNING realtimemagic: allowed_origins is '*' with cookie authentication "
            "(SiteAuthenticator): a page of any origin that the browser sends the cookie from "
            "can connect as the logged-in user") in realtime.log()


# -- the example as shipped: SQLite ---------------------------------------------------------------

def test_example_with_sqlite(tmp_path):
    environment = site_environment({"DJANGO_SITE_DATABASE": "sqlite",
                                    "DJANGO_SITE_SQLITE": str(tmp_path / "db.sqlite3")})
    with serve_site(environment, tmp_path) as (web, realtime, api_url, users, _):
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
