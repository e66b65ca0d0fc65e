"""Where the pages of the site find the realtime server: ``settings.REALTIMEMAGIC_ENDPOINT``."""
from typing import Any, List
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks

SETTING = "REALTIMEMAGIC_ENDPOINT"
#: Without the setting: the endpoint of ``rtm-serve`` with its defaults, on this machine.
DEFAULT_ENDPOINT = "http://127.0.0.1:9000/pubsub"


def realtime_endpoint() -> str:
    """The SockJS endpoint URL the pages connect to: ``http(s)://host[:port]/prefix``, or a
    path on the site's own host (``/pubsub``, behind the same reverse proxy)."""
    return str(getattr(settings, SETTING, DEFAULT_ENDPOINT)).rstrip("/")


def check_endpoint_setting(app_configs: Any = None, **keywords: Any) -> List[checks.CheckMessage]:
    """``realtimemagic.W001`` when the setting is missing, ``E001`` when it is no endpoint."""
    if not hasattr(settings, SETTING):
        return [checks.Warning(
            "%s is not set: pages connect to %s, which works on a development machine only."
            % (SETTING, DEFAULT_ENDPOINT),
            hint="Set %s to the URL of the realtimemagic server, e.g. "
                 "'https://rtm.example.com/pubsub'." % SETTING,
            id="realtimemagic.W001")]
    value = getattr(settings, SETTING)
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or not (parts.scheme in ("http", "https", "ws", "wss") and parts.netloc
                             or not parts.scheme and value.startswith("/")):
        return [checks.Error(
            "%s = %r is not an http(s) or ws(s) URL, nor a path starting with '/'."
            % (SETTING, value), id="realtimemagic.E001")]
    if any(character in value for character in "\"'<>\\ "):
        return [checks.Error("%s = %r contains quotes, angle brackets, backslashes or spaces."
                             % (SETTING, value), id="realtimemagic.E001")]
    return []
