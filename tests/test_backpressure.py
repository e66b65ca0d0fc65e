"""A client that stops reading while 10,000 messages are published to its channel: the server's
memory stays bounded, that client is closed with 4001 "Client too slow", and every other
subscriber gets every message, in order."""
import json
import socket
import threading
import time
import urllib.request

import pytest
import websocket

from clients import WebSocketClient
from wsclient import RawWebSocket

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MESSAGES = 10000
PAYLOAD = "p" * 4096


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_slow_reader_is_closed_and_others_get_everything(serve_module):
    server = serve_module("realtimemagic.magic:RealTimeMagic", "--outbox-max-frames", "1000",
                          "--outbox-max-bytes", str(4 * 2**20), "--rate-limit", "1000000")
    slow = RawWebSocket(server.port, "/pubsub/websocket")
    slow.send_text(json.dumps({"action": "subscribe", "payload": {"channel": "flood"},
                               "id": 1}))
    assert json.loads(slow.recv_text())["action"] == "subscribed"
    # From here on the slow client reads nothing.

    readers = [WebSocketClient(server) for _ in range(3)]
    for reader in readers:
        reader.subscribed("flood")
    counts = [[] for _ in readers]

    def collect(reader, into):
        for _ in range(MESSAGES):
            into.append(reader.recv(timeout=30)["payload"]["message"]["seq"])

    collectors = [threading.Thread(target=collect, args=(r, c)) for r, c in zip(readers, counts)]
    for collector in collectors:
        collector.start()

    memory_before = rss_bytes(server.process.pid)
    publisher = websocket.create_connection(server.ws_url + "/pubsub/websocket", timeout=30,
                                            skip_utf8_validation=True)
    for seq in range(MESSAGES):
        publisher.send(json.dumps({"action": "publish", "payload": {
            "channel": "flood", "message": {"seq": seq, "body": PAYLOAD}}}))
        if seq % 100 == 99:
            time.sleep(0.02)  # a brisk publisher, but one that readers can follow
    for collector in collectors:
        collector.join(120)
    memory_after = rss_bytes(server.process.pid)

    for received in counts:
        assert received == list(range(MESSAGES))
    growth = memory_after - memory_before
    print("server RSS %.1f MB -> %.1f MB (%d messages of %d bytes, one reader stalled)" % (
        memory_before / 2**20, memory_after / 2**20, MESSAGES, len(PAYLOAD)))
    # Unbounded, the stalled client alone would hold 40 MB of messages.
    assert growth < 25 * 2**20

    code, reason = slow.recv_close()  # reading again: what was buffered, then the close
    assert (code, reason) == (4001, "Client too slow")
    publisher.close()
    for reader in readers:
        reader.close()


def test_a_client_that_never_reads_again_is_let_go(serve_module):
    """Closed for being too slow, but still not reading: the server cannot even send the close
    frame.  After send_timeout without progress it drops the connection."""
    from conftest import free_port
    api_port = free_port()
    server = serve_module("realtimemagic.magic:RealTimeMagic", "--outbox-max-frames", "50",
                          "--send-timeout", "1", "--rate-limit", "1000000",
                          "--api-port", str(api_port))
    stuck = RawWebSocket(server.port, "/pubsub/websocket")
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.send_text(json.dumps({"action": "subscribe", "payload": {"channel": "jam"}, "id": 1}))
    assert json.loads(stuck.recv_text())["action"] == "subscribed"
    publisher = websocket.create_connection(server.ws_url + "/pubsub/websocket", timeout=30,
                                            skip_utf8_validation=True)
    # Writes go straight to the socket, so the kernel's buffers take what they can before the
    # outbox fills: send twice the largest send buffer the kernel may grow to.
    with open("/proc/sys/net/ipv4/tcp_wmem") as wmem:
        largest_send_buffer = int(wmem.read().split()[2])
    for seq in range(max(400, 2 * largest_send_buffer // len(PAYLOAD))):
        publisher.send(json.dumps({"action": "publish", "payload": {
            "channel": "jam", "message": {"seq": seq, "body": PAYLOAD}}}))
    started = time.monotonic()
    deadline = started + 20
    while time.monotonic() < deadline:
        with urllib.request.urlopen("http://127.0.0.1:%d/api/stats" % api_port,
                                    timeout=5) as response:
            if json.load(response)["sessions"] == 1:  # only the publisher's is left
                break
        time.sleep(0.2)
    else:
        raise AssertionError("the stuck client was never let go")
    print("stuck client dropped %.1f s after the flood" % (time.monotonic() - started))
    publisher.close()
