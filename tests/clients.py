"""Pub/sub test clients with one interface over two transports: the raw WebSocket and SockJS
xhr-polling.  Each protocol message is the JSON text of one SockJS message (SPEC section 3)."""
import http.client
import json
import queue
import socket
import threading
import uuid
from typing import Any, Callable, Optional

import websocket

CLOSED = object()


class Client:
    transport = ""

    def __init__(self) -> None:
        self.inbox: "queue.Queue[Any]" = queue.Queue()
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None

    def send(self, message: Any) -> None:
        """Send ``message`` as JSON (a str is sent as given when ``raw``)."""
        self.send_text(json.dumps(message))

    def send_text(self, text: str) -> None:
        raise NotImplementedError

    def send_many(self, messages) -> None:
        """Send several messages as fast as the transport can (one request for polling)."""
        for message in messages:
            self.send(message)

    def recv(self, timeout: float = 5.0) -> Any:
        item = self.inbox.get(timeout=timeout)
        if item is CLOSED:
            self.inbox.put(CLOSED)
            raise ConnectionError("closed: %s %s" % (self.close_code, self.close_reason))
        return json.loads(item)

    def expect(self, predicate: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """The next message for which ``predicate`` is true (others are skipped)."""
        while True:
            message = self.recv(timeout)
            if predicate(message):
                return message

    def nothing_within(self, seconds: float) -> bool:
        try:
            item = self.inbox.get(timeout=seconds)
        except queue.Empty:
            return True
        self.inbox.put(item)
        return False

    def wait_closed(self, timeout: float = 5.0):
        while True:
            if self.inbox.get(timeout=timeout) is CLOSED:
                return self.close_code, self.close_reason

    # pub/sub shorthands
    def subscribe(self, channel: str, request_id: Any = None) -> None:
        self.send(_request("subscribe", {"channel": channel}, request_id))

    def unsubscribe(self, channel: str, request_id: Any = None) -> None:
        self.send(_request("unsubscribe", {"channel": channel}, request_id))

    def publish(self, channel: str, message: Any, request_id: Any = None) -> None:
        self.send(_request("publish", {"channel": channel, "message": message}, request_id))

    def subscribed(self, channel: str) -> None:
        """Subscribe and wait for the server's confirmation."""
        request_id = "sub-" + uuid.uuid4().hex[:8]
        self.subscribe(channel, request_id)
        reply = self.expect(lambda m: m.get("id") == request_id)
        assert reply["action"] == "subscribed", reply


def _request(action: str, payload: dict, request_id: Any) -> dict:
    request = {"action": action, "payload": payload}
    if request_id is not None:
        request["id"] = request_id
    return request


class WebSocketClient(Client):
    transport = "websocket"

    def __init__(self, server, prefix: str = "/pubsub", query: str = "") -> None:
        super().__init__()
        self.ws = websocket.create_connection("%s%s/websocket%s" % (server.ws_url, prefix, query),
                                              timeout=10, skip_utf8_validation=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    if len(data) >= 2:
                        self.close_code = int.from_bytes(data[:2], "big")
                        self.close_reason = data[2:].decode("utf-8")
                    break
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self.inbox.put(data.decode("utf-8"))
        except (websocket.WebSocketException, OSError):
            pass
        self.inbox.put(CLOSED)

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except (websocket.WebSocketException, OSError):
            pass


class XhrPollingClient(Client):
    """SockJS xhr-polling, the way sockjs-client does it: one poll at a time, sends apart.
    ``close()`` drops the pending poll, as a browser leaving the page does."""
    transport = "xhr-polling"

    def __init__(self, server, prefix: str = "/pubsub", query: str = "") -> None:
        super().__init__()
        self.port = server.port
        self.path = "%s/000/%s/" % (prefix, uuid.uuid4().hex)
        self.query = query
        self.poller = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.sender = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        assert self._poll_once() == "o\n"
        self.running = True
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll_once(self) -> str:
        self.poller.request("POST", self.path + "xhr" + self.query, body=b"")
        return self.poller.getresponse().read().decode("utf-8")

    def _poll(self) -> None:
        try:
            while self.running:
                frame = self._poll_once().rstrip("\n")
                if frame.startswith("a"):
                    for message in json.loads(frame[1:]):
                        self.inbox.put(message)
                elif frame.startswith("c"):
                    self.close_code, self.close_reason = json.loads(frame[1:])
                    break
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            pass  # the connection was dropped, by the server or by close() from another thread
        self.inbox.put(CLOSED)

    def send_many(self, messages) -> None:
        self._post_send([json.dumps(message) for message in messages])

    def send_text(self, text: str) -> None:
        self._post_send([text])

    def _post_send(self, texts) -> None:
        self.sender.request("POST", self.path + "xhr_send", body=json.dumps(texts).encode())
        response = self.sender.getresponse()
        body = response.read()
        assert response.status == 204, (response.status, body)

    def close(self) -> None:
        self.running = False
        for connection in (self.poller, self.sender):
            if connection.sock is not None:
                try:
                    connection.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            connection.close()


TRANSPORTS = {"websocket": WebSocketClient, "xhr-polling": XhrPollingClient}
