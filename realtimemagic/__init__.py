"""realtimemagic: a realtime pub/sub server for the web, on gevent.

Importing the package imports nothing heavy: the pure SockJS core (``realtimemagic.sockjs``) must
stay importable without gevent, so the runtime is loaded on first use.
"""
__version__ = "0.1.0"


def __getattr__(name):
    # PEP 562: lazy exports, so that `import realtimemagic.sockjs` does not pull in gevent.
    if name == "RealTimeMagic":
        from .magic import RealTimeMagic
        return RealTimeMagic
    if name == "patch_all":
        from .cli import patch_all
        return patch_all
    if name == "SockJSEndpoint":
        from .runtime.endpoint import SockJSEndpoint
        return SockJSEndpoint
    if name == "Server":
        from .runtime.server import Server
        return Server
    raise AttributeError("module 'realtimemagic' has no attribute %r" % name)
