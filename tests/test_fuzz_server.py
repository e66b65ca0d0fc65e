"""Level 3, fuzzing: a bounded run of random and malformed HTTP requests and WebSocket frames
against a real rtm-serve (plain RealTimeMagic), then the checks that matter:

- the server process never dies and keeps answering;
- it never answers 500 without a reason, except the SockJS protocol's documented 500s, which
  always carry one ("Payload expected.", "Broken JSON encoding.", the callback messages);
- it logs no traceback (an exception escaping our code);
- WebSocket close codes are documented ones (or the client's own, echoed), and what the server
  sends on a WebSocket is well-formed (SockJS frames, protocol messages, documented error codes);
- afterwards, with the clients gone and the disconnect delay passed, /api/stats shows no
  session, no connection and no channel, greenlets and file descriptors back near their start;
- a normal client still works.

The run is reproducible: every case is drawn from ``random.Random("<seed>-<worker>")``; the
seed is printed (``RTM_FUZZ_SEED`` changes it, ``RTM_FUZZ_SECONDS`` the duration, default 20 s,
``RTM_FUZZ_WORKERS`` the parallel workers, default 4). Every violation is reported with its
worker, case number and the bytes sent.
"""
import base64
import collections
import json
import os
import random
import re
import socket
import struct
import threading
import time
import urllib.request
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote

import pytest

from clients import WebSocketClient, XhrPollingClient
from conftest import free_port

SEED = int(os.environ.get("RTM_FUZZ_SEED", "90210"))
SECONDS = float(os.environ.get("RTM_FUZZ_SECONDS", "20"))
WORKERS = int(os.environ.get("RTM_FUZZ_WORKERS", "4"))
MAX_CASES = 20000  # per worker; the time bound is the one that normally ends the run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SECONDS + 150)]

# Small limits, so that the fuzz reaches them often (the code paths do not depend on the values).
MAX_MESSAGE = 3000
MAX_FRAME = 12000
RESPONSE_LIMIT = 4096
DISCONNECT_DELAY = 1.0
HEARTBEAT = 2.0
SERVER_FLAGS = ("--max-message-size", str(MAX_MESSAGE), "--max-frame-size", str(MAX_FRAME),
                "--response-limit", str(RESPONSE_LIMIT),
                "--disconnect-delay", str(DISCONNECT_DELAY),
                "--heartbeat-interval", str(HEARTBEAT), "--max-subscriptions", "20")

PREFIX = "/pubsub"
#: The bodies of the 500s that the SockJS protocol documents (sockjs-node answers the same).
DOCUMENTED_500 = {"Payload expected.", "Broken JSON encoding.", '"callback" parameter required',
                  'invalid "callback" parameter', "Invalid Content-Length."}
#: Close codes the server may send on its own (docs/protocol.md).
DOCUMENTED_CLOSE = {1000, 1001, 1002, 1003, 1007, 1009, 3000, 4001, 4029}
ERROR_CODES = {"bad_request", "forbidden", "too_large", "rate_limited", "limit"}
ACTIONS_OUT = {"message", "subscribed", "unsubscribed", "published", "presence", "join",
               "leave", "error"}


# -- the server ---------------------------------------------------------------------------------

def api_get(server, path: str):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (server.api_port, path),
                                timeout=10) as response:
        return json.load(response)


def settle(server, timeout: float = 15.0) -> dict:
    """Stats once every session and connection is gone (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = api_get(server, "/api/stats")
        idle = not (stats["sessions"] or stats["connections"] or stats["channels"])
        if idle or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def tracebacks(log: str) -> Dict[str, Tuple[int, str]]:
    """The tracebacks in the server log, by the exception line that ends them: how many, and
    the first one in full."""
    found: Dict[str, Tuple[int, str]] = {}
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            for end in range(index + 1, len(lines)):
                after = lines[end]
                if after and not after.startswith((" ", "\t")):
                    key = re.sub(r"\d+", "N", after[:200])
                    count, first = found.get(key, (0, "\n".join(lines[index:end + 1])))
                    found[key] = (count + 1, first)
                    break
    return found


# -- random material ----------------------------------------------------------------------------

CHANNELS = ["a", "chat:room", "c" * 200, "c" * 201, "", " ", "a b", "abc\n", "caf\u00e9",
            "\U0001F600", "x\x00y", "ns:", ":", "a\x80b", "\u2028"]
CALLBACKS = ["cb", "a.b_c-1", "x" * 32, "x" * 33, "", "alert(1)//", "a b", "abc\n", "caf\u00e9",
             "</script>", "%00"]


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2 ** 31, 2 ** 70, rng.randint(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e-300, float("inf")])
    if kind in (4, 5):
        return random_text(rng, 20)
    if kind in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_text(rng, 6): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_text(rng: random.Random, size: int) -> str:
    alphabet = rng.choice(["abc", "ab\"\\/{}[],:", "\x00\x1f\x7f\u2028\ufff0\ud800\udfff\u00e9",
                           "\U0001F600 \n\t"])
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(size + 1)))


def protocol_message(rng: random.Random) -> str:
    """The text of one client message: mostly pub/sub requests, some valid, some not."""
    kind = rng.random()
    if kind < 0.7:
        action = rng.choice(["subscribe", "subscribe", "publish", "publish", "unsubscribe",
                             "presence", "foo", None, 1])
        payload = rng.choice([{"channel": rng.choice(CHANNELS)},
                              {"channel": rng.choice(CHANNELS), "message": random_json(rng)},
                              {"channel": rng.choice(CHANNELS), "since": rng.choice([
                                  {"offset": rng.choice([0, 5, -1, 2 ** 70, "1"]),
                                   "epoch": rng.choice(["x", "", 1, None])},
                                  random_json(rng)])},
                              {"channel": random_json(rng)}, {}, None, "x", []])
        request = {"action": action, "payload": payload}
        if rng.random() < 0.6:
            request["id"] = rng.choice([1, "x", None, True, 1.5, [], 2 ** 70, -3, ""])
        return json.dumps(request, ensure_ascii=rng.random() < 0.5)
    if kind < 0.8:
        return json.dumps(random_json(rng))
    if kind < 0.9:
        return random_text(rng, 30)
    # around max_message_size (characters; the limit is in bytes of UTF-8)
    size = MAX_MESSAGE + rng.choice([-40, -30, -29, -28, 0, 1, 100])
    return json.dumps({"action": "publish", "payload": {
        "channel": "big", "message": "x" * max(0, size - 50)}})


def sockjs_payload(rng: random.Random) -> bytes:
    """A body for xhr_send/jsonp_send or a SockJS WebSocket message."""
    kind = rng.random()
    if kind < 0.5:
        messages = [protocol_message(rng) for _ in range(rng.randrange(1, 4))]
        return json.dumps(messages, ensure_ascii=rng.random() < 0.5).encode("utf-8",
                                                                            "surrogatepass")
    if kind < 0.6:
        return json.dumps(protocol_message(rng)).encode("utf-8")  # a lone string
    if kind < 0.7:
        return json.dumps(random_json(rng)).encode("utf-8")
    if kind < 0.78:
        return rng.randbytes(rng.randrange(40))
    if kind < 0.84:
        return b""
    if kind < 0.90:
        return rng.choice([b"[", b'{"a":', b'["a",']) * rng.choice([10, 500, 3000])
    if kind < 0.94:
        return rng.choice([b'["\xff\xfe"]', b'["\xed\xa0\x80"]', b'["a"', b'["a"]]', b"[1]",
                           b"\xef\xbb\xbf[]", b'["a"]\x00'])
    # around max_frame_size
    size = MAX_FRAME + rng.choice([-1, 0, 1, 500])
    body = json.dumps(["y" * (size - 4)]).encode("ascii")
    return body[:size] if len(body) > size else body


def deep_payload(rng: random.Random) -> bytes:
    return rng.choice([b"[", b'{"a":']) * rng.choice([2000, 20000])


def new_id(rng: random.Random) -> str:
    """A session id drawn from the seeded generator, so that a run can be replayed."""
    return "%032x" % rng.getrandbits(128)


# -- HTTP cases -----------------------------------------------------------------------------

TRANSPORT_NAMES = ["websocket", "xhr", "xhr_send", "xhr_streaming", "eventsource", "htmlfile",
                   "jsonp", "jsonp_send"]


#: The method each resource answers to (the others get 405).
RIGHT_METHOD = {"xhr": b"POST", "xhr_send": b"POST", "xhr_streaming": b"POST",
                "jsonp_send": b"POST", "websocket": b"GET", "eventsource": b"GET",
                "htmlfile": b"GET", "jsonp": b"GET"}


def random_path(rng: random.Random, sessions: List[str]) -> Tuple[str, str]:
    """A path, and the resource it names (when it names one)."""
    kind = rng.random()
    transport = ""
    if kind < 0.65:
        server_id = rng.choice(["000", "000", "1", "abc", "", "a.b", "x" * 40])
        session = rng.choice(sessions) if rng.random() < 0.8 else rng.choice(
            [new_id(rng), "", ".", "a.b", "%2e", "x" * 300])
        transport = rng.choice(TRANSPORT_NAMES * 3 + ["XHR", "xhr_sendx", "", "info", "websocket/",
                                                      "xhr/", "jsonp_send/"])
        path = "%s/%s/%s/%s" % (PREFIX, server_id, session, transport)
    elif kind < 0.85:
        path = PREFIX + rng.choice(["", "/", "/info", "/info/", "/iframe.html",
                                    "/iframe-1.2.3.html", "/iframe.htm", "/websocket",
                                    "/websocket/", "/realtimemagic.js", "/info/x", "//info"])
    else:
        path = rng.choice(["/", "/pubsubx", "*", "http://127.0.0.1/pubsub/info",
                           PREFIX + "/%00", PREFIX + "/../pubsub/info", PREFIX + "/%ff%fe",
                           PREFIX + "/" + "a" * rng.choice([100, 5000, 70000]),
                           PREFIX + "/000/" + new_id(rng) + "/xhr?" + "a" * 9000])
    if rng.random() < (0.8 if transport in ("jsonp", "htmlfile") else 0.2):
        parameter = rng.choice(["c", "callback", "c", "x"])
        path += "?%s=%s" % (parameter, quote(rng.choice(CALLBACKS), safe=""))
        if rng.random() < 0.2:
            path += "&" + rng.choice(["c=a", "&&", "=", "%", "t=" + str(rng.random())])
    return path, transport


def random_headers(rng: random.Random) -> List[Tuple[bytes, bytes]]:
    headers = []
    if rng.random() < 0.95:
        headers.append((b"Host", b"127.0.0.1"))
    if rng.random() < 0.6:
        headers.append((b"Content-Type", rng.choice([
            b"application/x-www-form-urlencoded", b"text/plain", b"application/json",
            b"text/plain;charset=UTF-8", b"application/x-www-form-urlencoded; charset=UTF-8",
            b"multipart/form-data; boundary=x", b"", b";;", b"\xff"])))
    if rng.random() < 0.3:
        headers.append((b"Origin", rng.choice([b"http://example.com", b"null", b"",
                                               b"https://evil.example", b"\xff\xfe"])))
    if rng.random() < 0.2:
        headers.append((b"Cookie", rng.choice([b"JSESSIONID=abc", b"a=b; c", b'"',
                                               b"JSESSIONID=" + b"x" * 1000, b"=;=;"])))
    if rng.random() < 0.15:
        headers.append((b"Access-Control-Request-Headers", b"x-a, x-b"))
    if rng.random() < 0.1:
        headers.append((b"If-None-Match", rng.choice([b'"x"', b"*", b""])))
    if rng.random() < 0.1:
        headers += [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
                    (b"Sec-WebSocket-Version", rng.choice([b"13", b"8", b"7", b""])),
                    (b"Sec-WebSocket-Key", rng.choice([
                        base64.b64encode(rng.randbytes(16)), b"short", b"!!!!"]))]
    if rng.random() < 0.1:
        headers.append((b"X-Random", rng.randbytes(rng.randrange(1, 40)).replace(
            b"\r", b"").replace(b"\n", b"")))
    if rng.random() < 0.03:
        headers.append((b"X-Long", b"v" * rng.choice([9000, 70000])))
    if rng.random() < 0.03:
        headers.append((b"X-Folded", b"a\r\n b"))
    if rng.random() < 0.03:
        headers.append((b"No colon here", b""))
    rng.shuffle(headers)
    return headers


class Case:
    """One connection's worth of bytes and how to end it."""

    def __init__(self, kind: str, data: bytes, read_window: float, half_close: bool,
                 abort: bool, note: str) -> None:
        self.kind = kind
        self.data = data
        self.read_window = read_window
        self.half_close = half_close
        self.abort = abort
        self.note = note

    def describe(self) -> str:
        data = self.data if len(self.data) <= 600 else (
            self.data[:400] + b"...(%d bytes)..." % len(self.data) + self.data[-120:])
        return "%s [%s] half_close=%s abort=%s: %r" % (self.kind, self.note, self.half_close,
                                                        self.abort, data)


def http_case(rng: random.Random, sessions: List[str]) -> Case:
    path, resource = random_path(rng, sessions)
    if resource in RIGHT_METHOD and rng.random() < 0.75:
        method = RIGHT_METHOD[resource]
    else:
        method = rng.choice([b"GET", b"POST", b"OPTIONS", b"PUT", b"DELETE", b"HEAD", b"PATCH",
                             b"get", b"FOO"])
    path = path.encode("utf-8", "surrogatepass")
    version = rng.choice([b"HTTP/1.1"] * 6 + [b"HTTP/1.0"] * 2 +
                         [b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.2", b"http/1.1", b"HTTP/1"])
    headers = random_headers(rng)
    if rng.random() < (0.15 if resource.endswith("_send") else 0.02):
        body = deep_payload(rng)
    elif rng.random() < 0.15:
        body = b"d=" + quote(sockjs_payload(rng).decode("latin-1")).encode("ascii")
    else:
        body = sockjs_payload(rng)
    framing = rng.choice(["exact"] * 8 + ["chunked", "chunked", "chunked-bad", "chunked-short",
                                          "short", "short-eof", "long", "none", "negative",
                                          "nonnumeric", "twice"])
    half_close = False
    if framing == "exact":
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif framing.startswith("chunked"):
        headers.append((b"Transfer-Encoding", b"chunked"))
        chunks, rest = [], body
        while rest:
            size = rng.randrange(1, 2000)
            chunks.append(b"%x\r\n%s\r\n" % (len(rest[:size]), rest[:size]))
            rest = rest[size:]
        if framing == "chunked-bad":
            chunks.insert(rng.randrange(len(chunks) + 1), rng.choice([
                b"zz\r\n", b"5\r\nab\r\n", b"-1\r\n", b"ffffffffffffffffff\r\nx\r\n"]))
        body = b"".join(chunks) + (b"0\r\n\r\n" if framing != "chunked-short" else b"")
        half_close = framing == "chunked-short" and rng.random() < 0.7
    elif framing in ("short", "short-eof"):  # more is declared than sent
        headers.append((b"Content-Length", str(len(body) + rng.randrange(1, 500)).encode()))
        half_close = framing == "short-eof"
    elif framing == "long":  # less is declared: the rest reads as the next request
        headers.append((b"Content-Length", str(rng.randrange(len(body) + 1)).encode()))
    elif framing == "negative":
        headers.append((b"Content-Length", b"-5"))
    elif framing == "nonnumeric":
        headers.append((b"Content-Length", rng.choice([b"abc", b"1_0", b" 12 ", b"+3", b"0x10",
                                                       b"99999999999999999999999"])))
    elif framing == "twice":
        headers += [(b"Content-Length", str(len(body)).encode()), (b"Content-Length", b"1")]
    head = b"%s %s %s\r\n" % (method, path, version)
    if rng.random() < 0.04:
        head = rng.choice([b"GARBAGE\r\n", rng.randbytes(30) + b"\r\n", b"GET\r\n",
                           b"GET  /pubsub/info  HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00\x01\r\n",
                           b"GET /pubsub/info HTTP/1.1 extra\r\n", b"\r\n\r\n"])
    data = head + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"
    data += body
    if rng.random() < 0.1:  # a pipelined second request
        data += b"GET %s/info HTTP/1.1\r\nHost: x\r\n\r\n" % PREFIX.encode()
    read_window = rng.choice([0.05, 0.2, 0.2, 0.5, 1.0])
    return Case("http", data, read_window, half_close or rng.random() < 0.1,
                rng.random() < 0.2, framing)


# -- WebSocket cases ------------------------------------------------------------------------

def ws_frame(rng: random.Random, opcode: int, payload: bytes, fin: bool = True,
             mask: bool = True, rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, (0x80 if mask else 0) | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, length)
    else:
        header = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, length)
    if not mask:
        return header + payload
    key = rng.randbytes(4)
    masked = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return header + key + masked


def ws_message(rng: random.Random, sockjs: bool) -> bytes:
    if sockjs:
        return deep_payload(rng) if rng.random() < 0.05 else sockjs_payload(rng)
    if rng.random() < 0.85:
        return protocol_message(rng).encode("utf-8", "surrogatepass")
    return rng.choice([b"\xff\xfe", b'{"a":"\xed\xa0\x80"}', b"", b"\xc3", deep_payload(rng)])


def ws_frames(rng: random.Random, sockjs: bool) -> Tuple[List[bytes], List[int]]:
    """Frames to send, and the close codes the client itself sends (the server may echo)."""
    frames, client_codes = [], []
    for _ in range(rng.randrange(1, 12)):
        kind = rng.random()
        if kind < 0.5:  # a text message, maybe fragmented, maybe with pings in between
            message = ws_message(rng, sockjs)
            pieces = 1 if rng.random() < 0.7 else rng.randrange(2, 5)
            size = max(1, len(message) // pieces + 1)
            parts = [message[i:i + size] for i in range(0, len(message), size)] or [b""]
            for index, part in enumerate(parts):
                frames.append(ws_frame(rng, 0x1 if index == 0 else 0x0, part,
                                       fin=index == len(parts) - 1))
                if rng.random() < 0.2 and index < len(parts) - 1:
                    frames.append(ws_frame(rng, 0x9, b"mid"))
        elif kind < 0.58:
            frames.append(ws_frame(rng, 0x9, rng.randbytes(rng.choice([0, 5, 125, 126]))))
        elif kind < 0.62:
            frames.append(ws_frame(rng, 0xA, b"unsolicited"))
        elif kind < 0.66:
            frames.append(ws_frame(rng, 0x2, rng.randbytes(10)))
        elif kind < 0.70:
            frames.append(ws_frame(rng, rng.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), b"x"))
        elif kind < 0.73:
            frames.append(ws_frame(rng, 0x0, b"continuation without a start"))
        elif kind < 0.76:
            frames.append(ws_frame(rng, 0x1, b'{"action":"subscribe"}', rsv=rng.randrange(1, 8)))
        elif kind < 0.79:
            frames.append(ws_frame(rng, 0x1, b'{"a":1}', mask=False))
        elif kind < 0.82:
            frames.append(ws_frame(rng, 0x9, b"", fin=False))  # a fragmented control frame
        elif kind < 0.88:
            size = rng.choice([MAX_MESSAGE, MAX_MESSAGE + 1, MAX_FRAME, MAX_FRAME + 1])
            text = json.dumps(["z" * (size - 4)]) if sockjs else "z" * size
            frames.append(ws_frame(rng, 0x1, text.encode("ascii")[:size]))
        elif kind < 0.94:
            code = rng.choice([1000, 1001, 3000, 4000, 4999, 1005, 1006, 999, 0, 5000, 2999, 1015])
            payload = rng.choice([struct.pack("!H", code) + b"bye", struct.pack("!H", code),
                                  b"\x03", struct.pack("!H", code) + b"\xff", b""])
            if len(payload) >= 2:
                client_codes.append(code)
            frames.append(ws_frame(rng, 0x8, payload))
            break
        else:  # a frame cut short: the header promises more than is ever sent
            whole = ws_frame(rng, 0x1, b"x" * 200)
            frames.append(whole[:rng.randrange(1, len(whole))])
            break
    return frames, client_codes


def ws_handshake(rng: random.Random, path: str) -> Tuple[bytes, bool]:
    key = base64.b64encode(rng.randbytes(16))
    headers = [b"Host: 127.0.0.1", b"Upgrade: websocket", b"Connection: Upgrade",
               b"Sec-WebSocket-Key: " + key, b"Sec-WebSocket-Version: 13"]
    valid = True
    if rng.random() < 0.12:
        valid = False
        broken = rng.randrange(5)
        if broken == 0:
            headers[4] = b"Sec-WebSocket-Version: 12"
        elif broken == 1:
            headers[3] = b"Sec-WebSocket-Key: not-base64!"
        elif broken == 2:
            headers[2] = b"Connection: keep-alive"
        elif broken == 3:
            del headers[3]
        else:
            headers[1] = b"Upgrade: h2c"
    if rng.random() < 0.1:
        headers.append(b"Origin: " + rng.choice([b"http://example.com", b"null"]))
    return (b"GET " + path.encode() + b" HTTP/1.1\r\n" + b"\r\n".join(headers) + b"\r\n\r\n",
            valid)


# -- running a case -------------------------------------------------------------------------

class Response:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes, complete: bool):
        self.status = status
        self.headers = headers
        self.body = body
        self.complete = complete


def parse_responses(data: bytes) -> Tuple[List[Response], Optional[str]]:
    """The HTTP responses in ``data`` (the last one may be cut off by our read window); and a
    description of anything that is not HTTP."""
    responses = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        if not separator:
            if not data.startswith(b"HTTP/1."[:len(data)]):
                return responses, "not an HTTP response: %r" % data[:200]
            break
        lines = head.split(b"\r\n")
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ", lines[0] + b" ")
        if not match:
            return responses, "bad status line: %r" % lines[0][:200]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        status = int(match.group(1))
        if "content-length" in headers:
            length = int(headers["content-length"])
            responses.append(Response(status, headers, rest[:length], len(rest) >= length))
            data = rest[length:]
        elif status in (101, 204, 304):
            responses.append(Response(status, headers, b"", True))
            data = rest
        else:  # chunked or till the end: the rest is this response's
            responses.append(Response(status, headers, rest, False))
            break
    return responses, None


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        line, separator, body = body.partition(b"\r\n")
        if not separator:
            break
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2:]
    return out


def read_for(sock: socket.socket, window: float, enough=None) -> bytes:
    """What the server sends within ``window`` seconds (or until it closes, or ``enough``)."""
    data = b""
    deadline = time.monotonic() + window
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if enough is not None and enough(data):
            break
    return data


def finish(sock: socket.socket, abort: bool) -> None:
    if abort:  # RST instead of FIN
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    sock.close()


def run_http(port: int, case: Case) -> List[str]:
    problems = []
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        try:
            sock.sendall(case.data)
            if case.half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before reading everything: fine
        data = read_for(sock, case.read_window)
    finally:
        finish(sock, case.abort)
    responses, problem = parse_responses(data)
    if problem:
        problems.append(problem)
    for response in responses:
        if response.status == 500:
            body = response.body
            if response.headers.get("transfer-encoding", "").lower() == "chunked":
                body = dechunk(body)
            text = body.decode("utf-8", "replace")
            if text not in DOCUMENTED_500:
                problems.append("500 without a documented reason: %r" % text[:200])
    return problems


def check_server_text(text: str, sockjs: bool) -> Optional[str]:
    """Why a text frame the server sent is malformed, or None."""
    if not sockjs:
        return check_protocol_message(text)
    if text in ("o", "h"):
        return None
    if text.startswith("a["):
        try:
            messages = json.loads(text[1:])
        except ValueError:
            return "broken a-frame %r" % text[:200]
        for message in messages:
            problem = check_protocol_message(message)
            if problem:
                return problem
        return None
    if text.startswith("c["):
        try:
            code, reason = json.loads(text[1:])
        except ValueError:
            return "broken c-frame %r" % text[:200]
        if code not in DOCUMENTED_CLOSE | {1002, 2010}:
            return "undocumented SockJS close %r" % text[:200]
        return None
    return "not a SockJS frame: %r" % text[:200]


def check_protocol_message(text: str) -> Optional[str]:
    try:
        message = json.loads(text)
    except ValueError:
        return "server message is not JSON: %r" % text[:200]
    if not isinstance(message, dict) or message.get("action") not in ACTIONS_OUT:
        return "server message of no known action: %r" % text[:200]
    if message["action"] == "error":
        code = message.get("payload", {}).get("code")
        if code not in ERROR_CODES:
            return "error code %r (plain pub/sub has no hook to fail): %r" % (code, text[:200])
    return None


def parse_ws_frames(data: bytes) -> Tuple[List[Tuple[int, bytes]], Optional[str]]:
    frames = []
    while len(data) >= 2:
        first, second = data[0], data[1]
        if second & 0x80:
            return frames, "server frame is masked"
        length, offset = second & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                break
            length, offset = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            if len(data) < 10:
                break
            length, offset = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < offset + length:
            break
        frames.append((first & 0x0F, data[offset:offset + length]))
        data = data[offset + length:]
    return frames, None


def run_websocket(port: int, rng: random.Random, sessions: List[str]) -> Tuple[Case, List[str]]:
    sockjs = rng.random() < 0.5
    path = ("%s/000/%s/websocket" % (PREFIX, rng.choice(sessions + [new_id(rng)]))
            if sockjs else PREFIX + "/websocket")
    handshake, valid = ws_handshake(rng, path)
    frames, client_codes = ws_frames(rng, sockjs)
    clean = rng.random() < 0.5
    case = Case("websocket", handshake + b"".join(frames), rng.choice([0.1, 0.3, 0.8]), False,
                not clean, "%s valid-handshake=%s" % ("sockjs" if sockjs else "raw", valid))
    problems = []
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(handshake)
        head = read_for(sock, 10.0, lambda data: b"\r\n\r\n" in data)
        responses, problem = parse_responses(head.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
                                             if b"\r\n\r\n" in head else head)
        if problem or not responses:
            return case, [problem or "no answer to the handshake: %r" % head[:200]]
        if responses[0].status != 101:
            if responses[0].status == 500:
                problems.append("handshake answered 500: %r" % responses[0].body[:200])
            return case, problems
        received = head.partition(b"\r\n\r\n")[2]
        for frame in frames:
            try:
                sock.sendall(frame)
            except OSError:
                break
            if rng.random() < 0.2:
                time.sleep(rng.random() * 0.03)
        if clean and not client_codes:
            try:
                sock.sendall(ws_frame(rng, 0x8, struct.pack("!H", 1000)))
                client_codes.append(1000)
            except OSError:
                pass
        received += read_for(sock, case.read_window)
    finally:
        finish(sock, case.abort)
    server_frames, problem = parse_ws_frames(received)
    if problem:
        problems.append(problem)
    for opcode, payload in server_frames:
        if opcode == 0x1:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                problems.append("server text frame is not UTF-8: %r" % payload[:100])
                continue
            problem = check_server_text(text, sockjs)
            if problem:
                problems.append(problem)
        elif opcode == 0x8 and len(payload) >= 2:
            code = struct.unpack("!H", payload[:2])[0]
            if code not in DOCUMENTED_CLOSE and code not in client_codes:
                problems.append("undocumented close code %d %r" % (code, payload[2:100]))
        elif opcode not in (0x8, 0x9, 0xA):
            problems.append("server sent opcode %d" % opcode)
    return case, problems


# -- the test -------------------------------------------------------------------------------

class Findings:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_kind: Dict[str, List[str]] = collections.defaultdict(list)
        self.cases = collections.Counter()
        self.errors = collections.Counter()

    def add(self, problem: str, where: str, case: Case) -> None:
        kind = problem.partition(":")[0][:60]
        with self.lock:
            if len(self.by_kind[kind]) < 3:
                self.by_kind[kind].append("%s\n      %s\n      %s" % (problem, where,
                                                                    case.describe()))
            else:
                self.by_kind[kind].append("")

    def report(self) -> str:
        lines = []
        for kind, examples in sorted(self.by_kind.items()):
            lines.append("  %d x %s" % (len(examples), kind))
            lines += ["    " + example for example in examples if example]
        return "\n".join(lines)


def fuzz_worker(server, worker: int, deadline: float, findings: Findings,
                stop: threading.Event) -> None:
    rng = random.Random("%d-%d" % (SEED, worker))
    sessions = [new_id(rng) for _ in range(6)]
    for number in range(MAX_CASES):
        if time.monotonic() > deadline or stop.is_set():
            return
        where = "seed %d worker %d case %d" % (SEED, worker, number)
        try:
            if rng.random() < 0.3:
                case, problems = run_websocket(server.port, rng, sessions)
            else:
                case = http_case(rng, sessions)
                problems = run_http(server.port, case)
        except OSError as error:  # connect refused or reset: is the server still there?
            with findings.lock:
                findings.errors[type(error).__name__] += 1
            if server.process.poll() is not None:
                stop.set()
                return
            continue
        with findings.lock:
            findings.cases[case.kind] += 1
        for problem in problems:
            findings.add(problem, where, case)
        if rng.random() < 0.05:
            sessions[rng.randrange(len(sessions))] = new_id(rng)


def still_answers(server) -> bool:
    try:
        with urllib.request.urlopen(server.url + PREFIX + "/info", timeout=10) as response:
            return response.status == 200
    except OSError:
        return False


def test_fuzz_the_server(start_server):
    api_port = free_port()
    server = start_server("realtimemagic.magic:RealTimeMagic", "--api-port", str(api_port),
                          *SERVER_FLAGS)
    server.api_port = api_port
    print("\nfuzz seed %d (RTM_FUZZ_SEED), %.0f s (RTM_FUZZ_SECONDS), %d workers" % (
        SEED, SECONDS, WORKERS))

    # warm up what is created once (a session of each kind), then the baseline
    for make in (WebSocketClient, XhrPollingClient):
        client = make(server)
        client.subscribe("warm", "warm")
        client.expect(lambda m: m.get("id") == "warm", timeout=30)
        client.close()
    time.sleep(DISCONNECT_DELAY + 1)
    before = settle(server)

    findings = Findings()
    stop = threading.Event()
    started = time.monotonic()
    deadline = started + SECONDS
    workers = [threading.Thread(target=fuzz_worker, args=(server, n, deadline, findings, stop),
                                daemon=True) for n in range(WORKERS)]
    for worker in workers:
        worker.start()
    unresponsive = 0
    while any(worker.is_alive() for worker in workers):
        for worker in workers:
            worker.join(timeout=2.0)
        if server.process.poll() is not None:
            stop.set()
            break
        if not still_answers(server):
            unresponsive += 1
    for worker in workers:
        worker.join(timeout=30)
    elapsed = time.monotonic() - started
    alive = server.process.poll() is None
    print("%d cases in %.1f s (%s), client-side errors %s" % (
        sum(findings.cases.values()), elapsed, dict(findings.cases), dict(findings.errors)))
    assert alive, "the server died (exit %s) during the fuzz run; log:\n%s\nfindings:\n%s" % (
        server.process.returncode, server.log()[-5000:], findings.report())

    after = settle(server, timeout=DISCONNECT_DELAY + 20)
    print("stats before: sessions %d, connections %d, greenlets %d, fds %s" % (
        before["sessions"], before["connections"], before["process"]["greenlets"],
        before["process"]["open_fds"]))
    print("stats after:  sessions %d, connections %d, channels %d, greenlets %d, fds %s" % (
        after["sessions"], after["connections"], after["channels"],
        after["process"]["greenlets"], after["process"]["open_fds"]))

    # a normal client still works, on both kinds of transport
    works = []
    for make in (WebSocketClient, XhrPollingClient):
        try:
            client = make(server)
            client.subscribe("after-fuzz", "sub")
            client.expect(lambda m: m.get("id") == "sub", timeout=30)
            client.publish("after-fuzz", "still here")
            works.append(client.expect(lambda m: m.get("action") == "message", timeout=30)
                         ["payload"]["message"] == "still here")
            client.close()
        except Exception as error:  # reported below with everything else
            works.append("%s: %r" % (make.__name__, error))

    # Tracebacks through our code fail the test; those wholly inside gevent's pywsgi (its own
    # handling of malformed requests) are printed and reported, not failed on here.
    logged = tracebacks(server.log())
    for line, (count, first) in logged.items():
        if "/realtimemagic/" in first:
            print("server logged %d traceback(s) through realtimemagic ending: %s; the first:\n%s"
                  % (count, line, first))
        else:
            where = [frame.strip() for frame in first.splitlines()
                     if frame.strip().startswith("File ")][-1:]
            print("server logged %d traceback(s) inside gevent ending: %s (%s)" % (
                count, line, where[0] if where else "?"))
    logged = {line: found for line, found in logged.items() if "/realtimemagic/" in found[1]}
    failures = []
    if findings.by_kind:
        failures.append("responses that break the rules:\n" + findings.report())
    if logged:
        failures.append("tracebacks through realtimemagic in the server log:\n" +
                        "\n".join("  %d x %s" % (count, line)
                                  for line, (count, _) in logged.items()))
    if unresponsive:
        failures.append("the server did not answer /info within 10 s %d times" % unresponsive)
    if after["sessions"] or after["connections"] or after["channels"]:
        failures.append("left over after the run: %d sessions, %d connections, %d channels" % (
            after["sessions"], after["connections"], after["channels"]))
    if after["process"]["greenlets"] > before["process"]["greenlets"] + 10:
        failures.append("greenlets %d -> %d" % (before["process"]["greenlets"],
                                                after["process"]["greenlets"]))
    if after["process"]["open_fds"] > before["process"]["open_fds"] + 3:
        failures.append("open fds %d -> %d" % (before["process"]["open_fds"],
                                               after["process"]["open_fds"]))
    if works != [True, True]:
        failures.append("a normal client does not work after the run: %r" % (works,))
    assert not failures, "fuzz seed %d:\n%s" % (SEED, "\n".join(failures))
