"""Redis servers of a test's own on free ports: plain servers (shards), and a Sentinel group
(a master, a replica, three sentinels that fail over one second after the master stops
answering).  Everything started here is stopped at the end of the ``with`` block."""
import json
import os
import queue
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from typing import Iterator, List, NamedTuple, Optional, Tuple

from conftest import free_port, need, wait_for_port

SERVICE = "rtm-test-master"
DOWN_AFTER_MS = 1000     # a master silent this long is down for a sentinel
FAILOVER_TIMEOUT_MS = 3000


def redis_server() -> str:
    binary = shutil.which("redis-server")
    need(binary is not None, "redis-server is needed (apt-get install redis-server)")
    return binary


def sentinel_command(config: str) -> List[str]:
    binary = shutil.which("redis-sentinel")
    need(binary is not None, "redis-sentinel is needed (apt-get install redis-sentinel)")
    return [binary, config]


class RedisNode:
    def __init__(self, command: List[str], port: int, log_path: str) -> None:
        self.port = port
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(port, self.process)

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(directory, *options: str) -> RedisNode:
    port = free_port()
    return RedisNode([redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--dir", str(directory)] + list(options), port,
                     os.path.join(str(directory), "redis-%d.log" % port))


@contextmanager
def redis_shards(directory, count: int) -> Iterator[List[RedisNode]]:
    nodes: List[RedisNode] = []
    try:
        for _ in range(count):
            nodes.append(start_redis(directory))
        yield nodes
    finally:
        for node in nodes:
            node.stop()


class SentinelGroup:
    def __init__(self, master: RedisNode, replica: RedisNode, sentinels: List[RedisNode]):
        self.master, self.replica, self.sentinels = master, replica, sentinels
        self.url = "redis+sentinel://%s/%s/0" % (
            ",".join("127.0.0.1:%d" % node.port for node in sentinels), SERVICE)

    def master_port(self) -> int:
        """The port of the master the first live sentinel names."""
        for node in self.sentinels:
            try:
                return int(node.client().sentinel_get_master_addr_by_name(SERVICE)[1])
            except Exception:  # that sentinel is not answering: ask the next
                continue
        raise RuntimeError("no sentinel answers")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the replica is in sync and every sentinel knows the others and the replica."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                replication = self.replica.client().info("replication")
                known = [node.client().sentinel_master(SERVICE) for node in self.sentinels]
                if (replication.get("master_link_status") == "up"
                        and all(entry["num-other-sentinels"] == 2 and entry["num-slaves"] == 1
                                for entry in known)):
                    return
            except Exception:  # still starting
                pass
            time.sleep(0.1)
        raise RuntimeError("the Sentinel group is not ready after %.0f s" % timeout)

    def kill_master(self) -> float:
        """SIGKILL the master; the monotonic time it died."""
        self.master.kill()
        return time.monotonic()

    def promoted(self) -> bool:
        return self.master_port() == self.replica.port


@contextmanager
def sentinel_group(directory) -> Iterator[SentinelGroup]:
    """A master and its replica watched by three sentinels (quorum 2).  The sentinels are told
    about each other and about the replica in their configs (with fixed ids), so that the
    group is ready at once instead of after the discovery rounds (about 10 s)."""
    nodes: List[RedisNode] = []
    try:
        master = start_redis(directory)
        nodes.append(master)
        replica = start_redis(directory, "--replicaof", "127.0.0.1", str(master.port))
        nodes.append(replica)
        ports = [free_port() for _ in range(3)]
        ids = ["%040x" % (os.getpid() * 10 + n) for n in range(3)]
        sentinels = []
        for n, port in enumerate(ports):
            config = os.path.join(str(directory), "sentinel-%d.conf" % port)
            lines = ["port %d" % port, "bind 127.0.0.1", "dir %s" % directory,
                     "sentinel myid %s" % ids[n],
                     "sentinel monitor %s 127.0.0.1 %d 2" % (SERVICE, master.port),
                     "sentinel down-after-milliseconds %s %d" % (SERVICE, DOWN_AFTER_MS),
                     "sentinel failover-timeout %s %d" % (SERVICE, FAILOVER_TIMEOUT_MS),
                     "sentinel known-replica %s 127.0.0.1 %d" % (SERVICE, replica.port)]
            lines += ["sentinel known-sentinel %s 127.0.0.1 %d %s" % (SERVICE, other, ids[m])
                      for m, other in enumerate(ports) if m != n]
            with open(config, "w") as file:
                file.write("\n".join(lines) + "\n")
            node = RedisNode(sentinel_command(config), port,
                             os.path.join(str(directory), "sentinel-%d.log" % port))
            nodes.append(node)
            sentinels.append(node)
        group = SentinelGroup(master, replica, sentinels)
        group.wait_ready()
        yield group
    finally:
        for node in reversed(nodes):
            node.stop()


class Failover(NamedTuple):
    """What a steady publish through a failover showed (times: time.monotonic())."""
    sent: int
    arrivals: List[Tuple[float, int]]  # (arrival time, message number), in arrival order
    killed: float
    promoted: float

    @property
    def numbers(self) -> List[int]:
        return [n for _, n in self.arrivals]

    @property
    def lost(self) -> int:
        return self.sent - len(set(self.numbers))

    def resumed(self, first_after_kill: int) -> Optional[float]:
        """When the first message published after the kill arrived."""
        return next((when for when, n in self.arrivals
                     if when > self.killed and n >= first_after_kill), None)

    def longest_gap(self) -> float:
        return max(later[0] - earlier[0] for earlier, later in
                   zip(self.arrivals, self.arrivals[1:]))


def publish_through_failover(group: SentinelGroup, sender, receiver, channel: str, rate: int,
                             before_kill: int, after_promotion: float) -> Failover:
    """Publish {"n": 0, 1, ...} on ``channel`` through ``sender`` at ``rate`` a second; kill
    the master after ``before_kill`` messages; go on until ``after_promotion`` seconds after the
    sentinels name the new master; collect what ``receiver`` gets, until the last message
    arrives (or 15 s), and one more second for anything late or twice."""
    arrivals: List[Tuple[float, int]] = []
    sent = 0
    killed = promoted = stop_at = None
    started = time.monotonic()
    while stop_at is None or time.monotonic() < stop_at:
        sender.publish(channel, {"n": sent})
        sent += 1
        if sent == before_kill:
            killed = group.kill_master()
        if killed is not None and promoted is None and group.promoted():
            promoted = time.monotonic()
            stop_at = promoted + after_promotion
        if time.monotonic() - started > 60:
            raise AssertionError("no failover within 60 s")
        _drain(receiver, arrivals)
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    deadline = time.monotonic() + 15
    while (not arrivals or arrivals[-1][1] != sent - 1) and time.monotonic() < deadline:
        time.sleep(0.05)
        _drain(receiver, arrivals)
    time.sleep(1.0)
    _drain(receiver, arrivals)
    return Failover(sent, arrivals, killed, promoted)


def _drain(client, arrivals: List[Tuple[float, int]]) -> None:
    while True:
        try:
            item = client.inbox.get_nowait()
        except queue.Empty:
            return
        message = json.loads(item)
        if message.get("action") == "message":
            arrivals.append((time.monotonic(), message["payload"]["message"]["n"]))
