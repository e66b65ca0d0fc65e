"""The same application under gunicorn's gevent worker instead of rtm-serve:

    gunicorn -k gevent -w 1 -b 127.0.0.1:<port> examples.sockjs_endpoints:app

sockjs-client in Node (websocket, xhr-streaming, eventsource, xhr-polling), and a raw WebSocket
(websocket-client) on /echo/websocket and /close/websocket.  For the WebSocket upgrade the server
takes the client's socket from ``environ['gunicorn.socket']``.
"""
import importlib.util
import struct
import sys

import pytest

from conftest import free_port, need, run_process
from test_sockjs_client_node import (MESSAGES, NODE_TRANSPORTS, check_result, need_node_client,
                                     run_node_client)

pytestmark = pytest.mark.slow

TIMEOUT = 5.0


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def gunicorn_flags():
    from gunicorn.config import KNOWN_SETTINGS
    return {flag for setting in KNOWN_SETTINGS for flag in (setting.cli or [])}


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory):
    """gunicorn with one gevent worker, serving examples.sockjs_endpoints:app with the default
    settings."""
    need(installed("gunicorn") and installed("gevent"), "gunicorn or gevent is not installed")
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1",
               "-b", "127.0.0.1:%d" % port, "--graceful-timeout", "3",
               "examples.sockjs_endpoints:app"]
    if "--no-control-socket" in gunicorn_flags():
        # gunicorn 25+ opens a control socket under ~/.gunicorn by default; not needed here.
        command.insert(-1, "--no-control-socket")
    with run_process(command, port, tmp_path_factory.mktemp("gunicorn"),
                     name="gunicorn") as server:
        yield server


@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_gunicorn_node_sockjs_client(gunicorn_server, transport):
    need_node_client()
    result = run_node_client(gunicorn_server.url, transport)
    check_result(result, transport, server_log=gunicorn_server.log())


def websocket_client():
    need(installed("websocket"), "websocket-client is not installed")
    import websocket
    return websocket


def test_gunicorn_raw_websocket_echo(gunicorn_server):
    websocket = websocket_client()
    ws = websocket.create_connection(gunicorn_server.ws_url + "/echo/websocket", timeout=TIMEOUT)
    try:
        for message in MESSAGES:
            ws.send(message)
        for index, sent in enumerate(MESSAGES):
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT, "message %d: opcode %r" % (index, opcode)
            assert data.decode("utf-8") == sent, "message %d came back changed" % index
        ws.send_close(websocket.STATUS_NORMAL, b"Done")
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", data[:2])[0] == 1000, data
    finally:
        ws.shutdown()


def test_gunicorn_raw_websocket_close_code(gunicorn_server):
    websocket = websocket_client()
    ws = websocket.create_connection(gunicorn_server.ws_url + "/close/websocket", timeout=TIMEOUT)
    try:
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE, "got %r %r, not a close frame" % (
            opcode, data)
        code = struct.unpack("!H", data[:2])[0]
        assert (code, data[2:].decode("utf-8")) == (3000, "Go away!")
        ws.send_close(websocket.STATUS_NORMAL)
    finally:
        ws.shutdown()


def test_gunicorn_sockjs_websocket_close_frame(gunicorn_server):
    """SockJS framing over the WebSocket: open frame, then c[3000,"Go away!"]."""
    websocket = websocket_client()
    ws = websocket.create_connection(gunicorn_server.ws_url + "/close/000/gunicorn/websocket",
                                     timeout=TIMEOUT)
    try:
        assert ws.recv() == "o"
        assert ws.recv() == 'c[3000,"Go away!"]'
    finally:
        ws.shutdown()
