"""A small Django site whose pages get realtime messages from realtimemagic
(docs/authentication.md).

Run it from the repository's root, in two terminals (SQLite in examples/django_site/db.sqlite3
unless DJANGO_SITE_DATABASE=postgresql, see settings.py)::

    python -m examples.django_site.users alice:secret bob:secret   # tables and users
    python examples/django_site/manage.py runserver 127.0.0.1:8000
    rtm-serve examples.django_site.realtime:rtm                     # 127.0.0.1:9000

Log in at http://127.0.0.1:8000/ as alice: the page subscribes to alice's channel ``user:<id>``,
and ``rtm-publish user:1 '"hello alice"'`` shows up on it.  The realtime server reads the Django
session from the cookie the browser sends it (same host 127.0.0.1, another port: cookies are
not port-specific), with the site's own settings.

- ``settings.py``, ``urls.py``, ``views.py``, ``templates/``: the site, with Django's own
  LoginView and the ``{% realtime_endpoint %}`` tag of ``realtimemagic.contrib.django``.
- ``users.py``: creates the tables and the users without manage.py (tests use it).
- ``realtime.py``: the realtime server, with a DjangoAuthenticator subclass.
- ``realtime_token.py``: a realtime server for pages on other origins, where the site's cookie
  does not travel: the site mints signed tokens (``/realtime-token/``), the server checks them.
"""
