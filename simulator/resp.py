"""RESP2/RESP3 framing: an incremental request parser and reply encoders.

The parser accepts what real clients send: arrays of bulk strings (redis-py, redis-cli) and inline
commands (telnet, `printf 'PING\\r\\n' | nc`). It is incremental so that pipelined requests and requests
split across TCP segments are both handled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

MAX_BULK = 512 * 1024 * 1024


class ProtocolError(Exception):
    """The client sent bytes that are not RESP; Redis answers an error and closes the connection."""


class RequestParser:
    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_command(self) -> Optional[list[bytes]]:
        """Return the next complete command, or None if more bytes are needed."""
        buf = self._buf
        if not buf:
            return None
        if buf[0:1] != b"*":
            end = buf.find(b"\r\n")
            if end < 0:
                end_lf = buf.find(b"\n")
                if end_lf < 0:
                    return None
                end, skip = end_lf, 1
            else:
                skip = 2
            line = bytes(buf[:end])
            del buf[: end + skip]
            parts = line.split()
            return parts if parts else self.next_command()
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        try:
            count = int(buf[1:end])
        except ValueError as exc:
            raise ProtocolError("Protocol error: invalid multibulk length") from exc
        pos = end + 2
        args: list[bytes] = []
        for dummy in range(max(count, 0)):
            if pos >= len(buf):
                return None
            if buf[pos:pos + 1] != b"$":
                raise ProtocolError("Protocol error: expected '$', got '%s'" % chr(buf[pos]))
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            try:
                size = int(buf[pos + 1:end])
            except ValueError as exc:
                raise ProtocolError("Protocol error: invalid bulk length") from exc
            if size < 0 or size > MAX_BULK:
                raise ProtocolError("Protocol error: invalid bulk length")
            start = end + 2
            if len(buf) < start + size + 2:
                return None
            args.append(bytes(buf[start:start + size]))
            pos = start + size + 2
        del buf[:pos]
        return args if args else self.next_command()


@dataclass(frozen=True)
class Status:
    """A simple-string reply (`+OK`)."""
    text: str


@dataclass(frozen=True)
class Error:
    """An error reply (`-ERR ...`)."""
    text: str


def encode(value: Any, protocol: int = 2) -> bytes:
    if isinstance(value, Status):
        return b"+" + value.text.encode() + b"\r\n"
    if isinstance(value, Error):
        return b"-" + value.text.encode() + b"\r\n"
    if value is None:
        return b"_\r\n" if protocol == 3 else b"$-1\r\n"
    if isinstance(value, bool):
        return b":1\r\n" if value else b":0\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"$%d\r\n%s\r\n" % (len(value), bytes(value))
    if isinstance(value, dict):
        head = b"%%%d\r\n" % len(value) if protocol == 3 else b"*%d\r\n" % (2 * len(value))
        return head + b"".join(encode(k, protocol) + encode(v, protocol) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return b"*%d\r\n" % len(value) + b"".join(encode(v, protocol) for v in value)
    raise TypeError("cannot encode %r" % (value,))
