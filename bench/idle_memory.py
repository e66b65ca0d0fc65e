"""What one idle SockJS WebSocket session holds in the server.

    python bench/idle_memory.py [--sessions 2000] [--app examples.stress.base:app]

Starts the server (``rtm-serve APP``, CPython, the interpreter running this script) on a free
port twice, and each time opens ``--sessions`` idle SockJS-over-WebSocket sessions
(``PREFIX/<server>/<session>/websocket``, each waited for until its ``o`` frame), after 20
sessions opened and closed as a warm-up:

1. plain: the server's RSS (``VmRSS`` of ``/proc/PID/status``, read from outside) before and
   after, so the per-session figure includes what tracemalloc cannot see (greenlet stacks,
   the interpreter's frame chunks, allocator slack);
2. traced (``bench/traced_serve.py``: tracemalloc, one frame): a snapshot before and after,
   compared by file:line, and the greenlets alive (from the garbage collector).

Prints a Markdown table: RSS per session, traced bytes per session, greenlets per session, then
the top allocation sites in bytes per session.  Everything is bounded: each session must open
within 10 s, the opening phase within ``--timeout`` seconds (well below the 50 s after which an
idle client that answers no ping is closed), and the server is stopped at the end, whatever
happened.  Standard library only; needs about 2 * sessions open files (the limit is raised to
its hard limit).
"""
import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
import uuid
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WARMUP = 20
SETTLE = 1.0  # seconds left for the server to finish its work after the last session opened


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


@contextmanager
def server(app: str, prefix: str, traced: Optional[str]):
    """The server as a subprocess on a free port; yields (process, port)."""
    port = free_port()
    if traced:
        command = [sys.executable, os.path.join(HERE, "traced_serve.py"), traced]
    else:
        command = [sys.executable, "-m", "realtimemagic.cli"]
    command += [app, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError("the server exited with %s" % process.returncode)
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d%s/info" % (port, prefix),
                                            timeout=1) as response:
                    response.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not answer within 30 s")
                time.sleep(0.1)
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def open_session(port: int, prefix: str) -> socket.socket:
    """One SockJS WebSocket session, returned once its ``o`` frame has come."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        path = "%s/000/%s/websocket" % (prefix, uuid.uuid4().hex[:12])
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n" % (path, port)).encode("ascii"))
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("the server closed a session while it opened")
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep and not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError("no upgrade: %r" % head[:80])
            if sep and len(rest) >= 3:
                if rest[:3] != b"\x81\x01o":
                    raise RuntimeError("not an open frame: %r" % rest[:20])
                return sock
    except BaseException:
        sock.close()
        raise


def open_sessions(port: int, prefix: str, count: int, timeout: float) -> List[socket.socket]:
    sockets: List[socket.socket] = []
    deadline = time.monotonic() + timeout
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                raise RuntimeError("opening %d sessions took more than %g s (%d open)" % (
                    count, timeout, len(sockets)))
            sockets.append(open_session(port, prefix))
    except BaseException:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: List[socket.socket]) -> None:
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass
    sockets.clear()


def warm_up(port: int, prefix: str) -> None:
    close_all(open_sessions(port, prefix, WARMUP, 30))
    time.sleep(SETTLE)


def plain_run(args) -> Dict:
    with server(args.app, args.prefix, None) as (process, port):
        warm_up(port, args.prefix)
        before = rss_kib(process.pid)
        sockets = open_sessions(port, args.prefix, args.sessions, args.timeout)
        try:
            time.sleep(SETTLE)
            after = rss_kib(process.pid)
        finally:
            close_all(sockets)
    return {"rss_before_kib": before, "rss_after_kib": after}


def signal_dump(process: subprocess.Popen, out: str, n: int) -> Tuple[tracemalloc.Snapshot, Dict]:
    process.send_signal(signal.SIGUSR1)
    path = "%s.%d" % (out, n)
    deadline = time.monotonic() + 120
    while not os.path.exists(path + ".json"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("no tracemalloc snapshot from the server")
        time.sleep(0.1)
    with open(path + ".json") as f:
        info = json.load(f)
    return tracemalloc.Snapshot.load(path + ".snapshot"), info


def traced_run(args, directory: str) -> Dict:
    out = os.path.join(directory, "dump")
    with server(args.app, args.prefix, out) as (process, port):
        warm_up(port, args.prefix)
        before, info_before = signal_dump(process, out, 1)
        sockets = open_sessions(port, args.prefix, args.sessions, args.timeout)
        try:
            time.sleep(SETTLE)
            after, info_after = signal_dump(process, out, 2)
        finally:
            close_all(sockets)
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
              tracemalloc.Filter(False, "<unknown>")]
    before, after = before.filter_traces(ignore), after.filter_traces(ignore)
    diff = after.compare_to(before, "lineno")
    sites = [(short(str(stat.traceback[0])), stat.size_diff, stat.count_diff)
             for stat in diff if stat.size_diff > 0]
    sites.sort(key=lambda site: -site[1])
    total = sum(stat.size_diff for stat in diff)
    return {"traced_bytes": total, "greenlets_before": info_before["greenlets"],
            "greenlets_after": info_after["greenlets"], "greenlet_types_after":
            info_after["by_type"], "sites": sites[:args.top]}


def short(where: str) -> str:
    """A file:line without the checkout's, the site-packages' or the standard library's
    directory."""
    for directory in sorted(sys.path, key=len, reverse=True) + [ROOT]:
        if directory and where.startswith(directory + os.sep):
            return where[len(directory) + 1:]
    return where


def table(args, plain: Dict, traced: Dict) -> str:
    k = args.sessions
    rss = (plain["rss_after_kib"] - plain["rss_before_kib"]) * 1024 / k
    lines = ["%d idle SockJS WebSocket sessions, %s (CPython %s)" % (
                 k, args.app, sys.version.split()[0]), "",
             "| measure | per session |", "| --- | ---: |",
             "| RSS (VmRSS %d -> %d KiB, plain run) | %.0f B (%.1f KiB) |" % (
                 plain["rss_before_kib"], plain["rss_after_kib"], rss, rss / 1024),
             "| tracemalloc, all sites (traced run) | %.0f B (%.1f KiB) |" % (
                 traced["traced_bytes"] / k, traced["traced_bytes"] / k / 1024),
             "| RSS not seen by tracemalloc | %.0f B |" % (rss - traced["traced_bytes"] / k),
             "| greenlets (%d -> %d) | %.2f |" % (
                 traced["greenlets_before"], traced["greenlets_after"],
                 (traced["greenlets_after"] - traced["greenlets_before"]) / k),
             "", "Top allocation sites (tracemalloc, traced run):", "",
             "| file:line | bytes/session | blocks/session |", "| --- | ---: | ---: |"]
    for site, size, count in traced["sites"]:
        lines.append("| `%s` | %.0f | %.2f |" % (site, size / k, count / k))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--app", default="examples.stress.base:app")
    parser.add_argument("--prefix", default="/pubsub")
    parser.add_argument("--top", type=int, default=25, help="allocation sites shown")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds the opening of all sessions may take")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= 20000:
        parser.error("--sessions: 1 to 20000")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * args.sessions + 200
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(wanted, soft)), hard))
    plain = plain_run(args)
    with tempfile.TemporaryDirectory(prefix="idle-memory-") as directory:
        traced = traced_run(args, directory)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sessions": args.sessions, "app": args.app, "plain": plain,
                       "traced": traced}, f, indent=1)
    print(table(args, plain, traced))


if __name__ == "__main__":
    main()
