"""The one config object.

Every setting, limit included, is a field of :class:`Settings` with its default, its unit and a
line of help.  The constructor keywords of ``RealTimeMagic``, the ``rtm-serve`` flags, the
``RTM_*`` environment variables and the settings table in ``docs/settings.md`` are all generated
from these fields (see :func:`add_cli_arguments`, :func:`from_environ`, :func:`settings_table`),
so a new limit is added here and nowhere else.

This module is pure: no gevent, no sockets.
"""
import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from .exceptions import ConfigError

#: The sockjs-client build that /iframe.html loads by default.
DEFAULT_SOCKJS_URL = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"

KiB = 1024


def setting(default: Any, help: str, unit: str = "", cli: bool = True) -> Any:
    """A dataclass field carrying the help text and unit used by the CLI, env and docs."""
    return field(default=default, metadata={"help": help, "unit": unit, "cli": cli})


@dataclass
class Settings:
    """Every knob of a realtimemagic server.  Durations are seconds, sizes are bytes."""

    host: str = setting("127.0.0.1", "Interface to listen on.")
    port: int = setting(9000, "TCP port of the SockJS/WebSocket listener (0 picks a free one).")
    prefix: str = setting("/pubsub", "URL prefix of the SockJS endpoint.")
    local: Optional[bool] = setting(
        None, "Seed-style shortcut: true binds 127.0.0.1, false binds all interfaces "
        "(overrides host when given).")
    broker: str = setting(
        "memory://", "Broker connecting several processes: memory:// (one process), "
        "redis://host:port/db, or postgresql://... (a libpq URL).")
    broker_queue_size: int = setting(
        10000, "Messages waiting to be sent to the broker (while it is slow or down). Past it "
        "the oldest is dropped, counted in the stats and logged.", "messages")
    broker_reconnect_min: float = setting(
        0.5, "First wait before reconnecting to a lost broker; doubles each time.", "s")
    broker_reconnect_max: float = setting(
        30.0, "Longest wait between two reconnection attempts.", "s")
    broker_health_interval: float = setting(
        10.0, "A quiet broker connection is checked (PING, SELECT 1) this often, so that a "
        "half-open connection is found.", "s")

    heartbeat_interval: float = setting(
        25.0, "A heartbeat frame goes to an idle receiver this often.", "s")
    disconnect_delay: float = setting(
        5.0, "A session with no receiver for this long is closed.", "s")
    response_limit: int = setting(
        128 * KiB, "A streaming response (xhr_streaming, eventsource, htmlfile) is ended after "
        "this many bytes so the browser can free it; the client reconnects.", "bytes")
    max_message_size: int = setting(
        64 * KiB, "Largest incoming protocol message (one SockJS message, one raw WebSocket "
        "message). Larger ones get a too_large error; the connection lives on.", "bytes")
    max_frame_size: int = setting(
        256 * KiB, "Largest WebSocket message or HTTP send body (a SockJS frame may batch several "
        "messages). Larger WebSocket messages close with 1009; larger bodies get 413.", "bytes")
    outbox_max_frames: int = setting(
        10000, "Messages waiting for one slow client. Past this the client is closed with "
        "4001 \"Client too slow\"; nothing is dropped silently.", "messages")
    outbox_max_bytes: int = setting(
        8 * 1024 * KiB, "Characters of text waiting for one slow client (bytes, for ASCII), "
        "same answer as outbox_max_frames.", "characters")
    max_subscriptions: int = setting(
        100, "Channels one connection may be subscribed to; past it: a limit error.", "channels")
    rate_limit: float = setting(
        50.0, "Messages per second one connection may send (a burst of twice as many passes). "
        "Past it: rate_limited errors; a client that keeps going for another burst is closed "
        "with 4029 \"Rate limit exceeded\".", "messages/s")
    hook_pool_size: int = setting(
        1000, "Greenlets running hooks at once, for all connections together.", "greenlets")
    max_pending_messages: int = setting(
        100, "Messages of one connection in hand at once (their hooks running or waiting). Past "
        "it the connection is read no further until one is done (TCP backpressure; nothing is "
        "dropped).", "messages")
    send_timeout: float = setting(
        30.0, "A WebSocket write that makes no progress for this long ends the connection (the "
        "client stopped reading or vanished).", "s")
    header_timeout: float = setting(
        10.0, "A request's line and headers must arrive within this long after the connection "
        "opens (or, on a kept-alive connection, after the previous response); past it the "
        "connection is closed, with 408 on its first request.", "s")
    body_timeout: float = setting(
        10.0, "A send body (xhr_send, jsonp_send, POST /api/publish) must arrive whole within "
        "this long after its headers; past it: 408 and the connection is closed.", "s")
    websocket_enabled: bool = setting(True, "Offer the websocket transport.")
    cookie_needed: bool = setting(
        False, "JSESSIONID cookie for load balancers that stick sessions by cookie.")
    sockjs_url: str = setting(
        DEFAULT_SOCKJS_URL, "sockjs-client script that /iframe.html loads.")
    namespaces: str = setting(
        "{}", "Per-namespace history and presence, as JSON: {\"chat\": {\"history_size\": 100, "
        "\"history_ttl\": 300, \"presence\": true, \"join_leave\": true}} (docs/history.md).")
    max_connections: int = setting(
        10000, "Sessions one process serves at once; past it new ones are refused with 503 "
        "\"Too many connections\" (the existing ones live on). It bounds as well the connections "
        "waiting for their request headers: past it a new connection gets 503 and is closed.",
        "sessions")
    allowed_origins: str = setting(
        "", "Origins (scheme://host[:port], comma-separated) whose pages may connect, checked "
        "on the WebSocket handshake and on every CORS request; * allows any. Empty (the "
        "default): automatic, any origin unless an authenticator reads cookies "
        "(DjangoAuthenticator), then only the origins the site trusts and the server's own "
        "(docs/authentication.md#origins). Requests that no page of another origin made "
        "(same-origin, not from a browser) are always allowed.")
    shutdown_timeout: float = setting(
        5.0, "On SIGTERM/SIGINT, time given to requests and hooks to finish after every session "
        "was sent 1001 \"Server shutting down\".", "s")
    api: bool = setting(True, "Serve the internal API (publish, stats, metrics, health).")
    api_host: str = setting("127.0.0.1", "Interface of the internal API's listener.")
    api_port: int = setting(
        -1, "Port of the internal API: -1 is port + 1 (a free port when port is 0), 0 a free "
        "port.")
    api_key: str = setting(
        "", "When set, POST /api/publish needs 'Authorization: Bearer <api_key>'.")
    demo: bool = setting(
        False, "Serve the demo page at / (rtm-serve with no application turns it on).")
    sweep_interval: float = setting(
        1.0, "How often the one sweeper greenlet checks sessions for expiry and heartbeats "
        "(capped at a quarter of the shortest of heartbeat_interval and disconnect_delay).", "s")

    def __post_init__(self) -> None:
        if self.local is not None:
            self.host = "127.0.0.1" if self.local else "0.0.0.0"
        if not self.prefix.startswith("/") and self.prefix != "":
            raise ConfigError("prefix must start with '/': %r" % self.prefix)
        self.prefix = self.prefix.rstrip("/")
        for name in ("heartbeat_interval", "disconnect_delay", "sweep_interval", "rate_limit",
                     "broker_reconnect_min", "broker_reconnect_max", "broker_health_interval",
                     "header_timeout", "body_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError("%s must be positive" % name)
        for name in ("response_limit", "max_message_size", "max_frame_size",
                     "outbox_max_frames", "outbox_max_bytes", "max_subscriptions",
                     "hook_pool_size", "max_pending_messages", "broker_queue_size",
                     "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigError("%s must be at least 1" % name)

    @property
    def tick(self) -> float:
        """Seconds between two sweeps."""
        return min(self.sweep_interval, self.heartbeat_interval / 4, self.disconnect_delay / 4)

    @property
    def origins_automatic(self) -> bool:
        """allowed_origins left empty: the authenticators decide (see RealTimeMagic)."""
        return not self.allowed_origins.strip()

    @property
    def origins(self) -> Optional[frozenset]:
        """The allowed origins, or None when any is (``*``, or automatic)."""
        if self.origins_automatic:
            return None
        names = [name.strip().rstrip("/") for name in self.allowed_origins.split(",")]
        return None if "*" in names else frozenset(name for name in names if name)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def fields() -> List[dataclasses.Field]:
    return list(dataclasses.fields(Settings))


def field_names() -> List[str]:
    return [f.name for f in fields()]


def _field_type(f: dataclasses.Field) -> type:
    default = f.default
    if isinstance(default, bool) or f.type in ("bool", "Optional[bool]"):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def parse_value(f: dataclasses.Field, text: str) -> Any:
    """Turn a flag or environment text into the field's type."""
    kind = _field_type(f)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError("%s expects true or false, got %r" % (f.name, text))
    try:
        return kind(text)
    except ValueError:
        raise ConfigError("%s expects a %s, got %r" % (f.name, kind.__name__, text)) from None


def env_name(name: str) -> str:
    return "RTM_" + name.upper()


def from_environ(environ: Mapping[str, str]) -> Dict[str, Any]:
    """The settings given as ``RTM_*`` environment variables."""
    values = {}
    for f in fields():
        text = environ.get(env_name(f.name))
        if text is not None:
            values[f.name] = parse_value(f, text)
    return values


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting; an absent flag leaves the value to env and defaults."""
    for f in fields():
        if not f.metadata.get("cli", True):
            continue
        unit = f.metadata.get("unit")
        help_text = "%s Default: %s%s. Env: %s." % (
            f.metadata["help"], f.default, " " + unit if unit else "", env_name(f.name))
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                            type=lambda text, f=f: parse_value(f, text), help=help_text,
                            metavar=_field_type(f).__name__.upper())


def from_cli(namespace: argparse.Namespace) -> Dict[str, Any]:
    return {name: getattr(namespace, name) for name in field_names()
            if getattr(namespace, name, None) is not None}


def build(keywords: Optional[Mapping[str, Any]] = None,
          environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Settings from defaults, then ``RTM_*`` variables, then explicit keywords (strongest)."""
    values = from_environ(os.environ if environ is None else environ)
    for name, value in (keywords or {}).items():
        if name not in field_names():
            raise ConfigError("unknown setting %r" % name)
        values[name] = value
    return Settings(**values)


def settings_table() -> str:
    """The Markdown table of docs/settings.md."""
    rows = ["| setting | flag | environment | default | meaning |",
            "| --- | --- | --- | --- | --- |"]
    for f in fields():
        unit = f.metadata.get("unit")
        default = "%r%s" % (f.default, " " + unit if unit else "")
        rows.append("| `%s` | `--%s` | `%s` | %s | %s |" % (
            f.name, f.name.replace("_", "-"), env_name(f.name), default.replace("|", "\\|"),
            f.metadata["help"].replace("|", "\\|")))
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    # `python -m realtimemagic.config > docs/settings.md` regenerates the settings page.
    print("# Settings\n\nEvery setting is a keyword of `RealTimeMagic(...)`, a flag of `rtm-serve` "
          "and an `RTM_*` environment variable; a keyword or flag wins over the environment, which "
          "wins over the default. This page "
          "is generated from `realtimemagic/config.py` (`make docs`).\n")
    print(settings_table(), end="")
