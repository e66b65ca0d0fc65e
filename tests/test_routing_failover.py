"""Any process serves any request, request by request, and what happens when the process that
holds sessions dies: ``gunicorn -k realtimemagic.gunicorn.Worker -w 4`` on one port with Redis,
raw HTTP with a new connection for each request (so the kernel hands each one to any worker).
"""
import http.client
import os
import signal
import threading
import time
import uuid
from typing import Dict, List, Optional, Set, Tuple

import pytest

from conftest import REDIS_URL, need, redis_available
from routed import gunicorn_routed, workers_by_session

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

ROUTING_TTL = 2.0
#: The documented bound (docs/deployment.md): a dead owner is noticed within 1.5 routing_ttl;
#: plus slack for a shared machine.
BOUND = 1.5 * ROUTING_TTL + 3.0


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
    with gunicorn_routed(tmp_path_factory.mktemp("failover"), REDIS_URL,
                         env={"RTM_ROUTING_TTL": str(ROUTING_TTL),
                              "RTM_HEARTBEAT_INTERVAL": "25",
                              "RTM_DISCONNECT_DELAY": "5"}) as server:
        yield server


def post(server, path: str, body: str = "", timeout: float = 10.0) -> Tuple[int, str]:
    """One request on a connection of its own."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request("POST", path, body=body.encode("utf-8"))
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


def new_session(server) -> str:
    path = "/echo/000/%s/" % uuid.uuid4().hex
    assert post(server, path + "xhr") == (200, "o\n")
    return path


def echo(server, path: str, text: str) -> None:
    assert post(server, path + "xhr_send", '["%s"]' % text) == (204, "")
    assert post(server, path + "xhr") == (200, 'a["%s"]\n' % text)


def owner_pid(path: str) -> int:
    import redis
    node = redis.Redis.from_url(REDIS_URL).get("rtm:s:/echo/" + path.split("/")[3])
    assert node is not None, "no directory entry for %s" % path
    return int(node.decode("ascii").split("-")[0])


def test_each_request_on_any_worker(workers):
    """Echo rounds until the session's requests were served by two workers at least (the kernel
    picks the worker of each connection, unevenly: a worker just back from a request often wins
    the next one), each round's message back, in order."""
    path = new_session(workers)
    session = path.split("/")[3]
    served: Set[str] = set()
    for number in range(100):
        echo(workers, path, "m%d" % number)
        served = workers_by_session(workers.log()).get(session, set())
        if len(served) >= 2 and number >= 10:
            break
        time.sleep(0.05)
    assert len(served) >= 2, "%d requests all served by one worker: %s" % (2 * number, served)
    # Two messages sent before a poll reach that one poll, in order.
    assert post(workers, path + "xhr_send", '["a","b"]')[0] == 204
    assert post(workers, path + "xhr") == (200, 'a["a","b"]\n')
    # Nobody holds this one: 404 from any worker, as for one process.
    for _ in range(4):
        assert post(workers, "/echo/000/%s/xhr_send" % uuid.uuid4().hex, '["x"]')[0] == 404


def test_two_receivers_on_two_workers_get_2010(workers):
    """A second receiver of a session is refused with 2010 wherever the first one is held."""
    path = new_session(workers)
    results: List[Tuple[int, str]] = []
    first = threading.Thread(target=lambda: results.append(post(workers, path + "xhr")))
    first.start()
    time.sleep(0.5)
    for _ in range(3):
        assert post(workers, path + "xhr") == (200, 'c[2010,"Another connection still open"]\n')
    assert post(workers, path + "xhr_send", '["x"]')[0] == 204
    first.join(10)
    assert results == [(200, 'a["x"]\n')]


def test_owner_killed(workers):
    """SIGKILL the worker that holds a session: its client gets a new session within the bound
    (a send is refused with 404 first: nobody holds the session), a poll held by another worker
    for it ends; the sessions of the other workers carry on."""
    sessions: Dict[str, int] = {}
    for _ in range(20):
        path = new_session(workers)
        sessions[path] = owner_pid(path)
        if len(set(sessions.values())) >= 2:
            break
    owners = set(sessions.values())
    assert len(owners) >= 2, "20 sessions all created by one worker"
    victim = max(owners, key=lambda pid: list(sessions.values()).count(pid))
    doomed = [path for path, pid in sessions.items() if pid == victim]
    others = [path for path, pid in sessions.items() if pid != victim]

    pending: List[Optional[Tuple[int, str]]] = []

    def hold_poll() -> None:
        try:
            pending.append(post(workers, doomed[0] + "xhr", timeout=30))
        except (OSError, http.client.HTTPException):
            pending.append(None)  # it reached the victim itself: the connection died with it

    holder = threading.Thread(target=hold_poll)
    holder.start()
    time.sleep(0.5)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)

    holder.join(BOUND + 5)
    assert not holder.is_alive(), "a poll on the dead owner's session was still held"
    # It reached the victim itself (the connection died with it), or another worker, which
    # ended it once the owner was found dead, or (on a slow machine) arrived after the kill and
    # opened a new session at once.
    assert pending[0] in (None, (200, ""), (200, "o\n")), pending
    if pending[0] == (200, "o\n"):
        doomed = doomed[1:]
    for path in doomed:
        status, _ = post(workers, path + "xhr_send", '["lost"]')
        assert status == 404, "a send to a dead owner's session got %s" % status
        assert post(workers, path + "xhr") == (200, "o\n")  # a new session
    elapsed = time.monotonic() - killed_at
    assert elapsed < BOUND, "new sessions after %.1f s, bound %.1f s" % (elapsed, BOUND)
    for path in others:
        echo(workers, path, "still here")


def test_routing_setting():
    """Routing is on with redis:// and postgresql://, off with the memory broker, with
    routing=false, and with a broker that keeps no directory (logged)."""
    from examples.sockjs_endpoints import make_app
    from realtimemagic import config, routing
    from realtimemagic.runtime.remote import RemoteSessions

    def enabled(**settings) -> bool:
        app = make_app(config.build(settings, environ={}))
        remote = routing.enable(app)
        if remote is None:
            return False
        assert isinstance(remote, RemoteSessions)
        assert all(endpoint.remote is remote for endpoint in app.endpoints)
        return True

    assert enabled(broker=REDIS_URL)
    assert enabled(broker="postgresql://postgres@127.0.0.1:5432/test")
    assert not enabled(broker=REDIS_URL, routing=False)
    assert not enabled()  # memory://
    assert not enabled(broker="nats://127.0.0.1:4222")
