"""The test server of the official SockJS protocol suite (github.com/sockjs/sockjs-protocol).

    python examples/sockjs_endpoints.py --port 8081
    SOCKJS_URL=http://127.0.0.1:8081 python sockjs-protocol.py

Endpoints: /echo (response_limit 4096), /close (closes each session with 3000 "Go away!"),
/disabled_websocket_echo (no websocket transport), /cookie_needed_echo (JSESSIONID cookie).
"""
from realtimemagic import config
from realtimemagic.echo import CloseHandler, EchoHandler
from realtimemagic.runtime.endpoint import SockJSEndpoint
from realtimemagic.runtime.router import Router


def make_app(settings=None):
    settings = settings or config.build()
    return Router([
        SockJSEndpoint(EchoHandler(), settings, prefix="/echo", response_limit=4096),
        SockJSEndpoint(CloseHandler(), settings, prefix="/close"),
        SockJSEndpoint(EchoHandler(), settings, prefix="/disabled_websocket_echo",
                       websocket_enabled=False),
        SockJSEndpoint(EchoHandler(), settings, prefix="/cookie_needed_echo",
                       cookie_needed=True),
    ])


app = make_app()

if __name__ == "__main__":
    import sys
    from realtimemagic.cli import main
    main(["examples.sockjs_endpoints:app"] + sys.argv[1:], default_port=8081)
