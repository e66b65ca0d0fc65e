"""``rtm-serve [module:attribute] [--setting value ...]`` (also ``python -m realtimemagic``).

The attribute may be a ``RealTimeMagic`` object (the flags change its settings), a WSGI
application built on our endpoints (a ``Router`` or ``SockJSEndpoint``), or a ``SockJSHandler``
(instance or class, served at ``--prefix``).  With none, plain pub/sub is served, with the demo
page at ``/``.

A start-up failure is one line on stderr that says what to change, and exit status 2
(``--debug`` shows the traceback).
"""
import argparse
import errno
import importlib
import os
import sys
from typing import List, NoReturn, Optional

from . import __version__, config
from .exceptions import BadRequest, ConfigError, ListenError, PublishError

USAGE_ERROR = 2
#: What to try when the listening socket cannot be had, by errno.
LISTEN_HINTS = {errno.EADDRINUSE: "try --port", errno.EACCES: "try a port above 1023",
                errno.EADDRNOTAVAIL: "try --host"}


def patch_all() -> None:
    """Make the standard library and psycopg2 cooperative.  Call it first, before anything
    imports socket, ssl, threading or psycopg2 (``rtm-serve`` and the gunicorn worker do).
    On PyPy, ``import psycopg2`` then gives psycopg2cffi (:mod:`realtimemagic.pgdriver`)."""
    from gevent import monkey
    monkey.patch_all()
    try:
        from . import pgdriver  # psycopg2, or psycopg2cffi registered as psycopg2 on PyPy
        pgdriver.make_cooperative()
    except ImportError:  # no PostgreSQL driver (or psycogreen) installed: nothing to patch
        pass


def load(spec: str):
    """``module:attribute`` to the object (the current directory is importable, as for
    gunicorn)."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ConfigError:
        raise  # its own message is the one to show (a missing extra, a setting)
    except ImportError as error:
        raise ConfigError("cannot import %s: %s (is the application's directory the current "
                           "one, or on PYTHONPATH?)" % (module_name, error)) from error
    target = module
    for part in (attribute or "app").split("."):
        if not hasattr(target, part):
            raise ConfigError("%s has no attribute %r (write module:attribute, e.g. app:rtm)"
                               % (module_name, attribute or "app"))
        target = getattr(target, part)
    return target


def build_app(target, settings, keywords):
    """Turn what ``rtm-serve`` was given into a WSGI application; ``keywords`` are the settings
    given as flags, which win over the ones in the application's code."""
    from .magic import RealTimeMagic
    from .runtime.connection import SockJSHandler
    from .runtime.endpoint import SockJSEndpoint
    if isinstance(target, type) and issubclass(target, (RealTimeMagic, SockJSHandler)):
        target = target()
    if isinstance(target, RealTimeMagic):
        target.configure(**keywords)
        return target
    if isinstance(target, SockJSHandler):
        return SockJSEndpoint(target, settings)
    if not callable(target):
        raise ConfigError("%r is not an application (a RealTimeMagic, a SockJSHandler or a "
                           "WSGI callable)" % (target,))
    return target


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors in one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, "%s: %s (see %s --help)\n" % (self.prog, message, self.prog))


LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ConfigError("--log-level expects one of %s, got %r" % (", ".join(LOG_LEVELS), text))
    return text.lower()


def parser() -> argparse.ArgumentParser:
    result = OneLineParser(prog="rtm-serve", description=(
        "Serve a realtimemagic application: pub/sub over SockJS and WebSocket. Every setting is "
        "a flag and an RTM_* environment variable (a flag wins). Also: python -m "
        "realtimemagic."))
    result.add_argument("application", nargs="?", default=None,
                        help="module:attribute of the application (default: none, plain "
                        "pub/sub with the demo page at /)")
    result.add_argument("--log-level", default="info", type=log_level,
                        help="debug, info, warning or error. Default: info.")
    result.add_argument("--debug", action="store_true",
                        help="show the traceback of a start-up error")
    result.add_argument("--version", action="version",
                        version="realtimemagic %s (Python %s)" % (__version__,
                                                               sys.version.split()[0]))
    config.add_cli_arguments(result)
    return result


def main(argv: Optional[List[str]] = None, default_port: Optional[int] = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    try:
        serve(arguments, default_port)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if "--debug" in arguments:
            raise
        fail("rtm-serve", error)


def fail(program: str, error: Exception) -> NoReturn:
    """Exit with status 2 and one line on stderr."""
    sys.stderr.write(_one_line(program, error) + "\n")
    sys.exit(USAGE_ERROR)


def _one_line(program: str, error: Exception) -> str:
    if isinstance(error, ListenError) and error.errno in LISTEN_HINTS:
        text = "%s (%s)" % (error, LISTEN_HINTS[error.errno])
    elif isinstance(error, (ConfigError, PublishError)):
        text = str(error)
    else:
        text = "%s: %s (--debug shows the traceback)" % (type(error).__name__, error)
    return "%s: %s" % (program, " ".join(text.split()))  # one line, whatever it holds


def serve(argv: List[str], default_port: Optional[int] = None) -> None:
    # Pure so far: a wrong flag or setting is told before gevent loads.
    arguments = parser().parse_args(argv)
    keywords = config.from_cli(arguments)
    if default_port is not None:
        keywords.setdefault("port", default_port)
    settings = config.build(keywords)
    patch_all()
    from .magic import RealTimeMagic
    from .runtime.server import Server, configure_logging

    configure_logging(arguments.log_level)
    # The flags go into the environment before the application is imported, so that an
    # application that builds its settings at import time (config.build()) sees them too.
    for name, value in keywords.items():
        os.environ[config.env_name(name)] = str(value)
    if arguments.application:
        target = load(arguments.application)
    else:
        target = RealTimeMagic(**dict({"demo": True}, **keywords))
    app = build_app(target, settings, keywords)
    if isinstance(app, RealTimeMagic):
        settings = app.settings  # its own, with the flags applied
    if not isinstance(app, RealTimeMagic):  # which routes its endpoints when it starts
        from . import routing
        routing.enable(app)
    server = Server(app, settings.host, settings.port, settings.shutdown_timeout, settings)
    server.serve_forever()


def publish_main(argv: Optional[List[str]] = None) -> None:
    """``rtm-publish CHANNEL MESSAGE``: publish through a server's internal API.  MESSAGE is
    taken as JSON when it is strict JSON, else as a string ("NaN" is the string "NaN")."""
    import json
    from .publisher import api_publish
    from .pubsub.protocol import parse_json
    result = OneLineParser(prog="rtm-publish", description=publish_main.__doc__)
    result.add_argument("channel")
    result.add_argument("message")
    result.add_argument("--api-url", default=os.environ.get("RTM_API_URL",
                                                            "http://127.0.0.1:9001"),
                        help="the server's internal API (its port + 1 by default). Default: "
                        "%(default)s. Env: RTM_API_URL.")
    result.add_argument("--api-key", default=os.environ.get("RTM_API_KEY", ""),
                        help="the server's api_key, if it has one. Env: RTM_API_KEY.")
    arguments = result.parse_args(argv)
    try:
        message = parse_json(arguments.message)
    except BadRequest:
        message = arguments.message
    try:
        api_publish(arguments.api_url, arguments.channel, message, arguments.api_key)
    except Exception as error:
        fail("rtm-publish", error)
    print(json.dumps({"published": True}))


if __name__ == "__main__":
    main()
