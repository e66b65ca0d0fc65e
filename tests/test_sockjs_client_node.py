"""sockjs-client 1.6.1, the real client, in Node against rtm-serve.

``tests/js/echo_client.js`` (run with ``node``) connects with one forced transport, echoes
:data:`MESSAGES` through /echo and records how /close closes its session; this module checks
what it printed.  The messages and the checks are shared with ``test_gunicorn.py`` and
``test_sockjs_client_browser.py``.

Needs ``node`` and ``tests/js/node_modules`` (``npm ci`` in tests/js, as ``make install``).
"""
import json
import os
import subprocess
from typing import Dict, List, Optional

import pytest

from conftest import ROOT, free_port, need, run_process, rtm_serve_command, which

pytestmark = pytest.mark.slow

JS_DIR = os.path.join(ROOT, "tests", "js")
ECHO_CLIENT = os.path.join(JS_DIR, "echo_client.js")
SOCKJS_PACKAGE = os.path.join(JS_DIR, "node_modules", "sockjs-client")

#: The transports that sockjs-client offers in Node.
NODE_TRANSPORTS = ["websocket", "xhr-streaming", "eventsource", "xhr-polling"]

ASCII_MESSAGE = "Hello, SockJS! 0123456789 ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./"
UNICODE_MESSAGE = (
    "za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105 ja\u017a\u0144 \u2014 "
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u2014 \u4f60\u597d \u2014 "
    "\U0001F600\U0001F389\U00010348 (outside the BMP) \u2014 "
    "\u2028 \u2029 (line and paragraph separators) \u2014 "
    "\u200c\u200d\ufeff\ufff0\uffff \u00ad \u0007 \u007f \u0085 "
    "\u2060 \u2063 \u2064 \u206f \u2066 \u2069 "
    "\u2028</script><!-- \" \\ \n\r\t % %0A %25 data: end")
#: 100 KiB of numbered text, so that a lost, repeated or reordered chunk shows.
BIG_MESSAGE = "".join("%07d," % index for index in range(102400 // 8 + 1))[:102400]
MESSAGES = [ASCII_MESSAGE, UNICODE_MESSAGE, BIG_MESSAGE]

#: Each step of a client (connect, echo, close) must finish within this many milliseconds.
STEP_TIMEOUT_MS = 8000


def need_node_client() -> None:
    need(which("node") is not None, "the node binary is not installed")
    need(os.path.isdir(SOCKJS_PACKAGE),
         "tests/js/node_modules has no sockjs-client: run npm ci in tests/js")


def run_node_client(base: str, transport: str, messages: Optional[List[str]] = None,
                    step_timeout_ms: int = STEP_TIMEOUT_MS) -> Dict:
    """Run echo_client.js against ``base`` with ``transport`` forced; its JSON result."""
    job = {"base": base, "transport": transport, "timeout_ms": step_timeout_ms,
           "messages": MESSAGES if messages is None else messages}
    process = subprocess.run(["node", ECHO_CLIENT], cwd=JS_DIR, input=json.dumps(job),
                             capture_output=True, text=True, encoding="utf-8",
                             timeout=step_timeout_ms * 4 / 1000 + 10)
    assert process.returncode == 0, "node exited with %s\nstdout: %s\nstderr: %s" % (
        process.returncode, process.stdout[-2000:], process.stderr[-2000:])
    # split("\n"), not splitlines(): U+2028 is a line break to Python, not to JSON.
    return json.loads(process.stdout.strip().split("\n")[-1])


def shorten(value, limit: int = 300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


def check_result(result: Dict, transport: str, messages: Optional[List[str]] = None,
                 server_log: str = "") -> None:
    """The checks of one client run (Node or browser): the forced transport connected, every
    message came back intact and in order, our close was clean, /close closed with 3000."""
    messages = MESSAGES if messages is None else messages
    context = "\nclient result: %s\nserver log:\n%s" % (shorten(result, 3000), server_log[-3000:])
    assert result.get("error") is None, "client failed: %s%s" % (result.get("error"), context)
    echo = result["echo"]
    assert echo["transport"] == transport, "connected with %r, not the forced %r%s" % (
        echo["transport"], transport, context)
    received = echo["received"]
    assert len(received) == len(messages), "%d messages back, %d sent%s" % (
        len(received), len(messages), context)
    for index, (got, sent) in enumerate(zip(received, messages)):
        assert got == sent, "message %d came back as %s, sent %s%s" % (
            index, shorten(got), shorten(sent), context)
    assert echo["close"] == {"code": 1000, "reason": "Done", "wasClean": True}, context
    close = result["close"]
    assert close["opened"] and close["transport"] == transport, (
        "/close: connected with %r, not the forced %r%s" % (close["transport"], transport,
                                                            context))
    assert close["received"] == [], context
    assert close["event"]["code"] == 3000 and close["event"]["reason"] == "Go away!", (
        "/close closed with %r%s" % (close["event"], context))
    assert close["event"]["wasClean"] is True, context


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory):
    """rtm-serve with examples/sockjs_endpoints.py and the default settings (max_frame_size,
    256 KiB, takes the 100 KiB message)."""
    port = free_port()
    with run_process(rtm_serve_command("examples.sockjs_endpoints:app", port), port,
                     tmp_path_factory.mktemp("node-client"), name="rtm-serve") as server:
        yield server


@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_node_sockjs_client(echo_server, transport):
    need_node_client()
    result = run_node_client(echo_server.url, transport)
    check_result(result, transport, server_log=echo_server.log())

