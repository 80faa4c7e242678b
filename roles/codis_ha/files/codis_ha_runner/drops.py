# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wake the runner the moment a master's connection drops.

A killed master's kernel closes its connections at once (a reset or an end of file), but the timer would start the
next pass up to an interval later: at 1 s, half of a kill's failover time was that wait. Between passes the runner
holds one idle TCP connection to every master the last pass reported (nothing is sent on it: no command, no
password, so TLS and ACLs do not matter; Redis keeps idle clients unless `timeout` is set), and its pause is a
select() on them. When one becomes readable (closed, reset, or anything at all) the pause ends and a pass starts:
the same pass with the same rules; the drop only decides when it runs. A frozen or cut-off host closes nothing,
so the timer still covers those. Single-threaded on purpose: the runner forks its worker, and a thread alive at a
fork is a hazard.
"""

from __future__ import annotations

import selectors
import socket
import time
from typing import Any, Iterable

# Connecting to a master that does not answer must not hold the runner's schedule: a short timeout per master.
CONNECT_TIMEOUT = 0.2


def masters_of(result: dict[str, Any]) -> set[str]:
    """The master of every group the pass reported, where its probe found that server alive (a frozen host would
    hold each connect for its timeout; the timer covers it anyway)."""
    out = set()
    for group in result.get("groups") or []:
        master = group.get("master") if isinstance(group, dict) else None
        if isinstance(master, str) and any(isinstance(s, dict) and s.get("addr") == master and s.get("alive") is True
                                           for s in group.get("servers") or []):
            out.add(master)
    return out


def _host_port(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


class DropWatch:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.selector = selectors.DefaultSelector()
        self.sockets: dict[str, socket.socket] = {}
        self.dropped: list[str] = []

    def watch(self, masters: Iterable[str]) -> None:
        """Hold a connection to each of these masters (and to no other server)."""
        if not self.enabled:
            return
        wanted = set(masters)
        for addr in set(self.sockets) - wanted:
            self._forget(addr)
        for addr in sorted(wanted - set(self.sockets)):
            try:
                sock = socket.create_connection(_host_port(addr), timeout=CONNECT_TIMEOUT)
            except (OSError, ValueError):
                continue  # down already: the pass that just ran has seen it; the next one will
            sock.setblocking(False)
            self.sockets[addr] = sock
            self.selector.register(sock, selectors.EVENT_READ, addr)

    def wait(self, seconds: float) -> bool:
        """Pause up to `seconds`; True when a master's connection dropped meanwhile (it is then forgotten)."""
        if not self.sockets:
            time.sleep(seconds)
            return False
        events = self.selector.select(seconds)
        self.dropped = [key.data for key, _mask in events]
        for addr in self.dropped:
            self._forget(addr)
        return bool(self.dropped)

    def _forget(self, addr: str) -> None:
        sock = self.sockets.pop(addr)
        self.selector.unregister(sock)
        sock.close()

    def close(self) -> None:
        for addr in list(self.sockets):
            self._forget(addr)
        self.selector.close()
