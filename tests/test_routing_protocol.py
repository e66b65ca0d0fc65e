"""The official SockJS protocol tests (tests/test_sockjs_protocol*.py) against
``gunicorn -k realtimemagic.gunicorn.Worker -w 4`` on one port with Redis: every response closes
its connection (tests/routedapps.py), so each request of a test reaches any worker and its
session is served through the worker that holds it.  Same suite, same timings (heartbeat 25 s,
disconnect delay 5 s); only the ``sockjs_server`` fixture differs.
"""
import pytest

from conftest import REDIS_URL, need, redis_available
from routed import gunicorn_routed
from test_sockjs_protocol import *  # noqa: F401,F403
from test_sockjs_protocol_polling import *  # noqa: F401,F403
from test_sockjs_protocol_streaming import *  # noqa: F401,F403
from test_sockjs_protocol_websocket import *  # noqa: F401,F403

pytestmark = pytest.mark.slow

# Tests that start a server of their own (other timings) add nothing here.
for _name in [name for name, value in list(globals().items()) if name.startswith("test_")
              and "quick_client" in getattr(value, "__code__", None).co_varnames[:8]]:
    del globals()[_name]


@pytest.fixture(scope="module")
def sockjs_server(tmp_path_factory):
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
    with gunicorn_routed(tmp_path_factory.mktemp("protocol"), REDIS_URL,
                         app="examples.sockjs_endpoints:app",
                         env={"RTM_HEARTBEAT_INTERVAL": "25",
                              "RTM_DISCONNECT_DELAY": "5"}) as server:
        yield server
