"""Consulting ``rtm.authenticators`` (namespace -> list) on subscribe and publish: ``'default'``
applies to every channel, then the list of the channel's namespace.  An authenticator refuses by
raising :class:`AuthenticationError`; the authenticators themselves live in
:mod:`realtimemagic.auth`."""
from typing import Any, Iterable, List, Mapping

from .protocol import namespace


def authenticators_for(authenticators: Mapping[str, List[Any]], channel: str) -> Iterable[Any]:
    """The authenticators that apply to ``channel``: 'default' first, then its namespace's."""
    found = list(authenticators.get("default", ()))
    name = namespace(channel)
    if name is not None and name != "default":
        found.extend(authenticators.get(name, ()))
    return found


def check_channel(authenticators: Mapping[str, List[Any]], conn: Any, channel: str) -> None:
    """Raise AuthenticationError unless every authenticator lets ``conn`` subscribe."""
    for authenticator in authenticators_for(authenticators, channel):
        method = getattr(authenticator, "check_channel", None)
        if method is not None:
            method(conn, channel)
        else:
            authenticator.check(conn, channel)


def check_message(authenticators: Mapping[str, List[Any]], conn: Any, channel: str,
                  message: Any) -> None:
    """Raise AuthenticationError unless every authenticator lets ``conn`` publish."""
    for authenticator in authenticators_for(authenticators, channel):
        method = getattr(authenticator, "check_message", None)
        if method is not None:
            method(conn, channel, message)
        else:
            authenticator.check(conn, channel)
