"""Loopback ports that no two users share while a test runs.

The kernel hands out `bind(("127.0.0.1", 0))` ports from the ephemeral range, and a port that a test closed
(a killed server, a proxy that died, an address kept "dead" on purpose) can be handed to another process a moment
later. With two pytest-xdist workers that happened: a probe meant for a dead master reached another test's
server, and a group was judged on its answer. So every port whose owner may close it while the test still
names it comes from here: below the ephemeral range, from a block of its own for each xdist worker, and never
twice from one process before it has gone round its block (a random starting point keeps the subprocesses of
one worker apart).
"""
from __future__ import annotations

import errno
import os
import random
import socket
import threading

FIRST_PORT, LAST_PORT = 10000, 32000  # below the ephemeral range (32768-60999 here), above well-known services
BLOCKS = 10


def try_bind(host: str, port: int, reuse: bool = True) -> "socket.socket | None":
    """A TCP socket bound (not listening) to host:port, or None when the port is in use."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        return None


def _block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = (LAST_PORT - FIRST_PORT) // BLOCKS
    start = FIRST_PORT + (index % BLOCKS) * size
    return range(start, start + size)


class PortAllocator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = _block()
        self._next = random.randrange(len(self._block))

    def _candidate(self) -> int:
        with self._lock:
            port = self._block[self._next % len(self._block)]
            self._next += 1
            return port

    def bind(self, reuse: bool = True, host: str = "127.0.0.1") -> socket.socket:
        """A TCP socket bound (not listening) to a port nobody else uses now and this process has not handed
        out in this round; a bound socket that does not listen refuses connections."""
        for _attempt in range(len(self._block)):
            sock = try_bind(host, self._candidate(), reuse)
            if sock is not None:
                return sock
        raise OSError(errno.EADDRINUSE, "no free port in %s" % self._block)

    def port(self) -> int:
        """A port free now, for a server started by another process (redis-server, ZooKeeper, etcd), or one that
        is to stay dead: nothing in this process binds it again in this round."""
        sock = self.bind(reuse=False)
        try:
            return int(sock.getsockname()[1])
        finally:
            sock.close()


PORTS = PortAllocator()
free_port = PORTS.port
bound_socket = PORTS.bind
