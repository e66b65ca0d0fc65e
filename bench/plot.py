"""Draw p95 latency against delivery rate for each server from bench/run.py's results.json.

    bench/.venv-peers/tools/bin/python bench/plot.py results.json latency.png

One panel per client count (WebSocket) plus one for the polling variant.  For each server every
measured step of every run is a point (warm-up steps left out); the line joins, at each rate
where a step passed, the median p95 of the passing steps.  Failed steps are drawn hollow.
"""
import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CAP_MS = 5000.0
COLORS = {"rtm": "tab:blue", "rtm-pubsub": "tab:cyan", "rtm-pypy": "tab:purple",
          "sockjs-node": "tab:green", "sockjs-tornado": "tab:orange", "sockjs-aiohttp": "tab:red"}


def main(source: str, target: str) -> None:
    with open(source) as handle:
        data = json.load(handle)
    labels = data.get("labels", {})
    panels = [("websocket", size) for size in data["sizes"]]
    if any(r["transport"] == "xhr_streaming" for r in data["ramps"]):
        panels.append(("xhr_streaming", data["polling_clients"]))
    figure, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 6.5), squeeze=False)
    for axis, (transport, size) in zip(axes[0], panels):
        servers = []
        for ramp in data["ramps"]:
            if ramp["transport"] == transport and ramp["clients"] == size and ramp["server"] not in servers:
                servers.append(ramp["server"])
        for server in servers:
            points = {}
            for ramp in data["ramps"]:
                if (ramp["server"], ramp["transport"], ramp["clients"]) != (server, transport, size):
                    continue
                for step in ramp.get("steps", []):
                    if step["label"] == "warmup" or step["p95_ms"] is None:
                        continue
                    p95 = min(CAP_MS, step["p95_ms"] if step["p95_ms"] != float("inf") else CAP_MS)
                    points.setdefault(step["rate"], []).append((p95, step["pass"]))
            if not points:
                continue
            color = COLORS.get(server)
            passed = sorted(r for r in points if any(ok for _, ok in points[r]))
            axis.plot(passed, [statistics.median(p for p, ok in points[r] if ok) for r in passed],
                      "-", color=color, label=labels.get(server, server), linewidth=1.5)
            rates = sorted(points)
            for rate in rates:
                for p95, passed in points[rate]:
                    axis.plot([rate], [p95], "o", color=color, markersize=4,
                              markerfacecolor=color if passed else "none")
        axis.axhline(data.get("threshold_ms", 200), color="grey", linestyle="--", linewidth=1)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("deliveries/s (messages/s x N)")
        axis.set_ylabel("p95 latency, ms (capped at %d)" % CAP_MS)
        axis.set_title("%s, N = %d" % ("WebSocket" if transport == "websocket" else "xhr-streaming", size))
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="upper left")
    figure.suptitle("Broadcast: p95 latency against delivery rate (hollow: failed step)")
    figure.tight_layout()
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
