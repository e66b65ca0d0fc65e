"""rtm-serve and rtm-publish as a user meets them: each start-up failure is one line on stderr
that says what to change, with exit status 2 and no traceback (--debug shows it); --version,
python -m realtimemagic, the help texts, the start-up log lines, where RTM_LOCAL=false binds."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import List, Optional
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from conftest import ROOT, free_port, need, redis_available, run_process, wait_for_port

pytestmark = pytest.mark.slow

RTM_SERVE = [sys.executable, "-m", "realtimemagic"]
RTM_PUBLISH = [sys.executable, "-c", "from realtimemagic.cli import publish_main; publish_main()"]


def run(command: List[str], env: Optional[dict] = None, cwd: str = ROOT,
        timeout: float = 60) -> subprocess.CompletedProcess:
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT,
                                                              environment.get("PYTHONPATH")]))
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=environment)


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit status 2, exactly one line on stderr holding each of ``expected``, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


# -- rtm-serve's start-up errors ---------------------------------------------------------------

def test_a_taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run(RTM_SERVE + ["--port", str(port)])
    line = assert_one_line_error(result)
    assert line == "rtm-serve: cannot listen on 127.0.0.1:%d: address in use (try --port)" % port


@pytest.mark.parametrize("flags, expected", [
    (["--port", "99999"], "port must be 0 to 65535"),
    (["--port", "abc"], "--port expects an integer, got 'abc'"),
    (["--broker", "foo"], "unsupported broker 'foo': use memory://, redis://"),
    (["--websocket-enabled", "maybe"], "--websocket-enabled expects true or false"),
    (["--log-level", "verbose"], "--log-level expects one of debug, info, warning, error"),
    (["--allowed-origins", "example.com"], "write scheme://host[:port], e.g. https://example.com"),
    (["--max-message-size", "300000"], "must not exceed max_frame_size"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag (see rtm-serve --help)"),
    (["--port"], "expected one argument"),
    (["no_such_module:app"], "cannot import no_such_module"),
    (["examples.simplest:nothing"], "examples.simplest has no attribute 'nothing'"),
])
def test_wrong_flags(flags, expected):
    assert_one_line_error(run(RTM_SERVE + flags), "rtm-serve: ", expected)


def test_wrong_environment_variable():
    assert_one_line_error(run(RTM_SERVE, env={"RTM_LOCAL": "maybe"}),
                          "RTM_LOCAL expects true or false")


HIDE = "import sys; sys.modules[%r] = None; from realtimemagic.cli import main; main()"


@pytest.mark.parametrize("module, flags, expected", [
    ("redis", ["--broker", "redis://127.0.0.1:6379/0"],
     "rtm-serve: redis:// needs redis-py: pip install 'realtimemagic[redis]'"),
    ("psycopg2", ["--broker", "postgresql://postgres@127.0.0.1/test"],
     "rtm-serve: postgresql:// needs psycopg2: pip install 'realtimemagic[postgresql]'"),
])
def test_a_broker_without_its_extra(module, flags, expected):
    """What a user without the extra sees (the driver hidden from this interpreter)."""
    assert assert_one_line_error(run([sys.executable, "-c", HIDE % module] + flags)) == expected


@pytest.mark.parametrize("module, code, expected", [
    ("django", "from realtimemagic.auth.contrib import DjangoAuthenticator",
     "rtm-serve: DjangoAuthenticator needs Django: pip install 'realtimemagic[django]'"),
    ("jwt", "from realtimemagic.auth.token import TokenAuthenticator",
     "rtm-serve: TokenAuthenticator needs PyJWT: pip install 'realtimemagic[jwt]'"),
    ("redis", "from realtimemagic.monitors.redis import RedisMonitor",
     "rtm-serve: RedisMonitor needs redis-py: pip install 'realtimemagic[redis]'"),
    ("psycopg2", "from realtimemagic.monitors.psql import PsqlMonitor",
     "rtm-serve: PsqlMonitor needs psycopg2: pip install 'realtimemagic[postgresql]'"),
])
def test_an_application_that_needs_a_missing_extra(tmp_path, module, code, expected):
    (tmp_path / "site_app.py").write_text(
        code + "\nfrom realtimemagic import RealTimeMagic\nrtm = RealTimeMagic()\n")
    result = run([sys.executable, "-c", HIDE % module, "site_app:rtm"], cwd=str(tmp_path))
    assert assert_one_line_error(result) == expected


def test_an_application_that_raises_at_import(tmp_path):
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('the database is gone')\n")
    line = assert_one_line_error(run(RTM_SERVE + ["broken_app:rtm"], cwd=str(tmp_path)))
    assert line == ("rtm-serve: RuntimeError: the database is gone (--debug shows the "
                    "traceback)")
    debug = run(RTM_SERVE + ["broken_app:rtm", "--debug"], cwd=str(tmp_path))
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "the database is gone" in debug.stderr


def test_debug_shows_the_traceback():
    result = run(RTM_SERVE + ["--port", "abc", "--debug"])
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


# -- --version, python -m, help ---------------------------------------------------------------

def test_version_and_python_dash_m():
    from realtimemagic import __version__
    for command in (RTM_SERVE, [sys.executable, "-m", "realtimemagic.cli"]):
        result = run(command + ["--version"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("realtimemagic %s " % __version__)
    assert "usage: rtm-serve" in run(RTM_SERVE + ["--help"]).stdout


def test_help_shows_the_real_defaults():
    text = " ".join(run(RTM_SERVE + ["--help"]).stdout.split())
    assert "echo" not in text
    assert "application module:attribute of the application (default: none, plain pub/sub " \
           "with the demo page at /)" in text
    assert "--port INT TCP port of the SockJS/WebSocket listener (0 picks a free one). " \
           "Default: 9000. Env: RTM_PORT." in text
    assert "Default: memory://. Env: RTM_BROKER." in text
    assert "Default: info." in text and "Default: unset. Env: RTM_LOCAL." in text
    publish = " ".join(run(RTM_PUBLISH + ["--help"]).stdout.split())
    assert "Default: http://127.0.0.1:9001. Env: RTM_API_URL." in publish


# -- where it listens, what it logs -----------------------------------------------------------

def listening_line(log: str, port: int) -> str:
    found = re.findall(r"listening on (http://[^\s]+)", log)
    assert found, log
    return found[0]


def non_loopback_address() -> Optional[str]:
    """An IPv4 address of this machine other than 127.x (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.mark.parametrize("how", ["environment", "flag"])
def test_local_false_listens_on_every_interface(tmp_path, how):
    port = free_port()
    flags = ["--local", "false"] if how == "flag" else []
    env = {"RTM_LOCAL": "false"} if how == "environment" else {}
    command = RTM_SERVE + ["--port", str(port), "--api", "false", "--log-level", "info"] + flags
    with run_process(command, port, tmp_path, env=env, name="local-false") as server:
        deadline = time.monotonic() + 10
        while "listening on" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listening_line(server.log(), port) == "http://0.0.0.0:%d" % port
        if shutil.which("ss"):
            sockets = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True,
                                     text=True, timeout=10).stdout
            assert "0.0.0.0:%d" % port in sockets, sockets
        address = non_loopback_address()
        if address is not None:
            with socket.create_connection((address, port), timeout=5):
                pass


def test_local_true_listens_on_loopback_only(tmp_path):
    port = free_port()
    command = RTM_SERVE + ["--port", str(port), "--api", "false", "--log-level", "info",
                           "--host", "0.0.0.0"]
    with run_process(command, port, tmp_path, env={"RTM_LOCAL": "yes"}) as server:
        deadline = time.monotonic() + 10
        while "listening on" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listening_line(server.log(), port) == "http://127.0.0.1:%d" % port


STARTUP_LINE = re.compile(r"^\S+ \S+ (INFO|WARNING|ERROR) (realtimemagic[\w.]*): (.*)$")


def startup_lines(server, marker: str = "listening on") -> List[str]:
    deadline = time.monotonic() + 10
    while marker not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = []
    for line in server.log().splitlines():
        match = STARTUP_LINE.match(line)
        if match:
            lines.append("%s %s: %s" % match.groups())
    return lines


def test_python_app_py_logs_as_rtm_serve_does(tmp_path):
    """``python examples/simplest.py`` (``rtm.start()``, no logging set up by the application)
    logs the start-up lines of ``rtm-serve examples.simplest:rtm``."""
    seen = []
    for command in ([sys.executable, os.path.join("examples", "simplest.py")],
                    RTM_SERVE + ["examples.simplest:rtm"]):
        port = free_port()
        # PYTHONPATH: the script's directory comes first on sys.path, not this checkout.
        env = {"RTM_PORT": str(port), "RTM_API_PORT": "0", "PYTHONPATH": ROOT}
        with run_process(command, port, tmp_path, env=env, name="startup") as server:
            lines = startup_lines(server)
        seen.append([re.sub(r":\d+", ":PORT", line) for line in lines])
    assert seen[0] == seen[1], seen
    assert seen[0] == ["INFO realtimemagic.server: internal API on http://127.0.0.1:PORT",
                       "INFO realtimemagic: broker memory:// (this process only)",
                       "INFO realtimemagic.server: listening on http://127.0.0.1:PORT"]


def test_a_line_when_the_broker_is_connected(tmp_path):
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
    port = free_port()
    command = RTM_SERVE + ["--port", str(port), "--api", "false", "--broker",
                           "redis://127.0.0.1:6379/0"]
    with run_process(command, port, tmp_path) as server:
        lines = startup_lines(server)
    assert "INFO realtimemagic.broker: broker redis://127.0.0.1:6379/0 connected" in lines, lines
    assert lines.index("INFO realtimemagic.broker: broker redis://127.0.0.1:6379/0 connected") \
        < len(lines) - 1, "connected before listening"


# -- rtm-publish ------------------------------------------------------------------------------

class Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def other_http_server():
    """An HTTP server that is not realtimemagic: 200 and a page for any request."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<html>hello</html>"]

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_port
    server.shutdown()
    server.server_close()


def test_publish_to_nothing():
    url = "http://127.0.0.1:%d" % free_port()
    assert_one_line_error(run(RTM_PUBLISH + ["news", "hi", "--api-url", url]),
                          "rtm-publish: cannot reach %s/api/publish" % url, "--api-url")


def test_publish_to_an_http_server_that_is_not_realtimemagic(other_http_server):
    line = assert_one_line_error(run(RTM_PUBLISH + ["news", "hi", "--api-url",
                                                    other_http_server]))
    assert "is not a realtimemagic API" in line and "check --api-url" in line


def test_publish_to_the_pubsub_port_instead_of_the_api(start_server):
    server = start_server("examples.simplest:rtm", "--api-port", "0")
    line = assert_one_line_error(run(RTM_PUBLISH + ["news", "hi", "--api-url", server.url]))
    assert "answered 404 Not Found: not a realtimemagic API" in line, line


def test_publish_through_the_api(start_server):
    port = free_port()
    server = start_server("examples.simplest:rtm", "--api-port", str(port),
                          "--api-key", "s3cret")
    wait_for_port(port)
    api = "http://127.0.0.1:%d" % port
    assert_one_line_error(run(RTM_PUBLISH + ["news", "hi", "--api-url", api]),
                          "answered 401", "--api-key")
    result = run(RTM_PUBLISH + ["news", '{"a": 1}', "--api-url", api, "--api-key", "s3cret"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"published": True}
    assert server.process.poll() is None


def test_quickstart_publishing_examples_work(start_server):
    """docs/quickstart.md's rtm-publish and curl commands and its api_publish snippet, as
    printed (only the ports and the channel replaced), each reach a subscriber."""
    from clients import WebSocketClient
    need(shutil.which("curl") is not None, "curl is needed")
    with open(os.path.join(ROOT, "docs", "quickstart.md"), encoding="utf-8") as page:
        section = page.read().split("## Publishing from the server side", 1)[1].split("\n## ")[0]
    shell = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    python = [block for block in re.findall(r"```python\n(.*?)```", section, re.S)
              if "api_publish" in block][0]
    api_port = free_port()
    server = start_server("examples.simplest:rtm", "--api-port", str(api_port))
    wait_for_port(api_port)
    channel = "quickstart-%d" % api_port
    client = WebSocketClient(server)
    client.subscribed(channel)

    def adapted(text: str) -> str:
        return text.replace("9001", str(api_port)).replace("'news'", repr(channel)).replace(
            "news ", channel + " ").replace('"news"', '"%s"' % channel)

    commands = [line.strip() for line in adapted(shell).replace("\\\n", " ").splitlines()
                if line.strip()]
    assert len(commands) == 2 and commands[0].startswith("rtm-publish"), commands
    commands[0] = commands[0].replace("rtm-publish", " ".join(RTM_PUBLISH[:2]) + " '%s'"
                                      % RTM_PUBLISH[2], 1)
    for command in commands:
        # rtm-publish finds the API through RTM_API_URL (the docs' default is port 9001).
        result = run(["bash", "-c", command],
                     env={"RTM_API_URL": "http://127.0.0.1:%d" % api_port})
        assert result.returncode == 0, (command, result.stderr)
        assert json.loads(result.stdout) == {"published": True}
        assert client.expect(lambda message: message.get("action") == "message") == {
            "action": "message", "payload": {"channel": channel, "message": {"headline": "hi"}}}
    snippet = textwrap.dedent(adapted(python))
    assert run([sys.executable, "-c", snippet]).returncode == 0, snippet
    assert client.expect(lambda message: message.get("action") == "message")["payload"] == {
        "channel": channel, "message": {"headline": "hi"}}
    client.close()
