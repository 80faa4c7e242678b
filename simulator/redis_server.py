"""Fake Redis servers: many RESP listeners on one asyncio loop in one background thread.

Faults are applied here at the TCP level so that a client sees what it would see from a real server:
a killed node refuses connections, a hung one accepts and never answers (like SIGSTOP), a slow one
answers late, a flaky one drops every k-th connection, and an observer partition makes the node hang or
refuse for TCP clients while its modelled replication links stay up.
"""
from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from .commands import CLOSE, execute
from .model import Node, World
from .ports import bound_socket, try_bind
from .resp import Error, ProtocolError, RequestParser, encode


@dataclass
class _Listener:
    node: Node
    server: Optional[asyncio.base_events.Server] = None
    responsive: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set = field(default_factory=set)
    writers: set = field(default_factory=set)


class NodeServerHost:
    def __init__(self, world: World, host: str = "127.0.0.1") -> None:
        self.world = world
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="simulator-redis", daemon=True)
        self._listeners: dict[str, _Listener] = {}
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()
        world.listeners.append(self._on_world_event)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        self._loop.run_forever()

    def _call(self, coro: Any) -> Any:
        if threading.current_thread() is self._thread:
            return asyncio.ensure_future(coro)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    # ------------------------------------------------------------------ lifecycle
    def add_nodes(self, count: int, password: Optional[str] = None,
                  users: Optional[dict[str, str]] = None) -> list[Node]:
        return self._call(self._add_nodes(count, password, users))

    async def _add_nodes(self, count: int, password: Optional[str],
                         users: Optional[dict[str, str]]) -> list[Node]:
        nodes = []
        for dummy in range(count):
            sock = bound_socket(host=self.host)
            port = sock.getsockname()[1]
            node = self.world.add_node(self.host, port, password=password, users=users)
            entry = _Listener(node)
            entry.responsive.set()
            self._listeners[node.addr] = entry
            await self._listen(entry, sock)
            nodes.append(node)
        return nodes

    async def _listen(self, entry: _Listener, sock: Optional[socket.socket] = None) -> None:
        if entry.server is not None:
            return
        if sock is None:
            sock = await self._rebind(entry.node)
        entry.server = await asyncio.start_server(
            lambda r, w: self._serve(entry, r, w), sock=sock, backlog=512)

    @staticmethod
    async def _rebind(node: Node) -> socket.socket:
        """The node's own port again, for a restart. A copy of the old listening socket can outlive its close
        for a moment (a process forked meanwhile holds it until it execs): once, under load in CI, the port was
        still taken. So it tries again for up to 5 s before giving up."""
        deadline = time.monotonic() + 5.0
        while True:
            sock = try_bind(node.host, node.port)
            if sock is not None:
                return sock
            if time.monotonic() > deadline:
                raise OSError(errno.EADDRINUSE, "port %d is still in use" % node.port)
            await asyncio.sleep(0.05)

    async def _unlisten(self, entry: _Listener) -> None:
        if entry.server is not None:
            entry.server.close()
            entry.server = None
        for task in list(entry.tasks):
            task.cancel()
        for writer in list(entry.writers):
            writer.transport.abort()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self.world.listeners and self._on_world_event in self.world.listeners:
            self.world.listeners.remove(self._on_world_event)

        async def _close_all() -> None:
            for entry in self._listeners.values():
                await self._unlisten(entry)
            tasks = [t for e in self._listeners.values() for t in e.tasks]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

        self._call(_close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # ------------------------------------------------------------------ faults
    def _on_world_event(self, event: str, node: Node) -> None:
        entry = self._listeners.get(node.addr)
        if entry is not None:
            self._call(self._reconcile(entry))

    async def _reconcile(self, entry: _Listener) -> None:
        node = entry.node
        listening = not node.killed and node.partition != "refuse"
        responsive = not node.hung and node.partition != "hang"
        if listening:
            await self._listen(entry)
        else:
            await self._unlisten(entry)
        if responsive:
            entry.responsive.set()
        else:
            entry.responsive.clear()

    # ------------------------------------------------------------------ connections
    async def _serve(self, entry: _Listener, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        node, world = entry.node, self.world
        task = asyncio.current_task()
        with world.lock:
            node.connections += 1
            count = node.connections
            flaky = node.flaky_every
        if flaky and count % flaky == 0:
            writer.transport.abort()
            return
        entry.tasks.add(task)
        entry.writers.add(writer)
        peer = writer.get_extra_info("peername") or ("", 0)
        session = world.new_session(node, "%s:%s" % (peer[0], peer[1]))
        parser = RequestParser()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                parser.feed(data)
                # Like Redis, the replies to the commands of one read go out together (Redis writes them before
                # it sleeps again); whatever was answered goes out before a hung or slow node stops answering.
                replies: list[bytes] = []
                ending = False  # a protocol error or QUIT: answer, then close
                while not ending:
                    try:
                        command = parser.next_command()
                    except ProtocolError as exc:
                        replies.append(encode(Error("ERR %s" % exc)))
                        ending = True
                        break
                    if command is None:
                        break
                    if not entry.responsive.is_set() or node.slow_ms:
                        writer.write(b"".join(replies))
                        replies = []
                        await entry.responsive.wait()
                        if node.slow_ms:
                            await asyncio.sleep(node.slow_ms / 1000.0)
                            await entry.responsive.wait()
                    with world.lock:
                        reply = execute(world, node, session, command)
                    ending = isinstance(reply, tuple) and len(reply) == 2 and reply[1] is CLOSE
                    replies.append(encode(reply[0] if ending else reply, session.protocol))
                writer.write(b"".join(replies))
                await writer.drain()
                if ending:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            entry.tasks.discard(task)
            entry.writers.discard(writer)
            writer.transport.abort()
