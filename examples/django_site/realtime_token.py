"""A realtime server for pages on other origins, where the site's session cookie does not
travel: ``rtm-serve examples.django_site.realtime_token:rtm``.

The site mints a token for the logged-in user (views.realtime_token, ``/realtime-token/``),
the page connects with it: ``new realtimeMagic.Client('http://127.0.0.1:9000/pubsub?token=' +
token)``, or sends ``{"action": "authenticate", "payload": {"token": token}}`` first.  This
server needs neither Django nor the database: the signature is the proof.
"""
import os

from realtimemagic import RealTimeMagic
from realtimemagic.auth.token import TokenAuthenticator

TOKEN_KEY = os.environ.get("DJANGO_SITE_TOKEN_KEY", "example-only-token-key-0123456789abcdef")

rtm = RealTimeMagic()
TokenAuthenticator(TOKEN_KEY).install(rtm)
