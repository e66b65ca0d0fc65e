"""examples/deploy/haproxy.cfg, run by a real HAProxy in front of two rtm-serve instances that
share channels through the real Redis.

The shipped file is rendered with the test's ports, and with its inactivity timeouts cut to
PROXY_TIMEOUT seconds while the instances send heartbeats every HEARTBEAT second: the clients
then stay idle longer than the timeouts, which only the heartbeats can survive (the shipped
file keeps a similar ratio: 60 s against the default 25 s heartbeat).

Through the proxy, all subscribed to one fresh channel:

* Node: sockjs-client 1.6.1 (examples/deploy/check_pubsub.js) with CLIENTS_PER_TRANSPORT
  connections for each of its Node transports (websocket, xhr-streaming, eventsource,
  xhr-polling), idle for IDLE_MS once subscribed, and RAW_WEBSOCKETS plain WebSockets at
  /pubsub/websocket (idle even longer);
* Chromium: the same check_pubsub.js in a page (cross-origin, as a site's page would be) with
  BROWSER_CLIENTS (no more held requests than Chromium's six connections per host).

Each SockJS connection publishes MESSAGES_PER_CLIENT messages, and one message more goes through
each instance's internal API (POST /api/publish), so messages surely start on both instances.
Every client must get every message exactly once.

Stickiness is checked where it matters, at the instances: they run with --log-level debug, so
their access logs show each request's URL, and each SockJS session id (chosen by the test)
must appear in the log of exactly one instance, with all its requests (for xhr-polling: a
dozen polls and xhr_sends); both instances must have served sessions (the balancer balances).

The instances serve examples/deploy/app.py, whose "whoami" request answers with the client's
address as the instance sees it: clients connecting from 127.0.0.2 with a forged
X-Forwarded-For must be seen as 127.0.0.2 (the proxy adds the header, the app trusts only the
proxy's part of it).

tests/test_deploy_nginx.py does the same with nginx, with the helpers of this module.
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import time
import types
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from typing import Dict, List, Sequence, Tuple

import pytest
import websocket

from clients import WebSocketClient
from conftest import (REDIS_URL, ROOT, free_port, need, redis_available, rtm_serve_command,
                      run_process, which)
from test_sockjs_client_browser import SOCKJS_MIN_JS, StaticServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

DEPLOY_DIR = os.path.join(ROOT, "examples", "deploy")
CHECK_JS = os.path.join(DEPLOY_DIR, "check_pubsub.js")
NODE_MODULES = os.path.join(ROOT, "tests", "js", "node_modules")
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin",
                             "/sbin"])
#: Plain pub/sub, and a "whoami" request that tells a client its address and its instance.
APP = "examples.deploy.app:rtm"

#: The instances' heartbeat in these tests (seconds)...
HEARTBEAT = 1
#: ...and the proxies' inactivity timeouts, rendered down from the shipped ones (seconds)...
PROXY_TIMEOUT = 3
#: ...which the Node clients outlast, idle once subscribed (milliseconds).
IDLE_MS = 4500
NODE_TRANSPORTS = ["websocket", "xhr-streaming", "eventsource", "xhr-polling"]
CLIENTS_PER_TRANSPORT = 4
MESSAGES_PER_CLIENT = 2
RAW_WEBSOCKETS = 2
#: In one page: four held requests (streams and polls) at most, and the sends beside them.
BROWSER_CLIENTS = {"websocket": 2, "xhr-streaming": 1, "eventsource": 1, "xhr-polling": 2}

#: The clients of the X-Forwarded-For checks connect from this loopback address of their own, so
#: that the proxy's address (127.0.0.1) and theirs differ...
FAR_CLIENT = "127.0.0.2"
#: ...and claim to be this one, which only a proxy that is trusted may say.
SPOOFED = "203.0.113.9"

#: A SockJS session request in an access log line: "POST /pubsub/123/<session>/xhr HTTP/1.1".
SESSION_REQUEST = re.compile(r'"[A-Z]+ /pubsub/[^/ ]+/([^/ ?]+)/([a-z_]+)[ ?]')
#: The session requests that each sockjs-client transport makes, at least.
RESOURCES = {"websocket": {"websocket"}, "xhr-streaming": {"xhr_streaming", "xhr_send"},
             "eventsource": {"eventsource", "xhr_send"}, "xhr-polling": {"xhr", "xhr_send"}}


def sbin(program: str):
    """A program from sbin, which is not on every user's PATH."""
    return shutil.which(program, path=SBIN_PATH)


def read(path: str) -> str:
    with open(path, encoding="utf-8") as source:
        return source.read()


def render(text: str, replacements: Sequence[Tuple[str, str]]) -> str:
    """The shipped file with ``old`` replaced by ``new`` for each pair; each ``old`` must be
    there, so that the test follows the file (a setting renamed in it fails here)."""
    for old, new in replacements:
        assert old in text, "%r is no longer in the shipped config" % old
        text = text.replace(old, new)
    return text


class Instance:
    def __init__(self, server, api_port: int) -> None:
        self.server = server
        self.port = server.port
        self.api_url = "http://127.0.0.1:%d" % api_port

    def sessions(self, tag: str) -> Dict[str, Counter]:
        """session id -> Counter of its resources (xhr, xhr_send...) in the access log."""
        found: Dict[str, Counter] = defaultdict(Counter)
        for session, resource in SESSION_REQUEST.findall(self.server.log()):
            if session.startswith(tag + "_"):
                found[session][resource] += 1
        return found


class Deployment:
    """A proxy listening on ``front_port`` in front of ``instances``."""

    def __init__(self, front_port: int, instances: List[Instance], proxy) -> None:
        self.front_port = front_port
        self.url = "http://127.0.0.1:%d/pubsub" % front_port
        self.ws_url = "ws://127.0.0.1:%d" % front_port
        self.instances = instances
        self.proxy = proxy

    def context(self, result: Dict) -> str:
        """What to show when a check fails."""
        return "\ncheck result: %s\nproxy log:\n%s\n%s" % (
            json.dumps(result)[:6000], self.proxy.log()[-4000:], "\n".join(
                "instance %s log:\n%s" % (instance.port, instance.server.log()[-3000:])
                for instance in self.instances))


def need_tools() -> None:
    need(which("node") is not None, "the node binary is not installed")
    need(os.path.isdir(os.path.join(NODE_MODULES, "sockjs-client")),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")


def start_instances(stack: ExitStack, tmp_path, count: int = 2) -> List[Instance]:
    """``count`` rtm-serve instances sharing channels through Redis, logging each request."""
    need_tools()
    instances = []
    for index in range(count):
        port, api_port = free_port(), free_port()
        command = rtm_serve_command(APP, port, "--broker", REDIS_URL, "--api-port", str(api_port),
                                    "--heartbeat-interval", str(HEARTBEAT),
                                    "--log-level", "debug")
        server = stack.enter_context(run_process(command, port, tmp_path,
                                                 name="rtm%d" % (index + 1)))
        instances.append(Instance(server, api_port))
    return instances


def new_job(deployment: Deployment, **options) -> Dict:
    tag = "t" + uuid.uuid4().hex[:8]
    job = {"url": deployment.url, "transports": NODE_TRANSPORTS,
           "clients": CLIENTS_PER_TRANSPORT, "messages": MESSAGES_PER_CLIENT,
           "channel": "deploy-" + tag, "tag": tag, "idle_ms": 0,
           "api_urls": [instance.api_url for instance in deployment.instances],
           "timeout_ms": 10000, "settle_ms": 500}
    job.update(options)
    return job


def run_node_check(job: Dict) -> Dict:
    """examples/deploy/check_pubsub.js in Node; its JSON result."""
    process = subprocess.run(["node", CHECK_JS], cwd=ROOT, input=json.dumps(job),
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, NODE_PATH=NODE_MODULES))
    lines = process.stdout.strip().split("\n")
    assert lines and lines[-1].startswith("{"), "check_pubsub.js printed no result (%s)\n%s" % (
        process.returncode, process.stderr[-3000:])
    return json.loads(lines[-1])


def check_result(deployment: Deployment, job: Dict, result: Dict) -> None:
    """Every client connected with its transport and got every message exactly once."""
    context = deployment.context(result)
    assert result["ok"], "through the proxy: %s%s" % (result["error"], context)
    clients = job["clients"]
    count = sum(clients.values()) if isinstance(clients, dict) else (
        clients * len(job["transports"]))
    assert len(result["clients"]) == count
    assert len(result["expected"]) == count * job["messages"] + len(job["api_urls"])
    expected = sorted(result["expected"])
    for client in result["clients"]:
        assert client["used_transport"] == client["transport"], context
        assert sorted(client["received"]) == expected, context
        assert not client["errors"], context


def check_stickiness(deployment: Deployment, result: Dict, spread: bool = True,
                     timeout: float = 10.0) -> None:
    """Each session's requests in the access log of one instance only; with ``spread``, both
    instances served sessions (for 16 sessions, chance says otherwise 1 time in 30000).

    A request is logged when it ends (a WebSocket or a stream when it closes): wait until every
    session has its requests in a log."""
    instances = deployment.instances
    deadline = time.monotonic() + timeout
    while True:
        served = [instance.sessions(result["tag"]) for instance in instances]
        complete = all(
            any(RESOURCES[client["transport"]] <= set(sessions.get(client["session_id"], ()))
                for sessions in served)
            for client in result["clients"])
        if complete or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    context = deployment.context(result)
    placement = {}
    for client in result["clients"]:
        session = client["session_id"]
        where = [index for index, sessions in enumerate(served) if session in sessions]
        assert len(where) == 1, "session %s (%s) went to instances %s%s" % (
            session, client["transport"], [instances[i].port for i in where], context)
        resources = served[where[0]][session]
        assert RESOURCES[client["transport"]] <= set(resources), (
            "session %s (%s): requests %s on instance %d, some missing%s" % (
                session, client["transport"], dict(resources), instances[where[0]].port,
                context))
        placement[session] = (where[0], sum(resources.values()))
    by_instance = Counter(index for index, _ in placement.values())
    print("sessions per instance: %s; requests per xhr-polling session: %s" % (
        dict(by_instance), sorted(count for session, (_, count) in placement.items()
                                  if "_xhrpolling_" in session)))
    assert not spread or len(by_instance) == len(instances), (
        "every session went to one instance: the balancer does not balance%s" % context)


def check_node_clients(deployment: Deployment) -> None:
    """The Node check, idle past the proxy's timeouts, with raw WebSockets beside it."""
    job = new_job(deployment, idle_ms=IDLE_MS)
    front = types.SimpleNamespace(ws_url=deployment.ws_url)
    raw = [WebSocketClient(front) for _ in range(RAW_WEBSOCKETS)]
    try:
        for client in raw:
            client.subscribed(job["channel"])
        result = run_node_check(job)
        check_result(deployment, job, result)
        # The raw WebSockets were idle for longer still: the pings kept them through the proxy.
        expected = sorted(result["expected"])
        for client in raw:
            got = [client.expect(lambda m: m.get("action") == "message", timeout=10)
                   for _ in expected]
            keys = sorted("%s#%s" % (m["payload"]["message"]["from"],
                                     m["payload"]["message"]["n"]) for m in got)
            assert keys == expected, deployment.context(result)
            assert client.nothing_within(0.3), "a raw WebSocket got a message twice"
    finally:
        for client in raw:
            client.close()
    check_stickiness(deployment, result)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>deployment check</title>
<script src="/sockjs.min.js"></script>
<script src="/check_pubsub.js"></script>
</head><body><p>realtimemagic: deployment check</p></body></html>
"""


@pytest.fixture(scope="module")
def check_page():
    """A static server (another origin than the proxy) for the page, sockjs.min.js and
    check_pubsub.js."""
    need(os.path.isfile(SOCKJS_MIN_JS),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")
    javascript = "application/javascript; charset=UTF-8"
    files = {"/sockjs.min.js": (javascript, open(SOCKJS_MIN_JS, "rb").read()),
             "/check_pubsub.js": (javascript, open(CHECK_JS, "rb").read()),
             "/index.html": ("text/html; charset=UTF-8", PAGE.encode("utf-8"))}
    with StaticServer(files) as server:
        yield server


def check_browser_clients(deployment: Deployment, browser, check_page) -> None:
    """check_pubsub.js in a Chromium page."""
    job = new_job(deployment, transports=list(BROWSER_CLIENTS), clients=BROWSER_CLIENTS)
    context = browser.new_context()
    console: List[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(30000)
        page.on("console", lambda message: console.append("%s: %s" % (message.type,
                                                                      message.text)))
        page.on("pageerror", lambda error: console.append("pageerror: %s" % error))
        page.goto(check_page.url + "/index.html")
        result = page.evaluate("job => window.deployCheck.run(job)", job)
    finally:
        context.close()
    result.setdefault("console", console[-30:])
    check_result(deployment, job, result)
    # Six sessions all on one instance happen 1 time in 32: the Node check sees the spread.
    check_stickiness(deployment, result, spread=False)


@pytest.fixture(scope="module")
def haproxy_deployment(tmp_path_factory):
    """examples/deploy/haproxy.cfg, rendered, in front of two instances."""
    haproxy = sbin("haproxy")
    need(haproxy is not None, "haproxy is not installed (apt-get install haproxy)")
    tmp_path = tmp_path_factory.mktemp("haproxy")
    with ExitStack() as stack:
        instances = start_instances(stack, tmp_path)
        front_port, stats_port = free_port(), free_port()
        timeout = "%ds" % PROXY_TIMEOUT
        config = render(read(os.path.join(DEPLOY_DIR, "haproxy.cfg")), [
            ("bind :8000", "bind 127.0.0.1:%d" % front_port),
            # 50000 connections need 100000 descriptors; a container's hard limit may be lower.
            ("maxconn 50000", "maxconn 4000"),
            ("bind 127.0.0.1:8404", "bind 127.0.0.1:%d" % stats_port),
            ("127.0.0.1:9000", "127.0.0.1:%d" % instances[0].port),
            ("127.0.0.1:9010", "127.0.0.1:%d" % instances[1].port),
            ("timeout client 60s", "timeout client " + timeout),
            ("timeout server 60s", "timeout server " + timeout),
            ("timeout tunnel 1h", "timeout tunnel " + timeout),
        ])
        path = tmp_path / "haproxy.cfg"
        path.write_text(config)
        checked = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True,
                                 text=True, timeout=20)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        proxy = stack.enter_context(run_process([haproxy, "-f", str(path), "-db"], front_port,
                                                tmp_path, name="haproxy"))
        yield Deployment(front_port, instances, proxy)


def test_haproxy_node_clients(haproxy_deployment):
    check_node_clients(haproxy_deployment)
    # HAProxy's own log names the server of each request: both took sessions.
    log = haproxy_deployment.proxy.log()
    assert "rtm_sessions/rtm1 " in log and "rtm_sessions/rtm2 " in log, log[-3000:]


def test_haproxy_forwarded_for(haproxy_deployment):
    check_forwarded_for(haproxy_deployment)


def test_haproxy_browser_clients(haproxy_deployment, browser, check_page):  # noqa: F811
    check_browser_clients(haproxy_deployment, browser, check_page)


def whoami_over_websocket(deployment: Deployment) -> Dict:
    """``whoami`` over a raw WebSocket from FAR_CLIENT, with a forged X-Forwarded-For."""
    sock = socket.create_connection(("127.0.0.1", deployment.front_port), timeout=10,
                                    source_address=(FAR_CLIENT, 0))
    ws = websocket.create_connection(deployment.ws_url + "/pubsub/websocket", socket=sock,
                                     timeout=10, header=["X-Forwarded-For: " + SPOOFED])
    try:
        ws.send(json.dumps({"action": "whoami", "id": "ws"}))
        reply = json.loads(ws.recv())
    finally:
        ws.close()
    assert reply.get("id") == "ws", reply
    return reply["payload"]


def whoami_over_polling(deployment: Deployment, count: int = 4) -> List[Dict]:
    """``count`` whoami requests in one SockJS xhr-polling session from FAR_CLIENT (each a
    request of its own: xhr_send, then polls until the answer), with a forged X-Forwarded-For;
    the answers."""
    path = "/pubsub/%03d/%s/" % (uuid.uuid4().int % 1000, "far" + uuid.uuid4().hex[:12])
    headers = {"X-Forwarded-For": SPOOFED}
    connection = http.client.HTTPConnection("127.0.0.1", deployment.front_port, timeout=10,
                                            source_address=(FAR_CLIENT, 0))

    def post(resource: str, body: bytes = b"") -> Tuple[int, str]:
        connection.request("POST", path + resource, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")

    answers = []
    try:
        assert post("xhr") == (200, "o\n")
        for number in range(count):
            request = json.dumps({"action": "whoami", "id": number})
            assert post("xhr_send", json.dumps([request]).encode())[0] == 204
            deadline = time.monotonic() + 10
            while len(answers) <= number and time.monotonic() < deadline:
                status, frame = post("xhr")  # "h" (heartbeat) until the answer comes
                assert status == 200 and frame[0] in "ah", frame
                if frame.startswith("a"):
                    answers.extend(json.loads(text)["payload"] for text in json.loads(frame[1:]))
    finally:
        connection.close()
    assert len(answers) == count, answers
    return answers


def check_forwarded_for(deployment: Deployment) -> None:
    """The instances learn the client's address from X-Forwarded-For, and a polling session's
    requests, each answered by the instance that got it, are all answered by one."""
    instance_ports = {instance.port for instance in deployment.instances}
    answer = whoami_over_websocket(deployment)
    assert answer["peer"] == "127.0.0.1", answer  # the proxy
    assert answer["ip"] == FAR_CLIENT, answer
    assert answer["forwarded_for"].replace(" ", "").endswith("," + FAR_CLIENT), answer
    assert answer["instance"] in instance_ports, answer
    answers = whoami_over_polling(deployment)
    assert all(a["ip"] == FAR_CLIENT and a["peer"] == "127.0.0.1" for a in answers), answers
    assert len({a["instance"] for a in answers}) == 1, (
        "one polling session answered by several instances: %s" % answers)
