"""The static parts of the protocol: the greeting, ``/info`` and ``/iframe.html``."""
import hashlib
import json
import random
from typing import Optional, Tuple

from ..config import FIXED

GREETING = "Welcome to SockJS!\n"

# One year, as sockjs-node: the iframe page only changes with the sockjs_url setting.
CACHE_SECONDS = FIXED.sockjs_cache_seconds

IFRAME_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def info_body(websocket: bool, cookie_needed: bool, rng: Optional[random.Random] = None) -> str:
    """The JSON of ``/info``.  ``entropy`` is a fresh random 32-bit number each time (from
    ``rng``, or the module's generator when None)."""
    randint = rng.randint if rng is not None else random.randint
    return json.dumps({
        "websocket": websocket,
        "origins": ["*:*"],
        "cookie_needed": cookie_needed,
        "entropy": randint(0, 2 ** 32 - 1),
    })


def iframe_page(sockjs_url: str) -> Tuple[str, str]:
    """The iframe page for ``sockjs_url`` and its quoted ETag."""
    html = IFRAME_TEMPLATE.format(sockjs_url=sockjs_url.replace('"', "&quot;"))
    etag = '"%s"' % hashlib.md5(html.encode("utf-8")).hexdigest()
    return html, etag
