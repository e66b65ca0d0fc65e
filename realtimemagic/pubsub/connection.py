"""``conn``: what every hook gets for one client (SPEC section 2)."""
import logging
from typing import Any, Dict, Iterable, List, Optional, Union

from ..exceptions import RequestRefused
from ..runtime.connection import ConnectionInfo, SockJSConnection
from . import protocol
from .channels import Delivery
from .interfaces import PubSubServer
from .lane import Lane
from .ratelimit import TokenBucket

log = logging.getLogger(__name__)


def channel_name(channel: Union[str, Dict[str, str]]) -> str:
    """A channel given as a name or, as in the seed, as ``{'channel': name}``."""
    name: Any = channel.get("channel") if isinstance(channel, dict) else channel
    problem = protocol.channel_error(name)
    if problem:
        raise RequestRefused(protocol.BAD_REQUEST, problem)
    return name


class Connection:
    """One client session as the application sees it.

    ``state`` is a dict for the application; ``master`` is the RealTimeMagic object (to the
    pub/sub modules, what :class:`~.interfaces.PubSubServer` says of it).  One per connection,
    so no other attributes (``__slots__``): what the application keeps goes in ``state``.
    """

    __slots__ = ("master", "sockjs", "lane", "bucket", "state", "_channels", "_held",
                 "__weakref__")

    def __init__(self, master: PubSubServer, sockjs: SockJSConnection, lane: Lane,
                 bucket: TokenBucket) -> None:
        self.master = master
        self.sockjs = sockjs
        self.lane = lane
        self.bucket = bucket
        self.state: Dict[str, Any] = {}
        self._channels: Dict[str, None] = {}
        # Deliveries held back while a history is being replayed, by channel (a dict only
        # while one is).
        self._held: Optional[Dict[str, List[Delivery]]] = None

    # -- what it is ------------------------------------------------------------------------

    @property
    def info(self) -> ConnectionInfo:
        """ip, headers, cookies, query arguments, path and transport of the opening request."""
        return self.sockjs.info

    @property
    def session_id(self) -> str:
        return self.sockjs.session_id

    @property
    def channels(self) -> Iterable[str]:
        """The channels this client is subscribed to, in the order it subscribed."""
        return tuple(self._channels)

    @property
    def is_open(self) -> bool:
        return self.sockjs.is_open

    @property
    def presence_info(self) -> Any:
        """How presence describes this client: ``state['presence']`` when an authenticator or
        an opening hook set it, else ``{"session": session_id}``."""
        return self.state.get("presence") or {"session": self.session_id}

    # -- what the application does -----------------------------------------------------------

    def subscribe(self, channel: Union[str, Dict[str, str]]) -> bool:
        """Subscribe this client (also ``subscribe({'channel': c})``, as in the seed).  The
        application's own call: authenticators are not consulted.  True if newly subscribed;
        raises RequestRefused for a bad name or past ``max_subscriptions``."""
        name = channel_name(channel)
        if name in self._channels:
            return False
        if len(self._channels) >= self.master.settings.max_subscriptions:
            raise RequestRefused(protocol.LIMIT, "at most %d subscriptions per connection"
                                 % self.master.settings.max_subscriptions, name)
        if not self.is_open:
            return False
        self._channels[name] = None
        self.master.channels.subscribe(name, self)
        self.master.joined(self, name)
        return True

    def unsubscribe(self, channel: Union[str, Dict[str, str]]) -> bool:
        """True if it was subscribed."""
        name = channel_name(channel)
        if name not in self._channels:
            return False
        del self._channels[name]
        self.master.channels.unsubscribe(name, self)
        self.master.left(self, name)
        return True

    def unsubscribe_all(self) -> None:
        channels = list(self._channels)
        self.master.channels.unsubscribe_all(self, channels)
        self._channels.clear()
        for name in channels:
            self.master.left(self, name)

    def send(self, message: Any) -> None:
        """Send ``message`` (any JSON value) to this client only, as its JSON text.  Never
        blocks; callable from any greenlet or thread."""
        self.master.loop_thread.call(self.sockjs.send, protocol.encode(message))

    def close(self, code: int = 3000, reason: str = "Go away!") -> None:
        self.master.loop_thread.call(self.sockjs.close, code, reason)

    # -- what the server does ----------------------------------------------------------------

    def deliver(self, message: Delivery) -> None:
        """A published message, encoded once for all its recipients."""
        if self._held and message.channel in self._held:
            self._held[message.channel].append(message)
            return
        self.sockjs.send(message)

    def hold(self, channel: str) -> None:
        """Keep deliveries on ``channel`` back (while its history is read)."""
        if self._held is None:
            self._held = {}
        self._held[channel] = []

    def release(self, channel: str) -> List[Delivery]:
        """Stop holding ``channel`` back; what was held, in order."""
        if self._held is None:
            return []
        held = self._held.pop(channel, [])
        if not self._held:
            self._held = None
        return held

    def answer(self, answer: Dict[str, Any]) -> None:
        self.sockjs.send(protocol.encode(answer))

    def __repr__(self) -> str:
        return "<Connection %s %s>" % (self.session_id, self.info.transport)
