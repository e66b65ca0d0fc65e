"""One publish to N WebSocket subscribers is encoded once: one JSON encoding of the delivery,
one SockJS literal, one WebSocket frame per framing, shared by every recipient (not timed)."""
import json

import pytest

from realtimemagic import RealTimeMagic
from realtimemagic.pubsub import channels as channels_module
from realtimemagic.sockjs import frames
from realtimemagic.transports import websocket as websocket_module

from inprocess import in_thread, serving
from wsclient import RawWebSocket

pytestmark = pytest.mark.timeout(60)

SUBSCRIBERS = 20


class Counter:
    def __init__(self, function):
        self.function = function
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def test_one_publish_to_many_websockets_encodes_once(monkeypatch):
    rtm = RealTimeMagic(rate_limit=10000)
    with serving(rtm) as server:
        port = server.address[1]

        def connect_all():
            sockets = []
            for n in range(SUBSCRIBERS):
                raw = n % 2 == 0  # half raw WebSocket, half SockJS over WebSocket
                ws = RawWebSocket(port, "/pubsub/websocket" if raw else "/pubsub/0/s%d/websocket" % n)
                if not raw:
                    assert ws.recv_text() == "o"
                request = json.dumps({"action": "subscribe", "payload": {"channel": "wide"},
                                      "id": n})
                ws.send_text(request if raw else json.dumps([request]))
                ws.recv_text()
                sockets.append((raw, ws))
            return sockets

        sockets = in_thread(connect_all)
        encode = Counter(channels_module.protocol.encode)
        quote = Counter(frames.quote)
        text_frame = Counter(websocket_module.text_frame)
        monkeypatch.setattr(channels_module.protocol, "encode", encode)
        monkeypatch.setattr(frames, "quote", quote)
        monkeypatch.setattr(websocket_module, "text_frame", text_frame)

        rtm.publish("wide", {"big": "x" * 1000})

        def read_all():
            texts = []
            for raw, ws in sockets:
                text = ws.recv_text()
                texts.append(json.loads(text if raw else json.loads(text[1:])[0]))
            return texts

        texts = in_thread(read_all)
        counts = encode.calls, quote.calls, text_frame.calls  # before closing frames add more
    assert all(t == {"action": "message", "payload": {"channel": "wide",
                                                      "message": {"big": "x" * 1000}}}
               for t in texts) and len(texts) == SUBSCRIBERS
    assert counts[0] == 1, "the delivery's JSON is encoded once"
    assert counts[1] == 1, "the SockJS literal is computed once"
    assert counts[2] == 2, "one WebSocket frame per framing (raw, SockJS)"
