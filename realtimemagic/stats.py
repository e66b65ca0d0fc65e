"""What a running server reports: one dict for /api/stats, the same numbers for /metrics."""
import gc
import os
import time
from collections import Counter
from typing import Any, Dict, Iterator, List

import greenlet
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .incidents import incidents
from .runtime.wsgi_server import half_open

STARTED = time.time()
BROKER_COUNTERS = (
    ("reconnects", "Broker reconnections"),
    ("outages", "Times the broker connection was lost"),
    ("dropped", "Messages dropped from the full broker queue, never sent to other instances"),
    ("publish_failed", "Sends to the broker that failed, sent again after reconnecting"),
    ("lost", "Messages of other instances that never arrived here (gaps in their numbers)"),
    ("duplicates", "Messages the broker carried twice, delivered once"),
    ("too_large", "Messages over the NATS server's max_payload, not sent to other instances"))


def monitor_status(monitor: Any) -> Dict[str, Any]:
    status = getattr(monitor, "status", None)
    name = getattr(monitor, "__name__", repr(monitor))
    return dict(status() if callable(status) else {}, name=name)


def process_figures() -> Dict[str, Any]:
    """Greenlets alive and file descriptors open: what a leak would show."""
    greenlets = sum(1 for item in gc.get_objects() if isinstance(item, greenlet.greenlet))
    try:
        descriptors = len(os.listdir("/proc/self/fd"))
    except OSError:
        descriptors = None
    return {"greenlets": greenlets, "open_fds": descriptors}


def monitors(rtm: Any) -> List[Dict[str, Any]]:
    """One status per monitor object (several functions may share one), then the plain
    monitor functions."""
    from .monitors import MonitorFunction, monitor_status as by_object
    return by_object(rtm) + [monitor_status(monitor) for monitor in rtm.monitors
                             if not isinstance(monitor, MonitorFunction)]


def history(rtm: Any) -> Dict[str, Any]:
    """What the broker's history holds, and its bounds (docs/history.md)."""
    return dict(rtm.broker.history_figures()._asdict(),
                max_channels=rtm.settings.history_max_channels,
                max_bytes=rtm.settings.history_max_bytes)


def stats(rtm: Any) -> Dict[str, Any]:
    transports = Counter(conn.info.transport for conn in list(rtm.connections.values()))
    return {
        "pid": os.getpid(),
        "uptime_seconds": round(time.time() - STARTED, 3),
        "connections": len(rtm.connections),
        "sessions": sum(len(endpoint.sessions) for endpoint in rtm.app.endpoints),
        "connections_by_transport": dict(transports),
        "half_open": half_open(),
        "channels": len(rtm.channels),
        "messages_in": rtm.counters["messages_in"],
        "published": rtm.counters["published"],
        "deliveries": rtm.counters["deliveries"],
        "hook_errors": rtm.counters["errors"],
        "incidents": dict(incidents.counts),
        "broker": rtm.broker.status(),
        "history": history(rtm),
        "monitors": monitors(rtm),
        "process": process_figures(),
    }


class StatsCollector:
    """A prometheus_client collector reading the live numbers at each scrape (no global
    registry: each server registers its own)."""

    def __init__(self, rtm: Any) -> None:
        self.rtm = rtm

    def collect(self) -> Iterator[Any]:
        current = stats(self.rtm)
        by_transport = GaugeMetricFamily("realtimemagic_connections",
                                         "Open client sessions", labels=["transport"])
        for transport, count in sorted(current["connections_by_transport"].items()):
            by_transport.add_metric([transport], count)
        yield by_transport
        yield GaugeMetricFamily("realtimemagic_half_open", "Connections waiting for their "
                                "request headers", value=current["half_open"])
        yield GaugeMetricFamily("realtimemagic_channels", "Channels with local subscribers",
                                value=current["channels"])
        for name, help_text in (
                ("messages_in", "Messages received from clients"),
                ("published", "Messages published to local subscribers"),
                ("deliveries", "Messages queued to clients"),
                ("hook_errors", "Hooks that raised")):
            yield CounterMetricFamily("realtimemagic_" + name, help_text, value=current[name])
        by_kind = CounterMetricFamily("realtimemagic_incidents", "Malformed or too slow "
                                      "requests, refused connections", labels=["kind"])
        for kind, count in sorted(current["incidents"].items()):
            by_kind.add_metric([kind], count)
        yield by_kind
        link = current["broker"]
        yield GaugeMetricFamily("realtimemagic_broker_connected", "1 when the broker is connected",
                                value=1 if link.get("state") == "connected" else 0)
        for name, help_text in BROKER_COUNTERS:
            if name in link:
                yield CounterMetricFamily("realtimemagic_broker_" + name, help_text,
                                          value=link[name])
        kept = current["history"]
        for name, help_text in (("channels", "Channels with a history"),
                                ("entries", "Messages kept in histories"),
                                ("bytes", "Bytes charged to histories (history_max_bytes)")):
            yield GaugeMetricFamily("realtimemagic_history_" + name, help_text, value=kept[name])
        yield CounterMetricFamily("realtimemagic_history_dropped",
                                  "Histories dropped to stay within the history bounds",
                                  value=kept["dropped"])
