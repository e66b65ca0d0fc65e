#!/usr/bin/env python3
"""Cross-instance figures of the Redis brokers, one run (about two minutes; every wait is
bounded), written into the "Redis brokers" section of BENCHMARKS.md and
bench/results/brokers.json:

1. the publish rate one instance sustains towards another through one Redis server, and
   through three shards (a comma-separated --broker list): instance A (bench/brokerapp.py)
   publishes bursts of BURST messages as fast as it can over CHANNELS channels; instance B has
   SUBSCRIBERS clients sharing the channels; the rate is a burst divided by the time until B's
   broker received all of it (its ``received`` counter), the median of BURSTS bursts;
2. the delivery gap during a Sentinel failover: the acceptance test's steady 100 messages/s
   from A to B, with the master killed (SIGKILL) after 2 s (tests/redisnodes.py).

Every Redis server, sentinel and instance is started here on free ports and stopped at the end.

    python3 bench/brokers.py [--burst 20000] [--bursts 3] [--no-write]
"""
import argparse
import contextlib
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from clients import WebSocketClient  # noqa: E402
from conftest import free_port, rtm_serve_command, run_process  # noqa: E402
from redisnodes import publish_through_failover, redis_shards, sentinel_group  # noqa: E402

CHANNELS = 300
SUBSCRIBERS = 6        # on B, each subscribed to a sixth of the channels
BURST = 20000          # messages per burst
BURSTS = 3             # bursts per row; the row shows the median
BEGIN, END = "<!-- bench/brokers.py: begin -->", "<!-- bench/brokers.py: end -->"


def stats(api):
    with urllib.request.urlopen(api + "/api/stats", timeout=10) as response:
        return json.load(response)["broker"]


def instance(stack, directory, broker, *flags, application="realtimemagic.magic:RealTimeMagic"):
    port, api_port = free_port(), free_port()
    command = rtm_serve_command(application, port, "--broker", broker,
                                "--api-port", str(api_port), "--rate-limit", "1000000",
                                "--max-subscriptions", str(CHANNELS + 1),
                                "--broker-queue-size", "10000000", *flags)
    server = stack.enter_context(run_process(command, port, directory, name="rtm"))
    server.api = "http://127.0.0.1:%d" % api_port
    return server


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/PID/stat), in seconds."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish_rate(directory, shard_count, burst, bursts):
    """The median over ``bursts`` bursts of how fast B's broker receives ``burst`` messages that
    A publishes as fast as it can."""
    with contextlib.ExitStack() as stack:
        shards = stack.enter_context(redis_shards(directory, shard_count))
        broker = ",".join(node.url for node in shards)
        a = instance(stack, directory, broker, application="bench.brokerapp:rtm")
        b = instance(stack, directory, broker)
        channels = ["bench-%d" % n for n in range(CHANNELS)]
        subscribers = [WebSocketClient(b) for _ in range(SUBSCRIBERS)]
        for n, client in enumerate(subscribers):
            client.send_many({"action": "subscribe", "payload": {"channel": channel}}
                             for channel in channels[n::SUBSCRIBERS])
            client.send({"action": "subscribe", "payload": {"channel": "bench-sync"},
                         "id": "sync"})
        for client in subscribers:  # the broker confirms about 20 subscriptions a second
            client.expect(lambda m: m.get("id") == "sync", timeout=60)
            threading.Thread(target=_discard, args=(client,), daemon=True).start()
        publisher = WebSocketClient(a)
        pids = {"A": [a.process.pid], "B": [b.process.pid],
                "Redis": [node.process.pid for node in shards], "load": [os.getpid()]}
        runs = [one_burst(a, b, publisher, channels, burst, pids) for _ in range(bursts)]
        for run in runs:
            print("  %d shard(s): %s" % (shard_count, run), flush=True)
        for client in [publisher] + subscribers:
            client.close()
        median = sorted(runs, key=lambda run: run["received_per_s"])[len(runs) // 2]
        return {"shards": shard_count, "received_per_s": median["received_per_s"],
                "median_run": median, "runs": runs}


def one_burst(a, b, publisher, channels, count, pids):
    def cpu():
        return {name: sum(cpu_seconds(pid) for pid in ids) for name, ids in pids.items()}
    before, cpu_before, started = stats(b.api)["received"], cpu(), time.monotonic()
    publisher.send({"burst": count, "channels": channels})
    done = publisher.expect(lambda m: "published" in m, timeout=120)
    deadline = started + 120
    while stats(b.api)["received"] - before < count:
        if time.monotonic() > deadline:
            raise RuntimeError("B did not receive the burst within 120 s")
        time.sleep(0.02)
    ended, cpu_after, broker_b = time.monotonic(), cpu(), stats(b.api)
    return {"received_per_s": round(count / (ended - started)),
            "a_published_per_s": round(count / done["seconds"]),
            "lost": broker_b["lost"], "duplicates": broker_b["duplicates"],
            "cpu": {name: round(100 * (cpu_after[name] - cpu_before[name]) / (ended - started))
                    for name in cpu_before}}


def _discard(client):
    """Empty the client's inbox as it fills (B's deliveries are counted by its stats)."""
    while True:
        client.inbox.get()


def failover_gap(directory):
    with contextlib.ExitStack() as stack:
        group = stack.enter_context(sentinel_group(directory))
        flags = ("--broker-reconnect-min", "0.1", "--broker-reconnect-max", "1",
                 "--broker-health-interval", "1")
        a = instance(stack, directory, group.url, *flags)
        b = instance(stack, directory, group.url, *flags)
        sender, receiver = WebSocketClient(a), WebSocketClient(b)
        receiver.subscribed("failover")
        run = publish_through_failover(group, sender, receiver, "failover", 100, 200, 5.0)
        counted = stats(b.api)
        for client in (sender, receiver):
            client.close()
        return {"rate": 100, "sent": run.sent,
                "promoted_after_kill_s": round(run.promoted - run.killed, 2),
                "resumed_after_promotion_s": round(run.resumed(200) - run.promoted, 2),
                "longest_gap_s": round(run.longest_gap(), 2), "lost": run.lost,
                "lost_counted_by_b": counted["lost"],
                "delivered_twice": len(run.numbers) - len(set(run.numbers))}


def section(results):
    one, three = results["rates"]
    failover = results["failover"]
    lines = [BEGIN, "## Redis brokers: three shards against one, and a Sentinel failover", "",
             "Generated by `python3 bench/brokers.py` on %s (one run; commit %s)." % (
                 results["date"], results["commit"]), "",
             "Cross-instance publish rate: instance A (bench/brokerapp.py) publishes a burst "
             "of %s messages as fast as it can, round-robin over %d channels, and the broker "
             "carries them to instance B, where %d WebSocket clients share the channels; the "
             "rate is the burst divided by the time until B's broker has received all of it "
             "(median of %d bursts).  Both instances, the Redis servers and the load generator "
             "share the machine's 2 cores, with other work running." % (
                 "{:,}".format(results["burst"]), CHANNELS, SUBSCRIBERS, results["bursts"]), "",
             "| Redis | received by B, messages/s (median) | each burst | A publishing, "
             "messages/s | CPU during the median burst, % of a core: A, B, Redis, load |",
             "| --- | ---: | --- | ---: | --- |"]
    for row in (one, three):
        cpu = row["median_run"]["cpu"]
        lines.append("| %s | **%s** | %s | %s | %s |" % (
            "one server" if row["shards"] == 1 else "%d shards" % row["shards"],
            "{:,}".format(row["received_per_s"]),
            ", ".join("{:,}".format(run["received_per_s"]) for run in row["runs"]),
            "{:,}".format(row["median_run"]["a_published_per_s"]),
            ", ".join("%s%%" % cpu[name] for name in ("A", "B", "Redis", "load"))))
    lines += ["", "**Three shards ÷ one: %.2fx.**" % (
        three["received_per_s"] / max(1, one["received_per_s"])), "",
        "Read with care: the machine's load average was %.1f at the start and %.1f at the end "
        "(2 cores, shared), the busiest instance used at most %d%% of a core during a median "
        "burst (so it waited, for the CPU or for round trips, more than it worked), and Redis "
        "at most %d%%.  Where the instances are the limit, shards add little; they pay where "
        "one Redis process is the limit (many instances, history scripts, wide fan-out), which "
        "two cores cannot show." % (
            results["load"][0], results["load"][1],
            max(row["median_run"]["cpu"][name] for row in (one, three) for name in "AB"),
            max(row["median_run"]["cpu"]["Redis"] for row in (one, three))), "",
        "Sentinel failover (master killed with SIGKILL during a steady %d messages/s from A "
        "to B; down-after-milliseconds 1000, broker_reconnect_max 1 s): the sentinels named "
        "the new master %.2f s after the kill; delivery resumed %.2f s after that; the "
        "longest gap between two deliveries at B was **%.2f s**; %d of %d messages lost "
        "(B's stats counted %d), %d delivered twice." % (
            failover["rate"], failover["promoted_after_kill_s"],
            failover["resumed_after_promotion_s"], failover["longest_gap_s"],
            failover["lost"], failover["sent"], failover["lost_counted_by_b"],
            failover["delivered_twice"]), "", END]
    return "\n".join(lines)


def write(results):
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "brokers.json"), "w") as file:
        json.dump(results, file, indent=2)
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section(results) + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section(results) + "\n"
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=BURST, help="messages per burst")
    parser.add_argument("--bursts", type=int, default=BURSTS, help="bursts per row")
    parser.add_argument("--no-write", action="store_true", help="print only")
    options = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as directory:
        directory = pathlib.Path(directory)
        results = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
                   "commit": commit, "burst": options.burst, "bursts": options.bursts,
                   "rates": [publish_rate(directory, count, options.burst, options.bursts)
                             for count in (1, 3)],
                   "failover": failover_gap(directory)}
        results["load"] = [load_before, os.getloadavg()[0]]
    print(section(results))
    if not options.no_write:
        write(results)


if __name__ == "__main__":
    main()
