"""The SockJS transports, one module each, over the shared parts in :mod:`.base`."""
from .eventsource import EventSource
from .htmlfile import HtmlFile
from .jsonp import JsonpPolling
from .xhr import XhrPolling, XhrStreaming

#: The HTTP receiver transports by the name in the URL.
HTTP_RECEIVERS = {transport.name: transport for transport in (
    XhrPolling(), XhrStreaming(), EventSource(), HtmlFile(), JsonpPolling())}
