"""``rtm-serve [module:attribute] [--setting value ...]``.

The attribute may be a ``RealTimeMagic`` object (the flags change its settings), a WSGI
application built on our endpoints (a ``Router`` or ``SockJSEndpoint``), or a ``SockJSHandler``
(instance or class, served at ``--prefix``).  With none, plain pub/sub is served.
"""
import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional


def patch_all() -> None:
    """Make the standard library and psycopg2 cooperative.  Call it first, before anything
    imports socket, ssl, threading or psycopg2 (``rtm-serve`` and the gunicorn worker do)."""
    from gevent import monkey
    monkey.patch_all()
    try:
        from psycogreen.gevent import patch_psycopg
        patch_psycopg()
    except ImportError:
        pass


def load(spec: str):
    """``module:attribute`` to the object (the current directory is importable, as for
    gunicorn)."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    target = module
    for part in (attribute or "app").split("."):
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
    return target


def parser() -> argparse.ArgumentParser:
    from . import config
    result = argparse.ArgumentParser(prog="rtm-serve", description=__doc__.split("\n\n")[0])
    result.add_argument("application", nargs="?", default=None,
                        help="module:attribute of the application (default: echo)")
    result.add_argument("--log-level", default="info", help="debug, info, warning, error")
    config.add_cli_arguments(result)
    return result


def main(argv: Optional[List[str]] = None, default_port: Optional[int] = None) -> None:
    patch_all()
    from . import config
    from .runtime.server import Server

    arguments = parser().parse_args(argv)
    logging.basicConfig(level=arguments.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keywords = config.from_cli(arguments)
    if default_port is not None:
        keywords.setdefault("port", default_port)
    try:
        settings = config.build(keywords)
    except config.ConfigError as error:
        sys.exit("rtm-serve: %s" % error)
    # The flags go into the environment before the application is imported, so that an
    # application that builds its settings at import time (config.build()) sees them too.
    for name, value in keywords.items():
        os.environ[config.env_name(name)] = str(value)
    if arguments.application:
        target = load(arguments.application)
    else:
        from .magic import RealTimeMagic
        target = RealTimeMagic(**dict({"demo": True}, **keywords))
    app = build_app(target, settings, keywords)
    from .magic import RealTimeMagic
    if isinstance(app, RealTimeMagic):
        settings = app.settings  # its own, with the flags applied
    server = Server(app, settings.host, settings.port, settings.shutdown_timeout, settings)
    server.serve_forever()


if __name__ == "__main__":
    main()


def publish_main(argv: Optional[List[str]] = None) -> None:
    """``rtm-publish CHANNEL MESSAGE``: publish through a server's internal API.  MESSAGE is
    taken as JSON when it parses, else as a string."""
    import json
    import urllib.error
    import urllib.request
    result = argparse.ArgumentParser(prog="rtm-publish", description=publish_main.__doc__)
    result.add_argument("channel")
    result.add_argument("message")
    result.add_argument("--api-url", default=os.environ.get("RTM_API_URL",
                                                            "http://127.0.0.1:9001"),
                        help="the server's internal API (env RTM_API_URL)")
    result.add_argument("--api-key", default=os.environ.get("RTM_API_KEY", ""),
                        help="the server's api_key, if it has one (env RTM_API_KEY)")
    arguments = result.parse_args(argv)
    try:
        message = json.loads(arguments.message)
    except ValueError:
        message = arguments.message
    request = urllib.request.Request(
        arguments.api_url.rstrip("/") + "/api/publish", method="POST",
        data=json.dumps({"channel": arguments.channel, "message": message}).encode("utf-8"),
        headers={"Content-Type": "application/json"})
    if arguments.api_key:
        request.add_header("Authorization", "Bearer " + arguments.api_key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        sys.exit("rtm-publish: %d %s" % (error.code, error.read().decode("utf-8", "replace")))
    except OSError as error:
        sys.exit("rtm-publish: cannot reach %s: %s" % (arguments.api_url, error))
