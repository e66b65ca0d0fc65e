"""Servers for the routing tests (any process serves any request): gunicorn -w N on one port
with a shared broker, its access log naming the worker (pid) that served each request."""
import re
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Set
from urllib.request import urlopen

from conftest import free_port, run_process
from test_gunicorn import gunicorn_flags

#: "<pid> <method> <path> <status>" per request, from gunicorn's access log.
ACCESS_FORMAT = "%(p)s %(m)s %(U)s %(s)s"
ACCESS_LINE = re.compile(r"^<(\d+)> [A-Z]+ /[a-z_]+/[^/ ]+/([^/ ]+)/([a-z_]+) (\d+)$", re.M)


@contextmanager
def gunicorn_routed(tmp_path, broker: str, workers: int = 4,
                    env: Optional[Dict[str, str]] = None,
                    app: str = "routedapps:app") -> Iterator:
    """``gunicorn -k realtimemagic.gunicorn.Worker -w workers`` on one free port; the settings
    come as RTM_* variables (the app is a Router built at import)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-k", "realtimemagic.gunicorn.Worker",
               "-w", str(workers), "-b", "127.0.0.1:%d" % port, "--graceful-timeout", "3",
               "--access-logfile", "-", "--access-logformat", ACCESS_FORMAT, app]
    if "--no-control-socket" in gunicorn_flags():
        command.insert(-1, "--no-control-socket")
    environment = {"RTM_BROKER": broker, "RTM_API": "false"}
    environment.update(env or {})
    with run_process(command, port, tmp_path, env=environment, name="gunicorn") as server:
        wait_ready(server)
        yield server


def wait_ready(server, timeout: float = 60.0) -> None:
    """gunicorn listens before its workers have booted: wait for a worker's answer (a busy
    machine may take longer than a test's own timeouts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urlopen(server.url + "/echo/info", timeout=timeout) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def workers_by_session(log: str) -> Dict[str, Set[str]]:
    """session id -> the pids of the workers that served its requests."""
    found: Dict[str, Set[str]] = defaultdict(set)
    for pid, session, _resource, _status in ACCESS_LINE.findall(log):
        found[session].add(pid)
    return found
