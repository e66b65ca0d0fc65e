"""Shared fixtures: real servers in subprocesses, on free ports, and the rule that a missing
service skips a test locally but fails it under CI=true."""
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The checkout's package, whatever an earlier `pip install -e` of another checkout points at.
if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip when a service or tool is missing, but fail under CI=true: CI must run everything."""
    if condition:
        return
    if IN_CI:
        pytest.fail("CI=true and " + reason)
    pytest.skip(reason)


REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def redis_available(url: str = REDIS_URL) -> bool:
    try:
        import redis
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:  # any reason: no driver, no server
        return False


def postgres_available(dsn: str = POSTGRES_URL) -> bool:
    try:
        from realtimemagic import pgdriver  # psycopg2, or psycopg2cffi on PyPy
        pgdriver.connect(dsn, connect_timeout=3).close()
        return True
    except Exception:  # any reason: no driver, no server, no database
        return False


NATS_URL = "nats://127.0.0.1:4222"


def nats_available(url: str = NATS_URL) -> bool:
    """A NATS server answers at ``url`` (it greets each connection with INFO)."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            sock.settimeout(2)
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


def nats_server_binary() -> Optional[str]:
    """Debian's nats-server lives in /usr/sbin, not always on a user's PATH."""
    found = shutil.which("nats-server")
    if found is None and os.access("/usr/sbin/nats-server", os.X_OK):
        found = "/usr/sbin/nats-server"
    return found


@contextmanager
def nats_server(port: int, *options: str) -> Iterator[subprocess.Popen]:
    """A nats-server of the test's own on ``port`` (127.0.0.1), stopped at the end."""
    binary = nats_server_binary()
    need(binary is not None, "nats-server is needed (apt-get install nats-server)")
    process = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port)] + list(options),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


@pytest.fixture(scope="session")
def nats_url():
    """The machine's NATS at 127.0.0.1:4222, else a nats-server started on a free port."""
    if nats_available():
        yield NATS_URL
        return
    port = free_port()
    with nats_server(port):
        yield "nats://127.0.0.1:%d" % port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: Optional[subprocess.Popen] = None,
                  timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("server exited with %s" % process.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d after %.0f s" % (port, timeout))


class ServerProcess:
    def __init__(self, process: subprocess.Popen, port: int, log_path: str) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path
        self.url = "http://127.0.0.1:%d" % port
        self.ws_url = "ws://127.0.0.1:%d" % port

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    def log_once_it_says(self, text: str, timeout: float = 10.0) -> str:
        """The log, once ``text`` is in it or ``timeout`` seconds have passed: the port opens
        before the application's start-up lines are written."""
        deadline = time.monotonic() + timeout
        while text not in self.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.log()

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def run_process(command: List[str], port: int, tmp_path, env: Optional[Dict] = None,
                name: str = "server") -> Iterator[ServerProcess]:
    log_path = str(tmp_path / ("%s-%d.log" % (name, port)))
    environment = dict(os.environ, **(env or {}))
    # Test applications (tests/testapps.py) are importable by the servers under test.
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.join(ROOT, "tests"), environment.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env=environment)
    server = ServerProcess(process, port, log_path)
    try:
        wait_for_port(port, process)
    except RuntimeError:
        server.stop()
        raise RuntimeError("%s did not start:\n%s" % (name, server.log()))
    try:
        yield server
    finally:
        server.stop()


def rtm_serve_command(application: str, port: int, *flags: str) -> List[str]:
    return [sys.executable, "-m", "realtimemagic.cli", application, "--port", str(port),
            "--log-level", "warning"] + list(flags)


@pytest.fixture
def start_server(tmp_path):
    """``start_server(application, *flags, env=None)``: rtm-serve in a subprocess on a free
    port."""
    servers = []

    def start(application: str = "examples.sockjs_endpoints:app", *flags: str,
              env: Optional[Dict[str, str]] = None) -> ServerProcess:
        port = free_port()
        context = run_process(rtm_serve_command(application, port, *flags), port, tmp_path,
                              env=env)
        server = context.__enter__()
        servers.append(context)
        return server

    yield start
    for context in reversed(servers):
        context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def serve_module(tmp_path_factory):
    """``serve_module(application, *flags, env=None)``: like start_server, for a whole module."""
    contexts = []

    def start(application: str, *flags: str, env: Optional[Dict[str, str]] = None):
        port = free_port()
        context = run_process(rtm_serve_command(application, port, *flags), port,
                              tmp_path_factory.mktemp("server"), env=env)
        server = context.__enter__()
        contexts.append(context)
        return server

    yield start
    for context in reversed(contexts):
        context.__exit__(None, None, None)


@pytest.fixture(params=["websocket", "xhr-polling"])
def connect(request):
    """``connect(server, prefix=..., query=...)``: a pub/sub client over the transport of the
    test's parameter, closed at the end."""
    from clients import TRANSPORTS
    made = []

    def connect_to(server, **options):
        client = TRANSPORTS[request.param](server, **options)
        made.append(client)
        return client

    yield connect_to
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def sockjs_server(tmp_path_factory):
    """The protocol suite's test server (examples/sockjs_endpoints.py) with the suite's
    timings (heartbeat 25 s, disconnect delay 5 s), shared by a module."""
    port = free_port()
    with run_process(rtm_serve_command("examples.sockjs_endpoints:app", port,
                                       "--heartbeat-interval", "25", "--disconnect-delay", "5"),
                     port, tmp_path_factory.mktemp("sockjs")) as server:
        yield server


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    need(os.access(CHROMIUM, os.X_OK), "%s is not installed (apt-get install chromium)" % CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    need(sync_playwright is not None, "Python playwright is not installed")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True, timeout=30000)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


def which(program: str) -> Optional[str]:
    return shutil.which(program)


@pytest.fixture
def private_redis():
    """A redis-server of the test's own on a free port (flushed at will; the history index is
    global to a Redis)."""
    server = shutil.which("redis-server")
    need(server is not None, "redis-server is needed")
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    yield "redis://127.0.0.1:%d/0" % port
    process.terminate()
    process.wait(10)
