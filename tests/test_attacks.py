"""Level 3, attacks: clients that hold connections without finishing what they send, against
rtm-serve in a subprocess, over real sockets.  Each test prints its figures.

- slowloris: 1,000 connections that send half a request header, one byte every few seconds,
  against a server limited to 1,024 descriptors (the acceptance test), and a server with far
  fewer descriptors than attackers (EMFILE);
- a send body shorter than its Content-Length, a chunked body that never ends (xhr_send, the
  internal API), a WebSocket handshake that never finishes, a truncated WebSocket frame;
- the log and the counters under attack: malformed requests and refused connections are
  counted in /metrics and /api/stats, and logged at most once per interval per kind.
"""
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import pytest
import websocket

from conftest import ROOT, free_port, wait_for_port
from wsclient import PING, RawWebSocket, encode_frame

pytestmark = pytest.mark.slow

HALF_REQUEST = b"GET /pubsub/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class Served:
    def __init__(self, process: subprocess.Popen, port: int, api_port: int,
                 log_path: str) -> None:
        self.process = process
        self.port = port
        self.api_port = api_port
        self.log_path = log_path

    def log_lines(self) -> List[str]:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read().splitlines()

    def api(self, path: str) -> bytes:
        url = "http://127.0.0.1:%d%s" % (self.api_port, path)
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    def incidents(self) -> Dict[str, int]:
        return json.loads(self.api("/api/stats"))["incidents"]

    def open_fds(self) -> int:
        return len(os.listdir("/proc/%d/fd" % self.process.pid))


#: rtm-serve whose server never has a descriptor in reserve (as when even that one cannot be
#: had): what it does when it is out of descriptors is to pause accepting.
WITHOUT_RESERVE = ("from gevent import monkey; monkey.patch_all(); import sys; "
                   "from realtimemagic.runtime import wsgi_server; "
                   "wsgi_server._open_reserve = lambda: None; "
                   "from realtimemagic import cli; cli.main(sys.argv[1:])")


@contextmanager
def rtm_serve(tmp_path, *flags: str, descriptors: Optional[int] = None,
              reserve: bool = True) -> Iterator[Served]:
    """Plain pub/sub in a subprocess; ``descriptors``: its RLIMIT_NOFILE."""
    port, api_port = free_port(), free_port()
    log_path = str(tmp_path / ("rtm-%d.log" % port))
    limit = None
    if descriptors is not None:
        limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))
    command = [sys.executable] + (["-m", "realtimemagic.cli"] if reserve else
                                  ["-c", WITHOUT_RESERVE])
    command += ["--port", str(port), "--api-port", str(api_port), "--log-level",
                "warning"] + list(flags)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=limit)
    try:
        wait_for_port(port, process)
        wait_for_port(api_port, process)
        yield Served(process, port, api_port, log_path)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors():
    """The attacking side holds a thousand sockets at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4096)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < 2100:
        pytest.skip("the test process may not open 2,100 descriptors (hard limit %d)" % hard)
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes the connection; ``TimeoutError`` if it does not
    within ``timeout`` seconds."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return received
            received += data
    except ConnectionResetError:
        return received
    except socket.timeout:
        pass
    raise TimeoutError("still open after %.1f s; received %r" % (timeout, received[:200]))


def healthy_round_trip(served: Served) -> float:
    """Seconds for a new raw WebSocket client to connect, subscribe and receive its own
    published message."""
    started = time.monotonic()
    ws = websocket.create_connection("ws://127.0.0.1:%d/pubsub/websocket" % served.port,
                                     timeout=5)
    try:
        ws.send(json.dumps({"action": "subscribe", "payload": {"channel": "attack-healthy"}}))
        ws.send(json.dumps({"action": "publish", "payload": {"channel": "attack-healthy",
                                                             "message": "hello"}}))
        message = json.loads(ws.recv())
        assert message == {"action": "message", "payload": {"channel": "attack-healthy",
                                                            "message": "hello"}}
        return time.monotonic() - started
    finally:
        ws.close()


def slowloris(port: int, count: int, trickle_every: float, give_up_after: float) -> Dict:
    """``count`` connections that each send half a request header, then one more byte every
    ``trickle_every`` seconds.  Returns, per connection, when it was opened and closed by the
    server (``None``: still open after ``give_up_after`` seconds) and what it received."""
    selector = selectors.DefaultSelector()
    opened: Dict[socket.socket, float] = {}
    closed: Dict[socket.socket, float] = {}
    received: Dict[socket.socket, bytes] = {}
    refused_at_connect = 0

    def note_closed(timeout: float) -> None:
        # Also while connections are being opened: their closing time is measured, not the
        # moment the opening loop is done.
        for key, _ in selector.select(timeout=timeout):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if data:
                received[sock] += data
            else:
                closed[sock] = time.monotonic()
                selector.unregister(sock)

    for _ in range(count):
        sock = socket.socket()
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(HALF_REQUEST)
        except OSError:
            refused_at_connect += 1
            sock.close()
            continue
        sock.setblocking(False)
        opened[sock] = time.monotonic()
        received[sock] = b""
        selector.register(sock, selectors.EVENT_READ)
        note_closed(0)
    all_opened = time.monotonic()
    next_trickle = all_opened + trickle_every
    while len(closed) < len(opened) and time.monotonic() - all_opened < give_up_after:
        note_closed(0.05)
        if time.monotonic() >= next_trickle:
            for sock in opened:
                if sock not in closed:
                    try:
                        sock.send(b"a")
                    except OSError:
                        pass
            next_trickle += trickle_every
    lifetimes = [closed[sock] - opened[sock] for sock in closed]
    figures = {
        "attempted": count,
        "refused_at_connect": refused_at_connect,
        "opened": len(opened),
        "closed_by_server": len(closed),
        "still_open": len(opened) - len(closed),
        "answered_408": sum(1 for data in received.values() if data.startswith(b"HTTP/1.1 408")),
        "answered_503": sum(1 for data in received.values() if data.startswith(b"HTTP/1.1 503")),
        "shortest_life": round(min(lifetimes), 2) if lifetimes else None,
        "longest_life": round(max(lifetimes), 2) if lifetimes else None,
        "opening_took": round(all_opened - min(opened.values()), 2) if opened else None,
    }
    selector.close()
    for sock in opened:
        sock.close()
    return figures


def attack_log(served: Served, before: int) -> List[str]:
    return [line for line in served.log_lines()[before:] if line.strip()]


# -- slowloris -------------------------------------------------------------------------------

def test_slowloris_1000_half_sent_requests_against_1024_descriptors(tmp_path):
    """Acceptance: 1,000 connections sending half a request header, one byte every 2 s, against
    a server limited to 1,024 descriptors with header_timeout 3 s: all are closed by the server
    within header_timeout + 2 s; then a new client connects and receives a message within 1 s;
    the attack leaves at most a few log lines."""
    header_timeout = 3.0
    with rtm_serve(tmp_path, "--header-timeout", str(header_timeout),
                   descriptors=1024) as served:
        baseline_fds = served.open_fds()
        log_before = len(served.log_lines())
        figures = slowloris(served.port, 1000, trickle_every=2.0,
                            give_up_after=header_timeout + 10)
        after_fds = served.open_fds()
        healthy = healthy_round_trip(served)
        incidents = served.incidents()
        lines = attack_log(served, log_before)
        print("\nslowloris, 1000 connections, server RLIMIT_NOFILE 1024, header_timeout %g s:"
              % header_timeout)
        print("  %s" % figures)
        print("  server descriptors: %d before, %d after; incidents %s" % (
            baseline_fds, after_fds, {k: v for k, v in incidents.items() if v}))
        print("  healthy client: connected and received its message in %.3f s" % healthy)
        print("  %d log lines:\n    %s" % (len(lines), "\n    ".join(lines)))
    assert figures["refused_at_connect"] == 0, figures
    assert figures["still_open"] == 0, figures
    assert figures["longest_life"] <= header_timeout + 2, figures
    assert figures["answered_408"] + figures["answered_503"] == figures["opened"], figures
    assert incidents["header_timeout"] + incidents["descriptors_exhausted"] >= 1000, incidents
    assert healthy <= 1.0
    assert after_fds <= baseline_fds + 5
    assert len(lines) <= 4, lines
    assert not any("Traceback" in line for line in lines)


def test_slowloris_with_fewer_descriptors_than_attackers(tmp_path):
    """300 half-sent requests against a server limited to 128 descriptors: accept fails with
    EMFILE; the connections it cannot take are answered 503 and closed at once (none waits in
    the backlog), the others get 408 after header_timeout; one log line for each; a new client
    is served again as soon as descriptors are free."""
    header_timeout = 3.0
    with rtm_serve(tmp_path, "--header-timeout", str(header_timeout),
                   descriptors=128) as served:
        log_before = len(served.log_lines())
        figures = slowloris(served.port, 300, trickle_every=2.0,
                            give_up_after=header_timeout + 10)
        healthy = healthy_round_trip(served)
        incidents = served.incidents()
        lines = attack_log(served, log_before)
        print("\nslowloris, 300 connections, server RLIMIT_NOFILE 128: %s" % figures)
        print("  incidents %s; healthy client in %.3f s" % (
            {k: v for k, v in incidents.items() if v}, healthy))
        print("  %d log lines:\n    %s" % (len(lines), "\n    ".join(lines)))
    assert figures["still_open"] == 0, figures
    assert figures["longest_life"] <= header_timeout + 2, figures
    assert figures["answered_503"] >= 100 and figures["answered_408"] >= 50, figures
    assert incidents["descriptors_exhausted"] >= 100, incidents
    assert healthy <= 1.0
    assert len(lines) <= 4, lines
    assert not any("Traceback" in line for line in lines)


def test_out_of_descriptors_without_a_reserve_pauses_and_resumes(tmp_path):
    """Without a descriptor in reserve the server cannot refuse what it cannot accept: it
    pauses accepting (no spinning, one log line) and takes the waiting connections as soon as
    its own connections close, not after a long backoff."""
    header_timeout = 2.0
    with rtm_serve(tmp_path, "--header-timeout", str(header_timeout), descriptors=64,
                   reserve=False) as served:
        log_before = len(served.log_lines())
        started = time.monotonic()
        figures = slowloris(served.port, 100, trickle_every=1.0, give_up_after=15)
        took = time.monotonic() - started
        healthy = healthy_round_trip(served)
        incidents = served.incidents()
        lines = attack_log(served, log_before)
        print("\nslowloris, 100 connections, RLIMIT_NOFILE 64, no reserve: %s" % figures)
        print("  all served in %.2f s; incidents %s; healthy client in %.3f s" % (
            took, {k: v for k, v in incidents.items() if v}, healthy))
        print("  %d log lines:\n    %s" % (len(lines), "\n    ".join(lines)))
    assert figures["still_open"] == 0 and figures["answered_408"] == 100, figures
    # Two rounds of header_timeout: the second round was accepted as the first one closed.
    assert took <= 3 * header_timeout + 3, figures
    assert 1 <= incidents["descriptors_exhausted"] <= 100, incidents
    assert healthy <= 1.0
    assert len(lines) <= 4, lines
    assert not any("Traceback" in line for line in lines)


def test_half_open_connections_count_against_max_connections(tmp_path):
    """With max_connections 50, the 51st connection waiting for its headers is answered 503
    at once; /api/stats shows the half-open ones."""
    with rtm_serve(tmp_path, "--header-timeout", "3", "--max-connections", "50") as served:
        sockets = []
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            sock.sendall(HALF_REQUEST)
            sockets.append(sock)
        time.sleep(0.5)
        half_open = json.loads(served.api("/api/stats"))["half_open"]
        extra = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        extra.sendall(HALF_REQUEST)
        started = time.monotonic()
        answer = read_until_closed(extra, 2.0)
        refused_in = time.monotonic() - started
        answers = [read_until_closed(sock, 6.0) for sock in sockets]
        incidents = served.incidents()
        print("\nhalf-open: %d counted; the 51st refused in %.3f s: %r" % (
            half_open, refused_in, answer[:60]))
        for sock in sockets + [extra]:
            sock.close()
    assert half_open == 50
    assert answer.startswith(b"HTTP/1.1 503") and b"max_connections" in answer
    assert all(data.startswith(b"HTTP/1.1 408") for data in answers)
    assert incidents["half_open_limit"] == 1


# -- bodies ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_server(tmp_path_factory):
    """header_timeout and body_timeout 2 s, heartbeat 1 s."""
    with rtm_serve(tmp_path_factory.mktemp("quick"), "--header-timeout", "2",
                   "--body-timeout", "2", "--heartbeat-interval", "1") as served:
        yield served


def timed_answer(port: int, request: bytes, trickle: bytes = b"", every: float = 0.5,
                 timeout: float = 8.0):
    """Send ``request``, then ``trickle`` every ``every`` seconds until the server answers and
    closes; (what it sent, seconds until it closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(request)
    started = time.monotonic()
    received = b""
    try:
        sock.settimeout(every)
        while time.monotonic() - started < timeout:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                if trickle:
                    sock.sendall(trickle)
                continue
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
        else:
            raise TimeoutError("still open after %g s: %r" % (timeout, received[:200]))
    finally:
        sock.close()
    return received, time.monotonic() - started


def test_send_body_shorter_than_its_content_length(quick_server):
    """xhr_send, jsonp_send and POST /api/publish whose body stops short of its
    Content-Length: 408 after body_timeout (2 s), the connection closed; a GET announcing a
    body it never sends is answered and then closed as well (nobody waits for the rest)."""
    cases = {
        "xhr_send": (quick_server.port, b"POST /pubsub/000/attack1/xhr_send HTTP/1.1\r\n"
                     b"Host: x\r\nContent-Length: 100\r\n\r\n[\"half"),
        "jsonp_send": (quick_server.port, b"POST /pubsub/000/attack2/jsonp_send HTTP/1.1\r\n"
                       b"Host: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                       b"Content-Length: 100\r\n\r\nd=half"),
        "api publish": (quick_server.api_port, b"POST /api/publish HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 100\r\n\r\n{\"channel\""),
        "GET with a body": (quick_server.port, b"GET /pubsub/info HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 100\r\n\r\n"),
    }
    before = quick_server.incidents()["body_timeout"]
    results = {name: timed_answer(port, request) for name, (port, request) in cases.items()}
    after = quick_server.incidents()["body_timeout"]
    print()
    for name, (answer, seconds) in results.items():
        print("  %-16s closed after %.2f s: %r" % (name, seconds, answer.split(b"\r\n")[0]))
    for name in ("xhr_send", "jsonp_send", "api publish"):
        answer, seconds = results[name]
        assert answer.startswith(b"HTTP/1.1 408"), (name, answer)
        assert 1.5 <= seconds <= 5.0, (name, seconds)
    answer, seconds = results["GET with a body"]
    assert answer.startswith(b"HTTP/1.1 200") and seconds <= 5.0
    assert after - before == 4


def test_chunked_body_that_never_ends(quick_server):
    """A chunked xhr_send (and POST /api/publish) that sends a chunk every 0.5 s and never the
    last one: 408 once body_timeout has passed since its headers, however busy it looks."""
    results = {}
    for name, port, path in (("xhr_send", quick_server.port, b"/pubsub/000/attack3/xhr_send"),
                             ("api publish", quick_server.api_port, b"/api/publish")):
        results[name] = timed_answer(
            port, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n1\r\n[\r\n", trickle=b"1\r\n \r\n", every=0.5)
        print("\n  %s: closed after %.2f s: %r" % (name, results[name][1],
                                                    results[name][0].split(b"\r\n")[0]))
    for name, (answer, seconds) in results.items():
        assert answer.startswith(b"HTTP/1.1 408"), (name, answer)
        assert 1.5 <= seconds <= 5.0, (name, seconds)


# -- WebSocket -------------------------------------------------------------------------------

def test_websocket_handshake_that_never_finishes(quick_server):
    answer, seconds = timed_answer(
        quick_server.port, b"GET /pubsub/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Ver", trickle=b"s", every=0.5)
    print("\n  handshake cut short: closed after %.2f s: %r" % (seconds, answer.split(b"\r\n")[0]))
    assert answer.startswith(b"HTTP/1.1 408")
    assert 1.5 <= seconds <= 4.0


@pytest.mark.parametrize("path", ["/pubsub/websocket", "/pubsub/000/truncated/websocket"])
def test_truncated_websocket_frame(quick_server, path):
    """A WebSocket client that sends the first bytes of a frame and stops (or vanishes) cannot
    answer pings: with heartbeats every second, it gets close 4008 "Ping timeout" at the second
    heartbeat, and the connection ends CLOSE_TIMEOUT (2 s) later."""
    ws = RawWebSocket(quick_server.port, path)
    assert ws.status == 101
    frame = encode_frame(0x1, b'{"action": "subscribe", "payload": {"channel": "x"}}')
    started = time.monotonic()
    ws.sock.sendall(frame[:5])
    pings, close = 0, None
    while close is None:
        opcode, payload = ws.recv_frame()
        if opcode == PING:
            pings += 1
        elif opcode == 0x8:
            close = (int.from_bytes(payload[:2], "big"), payload[2:].decode())
    close_after = time.monotonic() - started
    ended = ws.at_eof(timeout=6)
    ended_after = time.monotonic() - started
    ws.shutdown()
    print("\n  %s: %d ping(s), close %s after %.2f s, connection ended after %.2f s" % (
        path, pings, close, close_after, ended_after))
    assert close == (4008, "Ping timeout")
    assert pings >= 1
    assert close_after <= 4.0
    assert ended and ended_after <= close_after + 3.0


def test_websocket_client_that_answers_pings_stays(quick_server):
    """The ping bound spares a live client: one that answers pings (as every WebSocket client
    does) but sends nothing stays connected through five heartbeats."""
    ws = websocket.create_connection("ws://127.0.0.1:%d/pubsub/websocket" % quick_server.port,
                                     timeout=5)
    try:
        ws.send(json.dumps({"action": "subscribe", "payload": {"channel": "attack-idle"},
                            "id": 1}))
        assert json.loads(ws.recv())["action"] == "subscribed"
        pings = 0
        started = time.monotonic()
        while time.monotonic() - started < 5:
            opcode, _ = ws.recv_data_frame(control_frame=True)  # answers each ping
            assert opcode == websocket.ABNF.OPCODE_PING
            pings += 1
        print("\n  a client answering pings: %d pings in 5 s, still connected" % pings)
        assert pings >= 3
        ws.send(json.dumps({"action": "publish", "payload": {"channel": "attack-idle",
                                                             "message": 1}}))
        assert json.loads(ws.recv())["payload"]["message"] == 1
    finally:
        ws.close()


# -- the log and the counters under attack -----------------------------------------------------

MALFORMED = [
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n",
    b"GET / HTTP/1\r\nHost: x\r\n\r\n",
    b"BREW /pot\r\n\r\n",
    b"POST /pubsub/000/x/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
]


def test_log_lines_under_attack(tmp_path):
    """400 malformed requests (over 100 headers, a bad version, a bad method, a negative
    Content-Length), 200 more from clients that reset the connection at once, and 50 requests
    whose headers never complete: every one read is counted in /metrics and /api/stats; the
    log has one line per kind, without a traceback."""
    with rtm_serve(tmp_path, "--header-timeout", "2") as served:
        log_before = len(served.log_lines())
        answers = []
        for index in range(600):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            sock.sendall(MALFORMED[index % len(MALFORMED)])
            if index % 3 == 2:  # gone before the answer: a reset instead of a close
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            else:
                answers.append(read_until_closed(sock, 5.0))
            sock.close()
        figures = slowloris(served.port, 50, trickle_every=1.0, give_up_after=8)
        metrics = served.api("/metrics").decode()
        incidents = served.incidents()
        lines = attack_log(served, log_before)
        counted = [line for line in metrics.splitlines()
                   if line.startswith("realtimemagic_incidents_total")]
        print("\n  %s\n  %s\n  %d log lines:\n    %s" % (
            figures, "\n  ".join(counted), len(lines), "\n    ".join(lines)))
    assert len(answers) == 400
    assert all(answer.startswith(b"HTTP/1.1 400") for answer in answers)
    assert 400 <= incidents["malformed_request"] <= 600 and incidents["header_timeout"] == 50
    assert ('realtimemagic_incidents_total{kind="malformed_request"} %.1f'
            % incidents["malformed_request"]) in counted
    assert 'realtimemagic_incidents_total{kind="header_timeout"} 50.0' in counted
    assert len(lines) == 2, lines
    assert not any("Traceback" in line or "ERROR" in line for line in lines)


def test_incidents_are_logged_once_per_interval_with_the_count_meanwhile(caplog):
    """The rate-limited log itself, with a fake clock: the first of a kind at once, the next
    ones counted, one line per interval saying how many came meanwhile; kinds apart."""
    from realtimemagic.incidents import Incidents
    now = [100.0]
    incidents = Incidents(interval=10.0, clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="realtimemagic.incidents"):
        for second in range(25):
            now[0] = 100.0 + second
            for _ in range(40):
                incidents.record("malformed_request", "bad")
            incidents.record("header_timeout")
    lines = [record.getMessage() for record in caplog.records]
    assert incidents.counts["malformed_request"] == 1000
    assert incidents.counts["header_timeout"] == 25
    assert len(lines) == 6  # at 0, 10 and 20 s, for each kind
    assert "399 more since the last line" in lines[2]
    assert all(record.exc_info is None for record in caplog.records)
