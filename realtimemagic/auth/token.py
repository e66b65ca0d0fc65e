"""Signed tokens (JWT): authentication for pages where cookies do not travel (SPEC section 9).

The application's web site mints a token for a user with :func:`make_token`; the page connects
with it in the query string (``http://rtm.example/pubsub?token=...``) or sends it in its first
message::

    {"action": "authenticate", "payload": {"token": "..."}, "id": 1}

and the server answers ``{"action": "authenticated", "payload": {"sub": ..., "exp": ...},
"id": 1}`` (a reply, so only when the request had an ``id``), or the ``forbidden`` error with the
reason.  The token's claims then decide which channels the connection may subscribe and publish
to:

- ``sub``: who the token is for (a string), ``exp``: when it expires (seconds since the epoch);
  both required.
- ``channels``: channel names, where ``*`` matches any run of characters (``room:*``).
- ``namespaces``: namespaces, each allowing all its channels (``chat`` allows ``chat:room1``).

::

    from realtimemagic.auth.token import TokenAuthenticator, make_token
    TokenAuthenticator(KEY).install(rtm)            # every channel needs a token
    make_token(KEY, user.id, channels=['user:%d' % user.id], ttl=3600)

Only the signature is trusted: the key (at least 32 random bytes for HS256) is shared by the
site that mints and the server that verifies, and by nobody else.
"""
import re
import time
from typing import Any, Dict, Iterable, Optional, Sequence, Union

from ..config import FIXED
from ..exceptions import AuthenticationError, ConfigError, MissingExtra

try:
    import jwt
except ImportError as error:
    raise MissingExtra("TokenAuthenticator", "PyJWT", "jwt") from error

from ..pubsub import protocol
from . import Authenticator

__all__ = ["AuthenticationError", "TokenAuthenticator", "make_token", "channel_allowed"]

#: The key of ``conn.state`` that holds the claims of the connection's valid token.
STATE_KEY = "token_claims"
#: The action of the first-message form, and of its reply.
AUTHENTICATE, AUTHENTICATED = "authenticate", "authenticated"
DEFAULT_TTL = FIXED.token_ttl  # seconds a minted token is valid


def make_token(key: Union[str, bytes], subject: Any, channels: Iterable[str] = (),
               namespaces: Iterable[str] = (), ttl: float = DEFAULT_TTL,
               algorithm: str = "HS256", **claims: Any) -> str:
    """A signed token for ``subject`` (made a string: ``42`` gives ``"42"``), valid ``ttl``
    seconds from now, allowing ``channels`` (names or ``*`` patterns) and ``namespaces``.
    Extra ``claims`` are added as they are (``aud``, ``iss``, anything the application reads
    from ``conn.state['token_claims']``)."""
    if ttl <= 0:
        raise ValueError("ttl must be positive (seconds)")
    if isinstance(channels, str) or isinstance(namespaces, str):
        raise TypeError("channels and namespaces are lists of names, not one string")
    now = int(time.time())
    payload = {"sub": str(subject), "iat": now, "exp": now + int(ttl),
               "channels": list(channels), "namespaces": list(namespaces)}
    payload.update(claims)
    return jwt.encode(payload, key, algorithm=algorithm)


def channel_allowed(claims: Dict[str, Any], channel: str) -> bool:
    """Whether the token's ``channels`` or ``namespaces`` allow ``channel``."""
    name = protocol.namespace(channel)
    if name is not None and name in claims.get("namespaces", ()):
        return True
    return any(_pattern(pattern).match(channel) for pattern in claims.get("channels", ()))


_patterns: Dict[str, "re.Pattern[str]"] = {}


def _pattern(text: str) -> "re.Pattern[str]":
    """``*`` matches any run of characters (``:`` included); nothing else is special."""
    compiled = _patterns.get(text)
    if compiled is None:
        if len(_patterns) > 1024:
            _patterns.clear()
        compiled = re.compile(".*".join(re.escape(part) for part in text.split("*")) + r"\Z")
        _patterns[text] = compiled
    return compiled


class TokenAuthenticator(Authenticator):
    """Allow the channels a signed token names.

    ``key``: the HMAC secret (or, with an asymmetric algorithm, the public key).
    ``algorithms``: the accepted ones; HS256 only by default (never let the token choose).
    ``query_parameter``: where the URL carries the token (``?token=...``); None: only the
    authenticate message.  ``publish``: False refuses every client publish on the channels
    this authenticator covers (tokens then grant listening only).  ``leeway``: seconds of
    clock skew tolerated on ``exp``.  ``audience``, ``issuer``: required ``aud``/``iss`` when
    given.  ``require``: the claims a token must have.
    """

    error_message = "a token is required: connect with ?token=... or send an authenticate message"

    def __init__(self, key: Union[str, bytes], algorithms: Sequence[str] = ("HS256",),
                 query_parameter: Optional[str] = "token", publish: bool = True,
                 leeway: float = 0, audience: Optional[str] = None,
                 issuer: Optional[str] = None, require: Sequence[str] = ("sub", "exp")) -> None:
        if not key:
            raise ConfigError("TokenAuthenticator needs a key")
        if not algorithms or "none" in [name.lower() for name in algorithms]:
            raise ConfigError("TokenAuthenticator needs signed algorithms (not 'none')")
        self.key = key
        self.algorithms = list(algorithms)
        self.query_parameter = query_parameter
        self.publish = publish
        self.leeway = leeway
        self.audience = audience
        self.issuer = issuer
        self.require = list(require)

    def install(self, rtm: Any, namespace: str = "default") -> "TokenAuthenticator":
        """Guard the channels of ``namespace`` (``'default'``: every channel) and put the
        authenticate message's receiver first, before the pub/sub handler, so that it runs
        in the connection's order: a subscribe sent after it is checked with its token."""
        for receiver in rtm.receivers:
            other = getattr(receiver, "__self__", None)
            if isinstance(other, TokenAuthenticator) and other is not self:
                raise ConfigError("another TokenAuthenticator is installed: the connection's "
                                  "claims are one per connection, so install one instance, "
                                  "once per namespace it guards")
        rtm.authenticators[namespace].append(self)
        if self.receive not in rtm.receivers:
            rtm.receivers.insert(0, self.receive)
        return self

    # -- tokens ---------------------------------------------------------------------------

    def decode(self, token: Any) -> Dict[str, Any]:
        """The claims of a valid token; AuthenticationError with the reason otherwise."""
        if not isinstance(token, str) or not token:
            raise AuthenticationError("invalid token: expected a non-empty string")
        try:
            claims = jwt.decode(token, self.key, algorithms=self.algorithms,
                                leeway=self.leeway, audience=self.audience, issuer=self.issuer,
                                options={"require": self.require,
                                         "verify_aud": self.audience is not None})
        except jwt.PyJWTError as error:
            raise AuthenticationError(_reason(error)) from None
        for name in ("channels", "namespaces"):
            value = claims.get(name, [])
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise AuthenticationError("invalid token: %r must be a list of strings" % name)
        return claims

    def claims(self, conn: Any) -> Dict[str, Any]:
        """The connection's claims: from its authenticate message, else from the URL's query
        (decoded once, then kept in ``conn.state``).  Raises AuthenticationError when there is
        no valid token, or it has expired since."""
        claims = conn.state.get(STATE_KEY)
        if claims is None:
            token = (conn.info.query.get(self.query_parameter)
                     if self.query_parameter else None)
            if token is None:
                raise AuthenticationError(self.error_message)
            claims = self.decode(token)
            conn.state[STATE_KEY] = claims
        expiry = claims.get("exp")
        if isinstance(expiry, (int, float)) and expiry + self.leeway <= time.time():
            raise AuthenticationError("token expired: send an authenticate message with a new one")
        return claims

    # -- the authenticator ------------------------------------------------------------------

    def check(self, conn: Any, channel: str) -> None:
        if not channel_allowed(self.claims(conn), channel):
            raise AuthenticationError("the token does not allow channel %r" % channel)

    def check_message(self, conn: Any, channel: str, message: Any) -> None:
        self.check(conn, channel)
        if not self.publish:
            raise AuthenticationError("clients may not publish to %r" % channel)

    # -- the receiver of the authenticate message -------------------------------------------

    def receive(self, conn: Any, message: Any) -> Any:
        """``{"action": "authenticate", "payload": {"token": ...}}``: keep the claims of a
        valid token (replacing earlier ones) and reply ``authenticated``; a refused token is
        answered with ``forbidden`` and leaves the connection as it was.  Any other message
        goes on down the chain."""
        if not isinstance(message, dict) or message.get("action") != AUTHENTICATE:
            return None
        request_id = protocol.request_id_of(message)
        payload = message.get("payload")
        token = payload.get("token") if isinstance(payload, dict) else None
        try:
            claims = self.decode(token)
        except AuthenticationError as error:
            conn.answer(protocol.error(protocol.FORBIDDEN, str(error), request_id=request_id))
            return False
        conn.state[STATE_KEY] = claims
        if request_id is not None:
            conn.answer({"action": AUTHENTICATED, "id": request_id,
                         "payload": {"sub": claims.get("sub"), "exp": claims.get("exp"),
                                     "channels": claims.get("channels", []),
                                     "namespaces": claims.get("namespaces", [])}})
        return False

    # Not an application receiver: with only this one and pub/sub, other messages are still
    # answered with bad_request (see RealTimeMagic._handle).
    receive.protocol_receiver = True  # type: ignore[attr-defined]


def _reason(error: Exception) -> str:
    """The client's words for why PyJWT refused a token."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(error, jwt.InvalidSignatureError):
        return "invalid token: the signature does not match"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "invalid token: algorithm not allowed"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return "invalid token: no %r claim" % error.claim
    if isinstance(error, jwt.ImmatureSignatureError):
        return "invalid token: not valid yet"
    if isinstance(error, jwt.InvalidAudienceError):
        return "invalid token: wrong audience"
    if isinstance(error, jwt.InvalidIssuerError):
        return "invalid token: wrong issuer"
    if isinstance(error, jwt.DecodeError):
        return "invalid token: malformed"
    return "invalid token: %s" % error

