# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every kept connection asked at once, by one thread: the first attempt of a pass in the role's runner's worker.

The threaded probe on a kept connection costs about 0.3 ms of CPU a server, most of it switching among up to 1,024
threads and redis-py's reading of the replies: 0.65 s for 2,000 servers, where issue 26 asks 0.25 s for the whole
pass. Here one thread sends the probe's commands to every server it holds a kept connection to, waits with poll(2),
and reads the replies with a small RESP reader. It decides nothing itself: whole replies of the types the probe
expects go to the same function that reads the threaded probe's (`_probe._answered`), so a server is judged by one
set of rules either way. Anything else is left to the threaded probe, which has the rules for it: a closed or reset
connection (the server restarted: a new connection, within the same attempt, as the threaded probe does), an error
reply (AUTH, LOADING, a renamed command: on the same connection, the exchange having been whole), bytes of another
type or not UTF-8 (on a new one). A server that sends nothing within `probe_timeout` has had its first attempt: its
connection is dropped (a late reply would be read as the next probe's) and the threaded probe goes on from the
second, within the same probe budget.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ansible_collections.codis.ha.plugins.module_utils._topology import DOWN, ProbeResult


def pack(*commands: tuple[str, ...]) -> bytes:
    """RESP2 arrays of bulk strings, as redis-py packs them."""
    out = bytearray()
    for command in commands:
        out += b"*%d\r\n" % len(command)
        for arg in command:
            data = arg.encode()
            out += b"$%d\r\n%s\r\n" % (len(data), data)
    return bytes(out)


class Unexpected(Exception):
    """Bytes this reader does not take (a RESP3 type, a bulk string that is not UTF-8, not RESP at all): the
    connection is dropped and the threaded probe asks on a new one."""


class ErrorReply(str):
    """An error reply (`-LOADING ...`, `-NOAUTH ...`, a renamed command): the exchange is whole and the connection
    clean, but the threaded probe, with redis-py's classes of errors, is the one to read it."""


def resp_value(buf: bytes, pos: int) -> Optional[tuple[Any, int]]:
    """One RESP2 value of `buf` at `pos`, decoded as redis-py decodes it (decode_responses), and where the next
    begins; None while it is incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind = buf[pos]  # a byte's number: compared without a slice of its own (2,000 servers, 15 values each)
    try:
        if kind == _BULK:
            return _bulk(buf, pos, end)
        if kind == _ARRAY:
            return _array(buf, end, int(buf[pos + 1:end]))
        if kind == _SIMPLE:
            return buf[pos + 1:end].decode(), end + 2
        if kind == _ERROR:
            return ErrorReply(buf[pos + 1:end].decode()), end + 2
        if kind == _INTEGER:
            return int(buf[pos + 1:end]), end + 2
    except ValueError as exc:  # not a number, not UTF-8 (UnicodeDecodeError is a ValueError)
        raise Unexpected(str(exc)) from None
    raise Unexpected("a reply of type %r" % buf[pos:pos + 1])


_BULK, _ARRAY, _SIMPLE, _ERROR, _INTEGER = b"$*+-:"


def _bulk(buf: bytes, pos: int, end: int) -> Optional[tuple[Any, int]]:
    """The bulk string whose header runs from `pos` to the CRLF at `end`."""
    try:
        size = int(buf[pos + 1:end])
        if size < 0:
            return None, end + 2
        if len(buf) < end + 4 + size:
            return None
        if buf[end + 2 + size:end + 4 + size] != b"\r\n":
            raise Unexpected("a bulk string not ended by CRLF")
        return buf[end + 2:end + 2 + size].decode(), end + 4 + size
    except ValueError as exc:  # not a number, not UTF-8
        raise Unexpected(str(exc)) from None


def _array(buf: bytes, end: int, count: int) -> Optional[tuple[Any, int]]:
    if count < 0:
        return None, end + 2
    items, at = [], end + 2
    for _index in range(count):
        # A bulk string read here, the commonest item (ROLE's, CONFIG GET's), without a call through resp_value.
        if buf[at:at + 1] == b"$" and (line := buf.find(b"\r\n", at)) > 0:
            got = _bulk(buf, at, line)
        else:
            got = resp_value(buf, at)
        if got is None:
            return None
        items.append(got[0])
        at = got[1]
    return items, at


@dataclass
class _Exchange:
    addr: str
    connection: Any
    sock: socket.socket
    received: bytes = b""
    replies: Optional[list[Any]] = None


@dataclass
class Asked:
    """What the batch learned: results for the servers that answered whole, and the first attempt of those that
    said nothing in time (each a DOWN result, attempt 1)."""
    answered: dict[str, ProbeResult] = field(default_factory=dict)
    silent: dict[str, ProbeResult] = field(default_factory=dict)


def raw_socket(connection: Any) -> Optional[socket.socket]:
    """The plain socket of a kept redis-py connection whose reader holds no unread byte, or None (TLS, a parser
    whose buffer cannot be seen: the threaded probe asks that one)."""
    sock = getattr(connection, "_sock", None)
    buffer = getattr(getattr(connection, "_parser", None), "_buffer", None)
    if type(sock) is not socket.socket or buffer is None:  # pylint: disable=unidiomatic-typecheck
        return None
    try:
        return sock if buffer.unread_bytes() == 0 else None
    except Exception:  # pylint: disable=broad-exception-caught
        return None


class Batch:
    """One round: `request` sent on every connection, the replies read until `timeout`."""

    def __init__(self, request: bytes, replies: int, timeout: float,
                 answered: Callable[[str, list[Any], float], ProbeResult],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.request = request
        self.replies = replies
        self.timeout = timeout
        self._answered = answered
        self._clock = clock

    def run(self, connections: dict[str, Any], keep: Callable[[str, Any], None],
            drop: Callable[[Any], None]) -> Asked:
        """Asks every connection; each is given back to `keep` after a whole exchange or to `drop` otherwise. A
        whole exchange with an error reply in it is kept but not answered for: the threaded probe asks again."""
        asked = Asked()
        # poll(2), not a selector: registering 2,000 socket objects with `selectors` cost more than reading them.
        poller = select.poll()
        waiting: dict[int, _Exchange] = {}
        for addr, connection in connections.items():
            self._send(addr, connection, poller, waiting, drop)
        self._read(poller, waiting, asked, keep, drop)
        for exchange in waiting.values():  # said nothing in time: the first attempt timed out
            drop(exchange.connection)
            asked.silent[exchange.addr] = ProbeResult(
                exchange.addr, DOWN, "TimeoutError: no reply within %s s (a kept connection)" % self.timeout, 1)
        return asked

    def _send(self, addr: str, connection: Any, poller: Any, waiting: dict[int, _Exchange],
              drop: Callable[[Any], None]) -> None:
        sock = raw_socket(connection)
        try:
            if sock is None:
                raise OSError("not a plain socket")
            sock.setblocking(False)
            if sock.send(self.request) != len(self.request):
                raise OSError("a partial send")
            poller.register(sock.fileno(), select.POLLIN)
        except (OSError, ValueError):
            drop(connection)  # the threaded probe starts this server's first attempt on a new connection
            return
        waiting[sock.fileno()] = _Exchange(addr, connection, sock)

    def _read(self, poller: Any, waiting: dict[int, _Exchange], asked: Asked, keep: Callable[[str, Any], None],
              drop: Callable[[Any], None]) -> None:
        deadline = self._clock() + self.timeout
        while waiting:
            left = deadline - self._clock()
            if left <= 0:
                return
            for fd, _events in poller.poll(left * 1000):
                exchange = waiting[fd]
                done = self._receive(exchange)
                if done is None:
                    continue
                poller.unregister(fd)
                del waiting[fd]
                if not done:
                    drop(exchange.connection)
                    continue
                exchange.sock.settimeout(self.timeout)  # blocking again, as redis-py left it
                if not _may_hold_an_error(exchange.received) or not _has_error(exchange.replies or []):
                    asked.answered[exchange.addr] = self._answered(exchange.addr, exchange.replies, self._clock())
                keep(exchange.addr, exchange.connection)

    def _receive(self, exchange: _Exchange) -> Optional[bool]:
        """True: every reply read, nothing more; False: closed, reset or unexpected; None: more to come."""
        try:
            data = exchange.sock.recv(65536)
        except BlockingIOError:
            return None
        except OSError:
            return False
        if not data:
            return False
        # Almost always one read holds the whole exchange: read from it without a copy.
        buf = exchange.received = exchange.received + data if exchange.received else data
        if not buf.endswith(b"\r\n"):
            return None
        replies, at = [], 0
        try:
            while len(replies) < self.replies:
                got = resp_value(buf, at)
                if got is None:
                    return None
                replies.append(got[0])
                at = got[1]
        except Unexpected:
            return False
        exchange.replies = replies
        return at == len(buf)


def _may_hold_an_error(received: bytes) -> bool:
    """An error reply begins a line: without a line that begins with "-" there is none (a quick look; a bulk
    string's text may also begin a line with "-", and `_has_error` then looks properly)."""
    return received.startswith(b"-") or b"\r\n-" in received


def _has_error(replies: list[Any]) -> bool:
    return any(isinstance(r, ErrorReply) or (isinstance(r, list) and _has_error(r)) for r in replies)
