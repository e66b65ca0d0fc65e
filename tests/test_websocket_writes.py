"""How a WebSocket's frames are written (realtimemagic/runtime/websocket.py, writer.py): straight
from the sender with no greenlet switch, one greenlet per idle connection, a writer greenlet
only while a backlog waits, and one frame per connection for what one read brought."""
import gc
import json

import gevent
import greenlet
import pytest
from gevent import socket as gsocket

from realtimemagic.runtime.endpoint import SockJSEndpoint
from realtimemagic.runtime.writer import Writer
from realtimemagic.sockjs.frames import OutgoingMessage

from examples.stress.base import Broadcast
from inprocess import in_thread, serving
from wsclient import RawWebSocket

pytestmark = pytest.mark.timeout(60)


def greenlets() -> int:
    return sum(1 for thing in gc.get_objects() if isinstance(thing, greenlet.greenlet)
               and not thing.dead)


def connect(port: int, count: int):
    def run():
        clients = []
        for n in range(count):
            ws = RawWebSocket(port, "/pubsub/0/w%d/websocket" % n)
            assert ws.recv_text() == "o"
            clients.append(ws)
        return clients
    return in_thread(run)


def test_an_idle_connection_holds_one_greenlet_and_a_delivery_switches_to_none():
    broadcast = Broadcast()
    app = SockJSEndpoint(broadcast, prefix="/pubsub")
    with serving(app) as server:
        in_thread(lambda: None)  # the thread pool's greenlets exist before we count
        gevent.sleep(0.1)
        before = greenlets()
        clients = connect(server.address[1], 50)
        gevent.sleep(0.2)
        assert greenlets() - before == 50

        switches = []
        greenlet.settrace(lambda event, args: switches.append(event))
        try:
            outgoing = OutgoingMessage("straight out")
            for connection in tuple(broadcast.clients):
                assert connection.send(outgoing) is True
        finally:
            greenlet.settrace(None)
        assert switches == []  # written by this loop itself: no switch, no writer greenlet
        assert all(len(connection.session.outbox) == 0 for connection in broadcast.clients)
        assert in_thread(lambda: [ws.recv_text() for ws in clients]) == \
            ['a["straight out"]'] * 50
        for ws in clients:
            ws.close()


def test_what_one_read_brings_goes_out_as_one_frame_per_connection():
    app = SockJSEndpoint(Broadcast(), prefix="/pubsub")
    with serving(app) as server:
        sender, *others = connect(server.address[1], 6)

        def exchange():
            sender.send_text(json.dumps(["one", "two", "three"]))
            return [ws.recv_text() for ws in others + [sender]]

        assert in_thread(exchange) == ['a["one","two","three"]'] * 6
        for ws in others + [sender]:
            ws.close()


class Owner:
    def __init__(self):
        self.drained_count = 0
        self.failures = []

    def drained(self):
        self.drained_count += 1

    def write_failed(self, error):
        self.failures.append(error)


def test_the_writer_greenlet_lives_only_while_a_backlog_waits():
    ours, theirs = gsocket.socketpair()
    ours.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_SNDBUF, 4096)
    owner = Owner()
    writer = Writer(ours, send_timeout=10, owner=owner)
    chunks = [bytes([n % 251]) * 1000 for n in range(400)]
    writer.write(chunks[0])
    assert writer.flusher is None and writer.backlog is None  # taken at once
    for chunk in chunks[1:]:
        writer.write(chunk)
    assert writer.flusher is not None and writer.backlog is not None  # the socket is full
    expected = b"".join(chunks)
    received = bytearray()
    while len(received) < len(expected):
        received += theirs.recv(65536)
    gevent.sleep(0.05)
    assert bytes(received) == expected  # in order, nothing lost or doubled
    assert writer.flusher is None and writer.backlog is None and owner.drained_count == 1
    writer.write(b"after")
    assert theirs.recv(16) == b"after" and writer.flusher is None
    ours.close()
    theirs.close()


def test_a_writer_that_makes_no_progress_gives_up_after_send_timeout():
    ours, theirs = gsocket.socketpair()
    owner = Owner()
    writer = Writer(ours, send_timeout=0.5, owner=owner)
    for _ in range(2000):
        writer.write(b"x" * 10000)
    gevent.sleep(1.5)
    assert len(owner.failures) == 1 and "no progress" in str(owner.failures[0])
    assert writer.failed and writer.flusher is None
    ours.close()
    theirs.close()
