"""The broker interface: :class:`Broker` (everything the server calls on a broker), the
settings every broker is made with, and :class:`WithoutHistory` for a broker that keeps neither
history nor presence."""
from abc import abstractmethod
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Protocol

from ..config import Settings
from ..exceptions import ConfigError
from ..pubsub.history import Snapshot
from ..pubsub.namespaces import NamespaceOptions

Deliver = Callable[..., int]  # deliver(channel, message, action="message", extra=None)


class HistoryFigures(NamedTuple):
    """What a broker's history holds now (for /api/stats and /metrics)."""
    channels: int = 0
    entries: int = 0
    bytes: int = 0
    dropped: int = 0  # channels dropped to stay within history_max_channels/_bytes, ever


class Broker(Protocol):
    """Everything the server (realtimemagic.magic, pubsub/, stats) calls on a broker.

    Each broker (memory://, redis://, postgresql://, and any new one) subclasses this
    explicitly: a method it forgets is then an error when it is instantiated, not an
    ``AttributeError`` in a log years later.  A broker without history or presence says so in
    ``keeps_history`` and raises from those methods; the server never calls them then.

    Calls made inside a fan-out: none.  ``subscribe``/``unsubscribe`` are called when a channel
    gets its first / loses its last local subscriber, after any fan-out in progress; they must
    not wait on the network (queue the command for the listener instead).
    """

    url: str
    url_for_logs: str   # the URL without its password
    shared: bool        # other processes see what is published here
    keeps_history: bool  # history and presence are available

    @abstractmethod
    def start(self) -> None:
        """Connect (in background greenlets) and serve until stop()."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the background greenlets; nothing is sent afterwards."""

    @abstractmethod
    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the broker to be reachable; whether it is."""

    @abstractmethod
    def publish(self, channel: str, message: Any,
                options: Optional[NamespaceOptions] = None) -> None:
        """Deliver to every subscriber of every instance, once; never blocks.  ``options``
        given (a history channel): store it and deliver it with its offset and epoch."""

    @abstractmethod
    def publish_event(self, channel: str, action: str, client: Any) -> None:
        """A join or leave event (``action``) for ``channel``'s subscribers everywhere."""

    @abstractmethod
    def subscribe(self, channel: str) -> None:
        """``channel`` got its first local subscriber: receive what others publish on it."""

    @abstractmethod
    def unsubscribe(self, channel: str) -> None:
        """``channel`` lost its last local subscriber."""

    @abstractmethod
    def wait_subscribed(self, channel: str, timeout: float) -> bool:
        """Wait until what other instances publish on ``channel`` reaches this one."""

    @abstractmethod
    def snapshot(self, channel: str, options: NamespaceOptions) -> Snapshot:
        """``channel``'s history (may wait on the network)."""

    @abstractmethod
    def presence_add(self, channel: str, key: str, info: Any) -> None:
        """Client ``key`` (described by ``info``) is subscribed to ``channel``."""

    @abstractmethod
    def presence_remove(self, channel: str, key: str) -> None:
        """Client ``key`` left ``channel``."""

    @abstractmethod
    def presence_members(self, channel: str) -> List[Any]:
        """The descriptions of ``channel``'s subscribers on every instance."""

    @abstractmethod
    def maintain(self, ttl_of: Callable[[str], float]) -> None:
        """Periodic upkeep, every ``maintenance_interval`` seconds in its own greenlet:
        forget what expired (``ttl_of(channel)``: the channel's history_ttl, 0 = never).
        Brokers with nothing to do implement it as an explicit no-op."""

    @abstractmethod
    def history_figures(self) -> HistoryFigures:
        """What the history holds now, without waiting on the network."""

    @abstractmethod
    def status(self) -> Dict[str, Any]:
        """The broker's part of /api/stats: at least ``url`` and ``state``."""


_DEFAULTS = Settings()


class BrokerSettings:
    """The broker's part of the config; its defaults are the settings' (realtimemagic.config)."""

    def __init__(self, queue_size: int = _DEFAULTS.broker_queue_size,
                 reconnect_min: float = _DEFAULTS.broker_reconnect_min,
                 reconnect_max: float = _DEFAULTS.broker_reconnect_max,
                 health_interval: float = _DEFAULTS.broker_health_interval,
                 history_max_channels: int = _DEFAULTS.history_max_channels,
                 history_max_bytes: int = _DEFAULTS.history_max_bytes,
                 sequence_channels: int = _DEFAULTS.broker_sequence_channels) -> None:
        self.queue_size = queue_size
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.health_interval = health_interval
        self.history_max_channels = history_max_channels
        self.history_max_bytes = history_max_bytes
        self.sequence_channels = sequence_channels

    @classmethod
    def from_config(cls, settings) -> "BrokerSettings":
        return cls(settings.broker_queue_size, settings.broker_reconnect_min,
                   settings.broker_reconnect_max, settings.broker_health_interval,
                   settings.history_max_channels, settings.history_max_bytes,
                   settings.broker_sequence_channels)


class WithoutHistory:
    """For a broker that keeps neither history nor presence.  The server refuses namespaces
    that want them at start-up; these answer a namespace added later, with a clear error."""

    keeps_history = False
    url_for_logs: str

    def snapshot(self, channel: str, options: NamespaceOptions) -> Snapshot:
        raise self._not_kept(channel)

    def presence_add(self, channel: str, key: str, info: Any) -> None:
        raise self._not_kept(channel)

    def presence_remove(self, channel: str, key: str) -> None:
        raise self._not_kept(channel)

    def presence_members(self, channel: str) -> List[Any]:
        raise self._not_kept(channel)

    def _not_kept(self, channel: str) -> ConfigError:
        return ConfigError("%r wants history or presence, which the broker %s does not keep: "
                           "use redis://" % (channel, self.url_for_logs))

