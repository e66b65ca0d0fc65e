"""The origins that may connect when ``allowed_origins`` is left automatic (SPEC section 6,
docs/authentication.md "Origins").

With an authenticator that reads cookies (``uses_cookies``), only pages of the server's own
origin and of the origins every such authenticator trusts may connect: the browser sends the
cookie from any page of the same site (another port, another subdomain; with ``SameSite=None``
any site), and such a page would otherwise connect as the logged-in user.  Without one, any
origin may: a token must be given to the page, nothing travels by itself.
"""
import logging
from typing import Any, List, Mapping, Optional

from ..config import Settings
from ..transports.origins import OriginRule, is_own

log = logging.getLogger("realtimemagic")


def cookie_authenticators(authenticators: Mapping[str, List[Any]]) -> List[Any]:
    """The authenticators of every namespace that read cookies, each once."""
    found: List[Any] = []
    for group in authenticators.values():
        for authenticator in group:
            if getattr(authenticator, "uses_cookies", False) and not any(
                    authenticator is seen for seen in found):
                found.append(authenticator)
    return found


def trusted_by(readers: List[Any]) -> OriginRule:
    """Pages of the server itself, and of the origins that every cookie reader trusts."""
    def rule(origin: str, host: Optional[str]) -> bool:
        return is_own(origin, host) or all(
            getattr(reader, "trusts_origin", lambda origin: False)(origin) for reader in readers)
    return rule


def automatic_rule(settings: Settings,
                   authenticators: Mapping[str, List[Any]]) -> Optional[OriginRule]:
    """The rule to apply at startup, or None to keep ``settings.allowed_origins`` as it is;
    says in the log what was chosen when cookies are read."""
    readers = cookie_authenticators(authenticators)
    if not readers:
        return None
    names = ", ".join(sorted({type(reader).__name__ for reader in readers}))
    if not settings.origins_automatic:
        if settings.origins is None:
            log.warning("allowed_origins is '*' with cookie authentication (%s): a page of any "
                        "origin that the browser sends the cookie from can connect as the "
                        "logged-in user", names)
        return None
    log.info("allowed_origins automatic, for cookie authentication (%s): pages of this "
             "server and of %s may connect, others get 403 (set --allowed-origins to choose)",
             names, "; ".join(sorted({_describe(reader) for reader in readers})))
    return trusted_by(readers)


def _describe(reader: Any) -> str:
    describe = getattr(reader, "trusted_origins", None)
    return describe() if describe is not None else "no other origin"
