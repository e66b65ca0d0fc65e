"""The pub/sub handler: the receiver that RealTimeMagic registers first by default.

It takes the messages that are pub/sub requests (JSON objects whose ``action`` it knows) and
passes every other message on down the receivers' chain.
"""
from typing import Any

from ..exceptions import AuthenticationError, RequestRefused
from . import authenticators, features, protocol
from .connection import Connection


def pubsub_receiver(conn: Connection, message: Any) -> Any:
    """Handle a subscribe, unsubscribe, publish or presence request; False (stop the chain)
    when it did, None (go on) for anything else."""
    if not protocol.is_pubsub_request(message):
        return None
    master = conn.master
    request_id = protocol.request_id_of(message)
    channel = None
    try:
        request = protocol.parse_request(message)
        channel = request.channel
        options = master.options_for(channel)
        if request.action == "subscribe":
            authenticators.check_channel(master.authenticators, conn, channel)
            if options.history:
                features.subscribe_with_history(master, conn, request, options)
                return False
            conn.subscribe(channel)
            # Answer once the broker listens too: from then on, what any instance publishes
            # arrives.
            master.broker.wait_subscribed(channel, features.SUBSCRIBE_TIMEOUT)
        elif request.action == "presence":
            authenticators.check_channel(master.authenticators, conn, channel)
            features.presence(master, conn, request, options)
            return False
        elif request.action == "unsubscribe":
            conn.unsubscribe(channel)
        else:
            authenticators.check_message(master.authenticators, conn, channel,
                                         request.message)
            master.publish_from(conn, channel, request.message, options)
    except RequestRefused as error:
        conn.answer(protocol.error(error.code, error.reason, error.channel or channel,
                                   error.request_id if error.request_id is not None
                                   else request_id))
        return False
    except AuthenticationError as error:
        conn.answer(protocol.error(protocol.FORBIDDEN, str(error) or "forbidden", channel,
                                   request_id))
        return False
    if request_id is not None:
        conn.answer(protocol.reply(request.action, channel, request_id))
    return False
