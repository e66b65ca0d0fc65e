"""Channel authenticators (SPEC section 2).

``rtm.authenticators`` maps a namespace to a list of authenticators; ``'default'`` applies to
every channel and the list of a channel's namespace (``chat`` for ``chat:room1``) as well.
An authenticator refuses by raising :class:`AuthenticationError`; its message is the reason of
the ``forbidden`` error the client gets.

Two come with realtimemagic, each in a module of its own so that its dependency is optional:
:class:`realtimemagic.auth.contrib.DjangoAuthenticator` (the Django session cookie; extra
``django``) and :class:`realtimemagic.auth.token.TokenAuthenticator` (signed tokens; extra
``jwt``).  See docs/authentication.md.
"""
from typing import Any

from ..exceptions import AuthenticationError
# Consulting the lists is the pub/sub layer's work (it calls them like any hook list); the
# names stay importable from here, where 0.1 had them.
from ..pubsub.authenticators import authenticators_for, check_channel, check_message

__all__ = ["AuthenticationError", "Authenticator", "authenticators_for", "check_channel",
           "check_message"]


class Authenticator:
    """Base class.  Override ``check_channel`` (subscribe) and ``check_message`` (publish), or
    the seed's ``check(conn, channel)`` which serves both."""

    error_message = "Forbidden"
    #: True for an authenticator that knows the user by a cookie the browser sends by itself
    #: (a site's session cookie): any page the browser sends it from would connect as the
    #: logged-in user.  With ``allowed_origins`` left automatic, only pages of the origins
    #: it trusts (``trusts_origin``) and of the server itself may then connect
    #: (docs/authentication.md, "Origins").
    uses_cookies = False

    def trusts_origin(self, origin: str) -> bool:
        """With ``uses_cookies``: may pages of ``origin`` (``scheme://host[:port]``, or
        ``null``) connect with the cookie?  By default none but the server's own may."""
        return False

    def trusted_origins(self) -> str:
        """What ``trusts_origin`` accepts, in words, for the startup log."""
        if type(self).trusts_origin is Authenticator.trusts_origin:
            return "no other origin"
        return "the origins %s.trusts_origin accepts" % type(self).__name__

    def check(self, conn: Any, channel: str) -> None:
        """Refuse by raising ``AuthenticationError(self.error_message)``."""

    def check_channel(self, conn: Any, channel: str) -> None:
        self.check(conn, channel)

    def check_message(self, conn: Any, channel: str, message: Any) -> None:
        self.check(conn, channel)
