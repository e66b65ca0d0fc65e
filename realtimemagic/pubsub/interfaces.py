"""The seams of the pub/sub layer, as :class:`typing.Protocol`: what the pub/sub modules (the
request handler, the connection, history and presence) may ask of the server, and what they
ask of a broker.  mypy checks that the real ones offer all of it; a test may pass anything
that does.
"""
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Protocol

from ..config import Settings
from ..runtime.threads import LoopThread
from .channels import ChannelRegistry
from .history import Snapshot
from .namespaces import NamespaceOptions

if TYPE_CHECKING:
    from .connection import Connection

class PubSubBroker(Protocol):
    """What pub/sub asks of a broker: the part of :class:`realtimemagic.brokers.interface.Broker`
    (the whole interface, which every broker implements) that the layer below the brokers may
    name."""

    def publish(self, channel: str, message: Any,
                options: Optional[NamespaceOptions] = None) -> None:
        """To every subscriber of every process; ``options`` of a history channel."""

    def publish_event(self, channel: str, action: str, client: Any) -> None:
        """A presence event (``join``/``leave``) to every process."""

    def subscribe(self, channel: str) -> None:
        """This process has a first local subscriber of ``channel``."""

    def unsubscribe(self, channel: str) -> None:
        """... and lost its last one."""

    def wait_subscribed(self, channel: str, timeout: float) -> bool:
        """Whether the broker listens to ``channel`` within ``timeout`` seconds."""

    def snapshot(self, channel: str, options: Any) -> Snapshot:
        """The history of ``channel`` (its position and entries), read at once."""

    def presence_add(self, channel: str, key: str, info: Any) -> None: ...

    def presence_remove(self, channel: str, key: str) -> None: ...

    def presence_members(self, channel: str) -> List[Any]: ...


class PubSubServer(Protocol):
    """What the pub/sub modules may ask of the server (``conn.master``)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def authenticators(self) -> Mapping[str, List[Any]]: ...

    @property
    def channels(self) -> ChannelRegistry: ...

    @property
    def broker(self) -> PubSubBroker: ...

    @property
    def loop_thread(self) -> LoopThread: ...

    def options_for(self, channel: str) -> NamespaceOptions:
        """The namespace options of ``channel`` (history, presence)."""

    def publish_from(self, conn: "Connection", channel: str, message: Any,
                     options: NamespaceOptions) -> None:
        """A client's publish, checked and authorized, with the options already looked up."""

    def joined(self, conn: "Connection", channel: str) -> None: ...

    def left(self, conn: "Connection", channel: str) -> None: ...

