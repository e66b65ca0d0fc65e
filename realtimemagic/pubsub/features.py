"""Subscribing to a channel with history (with recovery), and presence (docs/history.md)."""
from typing import Any, Dict, List

from ..config import FIXED
from ..exceptions import RequestRefused
from . import protocol
from .connection import Connection
from .history import recover
from .interfaces import PubSubServer
from .namespaces import NamespaceOptions

SUBSCRIBE_TIMEOUT = FIXED.subscribe_timeout  # s: the broker confirms it listens to a channel


def subscribe_with_history(master: PubSubServer, conn: Connection, request: protocol.Request,
                           options: NamespaceOptions) -> None:
    """Subscribe ``conn``, then answer with the channel's position and, when the request gave
    ``since``, whether what the client missed can be replayed; replay it, then go live: no gap
    (live deliveries are held while the history is read) and no duplicate (offsets decide)."""
    channel = request.channel
    conn.hold(channel)
    try:
        conn.subscribe(channel)
        if not master.broker.wait_subscribed(channel, SUBSCRIBE_TIMEOUT):
            raise RequestRefused(protocol.INTERNAL, "the broker did not confirm the "
                                 "subscription in time", channel, request.request_id)
        snapshot = master.broker.snapshot(channel, options)
    except BaseException:
        for message in conn.release(channel):
            conn.deliver(message)
        raise
    # From here to the end nothing waits: no delivery can slip in between.
    held = conn.release(channel)
    details: Dict[str, Any] = {"recoverable": True, "epoch": snapshot.epoch or "",
                               "offset": snapshot.top}
    replay: List[Any] = []
    if request.since is not None:
        recovered, replay = recover(request.since.offset, request.since.epoch, snapshot)
        details["recovered"] = recovered
    if not replay and held and held[0].offset is not None:
        # Going live at the first held delivery: the position is the one just before it.
        details["offset"] = min(details["offset"], held[0].offset - 1)
    if request.request_id is not None or request.since is not None:
        conn.answer(protocol.reply("subscribe", channel, request.request_id, **details))
    last = request.since.offset if replay and request.since is not None else -1
    for entry in replay:
        conn.answer({"action": "message", "payload": {
            "channel": channel, "message": entry.message, "offset": entry.offset,
            "epoch": snapshot.epoch}})
        last = entry.offset
    for message in held:
        if message.offset is None or message.offset > last:
            conn.deliver(message)


def presence(master: PubSubServer, conn: Connection, request: protocol.Request,
             options: NamespaceOptions) -> None:
    if not options.presence:
        raise RequestRefused(protocol.BAD_REQUEST, "presence is off for this channel's "
                             "namespace", request.channel, request.request_id)
    members = master.broker.presence_members(request.channel)
    conn.answer(protocol.reply("presence", request.channel, request.request_id,
                               clients=members))
