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
import difflib
import functools
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import (Any, Dict, List, Mapping, Optional, Tuple, Union, get_args, get_origin,
                    get_type_hints)

from .exceptions import ConfigError

KiB = 1024

#: The URL schemes of the brokers (realtimemagic.brokers).
BROKER_SCHEMES = ("memory", "redis", "rediss", "unix", "redis+sentinel", "postgresql",
                  "postgres", "nats")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s:@]+(:[0-9]{1,5})?$", re.IGNORECASE)
_HOST = re.compile(r"^[A-Za-z0-9_.:%\[\]-]+$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]*$")  # visible ASCII: goes into an HTTP header


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
        "redis://host:port/db, redis+sentinel://host:26379,host2:26379/service/db (a master "
        "found through Sentinel), several Redis URLs separated by commas (shards), "
        "postgresql://... (a libpq URL) or nats://host:port.")
    broker_queue_size: int = setting(
        10000, "Messages waiting to be sent to the broker (while it is slow or down). Past it "
        "the oldest is dropped, counted in the stats and logged.", "messages")
    broker_reconnect_min: float = setting(
        0.5, "First wait before reconnecting to a lost broker; doubles each time.", "s")
    broker_reconnect_max: float = setting(
        30.0, "Longest wait between two reconnection attempts.", "s")
    routing: bool = setting(
        True, "With a Redis (redis://, redis+sentinel://, shards) or postgresql:// broker, any "
        "process serves any SockJS request: "
        "a request for a session another process holds is served through that process, over "
        "the broker (docs/deployment.md). False: each session's requests must reach the "
        "process that holds it (sticky load balancing).")
    routing_ttl: float = setting(
        10.0, "A session's entry in the broker's session directory lives this long unless the "
        "process holding it refreshes it (every third of it). A process that dies is noticed "
        "within 1.5 times this: its clients get a close or a new session.", "s")
    broker_sequence_channels: int = setting(
        100000, "Channels an instance numbers its messages on, so that the others drop "
        "duplicates and count lost messages; past it the least recently used channel's count "
        "starts again (a loss across the restart is not counted).", "channels")
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
        "", "sockjs-client script that /iframe.html and the demo page load (an http(s) URL or "
        "a path); empty: the copy of sockjs-client 1.6.1 the server serves at "
        "{prefix}/sockjs.min.js.")
    namespaces: str = setting(
        "{}", "Per-namespace history and presence, as JSON: {\"chat\": {\"history_size\": 100, "
        "\"history_ttl\": 300, \"presence\": true, \"join_leave\": true}} (docs/history.md).")
    history_max_channels: int = setting(
        100000, "Channels with a history one process keeps (memory://; with redis://, the "
        "whole Redis). Past it the channel whose last message is the oldest loses its "
        "history (docs/history.md).", "channels")
    history_max_bytes: int = setting(
        16 * 1024 * KiB, "Memory the histories may take, as charged per channel and per "
        "message (an upper bound of what CPython holds for them; with redis://, an estimate "
        "of what Redis holds). Past it, as history_max_channels.", "bytes")
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
    maintenance_interval: float = setting(
        10.0, "How often the broker's upkeep runs: expired histories are forgotten (memory://) "
        "or dropped from the history index (redis://).", "s")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f, getattr(self, f.name))
        if self.local is not None:
            self.host = "127.0.0.1" if self.local else "0.0.0.0"
        if not self.prefix.startswith("/") and self.prefix != "":
            raise ConfigError("prefix must start with '/': %r" % self.prefix)
        self.prefix = self.prefix.rstrip("/")
        for name in ("heartbeat_interval", "disconnect_delay", "sweep_interval", "rate_limit",
                     "broker_reconnect_min", "broker_reconnect_max", "broker_health_interval",
                     "header_timeout", "body_timeout", "send_timeout", "routing_ttl",
                     "maintenance_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError("%s must be positive, got %r" % (name, getattr(self, name)))
        for name in ("response_limit", "max_message_size", "max_frame_size",
                     "outbox_max_frames", "outbox_max_bytes", "max_subscriptions",
                     "hook_pool_size", "max_pending_messages", "broker_queue_size",
                     "max_connections", "history_max_channels", "history_max_bytes",
                     "broker_sequence_channels"):
            if getattr(self, name) < 1:
                raise ConfigError("%s must be at least 1, got %r" % (name, getattr(self, name)))
        if self.shutdown_timeout < 0:
            raise ConfigError("shutdown_timeout must not be negative, got %r"
                              % self.shutdown_timeout)
        self._check_addresses()
        self._check_texts()
        if self.max_message_size > self.max_frame_size:
            raise ConfigError("max_message_size (%d) must not exceed max_frame_size (%d): a "
                              "message travels in one frame" % (self.max_message_size,
                                                                self.max_frame_size))

    def _check_addresses(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be 0 to 65535 (0: a free one), got %d" % self.port)
        if not -1 <= self.api_port <= 65535:
            raise ConfigError("api_port must be -1 (port + 1), 0 (a free one) or up to 65535, "
                              "got %d" % self.api_port)
        for name in ("host", "api_host"):
            if not _HOST.match(getattr(self, name)):
                raise ConfigError("%s must be an IP address or a host name, got %r"
                                  % (name, getattr(self, name)))
        scheme = self.broker.partition("://")[0].lower()
        if "://" not in self.broker or scheme not in BROKER_SCHEMES:
            raise ConfigError("unsupported broker %r: use memory://, redis://host:port/db, "
                              "redis+sentinel://host:26379/service, "
                              "postgresql://user@host/db or nats://host:4222" % self.broker)
        for origin in self.allowed_origins.split(","):
            origin = origin.strip().rstrip("/")
            if origin and origin != "*" and not _ORIGIN.match(origin):
                raise ConfigError("allowed_origins: %r is not an origin: write scheme://host"
                                  "[:port], e.g. https://%s (or * for any)" % (
                                      origin, origin.split("://")[-1]))

    def _check_texts(self) -> None:
        if self.sockjs_url and not self.sockjs_url.startswith(("/", "http://", "https://")):
            raise ConfigError("sockjs_url must be an http(s) URL or a path starting with '/', "
                              "got %r (empty: the copy the server serves)" % self.sockjs_url)
        if not _PRINTABLE.match(self.api_key):
            raise ConfigError("api_key must be visible ASCII characters without spaces (it is "
                              "sent in an HTTP header)")
        try:
            namespaces = json.loads(self.namespaces or "{}")
        except ValueError as error:
            raise ConfigError("namespaces must be JSON: %s" % error) from None
        if not isinstance(namespaces, dict):
            raise ConfigError("namespaces must be a JSON object, got %r" % self.namespaces)

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
        check_names(changes)
        return dataclasses.replace(self, **changes)


_TYPE_HINTS = get_type_hints(Settings)


def fields() -> List[dataclasses.Field]:
    return list(dataclasses.fields(Settings))


def field_names() -> List[str]:
    return [f.name for f in fields()]


def check_names(keywords: Mapping[str, Any]) -> None:
    """Refuse a keyword that is no setting, naming the closest one."""
    names = field_names()
    for name in keywords:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            raise ConfigError("unknown setting %r%s" % (
                name, " (did you mean %r?)" % close[0] if close else ""))


def _field_type(f: dataclasses.Field) -> type:
    """The declared type of a setting, ``Optional[...]`` unwrapped: bool, int, float or str."""
    kind = _TYPE_HINTS[f.name]
    if get_origin(kind) is Union:
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    return kind


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_type(f: dataclasses.Field, value: Any) -> None:
    kind = _field_type(f)
    if value is None and f.default is None:
        return
    if kind is float:
        good = (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))
    elif kind is int:
        good = isinstance(value, int) and not isinstance(value, bool)
    else:
        good = isinstance(value, kind)
    if not good:
        raise ConfigError("%s expects %s, got %r" % (f.name, _TYPE_NAMES[kind], value))


def parse_value(f: dataclasses.Field, text: str, source: str = "") -> Any:
    """Turn a flag or environment text into the field's type; ``source`` (``--port``,
    ``RTM_PORT``) names it in the error."""
    kind = _field_type(f)
    source = source or f.name
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise ConfigError("%s expects true or false (or 1/0, yes/no, on/off), got %r"
                          % (source, text))
    try:
        return kind(text.strip()) if kind is not str else text
    except ValueError:
        raise ConfigError("%s expects %s, got %r" % (source, _TYPE_NAMES[kind], text)) from None


def env_name(name: str) -> str:
    return "RTM_" + name.upper()


def from_environ(environ: Mapping[str, str]) -> Dict[str, Any]:
    """The settings given as ``RTM_*`` environment variables."""
    values = {}
    for f in fields():
        text = environ.get(env_name(f.name))
        if text is not None:
            values[f.name] = parse_value(f, text, env_name(f.name))
    return values


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting; an absent flag leaves the value to env and defaults."""
    for f in fields():
        if not f.metadata.get("cli", True):
            continue
        unit = f.metadata.get("unit")
        help_text = "%s Default: %s%s. Env: %s." % (
            f.metadata["help"], shown_default(f), " " + unit if unit else "", env_name(f.name))
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, dest=f.name, default=None,
                            type=functools.partial(_parse_flag, f, flag),
                            help=help_text, metavar=_field_type(f).__name__.upper())


def _parse_flag(f: dataclasses.Field, flag: str, text: str) -> Any:
    return parse_value(f, text, flag)


def shown_default(f: dataclasses.Field) -> str:
    """The default as a user would type it."""
    if f.default is None:
        return "unset"
    if isinstance(f.default, bool):
        return "true" if f.default else "false"
    return str(f.default) if f.default != "" else "empty"


def from_cli(namespace: argparse.Namespace) -> Dict[str, Any]:
    return {name: getattr(namespace, name) for name in field_names()
            if getattr(namespace, name, None) is not None}


def build(keywords: Optional[Mapping[str, Any]] = None,
          environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Settings from defaults, then ``RTM_*`` variables, then explicit keywords (strongest)."""
    values = from_environ(os.environ if environ is None else environ)
    check_names(keywords or {})
    values.update(keywords or {})
    return Settings(**values)


def fixed(value: Any, help: str, unit: str = "") -> Any:
    """A field of :class:`FixedValues`: its value, unit and a line of help for the docs."""
    return field(default=value, metadata={"help": help, "unit": unit})


@dataclass(frozen=True)
class FixedValues:
    """The timeouts, sizes and counts the server uses that are not settings: fixed by a
    protocol (SockJS, PostgreSQL, NATS), or small enough that nobody should need another value.
    Each is written here once; the modules that use them read ``FIXED``."""

    # The SockJS core, the transports and the runtime.
    sockjs_cache_seconds: int = fixed(
        365 * 24 * 60 * 60, "How long browsers may cache /iframe.html and CORS preflights "
        "(one year, as sockjs-node).", "s")
    websocket_read_size: int = fixed(64 * KiB, "Bytes read from a WebSocket at a time.", "bytes")
    websocket_close_timeout: float = fixed(
        2.0, "How long a WebSocket waits for the client's answer to its close frame before "
        "shutting the socket down.", "s")
    listen_backlog: int = fixed(
        1024, "Connections the kernel queues before they are accepted (capped by the kernel's "
        "net.core.somaxconn): a reconnect storm after a restart must not overflow it, or the "
        "clients wait a second for their SYN to be sent again.", "connections")
    accept_pause: Tuple[float, float] = fixed(
        (0.01, 1.0), "First and longest pause of the accept loop while no file descriptor can "
        "be had (the pause doubles).", "s")
    incident_log_interval: float = fixed(
        10.0, "One log line per kind of incident (malformed request, refusal) at most this "
        "often; the others are counted.", "s")
    json_fast_brackets: int = fixed(
        256, "JSON texts with this many brackets ([ and {) or more are read by the standard "
        "library, not orjson (whose nesting limit is not the interpreter's: "
        "realtimemagic/jsoncodec.py).", "brackets")
    # Pub/sub and the application.
    subscribe_timeout: float = fixed(
        5.0, "How long a subscribe waits for the broker to confirm that this process listens to "
        "the channel (then answers, or refuses a history subscription with internal).", "s")
    broker_start_timeout: float = fixed(
        5.0, "How long start-up waits for the broker before serving local clients anyway.", "s")
    monitor_restart_backoff: Tuple[float, float] = fixed(
        (0.5, 30.0), "First and longest wait before restarting a monitor function of "
        "rtm.monitors that raised or returned (the wait doubles).", "s")
    api_publish_timeout: float = fixed(
        10.0, "How long Publisher.api_publish waits for the internal API.", "s")
    token_ttl: int = fixed(3600, "How long a token from make_token() is valid unless told.", "s")
    # Brokers.
    postgres_notify_limit: int = fixed(
        7999, "Largest NOTIFY payload PostgreSQL accepts (8000 with its terminating NUL); the "
        "broker sends larger messages through a table, a monitor refuses them.", "bytes")
    postgres_large_message_seconds: int = fixed(
        300, "How long the PostgreSQL broker keeps a large message in its table.", "s")
    redis_presence_ttl: float = fixed(
        60.0, "A presence member not refreshed for this long is gone (its process died).", "s")
    redis_presence_refresh: float = fixed(
        15.0, "How often an instance refreshes its own presence members in Redis.", "s")
    memory_str_header: int = fixed(
        80, "Bytes the memory:// history charges a string besides its characters.", "bytes")
    memory_channel_cost: int = fixed(
        400, "Bytes the memory:// history charges a channel (its LRU slot, record and list) "
        "besides its name, against history_max_bytes.", "bytes")
    memory_entry_cost: int = fixed(
        160, "Bytes the memory:// history charges an entry (tuple, offset, time) besides its "
        "JSON.", "bytes")
    memory_shrink_from: int = fixed(
        1024, "Channels: a memory:// history table smaller than this is not rebuilt to free "
        "memory.", "channels")
    memory_collect_after: int = fixed(
        1024, "Expired memory:// history channels worth a full garbage collection.", "channels")
    broker_command_latency: float = fixed(
        0.05, "Longest wait before a broker's listener sends a queued (un)subscribe.", "s")
    redis_publish_batch: int = fixed(
        500, "Queued messages the Redis broker sends in one pipeline (one round trip) at most.",
        "messages")
    broker_loss_log_interval: float = fixed(
        10.0, "Messages a broker lost are logged at most this often (always counted).", "s")
    broker_origins_per_channel: int = fixed(
        64, "Origins (instances, Publisher helpers) whose numbering a broker remembers per "
        "channel, to drop duplicates and count losses.", "origins")
    redis_sentinel_timeout: float = fixed(
        2.0, "A Redis sentinel must say which server is the master within this.", "s")
    redis_channel_cost: int = fixed(
        400, "Bytes a Redis history channel is charged besides its text (keys, index "
        "entries), against history_max_bytes.", "bytes")
    redis_entry_cost: int = fixed(
        24, "Bytes a Redis history entry is charged besides its text (its list node).", "bytes")
    redis_expired_per_call: int = fixed(
        100, "Expired histories one publish drops in Redis (the upkeep drops the rest).",
        "channels")
    nats_connect_timeout: float = fixed(
        5.0, "TCP connect, then INFO and the PONG of the NATS handshake, within this.", "s")
    nats_write_timeout: float = fixed(
        10.0, "A NATS server that takes nothing for this long is gone.", "s")
    nats_receive_size: int = fixed(64 * KiB, "Bytes read from NATS at a time.", "bytes")
    nats_max_payload: int = fixed(
        64 * 1024 * KiB, "Largest NATS message read before the server's INFO has said its own "
        "max_payload.", "bytes")
    nats_server_max_payload: int = fixed(
        1024 * KiB, "A NATS server's max_payload when its INFO does not say (its default).",
        "bytes")
    nats_max_control_line: int = fixed(
        16 * KiB, "Longest line accepted from a NATS server (its own limit is 4096).", "bytes")
    # Routing a session's requests between processes (the routing setting).
    routing_probe_timeout: float = fixed(
        1.0, "The longest a new receiving request waits to learn whether the request it would "
        "replace, held by another process, is still there.", "s")
    routing_reconnect: Tuple[float, float] = fixed(
        (0.5, 10.0), "First and longest wait before the routing inbox listens again after its "
        "connection was lost (the wait doubles).", "s")
    routing_refresh_batch: int = fixed(
        500, "Sessions refreshed in the Redis directory per round trip.", "sessions")
    routing_postgres_pool_size: int = fixed(
        4, "PostgreSQL connections for the routing directory and its posts, besides the "
        "listener's.", "connections")
    routing_orphan_seconds: int = fixed(
        300, "Directory entries and inbox rows left behind by a dead process are deleted after "
        "this long.", "s")
    # Monitors: the defaults of the keywords of PsqlMonitor and RedisMonitor.
    monitor_keepalive_interval: float = fixed(
        10.0, "An idle monitor connection is checked (SELECT 1, PING) this often.", "s")
    monitor_check_timeout: float = fixed(
        5.0, "A check, LISTEN or SUBSCRIBE must be answered within this.", "s")
    monitor_connect_timeout: float = fixed(
        10.0, "Connecting and subscribing must be done within this.", "s")
    monitor_backoff_initial: float = fixed(
        0.5, "Wait before the first attempt to reopen a lost monitor connection.", "s")
    monitor_backoff_max: float = fixed(
        30.0, "Longest wait between two attempts (the wait doubles each time).", "s")
    monitor_backoff_jitter: float = fixed(
        0.2, "Each wait is shortened by a random part up to this fraction.", "fraction")
    tcp_keepalive_probes: int = fixed(
        3, "Unanswered TCP keepalive probes before the kernel drops a monitor's connection.",
        "probes")


#: The one instance: ``config.FIXED.websocket_close_timeout``.
FIXED = FixedValues()


def fixed_values_table() -> str:
    """The Markdown table of the fixed values in docs/settings.md."""
    rows = ["| name | value | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(FixedValues):
        unit = f.metadata.get("unit")
        value = "%r%s" % (f.default, " " + unit if unit else "")
        rows.append("| `%s` | %s | %s |" % (f.name, value, f.metadata["help"]))
    return "\n".join(rows) + "\n"


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
    print(settings_table())
    print("## Fixed values\n\nThe timeouts, sizes and counts that are not settings, each "
          "written once in `realtimemagic/config.py` (`FixedValues`) and read from there.\n")
    print(fixed_values_table(), end="")
