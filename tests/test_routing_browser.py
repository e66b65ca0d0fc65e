"""Any process serves any request, with the real client: sockjs-client 1.6.1 in Chromium
against ``gunicorn -k realtimemagic.gunicorn.Worker -w 4`` on one port, where the kernel hands
each connection to any worker (no stickiness at all).

* Every HTTP transport, forced one at a time, echoes 200 messages through /echo: all back, in
  order, none twice; then /close closes its session with 3000.  The access log shows that the
  requests of one session were served by several workers (the routing was used).
* The same for xhr-polling with the PostgreSQL broker.
* The browser transport tests of test_sockjs_client_browser.py, all 11 transports, against the
  same -w 4 server (acceptance of the issue: each test's session routed wherever its requests
  land).
"""
from typing import List, Set

import pytest

from conftest import POSTGRES_URL, REDIS_URL, need, postgres_available, redis_available
from routed import gunicorn_routed, workers_by_session
from test_sockjs_client_browser import (SAME_ORIGIN_ONLY, SESSION_URL,  # noqa: F401 (fixtures)
                                        static_server, test_browser_sockjs_client)
from test_sockjs_client_node import check_result

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

HTTP_TRANSPORTS = ["xhr-polling", "xhr-streaming", "eventsource", "iframe-htmlfile",
                   "jsonp-polling"]
#: 200 messages, a few of them not ASCII, each numbered so that order and duplicates show.
MESSAGES = ["%03d %s" % (number, "\u00e9\u2028\U0001f600" if number % 50 == 7 else "x" * 20)
            for number in range(200)]
STEP_TIMEOUT_MS = 20000


def routed_server(tmp_path_factory, static_server, broker: str):
    sockjs_url = static_server.url + "/sockjs.min.js"
    return gunicorn_routed(tmp_path_factory.mktemp("routed"), broker,
                           env={"RTM_SOCKJS_URL": sockjs_url, "RTM_HEARTBEAT_INTERVAL": "25",
                                "RTM_DISCONNECT_DELAY": "5"})


@pytest.fixture(scope="module")
def redis_workers(tmp_path_factory, static_server):  # noqa: F811
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
    with routed_server(tmp_path_factory, static_server, REDIS_URL) as server:
        yield server


@pytest.fixture(scope="module")
def postgres_workers(tmp_path_factory, static_server):  # noqa: F811
    need(postgres_available(), "PostgreSQL at 127.0.0.1:5432 is needed")
    with routed_server(tmp_path_factory, static_server, POSTGRES_URL) as server:
        yield server


@pytest.fixture(scope="module")
def sockjs_browser_server(redis_workers):
    """test_browser_sockjs_client, imported above, runs against the -w 4 server."""
    return redis_workers


def echo_in_browser(browser, static_server, server, transport: str) -> Set[str]:  # noqa: F811
    """The echo check of 200 messages in a page; the session ids the page used."""
    context = browser.new_context()
    sessions: Set[str] = set()
    console: List[str] = []

    def on_request(request) -> None:
        match = SESSION_URL.search(request.url)
        if match and request.url.startswith(server.url):
            sessions.add(request.url[len(server.url):].split("/")[3])

    try:
        page = context.new_page()
        page.set_default_timeout(60000)
        page.on("request", on_request)
        page.on("console", lambda message: console.append(message.text))
        page.goto(static_server.url + "/index.html")
        job = {"base": server.url, "transport": transport, "messages": MESSAGES,
               "timeout_ms": STEP_TIMEOUT_MS}
        result = page.evaluate("job => window.sockjsChecks.run(job)", job)
    finally:
        context.close()
    check_result(result, transport, MESSAGES, server_log=server.log() + "\nconsole:\n" +
                 "\n".join(console[-20:]))
    return sessions


#: transport -> how many workers served the busiest session of its check (for the last test).
SPREAD = {}


def record_spread(server, sessions: Set[str], name: str) -> None:
    served = workers_by_session(server.log())
    SPREAD[name] = max(len(served.get(session, ())) for session in sessions)


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_redis_workers_200_messages(browser, static_server, redis_workers,  # noqa: F811
                                    transport):
    sessions = echo_in_browser(browser, static_server, redis_workers, transport)
    assert len(sessions) == 2, sessions  # /echo and /close
    record_spread(redis_workers, sessions, transport)


def test_postgres_workers_200_messages_xhr_polling(browser, static_server,  # noqa: F811
                                                   postgres_workers):
    sessions = echo_in_browser(browser, static_server, postgres_workers, "xhr-polling")
    record_spread(postgres_workers, sessions, "postgresql xhr-polling")


def test_sessions_were_routed():
    """The checks above were not all served by one worker per session by chance: the kernel
    picks a worker for each connection, so a session of a few requests may land on one; over
    the checks, sessions spread (test_routing_failover.py checks it request by request)."""
    if not SPREAD:
        pytest.skip("no check ran in this session")
    print("workers per session: %s" % SPREAD)
    assert max(SPREAD.values()) >= 2, "every session on one worker: nothing was routed"
