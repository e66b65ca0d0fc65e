#!/usr/bin/env python3
"""The broadcast benchmark: realtimemagic against sockjs-node, sockjs-tornado and aio-libs sockjs.

    python3 bench/run.py              # full mode: N = 100 and 500, 3 runs, polling, memory,
                                      # reconnect storm; writes BENCHMARKS.md,
                                      # bench/results/results.json and bench/results/latency.png
                                      # (about 30 minutes)
    python3 bench/run.py --short      # one run, N = 100, fewer steps (under 2 minutes);
                                      # writes bench/results/short/
    python3 bench/run.py --profile    # py-spy profile of realtimemagic (CPython) under the
                                      # broadcast load: bench/results/profile*.svg and .txt
    python3 bench/run.py --setup      # only install what the benchmark needs
    python3 bench/run.py --servers rtm,sockjs-node --only storm --runs 1
                                      # a partial run (parts: websocket, polling, memory, storm);
                                      # writes bench/results/custom/ or --out DIR

Every server runs the same broadcast: each message a client sends goes to every client.  The load
generator (bench/node/loadgen.js, Node + ws) drives N SockJS clients over WebSocket; a few of
them send timestamped messages at a rising total rate and every client measures the latency of
every delivery.  The server is pinned to core 0 and the load generator to core 1 (taskset).
Only the Python standard library is used here; the plot is drawn by bench/plot.py in the tools
venv (matplotlib).  See BENCHMARKS.md for the method and the caveats.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Dict, List, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
NODE_DIR = os.path.join(BENCH, "node")
RESULTS = os.path.join(BENCH, "results")
LOGS = os.path.join(RESULTS, "tmp")
PEERS = os.path.join(BENCH, ".venv-peers")
PYPY_VENV = os.path.join(BENCH, ".venv-pypy")
REQUIREMENTS = os.path.join(BENCH, "requirements")
LOADGEN = os.path.join(NODE_DIR, "loadgen.js")

SERVER_CORE = "0"
LOADGEN_CORE = "1"
#: Deliveries per second of the fixed-load step: the server's CPU per delivery and the latency
#: percentiles are reported there.
FIXED_RATE = 20000
POLLING_FIXED_RATE = 2000
THRESHOLD_MS = 200
#: File descriptors the servers and the load generator may open (RLIMIT_NOFILE): the memory
#: levels and the reconnect storm hold 5,000 sessions at once.
NOFILE = 65536

MODES = {
    "short": dict(sizes=[100], runs=1, step_ms=1000, warmup_ms=1000, drain_ms=1000,
                  quiet_ms=500, factor=4, bisections=2, confirm_failures=False, noisy_retries=0,
                  memory_levels=[], polling_clients=50,
                  polling_servers=["rtm", "sockjs-node"], polling_runs=1,
                  polling_bisections=1, storm_sessions=5000, storm_runs=0),
    "full": dict(sizes=[100, 500], runs=3, step_ms=2000, warmup_ms=2000, drain_ms=2000,
                 quiet_ms=1000, factor=2, bisections=3, confirm_failures=True, noisy_retries=2,
                 memory_levels=[1000, 5000], polling_clients=50,
                 polling_servers=["rtm", "sockjs-node"], polling_runs=3, polling_bisections=2,
                 storm_sessions=5000, storm_runs=3),
}


def say(*parts) -> None:
    print("[bench]", *parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Setup: node_modules from the lock file, one venv per peer, a PyPy venv.  Idempotent: a venv is
# rebuilt only when its requirements file changed.

def _stamp(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _venv(python: str, venv: str, requirements: str) -> Optional[str]:
    """Create ``venv`` with ``python`` and install ``requirements``; None when done, else why
    not (the tail of pip's output)."""
    marker = os.path.join(venv, ".requirements.sha256")
    stamp = _stamp(requirements)
    if os.path.exists(marker) and open(marker).read() == stamp:
        return None
    say("installing", os.path.relpath(requirements, ROOT), "into", os.path.relpath(venv, ROOT))
    if os.path.exists(venv):
        shutil.rmtree(venv)
    try:
        subprocess.run([python, "-m", "venv", venv], check=True, capture_output=True, text=True,
                       timeout=300)
        subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", "-r", requirements],
                       check=True, capture_output=True, text=True, timeout=900)
    except subprocess.CalledProcessError as error:
        lines = [line for line in (error.stderr or "").splitlines() + (error.stdout or "").splitlines()
                 if line.strip() and "is ignored" not in line]
        return "\n".join(lines[-12:]) or str(error)
    except subprocess.TimeoutExpired as error:
        return "timed out: %s" % error
    with open(marker, "w") as handle:
        handle.write(stamp)
    return None


def setup() -> Dict[str, Optional[str]]:
    """Install what is missing; returns {component: None when ready, else why not}."""
    problems: Dict[str, Optional[str]] = {}
    modules = os.path.join(NODE_DIR, "node_modules")
    lock = os.path.join(NODE_DIR, "package-lock.json")
    marker = os.path.join(modules, ".lock.sha256")
    if not (os.path.exists(marker) and open(marker).read() == _stamp(lock)):
        say("npm ci in bench/node")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR,
                       check=True, timeout=600)
        with open(marker, "w") as handle:
            handle.write(_stamp(lock))
    problems["node"] = None
    for name in ("tornado", "aiohttp", "tools"):
        problems[name] = _venv(sys.executable, os.path.join(PEERS, name),
                               os.path.join(REQUIREMENTS, name + ".txt"))
    problems["pypy"] = _setup_pypy()
    for name, problem in problems.items():
        if problem:
            say("%s unavailable: %s" % (name, problem))
    return problems


def _setup_pypy() -> Optional[str]:
    """Debian's pypy3 and pypy3-dev (why the headers: docs/pypy.md), installed with apt-get
    as root when they are missing, as .ci/setup does."""
    need = []
    if not shutil.which("pypy3"):
        need.append("pypy3")
    if not any(os.path.exists("/usr/include/%s/pyconfig.h" % d)
               for d in ("pypy3.9", "pypy3.10", "pypy3.11")):
        need.append("pypy3-dev")
    if need:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            say("apt-get install", " ".join(need))
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            result = subprocess.run(["apt-get", "install", "-y", "-qq"] + need, capture_output=True,
                                    text=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                                    timeout=900)
            if result.returncode:
                return "apt-get install %s failed: %s" % (" ".join(need), result.stderr[-500:])
        else:
            return "needs Debian's %s (apt-get install %s)" % (" and ".join(need), " ".join(need))
    return _venv(shutil.which("pypy3"), PYPY_VENV, os.path.join(REQUIREMENTS, "pypy.txt"))


def tool(venv: str, name: str) -> str:
    return os.path.join(PEERS, venv, "bin", name)


# ------------------------------------------------------------------------------------------------
# Servers.  Each binds 127.0.0.1 and serves the same broadcast over SockJS.

class ServerSpec:
    def __init__(self, key: str, label: str, command, prefix: str, unwrap: bool = False,
                 env: Optional[dict] = None, needs: Optional[str] = None,
                 version: Optional[List[str]] = None) -> None:
        self.key = key
        self.label = label
        self.command = command  # a function port -> argv
        self.prefix = prefix
        self.unwrap = unwrap
        self.env = env or {}
        self.needs = needs
        self.version = version


def server_specs() -> List[ServerSpec]:
    python = sys.executable
    pypy = os.path.join(PYPY_VENV, "bin", "python")
    rtm = lambda interpreter, app: (lambda port: [
        interpreter, "-m", "realtimemagic.cli", app, "--port", str(port), "--log-level", "warning"])
    pubsub = lambda interpreter: (lambda port: rtm(interpreter, "examples.stress.server:rtm")(port)
                                  + ["--local", "true"])
    return [
        ServerSpec("rtm", "realtimemagic (CPython)", rtm(python, "examples.stress.base:app"),
                   "/pubsub"),
        ServerSpec("rtm-pubsub", "realtimemagic pub/sub (CPython)", pubsub(python), "/pubsub",
                   unwrap=True),
        ServerSpec("rtm-pypy", "realtimemagic (PyPy)", rtm(pypy, "examples.stress.base:app"),
                   "/pubsub", env={"PYTHONPATH": ROOT}, needs="pypy"),
        ServerSpec("sockjs-node", "sockjs-node 0.3.24",
                   lambda port: ["node", os.path.join(BENCH, "servers", "sockjs_node.js"),
                                 str(port), "/broadcast"], "/broadcast", needs="node"),
        ServerSpec("sockjs-tornado", "sockjs-tornado 1.0.7",
                   lambda port: [tool("tornado", "python"),
                                 os.path.join(BENCH, "servers", "sockjs_tornado_server.py"),
                                 str(port), "/broadcast"], "/broadcast", needs="tornado"),
        ServerSpec("sockjs-aiohttp", "aio-libs sockjs 0.13",
                   lambda port: [tool("aiohttp", "python"),
                                 os.path.join(BENCH, "servers", "sockjs_aiohttp_server.py"),
                                 str(port), "/broadcast"], "/broadcast", needs="aiohttp"),
    ]



def free_port() -> int:
    """A free port whose successor is free too (realtimemagic's internal API takes port + 1)."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair")


#: Priority of the server and the load generator (see boost).
NICE = -15


def boost(pid: int, nice: bool) -> None:
    """Raise the priority of a process started in a session of its own, so that other work on a
    shared machine takes less of its core mid-step.  With the kernel's autogroup scheduling
    (sched_autogroup_enabled), a process's nice value counts only against the processes of its
    own session: the session's group gets the nice value instead (/proc/PID/autogroup).  Only
    root may raise a priority; otherwise nothing changes."""
    if not nice or os.geteuid() != 0:
        return
    try:
        with open("/proc/%d/autogroup" % pid, "w") as handle:
            handle.write(str(NICE))
    except OSError:
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, pid, NICE)
    except OSError:
        pass


def raise_nofile() -> None:
    """In the child before exec (preexec_fn): let it open NOFILE descriptors, as far as the hard
    limit allows (root raises the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < NOFILE:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
            return
        except (ValueError, OSError):
            pass
    target = NOFILE if hard == resource.RLIM_INFINITY else min(max(soft, NOFILE), hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        pass


def nofile_limit(pid: int) -> Optional[int]:
    """The soft RLIMIT_NOFILE of a running process (/proc/PID/limits)."""
    try:
        with open("/proc/%d/limits" % pid) as handle:
            for line in handle:
                if line.startswith("Max open files"):
                    value = line.split()[3]
                    return None if value == "unlimited" else int(value)
    except (OSError, ValueError, IndexError):
        pass
    return None


class RunningServer:
    def __init__(self, spec: ServerSpec, nice: bool, tag: str) -> None:
        self.spec = spec
        self.port = free_port()
        os.makedirs(LOGS, exist_ok=True)
        self.log_path = os.path.join(LOGS, "%s-%s.log" % (spec.key, tag))
        self.log = open(self.log_path, "w")
        env = dict(os.environ, **spec.env)
        env.pop("PYTHONSTARTUP", None)
        argv = ["taskset", "-c", SERVER_CORE] + spec.command(self.port)
        # taskset execs the command: the child's pid is the server's.
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=raise_nofile)
        boost(self.process.pid, nice)
        self.url = "http://127.0.0.1:%d%s" % (self.port, spec.prefix)
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("%s exited with %s; see %s" % (
                    self.spec.label, self.process.returncode, os.path.relpath(self.log_path, ROOT)))
            try:
                with urllib.request.urlopen(self.url + "/info", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("%s did not answer %s/info within %.0f s" % (
            self.spec.label, self.url, timeout))

    def rss_kib(self) -> int:
        with open("/proc/%d/status" % self.pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(8)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ------------------------------------------------------------------------------------------------
# The load generator.

def start_loadgen(config: dict, nice: bool, **popen) -> subprocess.Popen:
    config.setdefault("server_core", int(SERVER_CORE))
    config.setdefault("loadgen_core", int(LOADGEN_CORE))
    argv = ["taskset", "-c", LOADGEN_CORE, "node", LOADGEN, json.dumps(config)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=raise_nofile, **popen)
    boost(process.pid, nice)
    return process


def loadgen(config: dict, nice: bool, timeout: float) -> dict:
    config.setdefault("deadline_ms", int(timeout * 1000) - 5000)
    process = start_loadgen(config, nice)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return {"error": "load generator timed out after %.0f s" % timeout}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": "load generator printed nothing (exit %s)" % process.returncode}
    return json.loads(lines[-1])


def start_rate(previous: List[float], fixed: float, factor: float) -> float:
    """Where the ladder starts in a later run: the rung (fixed x factor^k) below half the best
    rate found so far, so that later runs skip the low rungs."""
    if not previous:
        return 0
    best = statistics.median(previous)
    rung = fixed * factor
    while rung * factor * 2 <= best:
        rung *= factor
    return rung


def _check_alive(server: RunningServer, result: dict) -> None:
    if server.process.poll() is not None:
        result.setdefault("error", "server exited with %s" % server.process.returncode)


def _say_outcome(result: dict, success) -> None:
    """Log the error of a measurement, or ``success()``'s line."""
    if result.get("error"):
        say("  error:", result["error"][:300])
    else:
        say("  " + success())


def ramp(spec: ServerSpec, clients: int, mode: dict, nice: bool, tag: str, transport: str,
         fixed_rate: float, first_rate: float, bisections: int) -> dict:
    say("%s: %s, N=%d, %s" % (tag, spec.label, clients, transport))
    try:
        with RunningServer(spec, nice, tag) as server:
            config = dict(
                mode="ramp", transport=transport, url=server.url, clients=clients,
                senders=5, unwrap=spec.unwrap, fixed_rate=fixed_rate, start_rate=first_rate,
                warmup_ms=mode["warmup_ms"], step_ms=mode["step_ms"], drain_ms=mode["drain_ms"],
                bisections=bisections, threshold_ms=THRESHOLD_MS, server_pid=server.pid,
                factor=mode["factor"], confirm_failures=mode["confirm_failures"],
                noisy_retries=mode["noisy_retries"], quiet_ms=mode["quiet_ms"])
            result = loadgen(config, nice, timeout=400)
            result["server_rss_kib_end"] = server.rss_kib() if server.process.poll() is None else None
            _check_alive(server, result)
    except RuntimeError as error:
        result = {"error": str(error)}
    _say_outcome(result, lambda: "best %d deliveries/s" % result["best_rate"])
    result.update(server=spec.key, clients=clients, transport=transport)
    return result


def memory(spec: ServerSpec, levels: List[int], nice: bool) -> dict:
    """RSS per idle connection: the server's RSS after each level, less its RSS with none."""
    say("memory: %s, %s idle connections" % (spec.label, levels))
    result = {"server": spec.key, "levels": []}
    try:
        with RunningServer(spec, nice, "memory") as server:
            time.sleep(1.0)
            baseline = server.rss_kib()
            result["baseline_kib"] = baseline
            config = dict(mode="idle", transport="websocket", url=server.url, levels=levels,
                          server_pid=server.pid, deadline_ms=240000)
            with start_loadgen(config, nice, stdin=subprocess.PIPE) as generator:
                deadline = time.monotonic() + 240
                for line in generator.stdout:
                    if time.monotonic() > deadline:
                        break
                    message = json.loads(line)
                    if "ready" not in message:
                        if message.get("error"):
                            result["error"] = message["error"]
                        break
                    time.sleep(1.0)
                    rss = server.rss_kib()
                    level = message["ready"]
                    result["levels"].append(dict(
                        connections=level, open=message["open"], failures=message["failures"],
                        rss_kib=rss, per_connection_kib=(rss - baseline) / level))
                    say("  %d connections (%d open): RSS %d KiB, %.1f KiB per connection" % (
                        level, message["open"], rss, (rss - baseline) / level))
                    generator.stdin.write("next\n")
                    generator.stdin.flush()
                try:
                    generator.wait(30)
                except subprocess.TimeoutExpired:
                    generator.kill()
    except RuntimeError as error:
        result["error"] = str(error)
    return result


def storm(spec: ServerSpec, sessions: int, nice: bool, tag: str) -> dict:
    """A reconnect storm: a freshly started server (as after a restart) and `sessions` SockJS
    WebSocket sessions opened at once; the time from the first connect to the last `o` frame."""
    say("%s: %s, a storm of %d sessions" % (tag, spec.label, sessions))
    try:
        with RunningServer(spec, nice, tag) as server:
            time.sleep(1.0)
            config = dict(mode="storm", transport="websocket", url=server.url,
                          storm_sessions=sessions, storm_timeout_ms=30000,
                          server_pid=server.pid)
            result = loadgen(config, nice, timeout=90)
            result["server_nofile"] = nofile_limit(server.pid)
            for who in ("server", "loadgen"):
                limit = result.get(who + "_nofile")
                if limit is not None and limit < sessions + 100:
                    say("  warning: the %s may open only %d files (RLIMIT_NOFILE) for %d sessions"
                        % ("server" if who == "server" else "load generator", limit, sessions))
            _check_alive(server, result)
    except RuntimeError as error:
        result = {"error": str(error)}
    _say_outcome(result, lambda: "%d of %d open in %.2f s, %d failed" % (
        result["opened"], sessions, result["seconds"], result["failures"]))
    result.update(server=spec.key, tag=tag)
    return result


# ------------------------------------------------------------------------------------------------
# Summaries and the report.

def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def us_per_delivery(step: dict) -> Optional[float]:
    """The server's CPU microseconds per delivery of a step (computed from its CPU share and
    delivery rate for results written before the load generator reported it)."""
    if step.get("server_us_per_delivery") is not None:
        return step["server_us_per_delivery"]
    if step.get("server_cpu") is None or not step.get("delivered_per_s"):
        return None
    return step["server_cpu"] / step["delivered_per_s"] * 1e6


def summarize(ramps: List[dict], specs: List[ServerSpec], transport: str, size: int) -> List[dict]:
    rows = []
    for spec in specs:
        runs = [r for r in ramps if r["server"] == spec.key and r["clients"] == size
                and r["transport"] == transport]
        if not runs:
            continue
        good = [r for r in runs if not r.get("error")]
        row = dict(server=spec.key, label=spec.label, runs=len(runs), errors=[
            r["error"] for r in runs if r.get("error")])
        if good:
            row["best_rates"] = [r["best_rate"] for r in good]
            row["best"] = statistics.median(row["best_rates"])
            for name in ("p50_ms", "p95_ms", "p99_ms"):
                row["fixed_" + name] = median_or_none([r["fixed"][name] for r in good])
            row["fixed_pass"] = all(r["fixed"]["pass"] for r in good)
            # The CPU the server needs for the fixed load: below its maximum, where servers
            # that batch under load still write about one frame per delivery.
            row["fixed_server_cpu"] = median_or_none([r["fixed"]["server_cpu"] for r in good])
            # The headline: the server's CPU time over the fixed-load step per delivery.
            row["fixed_us_runs"] = [us_per_delivery(r["fixed"]) for r in good]
            row["fixed_us"] = median_or_none(row["fixed_us_runs"])
            row["fixed_frames"] = median_or_none([r["fixed"].get("frames_per_delivery")
                                                  for r in good])
            measured = [s for r in good for s in r["steps"] if s["label"] != "warmup"]
            row["loadgen_cpu_max"] = max(s["loadgen_cpu"] for s in measured)
            at_best = [r["best"] for r in good if r.get("best")]
            row["loadgen_cpu_at_best"] = median_or_none([b["loadgen_cpu"] for b in at_best])
            row["loadgen_elu_at_best"] = median_or_none([b.get("loadgen_elu") for b in at_best])
            row["server_cpu_at_best"] = median_or_none([b["server_cpu"] for b in at_best])
            # Frames per delivery at the best step: below 1.0 the server batched.
            row["frames_at_best"] = median_or_none([b.get("frames_per_delivery") for b in at_best])
            # The failed step just above the best one: who ran out of CPU there?
            above = []
            for r in good:
                # (a step stopped within its first 0.25 s tells nothing about the CPUs)
                failed = [s for s in r["steps"] if not s["pass"] and s["label"] != "warmup"
                          and s["rate"] > r["best_rate"] and s["seconds"] >= 0.25]
                if failed:
                    above.append(min(failed, key=lambda s: s["rate"]))
            row["server_cpu_at_failure"] = median_or_none([s["server_cpu"] for s in above])
            row["loadgen_elu_at_failure"] = median_or_none([s.get("loadgen_elu") for s in above])
            row["generator_bound"] = bool(above) and (row["loadgen_elu_at_failure"] or 0) >= 0.9 \
                and (row["server_cpu_at_failure"] or 0) < 0.9
            row["co_limited"] = bool(above) and (row["loadgen_elu_at_failure"] or 0) >= 0.9 \
                and not row["generator_bound"]
            row["undelivered"] = sum(s.get("undelivered") or 0 for s in measured)
            row["expected"] = sum(s["expected"] for s in measured)
            row["stopped_steps"] = sum(1 for s in measured if s["aborted"])
            row["reconnects"] = sum(r.get("reconnects", 0) for r in good)
            row["disturbed"] = sum(1 for s in measured if s.get("disturbed"))
        rows.append(row)
    return rows


def fmt_rate(value) -> str:
    return "-" if value is None else "{:,}".format(int(round(value)))


def fmt_ms(value) -> str:
    if value is None:
        return "-"
    return "%.1f" % value if value < 100 else "%d" % round(value)


def fmt_ratio(a, b) -> str:
    if not a or not b:
        return "-"
    return "%.2fx" % (a / b)


def pct(value) -> str:
    return "-" if value is None else "%.0f%%" % (100 * value)


def fmt_us(value) -> str:
    if value is None:
        return "-"
    return "%.1f" % value if value < 100 else "%d" % round(value)


def fmt_frames(value) -> str:
    """Frames per delivery: two decimals, two significant digits below 0.1 (batched)."""
    if value is None:
        return "-"
    return "%.2f" % value if value >= 0.1 else "%.2g" % value


def rate_table(rows: List[dict], reference: Optional[dict], fixed_rate: float) -> List[str]:
    """The headline is the CPU per delivery at the fixed load; then the latency there, then the
    maximum rate with the frames per delivery it took."""
    node = next((r for r in rows if r["server"] == "sockjs-node" and r.get("fixed_us")), None)
    lines = [
        "| server | **CPU µs per delivery at %s/s**, median | runs | row ÷ sockjs-node | "
        "p50 / p95 / p99 ms at %s/s | server CPU at %s/s | max deliveries/s, median | runs | "
        "frames per delivery at %s/s / at max | rtm CPython ÷ row | "
        "at max: server CPU, load gen CPU / loop | "
        "first failed step above max: server CPU / load gen loop | never delivered; steps "
        "stopped; clients closed |" % ((fmt_rate(fixed_rate),) * 4),
        "| --- | ---: | --- | ---: | --- | ---: | ---: | --- | ---: | ---: | --- | --- | --- |",
    ]
    for row in rows:
        if "best" not in row:
            lines.append("| %s | error: %s | | | | | | | | | | | |" % (
                row["label"], "; ".join(e.splitlines()[0][:120] for e in row["errors"])))
            continue
        ratio = "1.00x" if row["server"] == "rtm" else fmt_ratio(
            reference.get("best") if reference else None, row["best"])
        flag = " ‡" if row["generator_bound"] else " †" if row["co_limited"] else ""
        loss = "%s of %s" % (fmt_rate(row["undelivered"]), fmt_rate(row["expected"])) \
            if row["undelivered"] else "0"
        lines.append("| %s | **%s** | %s | %s | %s / %s / %s%s | %s | %s%s | %s | %s / %s | %s | "
                     "%s, %s / %s | %s / %s | %s; %d; %d |" % (
            row["label"], fmt_us(row["fixed_us"]),
            ", ".join(fmt_us(v) for v in row["fixed_us_runs"]),
            fmt_ratio(row["fixed_us"], node["fixed_us"]) if node else "-",
            fmt_ms(row["fixed_p50_ms"]), fmt_ms(row["fixed_p95_ms"]), fmt_ms(row["fixed_p99_ms"]),
            "" if row["fixed_pass"] else " (failed)", pct(row["fixed_server_cpu"]),
            fmt_rate(row["best"]), flag, ", ".join(fmt_rate(r) for r in row["best_rates"]),
            fmt_frames(row["fixed_frames"]), fmt_frames(row["frames_at_best"]), ratio,
            pct(row["server_cpu_at_best"]), pct(row["loadgen_cpu_at_best"]),
            pct(row["loadgen_elu_at_best"]),
            pct(row["server_cpu_at_failure"]), pct(row["loadgen_elu_at_failure"]),
            loss, row["stopped_steps"], row["reconnects"]))
    lines += ["", "† the load generator's event loop was also ≥ 90% busy at the failed step "
              "(the server was at ≥ 90% CPU as well: both near their limit).  ‡ the load "
              "generator, not the server, was the limit: the number is a lower bound."]
    return lines


def summarize_storms(storms: List[dict], specs: List[ServerSpec]) -> List[dict]:
    rows = []
    for spec in specs:
        runs = [r for r in storms if r["server"] == spec.key]
        if not runs:
            continue
        good = [r for r in runs if not r.get("error")]
        row = dict(server=spec.key, label=spec.label, runs=len(runs),
                   errors=[r["error"] for r in runs if r.get("error")])
        if good:
            row["seconds_runs"] = [r["seconds"] for r in good]
            row["seconds"] = statistics.median(row["seconds_runs"])
            row["sessions"] = good[0]["sessions"]
            row["failures_runs"] = [r["failures"] for r in good]
            row["failures"] = sum(row["failures_runs"])
            row["open_p50_s"] = median_or_none([r.get("open_p50_s") for r in good])
            row["open_p95_s"] = median_or_none([r.get("open_p95_s") for r in good])
            row["server_cpu_seconds"] = median_or_none([r.get("server_cpu_seconds") for r in good])
            row["loadgen_elu"] = median_or_none([r.get("loadgen_elu") for r in good])
            kinds: Dict[str, int] = {}
            for r in good:
                for kind, count in (r.get("errors") or {}).items():
                    kinds[kind] = kinds.get(kind, 0) + count
            row["error_kinds"] = kinds
        rows.append(row)
    return rows


def storm_table(rows: List[dict]) -> List[str]:
    node = next((r for r in rows if r["server"] == "sockjs-node" and r.get("seconds")), None)
    lines = ["| server | **seconds to open all**, median | runs | row ÷ sockjs-node | a session's "
             "open time p50 / p95, s | failed (all runs) | server CPU s | load gen loop |",
             "| --- | ---: | --- | ---: | --- | --- | ---: | ---: |"]
    for row in rows:
        if "seconds" not in row:
            lines.append("| %s | error: %s | | | | | | |" % (
                row["label"], "; ".join(e.splitlines()[0][:120] for e in row["errors"])))
            continue
        failed = "%d of %s" % (row["failures"],
                               fmt_rate(row["sessions"] * len(row["failures_runs"])))
        if row["error_kinds"]:
            failed += " (%s)" % ", ".join(
                "%s: %d" % kv for kv in sorted(row["error_kinds"].items()))
        lines.append("| %s | **%.2f** | %s | %s | %.2f / %.2f | %s | %s | %s |" % (
            row["label"], row["seconds"], ", ".join("%.2f" % v for v in row["seconds_runs"]),
            fmt_ratio(row["seconds"], node["seconds"]) if node else "-",
            row["open_p50_s"] or 0, row["open_p95_s"] or 0, failed,
            "-" if row["server_cpu_seconds"] is None else "%.2f" % row["server_cpu_seconds"],
            pct(row["loadgen_elu"])))
    return lines


def goal_lines(tables: Dict[int, List[dict]]) -> List[str]:
    lines = []
    for size, rows in sorted(tables.items()):
        by = {row["server"]: row.get("best") for row in rows}
        rtm, pypy, node = by.get("rtm"), by.get("rtm-pypy"), by.get("sockjs-node")
        pythons = [by.get(k) for k in ("sockjs-tornado", "sockjs-aiohttp") if by.get(k)]
        best_python = max(pythons) if pythons else None
        checks = []
        if rtm and node:
            checks.append("more than sockjs-node: %s (%s)" % (
                "met" if rtm > node else "not met", fmt_ratio(rtm, node)))
        if rtm and best_python:
            checks.append("at least 1.5x the best Python peer: %s (%s)" % (
                "met" if rtm >= 1.5 * best_python else "not met", fmt_ratio(rtm, best_python)))
        if rtm and pypy:
            checks.append("PyPy 2x CPython: %s (%s)" % (
                "met" if pypy >= 2 * rtm else "not met", fmt_ratio(pypy, rtm)))
        lines.append("- N = %d: %s." % (size, "; ".join(checks) or "not measured"))
        cpu = {row["server"]: row.get("fixed_server_cpu") for row in rows}
        if cpu.get("rtm") and cpu.get("sockjs-node") and cpu.get("sockjs-aiohttp"):
            lines.append(
                "  Below the maximum the lead is gone: at the fixed load realtimemagic (CPython) "
                "needs %s of its core, sockjs-node %s, aio-libs sockjs %s (realtimemagic spends "
                "%s and %s their CPU per delivery); the lead at the maximum comes from batching "
                "(see the caveats), and the profile says where the per-delivery time goes." % (
                    pct(cpu["rtm"]), pct(cpu["sockjs-node"]), pct(cpu["sockjs-aiohttp"]),
                    fmt_ratio(cpu["rtm"], cpu["sockjs-node"]),
                    fmt_ratio(cpu["rtm"], cpu["sockjs-aiohttp"])))
    return lines


def _check(label: str, value, reference, test: str, bound: float, unit: str,
           fmt=lambda v: "%.1f" % v) -> str:
    """One goal line: `label`: met / not met, with the ratio value ÷ reference (`test`: "<",
    "<=" or ">=" the bound) and both values."""
    if value is None or not reference:
        return "- %s: not measured." % label
    ratio = value / reference
    met = {"<": ratio < bound, "<=": ratio <= bound, ">=": ratio >= bound}[test]
    return "- %s: **%s** (%.2fx; %s %s against %s %s)." % (
        label, "met" if met else "not met", ratio, fmt(value), unit, fmt(reference), unit)


def goal_lines_15(tables: Dict[int, List[dict]], memory_results: List[dict],
                  storm_rows: List[dict], fixed_rate: float) -> List[str]:
    """The acceptance lines of "fan-out at the physical limit", each computed from this run."""
    lines = []
    for size in (100, 500):
        rows = {row["server"]: row for row in tables.get(size, [])}
        rtm, node = rows.get("rtm", {}), rows.get("sockjs-node", {})
        lines.append(_check(
            "1 (N = %d): CPU per delivery at %s/s, realtimemagic (CPython) ÷ sockjs-node < 1.0" % (
                size, fmt_rate(fixed_rate)), rtm.get("fixed_us"), node.get("fixed_us"), "<", 1.0,
            "µs"))
        lines.append(_check(
            "1 (N = %d): p95 at %s/s, realtimemagic (CPython) ≤ 1.2x sockjs-node" % (
                size, fmt_rate(fixed_rate)), rtm.get("fixed_p95_ms"), node.get("fixed_p95_ms"),
            "<=", 1.2, "ms"))
    by = {r["server"]: r for r in memory_results}

    def at_5000(key):
        for item in by.get(key, {}).get("levels", []):
            if item["connections"] == 5000:
                return item["per_connection_kib"]
        return None
    lines.append(_check("2: KiB per idle WebSocket session at 5,000, realtimemagic (CPython) ≤ "
                        "sockjs-node", at_5000("rtm"), at_5000("sockjs-node"), "<=", 1.0, "KiB"))
    for size in (100, 500):
        rows = {row["server"]: row for row in tables.get(size, [])}
        rtm = rows.get("rtm", {}).get("fixed_us")
        lines.append(_check("3 (N = %d): the pub/sub path's CPU per delivery ≤ 1.25x the plain "
                            "broadcast's" % size, rows.get("rtm-pubsub", {}).get("fixed_us"), rtm,
                            "<=", 1.25, "µs"))
        lines.append(_check("3 (N = %d): PyPy's CPU per delivery ≤ 0.6x CPython's" % size,
                            rows.get("rtm-pypy", {}).get("fixed_us"), rtm, "<=", 0.6, "µs"))
    rows = {row["server"]: row for row in tables.get(100, [])}
    lines.append(_check("4 (N = 100): the maximum sustained rate, realtimemagic (CPython) ≥ 3x "
                        "sockjs-node", rows.get("rtm", {}).get("best"),
                        rows.get("sockjs-node", {}).get("best"), ">=", 3.0, "deliveries/s",
                        fmt_rate))
    storms = {row["server"]: row for row in storm_rows}
    sessions = next((row["sessions"] for row in storm_rows if row.get("sessions")), 5000)
    lines.append(_check("5: a reconnect storm of %s sessions, realtimemagic (CPython)'s time ≤ "
                        "sockjs-node's" % fmt_rate(sessions), storms.get("rtm", {}).get("seconds"),
                        storms.get("sockjs-node", {}).get("seconds"), "<=", 1.0, "s",
                        lambda v: "%.2f" % v))
    return lines


def code_version() -> dict:
    """What realtimemagic code a run measures: the commit, and a hash of the files the servers
    load (the package and examples/stress), which also catches uncommitted changes.  Other
    people commit to this tree while a run goes on: a run whose hash changed measured two
    versions."""
    digest = hashlib.sha256()
    for top in ("realtimemagic", os.path.join("examples", "stress")):
        for directory, subdirectories, files in sorted(os.walk(os.path.join(ROOT, top))):
            subdirectories.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    digest.update(os.path.relpath(path, ROOT).encode())
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--",
                                "realtimemagic", "examples/stress"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "-", ""
    return {"commit": commit or "-", "uncommitted": bool(dirty), "sha256": digest.hexdigest()[:16]}


def versions() -> Dict[str, str]:
    def run(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "-"
    found = {
        "CPython": platform.python_version(),
        "gevent (CPython)": run([sys.executable, "-c", "import gevent; print(gevent.__version__)"]),
        "wsproto (CPython)": run([sys.executable, "-c", "import wsproto; print(wsproto.__version__)"]),
        "PyPy": run([os.path.join(PYPY_VENV, "bin", "python"), "-c",
                     "import sys, platform; print(platform.python_version(), 'PyPy %d.%d.%d' % sys.pypy_version_info[:3])"]),
        "gevent (PyPy)": run([os.path.join(PYPY_VENV, "bin", "python"), "-c",
                              "import gevent; print(gevent.__version__)"]),
        "Node.js": run(["node", "--version"]),
    }
    cpu = "-"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    found["CPU"] = "%s, %d cores" % (cpu, os.cpu_count() or 0)
    found["kernel"] = platform.release()
    return found


def memory_table(results: List[dict], specs: List[ServerSpec], rtm_key="rtm") -> List[str]:
    lines = ["| server | baseline RSS | KiB per idle connection at 1,000 | at 5,000 | "
             "rtm CPython's per connection ÷ row's (5,000; above 1: realtimemagic uses more) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    by = {r["server"]: r for r in results}

    def per(result, level):
        for item in result.get("levels", []):
            if item["connections"] == level:
                return item
        return None
    reference = per(by.get(rtm_key, {}), 5000)
    for spec in specs:
        result = by.get(spec.key)
        if not result:
            continue
        cells = []
        for level in (1000, 5000):
            item = per(result, level)
            if item is None:
                cells.append("-")
            else:
                cells.append("%.1f%s" % (item["per_connection_kib"],
                                         "" if item["open"] == level else " (%d open)" % item["open"]))
        five = per(result, 5000)
        ratio = fmt_ratio(reference["per_connection_kib"], five["per_connection_kib"]) \
            if reference and five else "-"
        lines.append("| %s | %s MiB | %s | %s | %s |" % (
            spec.label, "%.1f" % (result.get("baseline_kib", 0) / 1024.0), cells[0], cells[1], ratio))
        if result.get("error"):
            lines[-1] += " error: %s" % result["error"][:100]
    return lines


STATIC_TEXT = """
## Method

- **Servers**, all serving the same broadcast (every message a client sends goes to every
  connected client, itself included), one at a time, each in a fresh process pinned to core 0
  (`taskset -c 0`), logging at warning level or not at all:
  - realtimemagic: the plain SockJS broadcast `examples/stress/base.py` (each message encoded
    once for all recipients), on CPython and on PyPy 3;
  - realtimemagic pub/sub: `examples/stress/server.py`, the same through the pub/sub layer
    (clients subscribed to `echo` on open, each plain message published to `echo` and delivered
    in the pub/sub envelope `{"action": "message", ...}`);
  - sockjs-node 0.3.24 (`bench/servers/sockjs_node.js`), sockjs-tornado 1.0.7
    (`bench/servers/sockjs_tornado_server.py`, with its own `broadcast`, which encodes once) and
    aio-libs sockjs 0.13 on aiohttp (`bench/servers/sockjs_aiohttp_server.py`, with its session
    manager's `broadcast`).
- **Clients**: `bench/node/loadgen.js` (Node.js and the `ws` package), pinned to core 1, opens N
  SockJS sessions at `/<prefix>/<server>/<session>/websocket`, the same SockJS framing (`o`,
  `a[...]`) for every server.  5 of the clients send messages `"<step>:<seq>:<send time>"`
  (about 20 bytes) at a controlled total rate (a 2 ms timer sends what is due); every client
  takes the latency of every delivery from the send time in the message (one clock: one
  process).  Messages are found in a frame by a scan, not by JSON decoding, to keep the load
  generator cheap.
- **Steps**: a warm-up (not counted), then a step at the fixed load (20,000 deliveries/s: the
  CPU per delivery and the latency percentiles in the tables), then the rate doubles until a
  step fails, then bisects (geometrically) between the last step that passed and the first that failed.  A step passes
  when every delivery arrived (within the drain time after the step) and p95 latency ≤ 200 ms.
  A step whose oldest undelivered message is more than 1 s old is stopped at once (failed); the
  backlog is let drain and clients the server closed are reopened before the next step.  A
  failed step is run once more before it counts (full mode), and again, after a pause, when the
  server or the load generator spent more than 10% (25%) of the step waiting for its core
  (`/proc/PID/schedstat`): other processes had it.  Later runs start at the rung of the ladder
  below half the best rate found so far.  Short mode: steps of 1 s, the rate grows 4x a step,
  2 bisections, no second tries.
- **Deliveries/s** = messages sent per second × N (each message goes to all N clients).
- **CPU per delivery**: the server process's CPU time (utime + stime of `/proc/PID/stat`, all its
  threads) from the start of the fixed-load step to the end of its drain, divided by the
  deliveries received in that step, in microseconds.  The kernel counts CPU time in ticks of
  10 ms: over a 2 s step at 20,000 deliveries/s (40,000 deliveries) a tick is 0.25 µs a delivery
  (2.5 µs in the polling variant, at 2,000 deliveries/s).
- **Frames per delivery**: the load generator counts the frames (WebSocket messages, or
  xhr-streaming lines) that carried a step's messages against the deliveries it received: 1.0
  is one frame a delivery; below 1.0 the server batched several messages into one `a[...]` frame.
- **Memory**: a fresh server; its RSS (`VmRSS` of `/proc/PID/status`) with no connection, then
  with 1,000 and 5,000 idle SockJS-over-WebSocket sessions open: (RSS − baseline) / sessions.
- **Reconnect storm**: a freshly started server (as after a restart); the load generator opens
  5,000 SockJS WebSocket sessions (`/<prefix>/<server>/<session>/websocket`) all at once and
  times from the first connect to the last `o` frame.  A session fails when it is refused or
  closed, or has no `o` within 30 s.  3 runs, each with a new server.  Before they start, the
  server's and the load generator's open-file limit (`RLIMIT_NOFILE`) is raised to 65,536, or to
  the hard limit when that cannot be raised (`results.json` keeps both processes' limits).
  The kernel's accept queue is each server's own listen backlog, left at its default (128 for
  gevent, Tornado and aiohttp, 511 for Node.js; capped by `net.core.somaxconn`): a connection
  beyond it waits for a retransmission, and that shows in the time.
- **Polling variant**: the same ramp with xhr-streaming clients (a long
  `POST .../xhr_streaming`, reopened when the server ends it at its response limit, and
  `POST .../xhr_send` for what a client sends, one request at a time carrying what queued
  meanwhile, as sockjs-client does); N = 50, fixed load 2,000 deliveries/s.
- **Priority**: run as root, the server and the load generator get nice −15.  The kernel here
  schedules by session (autogroup), so the priority is set on each one's session group
  (`/proc/PID/autogroup`) as well as on the process (`--no-nice` turns this off).

## Columns

- *CPU µs per delivery* (the headline): the server's CPU time over the fixed-load step divided
  by the deliveries of that step (see the method), median over the runs; each run's value
  follows.  *row ÷ sockjs-node*: below 1 the row spends less CPU per delivery than sockjs-node.
- *p50 / p95 / p99 ms*: latency percentiles at the fixed load (20,000 deliveries/s, 2,000 for
  polling), medians over the runs.
- *server CPU at 20,000/s*: the server's CPU (share of its core) at the fixed load, median:
  what the deliveries cost below the maximum, where a server that batches under load writes
  nearly one frame per delivery (the frames column says how nearly).
- *max deliveries/s, median*: the highest rate of a passing step, median over the runs; each
  run's value follows.  The ladder's rungs are fixed (20,000 × 2^k, then 3 geometric
  bisections): rates are found to within about 9% (full mode; short mode: about 40%), and runs
  often land on the same rung.
- *frames per delivery*: at the fixed load and at the best step (medians over the runs); below
  1.0 the server batched (two significant digits below 0.1).
- *rtm CPython ÷ row*: realtimemagic (CPython)'s maximum divided by the row's; above 1 means
  realtimemagic delivered more.
- *at max: server CPU, load gen CPU / loop*: at the best step, the server's CPU (a share of its
  core, from `/proc/PID/stat`), the load generator's own CPU (`process.cpuUsage()`, user +
  system) and its event loop's utilization (`performance.eventLoopUtilization()`: the share of
  time it was busy rather than waiting for input).
- *first failed step above max*: the same for the step that failed just above the best one:
  who ran out?  A server near 100% is the limit; a load generator whose loop is ≥ 90% busy
  while the server is below 90% would make the number a lower bound (marked ‡).
- *Reconnect storm*: *seconds to open all*, median over the runs; *a session's open time*: from
  the first connect to that session's `o`, p50 and p95 of the sessions (median over the runs);
  *failed*: sessions that never opened, over all the runs, by error; *server CPU s*: the server's
  CPU time from the first connect to the end of the storm (median); *load gen loop*: its event
  loop's utilization meanwhile (near 100%: the load generator may have been the limit).
- *never delivered*: deliveries that never arrived, over all the steps of all the runs (a step
  fails as soon as one delivery misses its drain time; what arrives after that is counted as
  delivered, late).  *steps stopped*: steps stopped early for a backlog over 1 s old.
  *clients closed*: sessions the server closed under overload, reopened by the load generator
  (realtimemagic closes a client whose outbox is full with 4001 "Client too slow", and the
  messages queued for it are lost to it; it never drops messages silently otherwise).

## Caveats

- The machine is shared and noisy: 2 cores of a virtual machine, with other people's tests
  running beside the benchmark.  One number from one run proves nothing: the claims are the
  ratios between servers measured in the same run, and medians over runs; absolute numbers
  will differ elsewhere.
- realtimemagic batches the messages waiting for one client into one `a[...]` frame (as the
  SockJS protocol allows), on every transport; sockjs-node does so only on polling transports
  (what queues between two requests); over WebSocket, sockjs-node, sockjs-tornado and aio-libs
  sockjs write one frame per message.  Under load, batching is a large part of why a server
  keeps up: it is measured, not corrected for.  When it batches, a server makes far fewer
  writes, and the load generator far fewer reads, per delivery.
- A server that writes one frame per delivery costs the load generator one read per delivery:
  at about 150,000 such frames a second its loop is as busy as the server (†).  Those rows are
  limited by the server (at ≥ 90% CPU) as much as by the load generator.
- One server process on one core; no TLS; small messages; loopback, so network latency is nil
  and everything is CPU-bound.
- Other people commit to this tree while a run goes on: the report names the commit measured
  and says so when the code changed during the run.
"""


def _kept_section(path: str) -> List[str]:
    """The section bench/brokers.py wrote into the report, kept when this one rewrites it."""
    begin, end = "<!-- bench/brokers.py: begin -->", "<!-- bench/brokers.py: end -->"
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return []
    if begin not in text or end not in text:
        return []
    return [text[text.index(begin):text.index(end) + len(end)], ""]


def write_report(data: dict, path: str, plot: Optional[str]) -> None:
    specs = server_specs()
    lines = ["# Benchmarks", ""]
    lines.append("Generated by `%s` on %s (%s mode, %d run%s).  Raw results: `%s`." % (
        data["command"], data["date"], data["mode"], data["runs"], "" if data["runs"] == 1 else "s",
        os.path.relpath(data["json"], ROOT)))
    lines += ["", "Environment: " + "; ".join("%s %s" % kv for kv in data["versions"].items()) + ".", ""]
    before, after = data.get("code_before"), data.get("code_after")
    if before:
        lines += ["realtimemagic measured: commit %s%s (files hash %s)." % (
            before["commit"], " with uncommitted changes" if before["uncommitted"] else "",
            before["sha256"]), ""]
        if after and after["sha256"] != before["sha256"]:
            lines += ["**The code changed during the run** (commit %s, hash %s at its end): "
                      "later rows measured a newer version." % (after["commit"], after["sha256"]), ""]
    fixed_rate = data.get("fixed_rate", FIXED_RATE)
    tables = {}
    for size in data["sizes"]:
        rows = summarize(data["ramps"], specs, "websocket", size)
        tables[size] = rows
        if not rows:
            continue
        reference = next((r for r in rows if r["server"] == "rtm"), None)
        lines += ["## Broadcast over WebSocket, N = %d clients" % size, ""]
        lines += rate_table(rows, reference, fixed_rate) + [""]
    polling = summarize(data["ramps"], specs, "xhr_streaming", data["polling_clients"])
    if polling:
        reference = next((r for r in polling if r["server"] == "rtm"), None)
        lines += ["## Polling variant: xhr-streaming, N = %d clients (fixed load %s deliveries/s)" % (
            data["polling_clients"], fmt_rate(POLLING_FIXED_RATE)), ""]
        lines += rate_table(polling, reference, POLLING_FIXED_RATE) + [""]
    if data.get("memory"):
        lines += ["## Memory per idle connection", ""]
        lines += memory_table(data["memory"], specs) + [""]
    storm_rows = summarize_storms(data.get("storms") or [], specs)
    if storm_rows:
        sessions = next((r["sessions"] for r in storm_rows if r.get("sessions")), 0)
        lines += ["## Reconnect storm: %s SockJS WebSocket sessions at once" % fmt_rate(sessions),
                  "",
                  "A freshly started server; every session opened at once, as when the clients of "
                  "a restarted server all come back.  The time from the first connect to the last "
                  "`o` frame, median over the runs (each run a new server).", ""]
        lines += storm_table(storm_rows) + [""]
    lines += ["## Goal lines: fan-out at the physical limit (issue 15)", "",
              "The acceptance of issue 15, each line computed from this run (medians over the "
              "runs; ratios realtimemagic ÷ the reference).", ""]
    lines += goal_lines_15(tables, data.get("memory") or [], storm_rows, fixed_rate) + [""]
    lines += ["## The earlier goal: the maximum rate (issue 8)", "",
              "One CPython process sustains more deliveries/s at p95 < 200 ms than sockjs-node, "
              "and at least 1.5x the best Python peer; PyPy 2x CPython.", ""]
    lines += goal_lines(tables) + [""]
    if plot:
        lines += ["## Latency against load", "",
                  "![p95 latency against delivery rate](%s)" % os.path.relpath(plot, os.path.dirname(path)),
                  ""]
    profile_top = os.path.join(RESULTS, "profile-top.md")
    if data["mode"] == "full" and os.path.exists(profile_top):
        lines += [open(profile_top).read().strip(), ""]
    forwarded = os.path.join(RESULTS, "forwarded.md")  # bench/forwarded.py: what routing costs
    if os.path.exists(forwarded):
        lines += [open(forwarded).read().strip(), ""]
    if data.get("problems"):
        lines += ["## Not measured", ""]
        lines += ["- %s: %s" % (name, problem.splitlines()[-1]) for name, problem in data["problems"].items()]
        lines += [""]
    lines += [STATIC_TEXT.strip(), "", "## How to run", "",
              "`make bench` (full mode: `python3 bench/run.py`), `make bench-short` "
              "(`python3 bench/run.py --short`, under 2 minutes, writes `bench/results/short/`), "
              "`python3 bench/run.py --profile` (py-spy).  See `bench/README.md`.", ""]
    lines += _kept_section(path)
    with open(path, "w") as handle:
        handle.write("\n".join(lines))
    say("wrote", os.path.relpath(path, ROOT))


def draw_plot(json_path: str, png: str) -> Optional[str]:
    python = tool("tools", "python")
    if not os.path.exists(python):
        say("no plot: the tools venv is missing")
        return None
    result = subprocess.run([python, os.path.join(BENCH, "plot.py"), json_path, png],
                            capture_output=True, text=True, timeout=120)
    if result.returncode:
        say("plot failed:", result.stderr[-500:])
        return None
    say("wrote", os.path.relpath(png, ROOT))
    return png


# ------------------------------------------------------------------------------------------------
# The profile.

def collapsed_top(path: str, limit: int = 25) -> List[str]:
    """Top functions by own samples and by inclusive samples from py-spy's raw (collapsed) output."""
    own: Dict[str, int] = {}
    inclusive: Dict[str, int] = {}
    total = 0
    skipped = 0
    depth: Dict[str, int] = {}
    with open(path) as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count)
            frames = [_function(frame) for frame in stack.split(";")]
            frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
            # gevent's threadpool workers wait in a lock with a timeout, which py-spy does not
            # always see as idle: they are not the server's work.
            if not frames or any(f.startswith("_WorkerGreenlet.run") for f in frames):
                skipped += count
                continue
            total += count
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for position, frame in enumerate(frames):
                if frame not in frames[:position]:
                    inclusive[frame] = inclusive.get(frame, 0) + count
                    depth[frame] = max(depth.get(frame, 0), position)
    lines = ["Samples of the server's main thread: %d (left out: %d of gevent's idle threadpool "
             "workers)." % (total, skipped), "", "| own % | function |", "| ---: | --- |"]
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:limit]:
        lines.append("| %.1f | `%s` |" % (100.0 * count / total, name))
    # A chain of calls that always go together (the server's and WSGI's frames above the
    # WebSocket loop) has one inclusive count: show only its deepest frame.
    chains: Dict[int, str] = {}
    for name, count in inclusive.items():
        if count not in chains or depth[name] > depth[chains[count]]:
            chains[count] = name
    lines += ["", "| inclusive % | function (the deepest of calls with the same count) |",
              "| ---: | --- |"]
    for count, name in sorted(chains.items(), key=lambda kv: -kv[0])[:limit]:
        lines.append("| %.1f | `%s` |" % (100.0 * count / total, name))
    return lines


def _function(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "name (file path relative to site-packages or the repo)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/", ROOT + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return "%s (%s)" % (name, path) if path else name


def profile(args, nice: bool) -> None:
    """py-spy under the broadcast load, N = 100: realtimemagic at a moderate rate (one write per
    delivery: the per-write path) and near its maximum (messages batched per write: the
    per-recipient path), and the pub/sub layer at the moderate rate."""
    py_spy = tool("tools", "py-spy")
    specs = {s.key: s for s in server_specs()}
    seconds = args.profile_seconds
    moderate, high = (float(rate) for rate in args.profile_rates.split(","))
    targets = [("rtm", moderate, "profile"), ("rtm", high, "profile-saturated"),
               ("rtm-pubsub", moderate, "profile-pubsub")]
    sections = ["## Profile (py-spy, CPython)", "",
                "`python3 bench/run.py --profile`: py-spy %s, %d samples/s for %d s, N = 100; "
                "flame graphs in `bench/results/*.svg`, raw stacks in `bench/results/*.txt`." % (
                    subprocess.run([py_spy, "--version"], capture_output=True, text=True
                                   ).stdout.split()[-1], 100, seconds), ""]
    for key, rate, name in targets:
        spec = specs[key]
        with RunningServer(spec, nice, "profile") as server:
            config = dict(mode="ramp", transport="websocket", url=server.url, clients=100,
                          senders=5, fixed_rate=rate, warmup_ms=1000,
                          step_ms=int((2 * seconds + 8) * 1000), ladder=False,
                          confirm_failures=False, noisy_retries=0, abort_age_ms=5000,
                          server_pid=server.pid)
            generator = start_loadgen(config, nice)
            time.sleep(3)
            raw = os.path.join(RESULTS, name + ".txt")
            svg = os.path.join(RESULTS, name + ".svg")
            for output, fmt in ((raw, "raw"), (svg, "flamegraph")):
                say("py-spy record (%s) of %s for %d s at %s deliveries/s" % (
                    fmt, spec.label, seconds, fmt_rate(rate)))
                subprocess.run(["taskset", "-c", LOADGEN_CORE, py_spy, "record", "--pid",
                                str(server.pid), "--duration", str(seconds), "--rate", "100",
                                "--format", fmt, "--output", output],
                               check=True, capture_output=True, timeout=seconds + 60)
            out, _ = generator.communicate(timeout=seconds * 2 + 60)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            fixed = json.loads(lines[-1]).get("fixed", {}) if lines else {}
        sections += ["### %s at %s deliveries/s (`bench/results/%s.svg`)" % (
            spec.label, fmt_rate(rate), name), "",
            "During the profile: p95 %s ms, server CPU %s, loss %s." % (
                fmt_ms(fixed.get("p95_ms")), pct(fixed.get("server_cpu")), fixed.get("loss")), ""]
        sections += collapsed_top(raw, limit=15) + [""]
    path = os.path.join(RESULTS, "profile-top.md")
    with open(path, "w") as handle:
        handle.write("\n".join(sections))
    say("wrote", os.path.relpath(path, ROOT))
    print("\n".join(sections))


# ------------------------------------------------------------------------------------------------

#: The parts of a run, for --only.
PARTS = ("websocket", "polling", "memory", "storm")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="one run, N=100, fewer steps (< 2 min)")
    parser.add_argument("--setup", action="store_true", help="only install what is needed")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of realtimemagic")
    parser.add_argument("--profile-rates", default="20000,600000",
                        help="deliveries/s during the profiles: moderate,high")
    parser.add_argument("--profile-seconds", type=int, default=15)
    parser.add_argument("--no-nice", action="store_true", help="do not raise the priority")
    parser.add_argument("--servers", help="comma-separated subset of: " + ", ".join(
        s.key for s in server_specs()))
    parser.add_argument("--sizes", help="comma-separated client counts (default: the mode's)")
    parser.add_argument("--no-polling", action="store_true", help="skip the polling variant")
    parser.add_argument("--out", help="directory for a partial run's results")
    parser.add_argument("--report-only", metavar="RESULTS_JSON",
                        help="rebuild the plot and the report from an earlier run's results.json")
    parser.add_argument("--runs", type=int, help="override the number of runs")
    parser.add_argument("--only", help="comma-separated parts to run (a partial run): " +
                        ", ".join(PARTS))
    parser.add_argument("--storm-sessions", type=int,
                        help="sessions of the reconnect storm (default 5000)")
    args = parser.parse_args(argv)
    nice = not args.no_nice
    started = time.monotonic()
    if args.report_only:
        with open(args.report_only) as handle:
            data = json.load(handle)
        out_dir = os.path.dirname(os.path.abspath(args.report_only))
        plot = draw_plot(args.report_only, os.path.join(out_dir, "latency.png"))
        full = data["mode"] == "full" and os.path.abspath(out_dir) == os.path.abspath(RESULTS)
        write_report(data, os.path.join(ROOT if full else out_dir, "BENCHMARKS.md"), plot)
        return
    try:
        os.sched_setaffinity(0, {int(LOADGEN_CORE)})
    except (AttributeError, OSError):
        pass
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench: needs 2 cores (server on core 0, load generator on core 1)")
    problems = setup()
    if args.setup:
        return
    if args.profile:
        profile(args, nice)
        return
    mode_name = "short" if args.short else "full"
    mode = dict(MODES[mode_name])
    if args.runs:
        mode["runs"] = mode["polling_runs"] = mode["storm_runs"] = args.runs
    if args.sizes:
        mode["sizes"] = [int(size) for size in args.sizes.split(",")]
    if args.no_polling:
        mode["polling_runs"] = 0
    if args.storm_sessions:
        mode["storm_sessions"] = args.storm_sessions
    if args.only:
        parts = set(args.only.split(","))
        unknown = parts - set(PARTS)
        if unknown:
            parser.error("--only: unknown part(s) %s; choose from %s" % (
                ", ".join(sorted(unknown)), ", ".join(PARTS)))
        if "websocket" not in parts:
            mode["sizes"] = []
        if "polling" not in parts:
            mode["polling_runs"] = 0
        if "memory" not in parts:
            mode["memory_levels"] = []
        if "storm" not in parts:
            mode["storm_runs"] = 0
        elif not mode["storm_runs"]:
            mode["storm_runs"] = args.runs or 1
    specs = [s for s in server_specs() if not (s.needs and problems.get(s.needs))]
    if args.servers:
        wanted = args.servers.split(",")
        specs = [s for s in specs if s.key in wanted]
    # Only the full mode with every server writes BENCHMARKS.md and bench/results/; the short
    # mode writes bench/results/short/, a partial run bench/results/custom/ (or --out).
    custom = bool(args.servers or args.sizes or args.runs or args.no_polling or args.only
                  or args.storm_sessions)
    out_dir = args.out or os.path.join(RESULTS, "short" if args.short else "custom" if custom
                                       else "")
    out_dir = out_dir.rstrip("/") or RESULTS
    os.makedirs(out_dir, exist_ok=True)

    code_before = code_version()
    ramps: List[dict] = []
    for run in range(mode["runs"]):
        # Rotate the order each run, so that no server always runs first or last.
        order = specs[run % len(specs):] + specs[:run % len(specs)]
        for size in mode["sizes"]:
            for spec in order:
                previous = [r["best_rate"] for r in ramps if r["server"] == spec.key
                            and r["clients"] == size and r["transport"] == "websocket"
                            and not r.get("error")]
                ramps.append(ramp(spec, size, mode, nice, "run%d" % (run + 1), "websocket",
                                  FIXED_RATE, start_rate(previous, FIXED_RATE, mode["factor"]),
                                  mode["bisections"]))
    polling_specs = [s for s in specs if s.key in mode["polling_servers"]]
    for run in range(mode["polling_runs"]):
        order = polling_specs[run % max(1, len(polling_specs)):] + polling_specs[:run % max(1, len(polling_specs))]
        for spec in order:
            previous = [r["best_rate"] for r in ramps if r["server"] == spec.key
                        and r["transport"] == "xhr_streaming" and not r.get("error")]
            ramps.append(ramp(spec, mode["polling_clients"], mode, nice, "poll%d" % (run + 1),
                              "xhr_streaming", POLLING_FIXED_RATE,
                              start_rate(previous, POLLING_FIXED_RATE, mode["factor"]),
                              mode["polling_bisections"]))
    memory_results = [memory(spec, mode["memory_levels"], nice) for spec in specs] \
        if mode["memory_levels"] else []
    storms: List[dict] = []
    for run in range(mode["storm_runs"]):
        order = specs[run % len(specs):] + specs[:run % len(specs)]
        for spec in order:
            storms.append(storm(spec, mode["storm_sessions"], nice, "storm%d" % (run + 1)))

    json_path = os.path.join(out_dir, "results.json")
    data = dict(
        command=" ".join(["python3 bench/run.py"] + list(sys.argv[1:] if argv is None else argv)),
        date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), mode=mode_name,
        runs=mode["runs"], sizes=mode["sizes"], polling_clients=mode["polling_clients"],
        fixed_rate=FIXED_RATE, threshold_ms=THRESHOLD_MS, versions=versions(), ramps=ramps,
        memory=memory_results, storms=storms, storm_runs=mode["storm_runs"], json=json_path,
        seconds=time.monotonic() - started,
        problems={k: v for k, v in problems.items() if v},
        labels={s.key: s.label for s in server_specs()},
        code_before=code_before, code_after=code_version())
    with open(json_path, "w") as handle:
        json.dump(data, handle, indent=1)
    plot = draw_plot(json_path, os.path.join(out_dir, "latency.png")) if ramps else None
    partial = args.short or custom or args.out
    report = os.path.join(out_dir, "BENCHMARKS.md") if partial else os.path.join(ROOT, "BENCHMARKS.md")
    write_report(data, report, plot)
    say("done in %.0f s" % (time.monotonic() - started))
    if partial:
        print(open(report).read())


if __name__ == "__main__":
    main()
