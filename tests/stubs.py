"""Loopback servers that answer whatever a test scripts: a dashboard that trickles, nests or lies, and a Redis
server that answers bytes the probe does not expect. For hostile-input tests and the fuzz suite only; the
faithful dashboards and nodes live in simulator/."""
from __future__ import annotations

import socket
import socketserver
import threading
from typing import Any, Callable, Optional


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class _Base:
    """A threaded TCP server on 127.0.0.1, stopped by the context manager, its client sockets closed too."""

    def __init__(self, handler_cls: type) -> None:
        self._server = _Server(("127.0.0.1", 0), handler_cls)
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ------------------------------------------------------------------ HTTP
Responder = Callable[[str, str, bytes, socket.socket, threading.Event], None]


class StubHTTP(_Base):
    """Every request is recorded as (method, path, body); `respond` writes the raw answer to the socket."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[tuple[str, str, bytes]] = []
        super().__init__(_HTTPHandler)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    @property
    def mutations(self) -> list[tuple[str, str, bytes]]:
        return [r for r in self.requests if r[0] != "GET"]


class _HTTPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        owner: StubHTTP = self.server.owner  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        sock.settimeout(10)
        reader = sock.makefile("rb")
        try:
            while not owner.stopping.is_set():
                line = reader.readline(65537)
                if not line:
                    return
                method, path = (line.decode("latin-1").split() + ["", ""])[:2]
                length = 0
                while True:
                    header = reader.readline(65537)
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _colon, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip() or 0)
                body = reader.read(length) if length else b""
                owner.requests.append((method, path, body))
                owner.respond(method, path, body, sock, owner.stopping)
                return  # one request per connection; the answers say Connection: close
        except OSError:
            return  # the client hung up: a server says nothing


def http_answer(status: int, body: bytes, content_type: str = "text/plain") -> bytes:
    return (b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, content_type.encode(), len(body)) + body)


def fixed(routes: Callable[[str, str, bytes], tuple[int, bytes]]) -> Responder:
    """A responder from a function (method, path, body) -> (status, body)."""
    def respond(method: str, path: str, body: bytes, sock: socket.socket, stopping: threading.Event) -> None:
        status, payload = routes(method, path, body)
        sock.sendall(http_answer(status, payload))
    return respond


# ------------------------------------------------------------------ Redis
class ScriptedRedis(_Base):
    """Answers every command with `reply(command)` (raw RESP bytes); `command` is the list of its words."""

    def __init__(self, reply: Callable[[list[bytes]], bytes]) -> None:
        self.reply = reply
        self.connections = 0  # accepted so far
        super().__init__(_RedisHandler)

    @property
    def addr(self) -> str:
        return "127.0.0.1:%d" % self.port


class _RedisHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        owner: ScriptedRedis = self.server.owner  # type: ignore[attr-defined]
        owner.connections += 1
        sock: socket.socket = self.request
        sock.settimeout(10)
        reader = sock.makefile("rb")
        try:
            while not owner.stopping.is_set():
                command = _read_command(reader)
                if command is None:
                    return
                sock.sendall(owner.reply(command))
        except (OSError, ValueError):
            return


def _read_command(reader: Any) -> Optional[list[bytes]]:
    line = reader.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return line.split()
    words = []
    for _index in range(int(line[1:])):
        size = int(reader.readline()[1:])
        words.append(reader.read(size + 2)[:-2])
    return words


def bulk(text: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(text), text)


def redis_reply(info: bytes, role: bytes) -> Callable[[list[bytes]], bytes]:
    """INFO answers `info` (raw RESP), ROLE answers `role`, anything else +OK."""
    def reply(command: list[bytes]) -> bytes:
        name = command[0].upper() if command else b""
        if name == b"INFO":
            return info
        if name == b"ROLE":
            return role
        return b"+OK\r\n"
    return reply


MASTER_INFO = bulk(b"# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:abc\r\n"
                   b"master_repl_offset:100\r\n")
MASTER_ROLE = b"*3\r\n$6\r\nmaster\r\n:100\r\n*0\r\n"
