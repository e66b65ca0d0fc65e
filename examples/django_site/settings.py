"""Settings of the example site, shared by the site and its realtime server (they must agree on
SECRET_KEY, the session engine and the database).

Environment (all optional):

- ``DJANGO_SITE_DATABASE``: ``sqlite`` (default; ``DJANGO_SITE_SQLITE`` is the file, default
  ``db.sqlite3`` here) or ``postgresql`` (``DJANGO_SITE_PG_NAME`` default ``test``,
  ``DJANGO_SITE_PG_HOST`` default ``127.0.0.1``, ``DJANGO_SITE_PG_PORT``, ``DJANGO_SITE_PG_USER``,
  ``DJANGO_SITE_PG_PASSWORD``, ``DJANGO_SITE_PG_SCHEMA``: the tables go to this schema, which
  ``users.py`` creates; ``DJANGO_SITE_PG_APPLICATION_NAME``: shown in pg_stat_activity).
  Only PostgreSQL (psycopg2 with psycogreen) lets the realtime server's ORM queries run without
  blocking its other clients; SQLite is fine to try the example.
- ``DJANGO_SITE_CONN_MAX_AGE``: Django's CONN_MAX_AGE, seconds (the realtime server closes its
  connections after each check whatever it says).
- ``DJANGO_SITE_REALTIME_ENDPOINT``: where pages find the realtime server (default
  ``http://127.0.0.1:9000/pubsub``).
- ``DJANGO_SITE_TRUSTED_ORIGINS``: CSRF_TRUSTED_ORIGINS, comma-separated: the origins of the
  site's pages (default ``http://127.0.0.1:8000,http://localhost:8000``, runserver's), which the
  realtime server accepts along with ALLOWED_HOSTS on the default ports.
- ``DJANGO_SITE_FAST_PASSWORDS=1``: a fast password hash, for tests.
- ``DJANGO_SITE_SECRET_KEY``, ``DJANGO_SITE_TOKEN_KEY``: the example's secrets (the defaults are
  for trying it out only).
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SITE_SECRET_KEY",
                            "example-only-do-not-deploy-7f1c2b9e4d8a6035c1e2f3a4b5c6d7e8")
DEBUG = os.environ.get("DJANGO_SITE_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "realtimemagic.contrib.django",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "examples.django_site.urls"
WSGI_APPLICATION = "examples.django_site.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
    ]},
}]


def database() -> dict:
    if os.environ.get("DJANGO_SITE_DATABASE", "sqlite") != "postgresql":
        return {"ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ.get("DJANGO_SITE_SQLITE", str(BASE_DIR / "db.sqlite3"))}
    options = {}
    schema = os.environ.get("DJANGO_SITE_PG_SCHEMA")
    if schema:
        options["options"] = "-c search_path=%s" % schema
    if os.environ.get("DJANGO_SITE_PG_APPLICATION_NAME"):
        options["application_name"] = os.environ["DJANGO_SITE_PG_APPLICATION_NAME"]
    return {"ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("DJANGO_SITE_PG_NAME", "test"),
            "HOST": os.environ.get("DJANGO_SITE_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("DJANGO_SITE_PG_PORT", ""),
            "USER": os.environ.get("DJANGO_SITE_PG_USER", ""),
            "PASSWORD": os.environ.get("DJANGO_SITE_PG_PASSWORD", ""),
            "OPTIONS": options}


DATABASES = {"default": dict(database(), CONN_MAX_AGE=int(os.environ.get(
    "DJANGO_SITE_CONN_MAX_AGE", "0")))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The session cookie reaches the realtime server: same host (any port), or set
# SESSION_COOKIE_DOMAIN to the parent domain of both.  SameSite=Lax (the default) keeps it
# from other sites' pages, not from other ports or subdomains of this one: the realtime server
# accepts pages of the origins Django trusts only (ALLOWED_HOSTS on the default ports, and
# CSRF_TRUSTED_ORIGINS: the site's origin on its port, as runserver serves it).
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_TRUSTED_ORIGINS = os.environ.get(
    "DJANGO_SITE_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000").split(",")

# Tests only (DJANGO_SITE_FAST_PASSWORDS=1): a fast hash, as Django's testing docs advise.
if os.environ.get("DJANGO_SITE_FAST_PASSWORDS") == "1":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

USE_TZ = True

# realtimemagic.contrib.django: {% realtime_endpoint %}
REALTIMEMAGIC_ENDPOINT = os.environ.get("DJANGO_SITE_REALTIME_ENDPOINT",
                                        "http://127.0.0.1:9000/pubsub")
# The key of the tokens minted by /realtime-token/ and checked by realtime_token.py.
REALTIMEMAGIC_TOKEN_KEY = os.environ.get("DJANGO_SITE_TOKEN_KEY",
                                         "example-only-token-key-0123456789abcdef")
