"""Level 3, soak: a few hundred clients on four transports (raw WebSocket, SockJS websocket,
xhr-polling, xhr-streaming) connect, subscribe, publish, unsubscribe and drop (cleanly or
abruptly) at random for about a minute against one rtm-serve; then the delivery accounting and
the leak checks.

Delivery rule (all times are this process's ``time.monotonic()``, taken conservatively):

- a publish ``p`` counts when the server confirmed it (the ``published`` reply to its ``id``);
  ``p.sent`` is taken just *before* the request is written, so the server handled it after.
- a subscription window of client ``C`` on channel ``c`` is ``[confirmed, end)``: ``confirmed``
  is when ``C`` *received* the ``subscribed`` reply (the server subscribed it before that),
  ``end`` is when ``C`` *began* to unsubscribe, to close or to drop, or when it noticed that the
  server closed it (whichever came first).
- ``p`` must reach ``C`` exactly once when ``C`` has a window on ``p.channel`` with
  ``confirmed <= p.sent`` and ``end >= p.sent + GRACE``: subscribed before the publish was sent
  and still there, reading, ``GRACE`` seconds after it. Anything else may or may not get ``p``.
- nobody ever gets a message twice, nor one of a channel it never subscribed to.

Afterwards, once the disconnect delay has passed: no session, connection or channel left, the
server's greenlets back near where they started, its RSS (from /proc) back within 32 MiB of its
start (generous: Python keeps freed memory in its arenas). Publishing stops 5 s before the end,
when every client still connected drops. The figures are printed.

``RTM_SOAK_SECONDS`` (default 60), ``RTM_SOAK_CLIENTS`` (default 250), ``RTM_SOAK_SEED``,
``RTM_SOAK_GRACE`` (default 15 s).
"""
import collections
import http.client
import json
import os
import random
import socket
import statistics
import struct
import threading
import time
import urllib.request
import uuid
from typing import Dict, List, Optional

import pytest
import websocket

from conftest import free_port

SECONDS = float(os.environ.get("RTM_SOAK_SECONDS", "60"))
CLIENTS = int(os.environ.get("RTM_SOAK_CLIENTS", "250"))
SEED = int(os.environ.get("RTM_SOAK_SEED", "4242"))
GRACE = float(os.environ.get("RTM_SOAK_GRACE", "15"))  # s: how long a delivery may take
# (generous: on a shared 2-core machine under a load average of 5 to 16, deliveries took up to
# 7 s; usually the median is under 30 ms and the maximum under 2 s)
CHANNELS = ["soak:%d" % n for n in range(20)]
PUBLISH_RATE = 0.1     # publishes per second per client: about 25/s in all, 600 deliveries/s
LIFETIME = (5.0, 40.0)  # s: how long one connection lives before it is dropped
RAMP = 3.0             # s: the clients start spread over this
DISCONNECT_DELAY = 3.0
RSS_SLACK_KIB = 32 * 1024  # how much more the server may hold after the run than before
TRANSPORTS = ["raw-websocket", "sockjs-websocket", "xhr-polling", "xhr-streaming"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SECONDS + 240)]

SERVER_FLAGS = ("--rate-limit", "1000", "--disconnect-delay", str(DISCONNECT_DELAY),
                "--heartbeat-interval", "10", "--response-limit", "16384")


class Peer:
    """One client connection and what it saw.  The reader thread writes ``deliveries``,
    ``received_at``, the confirmations and errors; the slot's thread writes the rest."""

    transport = ""

    def __init__(self, port: int, name: str) -> None:
        self.port = port
        self.name = name
        self.session_path = "/pubsub/000/%s/" % uuid.uuid4().hex
        #: channel -> [confirmed, end] (None until known)
        self.windows: Dict[str, List[Optional[float]]] = {}
        #: uid -> [channel, sent, confirmed]
        self.published: Dict[str, list] = {}
        self.deliveries: "collections.Counter[str]" = collections.Counter()
        self.delivered_on: Dict[str, str] = {}
        self.received_at: Dict[str, float] = {}
        self.errors: List[dict] = []
        self.closing = False
        self.closed_at: Optional[float] = None
        self.unexpected: Optional[str] = None
        self.opened = threading.Event()
        self.reader: Optional[threading.Thread] = None

    # -- what the reader calls --------------------------------------------------------------

    def on_message(self, text: str) -> None:
        now = time.monotonic()
        message = json.loads(text)
        action = message.get("action")
        if action == "message":
            payload = message["payload"]
            uid = payload["message"]["u"]
            self.deliveries[uid] += 1
            if uid not in self.received_at:
                self.received_at[uid] = now
                self.delivered_on[uid] = payload["channel"]
        elif action == "subscribed":
            window = self.windows.get(message["payload"]["channel"])
            if window is not None and window[0] is None:
                window[0] = now
        elif action == "published":
            record = self.published.get(message.get("id"))
            if record is not None:
                record[2] = True
        elif action == "error":
            self.errors.append(message)

    def on_end(self, why: str) -> None:
        """The connection ended without our asking (the server closed it or it broke)."""
        if not self.closing:
            self.unexpected = why
            self.end_windows(time.monotonic())

    def end_windows(self, now: float) -> None:
        if self.closed_at is None:
            self.closed_at = now
        for window in self.windows.values():
            if window[1] is None:
                window[1] = now

    # -- what the slot does -----------------------------------------------------------------

    def send_text(self, text: str) -> None:
        raise NotImplementedError

    def subscribe(self, channel: str) -> None:
        self.windows[channel] = [None, None]
        self.send_text(json.dumps({"action": "subscribe", "payload": {"channel": channel},
                                   "id": "s:" + channel}))

    def unsubscribe(self, channel: str) -> None:
        self.windows[channel][1] = time.monotonic()
        self.send_text(json.dumps({"action": "unsubscribe", "payload": {"channel": channel}}))

    def publish(self, channel: str, uid: str) -> None:
        record = self.published[uid] = [channel, time.monotonic(), False]
        self.send_text(json.dumps({"action": "publish", "id": uid, "payload": {
            "channel": channel, "message": {"u": uid, "t": round(record[1], 3)}}}))

    def drop(self, clean: bool) -> None:
        self.closing = True
        self.end_windows(time.monotonic())
        try:
            self._drop(clean)
        except (OSError, websocket.WebSocketException, http.client.HTTPException):
            pass

    def _drop(self, clean: bool) -> None:
        raise NotImplementedError

    def start_reader(self, target) -> None:
        self.reader = threading.Thread(target=target, name="soak-" + self.name, daemon=True)
        self.reader.start()


def cut(sock: Optional[socket.socket], clean: bool) -> None:
    """Close a socket under a blocked reader: FIN when clean, RST when abrupt."""
    if sock is None:
        return
    try:
        if not clean:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class RawWebSocketPeer(Peer):
    transport = "raw-websocket"
    path = "/pubsub/websocket"

    def connect(self) -> None:
        self.ws = websocket.create_connection("ws://127.0.0.1:%d%s" % (self.port, self.url_path()),
                                              timeout=15, skip_utf8_validation=True)
        self.ws.settimeout(None)
        self.start_reader(self.read)
        self.await_open()

    def url_path(self) -> str:
        return self.path

    def await_open(self) -> None:
        self.opened.set()

    def read(self) -> None:
        why = "connection lost"
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self.on_text_frame(data.decode("utf-8"))
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                    why = "closed %s %r" % (code, data[2:].decode("utf-8", "replace"))
                    break
        except (websocket.WebSocketException, OSError, ValueError) as error:
            why = "%s: %s" % (type(error).__name__, error)
        self.on_end(why)

    def on_text_frame(self, text: str) -> None:
        self.on_message(text)

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def _drop(self, clean: bool) -> None:
        if clean:
            self.ws.close(timeout=2)
        else:
            cut(self.ws.sock, clean=False)


class SockJSWebSocketPeer(RawWebSocketPeer):
    transport = "sockjs-websocket"

    def url_path(self) -> str:
        return self.session_path + "websocket"

    def await_open(self) -> None:
        if not self.opened.wait(15):
            raise ConnectionError("no open frame")

    def on_text_frame(self, text: str) -> None:
        on_sockjs_frame(self, text)

    def send_text(self, text: str) -> None:
        self.ws.send(json.dumps([text]))


def on_sockjs_frame(peer: Peer, frame: str) -> bool:
    """Handle one SockJS frame; False when it ends the connection."""
    if not frame or frame[0] == "h":  # heartbeat, or the xhr-streaming prelude
        return True
    if frame == "o":
        if peer.opened.is_set():
            peer.on_end("a second open frame: the session was lost")
            return False
        peer.opened.set()
        return True
    if frame[0] == "a":
        for message in json.loads(frame[1:]):
            peer.on_message(message)
        return True
    if frame[0] == "c":
        peer.on_end("closed " + frame[1:])
        return False
    raise ValueError("not a SockJS frame: %r" % frame[:100])


class XhrPollingPeer(Peer):
    transport = "xhr-polling"

    def connect(self) -> None:
        self.poller = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.sender = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        self.poller.request("POST", self.session_path + "xhr", body=b"")
        frame = self.poller.getresponse().read().decode("utf-8")
        if frame != "o\n":
            raise ConnectionError("xhr open gave %r" % frame)
        self.opened.set()
        self.start_reader(self.read)

    def read(self) -> None:
        why = "connection lost"
        try:
            while not self.closing:
                self.poller.request("POST", self.session_path + "xhr", body=b"")
                response = self.poller.getresponse()
                body = response.read().decode("utf-8")
                if response.status != 200:
                    why = "poll answered %d %r" % (response.status, body[:100])
                    break
                if not all(on_sockjs_frame(self, line) for line in body.split("\n")):
                    return
        except (OSError, http.client.HTTPException, ValueError) as error:
            why = "%s: %s" % (type(error).__name__, error)
        finally:
            if self.closing:
                cut(self.poller.sock, clean=True)
        self.on_end(why)

    def send_text(self, text: str) -> None:
        self.sender.request("POST", self.session_path + "xhr_send",
                            body=json.dumps([text]).encode("utf-8"))
        response = self.sender.getresponse()
        body = response.read()
        if response.status != 204:
            raise ConnectionError("xhr_send answered %d %r" % (response.status, body[:100]))

    def _drop(self, clean: bool) -> None:
        cut(self.sender.sock, clean=True)
        if not clean:  # a poll in flight is cut; a clean client just stops polling
            cut(self.poller.sock, clean=False)


class XhrStreamingPeer(XhrPollingPeer):
    transport = "xhr-streaming"

    def connect(self) -> None:
        self.streamer = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.sender = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        self.start_reader(self.read)
        if not self.opened.wait(15):
            raise ConnectionError("no open frame on xhr_streaming")

    def read(self) -> None:
        why = "connection lost"
        try:
            while not self.closing:  # a new request each time response_limit ends one
                self.streamer.request("POST", self.session_path + "xhr_streaming", body=b"")
                response = self.streamer.getresponse()
                if response.status != 200:
                    why = "xhr_streaming answered %d" % response.status
                    break
                pending = b""
                while True:
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    for line in lines:
                        if not on_sockjs_frame(self, line.decode("utf-8")):
                            return
        except (OSError, http.client.HTTPException, ValueError) as error:
            why = "%s: %s" % (type(error).__name__, error)
        self.on_end(why)

    def _drop(self, clean: bool) -> None:
        cut(self.sender.sock, clean=True)
        cut(self.streamer.sock, clean)  # a browser leaving a streaming page does just this


PEERS = {"raw-websocket": RawWebSocketPeer, "sockjs-websocket": SockJSWebSocketPeer,
         "xhr-polling": XhrPollingPeer, "xhr-streaming": XhrStreamingPeer}


# -- the run --------------------------------------------------------------------------------

class Soak:
    def __init__(self, port: int) -> None:
        self.port = port
        self.peers: List[Peer] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.connect_failures: "collections.Counter[str]" = collections.Counter()
        self.send_failures: "collections.Counter[str]" = collections.Counter()
        self.drops: "collections.Counter[str]" = collections.Counter()

    def slot(self, number: int, publish_end: float) -> None:
        rng = random.Random("%d-%d" % (SEED, number))
        if self.stop.wait(rng.uniform(0, RAMP)):
            return
        generation = 0
        peer = None
        while time.monotonic() < publish_end and not self.stop.is_set():
            transport = rng.choice(TRANSPORTS)
            peer = PEERS[transport](self.port, "%d.%d" % (number, generation))
            generation += 1
            try:
                peer.connect()
            except (OSError, websocket.WebSocketException, http.client.HTTPException) as error:
                self.connect_failures["%s: %s" % (transport, type(error).__name__)] += 1
                peer.drop(clean=False)
                peer = None
                self.stop.wait(0.5)
                continue
            with self.lock:
                self.peers.append(peer)
            unused = [channel for channel in CHANNELS]
            rng.shuffle(unused)
            published = 0
            try:
                for _ in range(rng.randint(1, 3)):
                    peer.subscribe(unused.pop())
                life_end = time.monotonic() + rng.uniform(*LIFETIME)
                while not peer.unexpected:
                    pause = rng.expovariate(PUBLISH_RATE)
                    now = time.monotonic()
                    if now + pause >= min(life_end, publish_end):
                        self.stop.wait(max(0.0, min(life_end, publish_end) - now))
                        break
                    if self.stop.wait(pause):
                        break
                    roll = rng.random()
                    subscribed = [c for c, window in peer.windows.items() if window[1] is None]
                    if roll < 0.04 and subscribed:
                        peer.unsubscribe(rng.choice(subscribed))
                    elif roll < 0.08 and unused:
                        peer.subscribe(unused.pop())
                    else:
                        published += 1
                        peer.publish(rng.choice(CHANNELS), "%s.%d" % (peer.name, published))
            except (OSError, websocket.WebSocketException, http.client.HTTPException) as error:
                self.send_failures["%s: %s" % (transport, type(error).__name__)] += 1
            if time.monotonic() >= publish_end or self.stop.is_set():
                return  # the last connection of the slot stays until the end
            clean = rng.random() < 0.5
            self.drops["%s %s" % (transport, "clean" if clean else "abrupt")] += 1
            peer.drop(clean)
            if self.stop.wait(rng.uniform(0, 1.0)):
                return


def cpu_seconds(pid: str = "self") -> float:
    """User + system CPU time of a process so far."""
    with open("/proc/%s/stat" % pid) as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def api_stats(api_port: int) -> dict:
    with urllib.request.urlopen("http://127.0.0.1:%d/api/stats" % api_port,
                                timeout=10) as response:
        return json.load(response)


def settle(api_port: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = api_stats(api_port)
        if not (stats["sessions"] or stats["connections"] or stats["channels"]):
            return stats
        if time.monotonic() > deadline:
            return stats
        time.sleep(0.25)


def account(peers: List[Peer]):
    """Expected deliveries, losses, duplicates and misdeliveries, per the rule above."""
    publishes = []  # (uid, channel, sent)
    unconfirmed = 0
    for peer in peers:
        for uid, (channel, sent, confirmed) in peer.published.items():
            if confirmed:
                publishes.append((uid, channel, sent))
            else:
                unconfirmed += 1
    windows_by_channel = collections.defaultdict(list)
    for peer in peers:
        for channel, (confirmed, end) in peer.windows.items():
            if confirmed is not None:
                windows_by_channel[channel].append((confirmed, end, peer))
    expected = delivered = 0
    losses, latencies = [], collections.defaultdict(list)
    for uid, channel, sent in publishes:
        for confirmed, end, peer in windows_by_channel[channel]:
            if confirmed <= sent and end is not None and end >= sent + GRACE:
                expected += 1
                if peer.deliveries[uid] >= 1:
                    delivered += 1
                    latencies[peer.transport].append(peer.received_at[uid] - sent)
                else:
                    losses.append((uid, channel, peer.name, peer.transport, sent, confirmed, end))
    duplicates, misdelivered = [], []
    total_deliveries = 0
    for peer in peers:
        total_deliveries += sum(peer.deliveries.values())
        for uid, count in peer.deliveries.items():
            if count > 1:
                duplicates.append((uid, peer.name, peer.transport, count))
            if peer.delivered_on[uid] not in peer.windows:
                misdelivered.append((uid, peer.delivered_on[uid], peer.name))
    return (len(publishes), unconfirmed, expected, delivered, total_deliveries, losses,
            duplicates, misdelivered, latencies)


def test_soak(start_server):
    api_port = free_port()
    server = start_server("realtimemagic.magic:RealTimeMagic", "--api-port", str(api_port),
                          *SERVER_FLAGS)
    pid = server.process.pid
    print("\nsoak: %d clients, %.0f s (RTM_SOAK_SECONDS), seed %d, grace %.0f s" % (
        CLIENTS, SECONDS, SEED, GRACE))

    for transport in TRANSPORTS:  # warm up every transport once, then the baseline
        peer = PEERS[transport](server.port, "warm-" + transport)
        peer.connect()
        peer.subscribe("warm")
        peer.drop(clean=False)
    before = settle(api_port, DISCONNECT_DELAY + 15)
    rss_before = server_rss_kib(pid)

    soak = Soak(server.port)
    started = time.monotonic()
    # Publishing stops 5 s before the end; the messages of the last GRACE seconds are checked
    # only for duplicates (their subscribers close before their delivery window has passed).
    publish_end = started + max(RAMP + LIFETIME[0], SECONDS - 5)
    slots = [threading.Thread(target=soak.slot, args=(n, publish_end), daemon=True,
                              name="slot-%d" % n) for n in range(CLIENTS)]
    for slot in slots:
        slot.start()
    rss_peak, connections_peak = rss_before, 0
    cpu_server, cpu_clients = cpu_seconds(str(pid)), cpu_seconds()
    oversleep = api_slowest = 0.0  # how late this thread wakes up; how slow the API answers
    while time.monotonic() < publish_end + 5:
        woken = time.monotonic() + 1.0
        time.sleep(1.0)
        oversleep = max(oversleep, time.monotonic() - woken)
        assert server.process.poll() is None, "the server died:\n" + server.log()[-5000:]
        rss_peak = max(rss_peak, server_rss_kib(pid))
        asked = time.monotonic()
        connections_peak = max(connections_peak, api_stats(api_port)["connections"])
        api_slowest = max(api_slowest, time.monotonic() - asked)
    cpu_server = cpu_seconds(str(pid)) - cpu_server
    cpu_clients = cpu_seconds() - cpu_clients
    load = os.getloadavg()
    soak.stop.set()
    for slot in slots:
        slot.join(timeout=30)
    stuck_slots = sum(slot.is_alive() for slot in slots)
    peers = list(soak.peers)
    finale = random.Random(SEED)
    for peer in peers:
        if not peer.closing:
            peer.drop(clean=finale.random() < 0.5)
    ran = time.monotonic() - started
    for peer in peers:  # a cleanly stopped poller may still wait for its last poll
        if peer.reader is not None:
            peer.reader.join(timeout=0.05)
    for peer in peers:
        for sock in (getattr(peer, name, None) for name in ("poller", "streamer")):
            if sock is not None:
                cut(sock.sock, clean=True)
    server_counters = api_stats(api_port)
    after = settle(api_port, DISCONNECT_DELAY + 30)
    time.sleep(1.0)  # the last greenlets (WebSocket pumps) wind down
    after = api_stats(api_port)
    rss_after = server_rss_kib(pid)

    (publishes, unconfirmed, expected, delivered, total_deliveries, losses, duplicates,
     misdelivered, latencies) = account(peers)
    errors = collections.Counter(message["payload"]["code"] for peer in peers
                                 for message in peer.errors)
    unexpected = collections.Counter("%s: %s" % (peer.transport, peer.unexpected[:60])
                                     for peer in peers if peer.unexpected)
    transports = collections.Counter(peer.transport for peer in peers)
    print("ran %.1f s: %d connections (%s), peak %d at once; drops %s" % (
        ran, len(peers), dict(transports), connections_peak, dict(soak.drops)))
    print("messages: %d published and confirmed (%d unconfirmed: their publisher left first); "
          "server counters: %d published, %d deliveries" % (
              publishes, unconfirmed, server_counters["published"],
              server_counters["deliveries"]))
    print("deliveries: %d received in all; %d expected by the rule, %d delivered, %d lost, "
          "%d duplicates, %d on a channel never subscribed" % (
              total_deliveries, expected, delivered, len(losses), len(duplicates),
              len(misdelivered)))
    for transport, values in sorted(latencies.items()) + [
            ("all", [value for values in latencies.values() for value in values])]:
        values.sort()
        print("latency to %s: median %.1f ms, p99 %.1f ms, max %.1f ms (%d deliveries)" % (
            transport, 1000 * statistics.median(values), 1000 * values[int(len(values) * 0.99)],
            1000 * values[-1], len(values)))
    print("errors received %s; connect failures %s; send failures %s; closed by the server "
          "or broken %s" % (dict(errors), dict(soak.connect_failures), dict(soak.send_failures),
                            dict(unexpected)))
    print("CPU: server %.1f s, clients %.1f s in %.0f s; slowest /api/stats %.2f s, this thread "
          "woke up to %.2f s late; load average %.1f %.1f %.1f on %d CPUs" % (
              cpu_server, cpu_clients, ran, api_slowest, oversleep, load[0], load[1], load[2],
              os.cpu_count()))
    print("memory (RSS): %.1f MiB before, %.1f MiB peak, %.1f MiB after" % (
        rss_before / 1024, rss_peak / 1024, rss_after / 1024))
    print("greenlets %d -> %d, fds %s -> %s; sessions %d, connections %d, channels %d left" % (
        before["process"]["greenlets"], after["process"]["greenlets"],
        before["process"]["open_fds"], after["process"]["open_fds"], after["sessions"],
        after["connections"], after["channels"]))

    assert stuck_slots == 0, "%d client threads did not finish" % stuck_slots
    assert publishes > CLIENTS * PUBLISH_RATE * (SECONDS - 10) * 0.3, "too few publishes"
    assert expected > publishes, "the run checked almost nothing"
    assert not losses, "%d lost (uid, channel, client, transport, sent, confirmed, end): %s" % (
        len(losses), losses[:10])
    assert not duplicates, "%d duplicates: %s" % (len(duplicates), duplicates[:10])
    assert not misdelivered, "%d misdelivered: %s" % (len(misdelivered), misdelivered[:10])
    assert not errors, "error replies: %s" % (
        [message for peer in peers for message in peer.errors][:5],)
    assert not unexpected, "connections the server closed or that broke: %s" % dict(unexpected)
    assert (after["sessions"], after["connections"], after["channels"]) == (0, 0, 0)
    assert after["process"]["greenlets"] <= before["process"]["greenlets"] + 10
    assert after["process"]["open_fds"] <= before["process"]["open_fds"] + 5
    # Generous: freed memory partly stays in Python's arenas and the allocator's free lists;
    # what matters is that the server does not keep what a few hundred clients needed, however
    # long the run (RTM_SOAK_SECONDS).
    assert rss_after - rss_before < RSS_SLACK_KIB, (
        "RSS %d KiB -> %d KiB (peak %d)" % (rss_before, rss_after, rss_peak))
