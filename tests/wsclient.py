"""A deliberately minimal WebSocket client over a raw socket, for sending what real clients
never send (unmasked frames, invalid UTF-8, oversized messages) and reading close codes."""
import base64
import os
import socket
import struct
from typing import Optional, Tuple

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def encode_frame(opcode: int, payload: bytes, mask: bool = True, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask else 0
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = (int.from_bytes(payload, "big") ^
              int.from_bytes((key * (length // 4 + 1))[:length], "big")).to_bytes(length, "big")
    return header + key + (masked if length else b"")


class RawWebSocket:
    def __init__(self, port: int, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (path, port, key)).encode())
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed before %r" % marker)
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _read_exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed mid-frame")
            self.buffer += data
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send_frame(self, opcode: int, payload: bytes, mask: bool = True, fin: bool = True) -> None:
        self.sock.sendall(encode_frame(opcode, payload, mask, fin))

    def send_text(self, text: str) -> None:
        self.send_frame(TEXT, text.encode("utf-8"))

    def recv_frame(self) -> Tuple[int, bytes]:
        first, second = self._read_exactly(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read_exactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read_exactly(8))[0]
        return first & 0x0F, self._read_exactly(length)

    def recv_text(self) -> str:
        opcode, payload = self.recv_frame()
        assert opcode == TEXT, (opcode, payload)
        return payload.decode("utf-8")

    def recv_close(self) -> Tuple[Optional[int], str]:
        """Skip data frames up to the close frame; its (code, reason)."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == CLOSE:
                if len(payload) < 2:
                    return None, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")

    def close(self, code: int = 1000, reason: str = "") -> None:
        try:
            self.send_frame(CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))
        except OSError:
            pass

    def at_eof(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def shutdown(self) -> None:
        self.sock.close()
