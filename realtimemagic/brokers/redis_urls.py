"""Redis URLs, shared by the Redis broker and the Redis monitor (docs/deployment.md):

- one server: ``redis://[[user]:password@]host:6379/0``, ``rediss://...``, ``unix://...``
  (redis-py's own forms);
- a master found through Redis Sentinel:
  ``redis+sentinel://[[user]:password@]host:26379,host2:26379/<service>[/<db>]``, the
  credentials being the master's (``?sentinel_password=`` for sentinels that want one,
  ``?client_name=`` as in redis-py's URLs);
- shards (the broker only): several of the above separated by commas,
  ``redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0``.

A Sentinel client asks the sentinels which server is the master each time it opens a
connection, so a connection opened after a failover reaches the new master.
"""
import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import FIXED
from ..exceptions import ConfigError

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
SENTINEL_TIMEOUT = FIXED.redis_sentinel_timeout  # s: a sentinel names the master within this
# A comma that starts another URL (a sentinel URL has commas of its own between its hosts).
SHARD_SEPARATOR = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


class SentinelURL(NamedTuple):
    sentinels: List[Tuple[str, int]]
    service: str
    db: int
    username: Optional[str]
    password: Optional[str]
    sentinel_password: Optional[str]
    client_name: Optional[str]


def split_shards(url: str) -> List[str]:
    """The URLs of a comma-separated list (one URL: a list of one)."""
    return [part for part in SHARD_SEPARATOR.split(url.strip()) if part]


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() == SENTINEL_SCHEME


def parse_sentinel(url: str) -> SentinelURL:
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    sentinels = [_host_port(host, url) for host in hosts.split(",") if host]
    path = [part for part in parts.path.split("/") if part]
    if not sentinels or not 1 <= len(path) <= 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError("a Sentinel URL is redis+sentinel://[:password@]host:26379[,host:port"
                          "...]/<service>[/<db>], not %r" % without_password(url))
    query = parse_qs(parts.query)
    return SentinelURL(sentinels, unquote(path[0]), int(path[1]) if len(path) == 2 else 0,
                       unquote(username) or None, unquote(password) or None,
                       query.get("sentinel_password", [None])[0],
                       query.get("client_name", [None])[0])


def _host_port(text: str, url: str) -> Tuple[str, int]:
    host, colon, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not colon:
        host, port = text, str(SENTINEL_PORT)
    if not port.isdigit():
        raise ConfigError("bad sentinel address %r in %r" % (text, without_password(url)))
    return host.strip("[]"), int(port)


def client(url: str, **options: Any) -> Any:
    """A redis-py client (``redis.Redis``) for one server or one Sentinel-managed master;
    ``options`` are redis-py's connection keywords.  (redis-py is imported here: the callers
    name the missing extra.)"""
    import redis
    from redis.sentinel import Sentinel
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    target = parse_sentinel(url)
    sentinel_options: Dict[str, Any] = {"socket_timeout": SENTINEL_TIMEOUT,
                                        "socket_connect_timeout": SENTINEL_TIMEOUT}
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    if target.client_name:
        options["client_name"] = target.client_name
    return Sentinel(target.sentinels, sentinel_kwargs=sentinel_options).master_for(
        target.service, db=target.db, username=target.username, password=target.password,
        **options)


def without_password(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return "%s%s%s:***@%s" % (scheme, separator, credentials.split(":", 1)[0], location)
