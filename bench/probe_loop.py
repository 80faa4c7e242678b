"""What a probe loop on non-blocking sockets would cost (issue 26's next step), measured before it is built.

2,000 fake servers (the simulator in its own process); one connection kept to each; then, per round, the probe's
three commands (INFO, ROLE, CONFIG GET repl-*) sent to every server at once and the replies read by one thread with
a selector and a small RESP reader, INFO split into fields. No attempts, timeouts, AUTH or TLS: a floor for the
probe phase, to set against the threaded redis-py probes of `bench/scale.py --worker` (docs/benchmarks.md 3b).
"""
from __future__ import annotations

import argparse
import json
import resource
import selectors
import socket
import statistics
import sys
import time
from typing import Any, Optional

from scale import SimulatorProcess, _groups

REQUEST = b"*1\r\n$4\r\nINFO\r\n*1\r\n$4\r\nROLE\r\n*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$6\r\nrepl-*\r\n"


def resp_value(buf: bytes, pos: int) -> Optional[tuple[Any, int]]:
    """One RESP2 value of `buf` from `pos` and where the next begins, or None while it is incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line = buf[pos:pos + 1], buf[pos + 1:end]
    if kind in (b"+", b"-"):
        return (line.decode() if kind == b"+" else RuntimeError(line.decode())), end + 2
    if kind == b":":
        return int(line), end + 2
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, end + 2
        if len(buf) < end + 4 + size:
            return None
        return buf[end + 2:end + 2 + size].decode(), end + 4 + size
    if kind == b"*":
        items, at = [], end + 2
        for _index in range(int(line)):
            got = resp_value(buf, at)
            if got is None:
                return None
            items.append(got[0])
            at = got[1]
        return items, at
    raise ValueError("not RESP: %r" % kind)


def probe_round(connections: dict[str, socket.socket]) -> int:
    """Every server asked at once, every answer read and INFO split into fields; how many answered in 1 s."""
    selector = selectors.DefaultSelector()
    received: dict[socket.socket, bytearray] = {}
    for addr, sock in connections.items():
        sock.send(REQUEST)
        received[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ, addr)
    answered = 0
    deadline = time.monotonic() + 1.0
    while answered < len(connections) and time.monotonic() < deadline:
        for key, _events in selector.select(0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            received[sock] += sock.recv(65536)
            replies, at = [], 0
            while len(replies) < 3:
                got = resp_value(bytes(received[sock]), at)
                if got is None:
                    break
                replies.append(got[0])
                at = got[1]
            if len(replies) == 3:
                dict(line.partition(":")[::2] for line in replies[0].split("\r\n") if ":" in line)
                selector.unregister(sock)
                answered += 1
    selector.close()
    return answered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    sim = SimulatorProcess(options.servers)
    connections: dict[str, socket.socket] = {}
    rows = []
    try:
        for addr in sorted(a for g in _groups(sim).values() for a in g):
            host, port = addr.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            connections[addr] = sock
        for _round in range(options.rounds):
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            answered = probe_round(connections)
            after = resource.getrusage(resource.RUSAGE_SELF)
            rows.append({"answered": answered, "wall_s": time.monotonic() - started,
                         "user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime})
    finally:
        for sock in connections.values():
            sock.close()
        sim.close()
    summary = {"servers": options.servers, "rounds": rows,
               "median": {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "user_s", "sys_s")}}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
