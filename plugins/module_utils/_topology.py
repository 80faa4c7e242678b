# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The facts a pass works on: what the dashboard says (Topology) and what each Redis says (ProbeResult).

Plain data, no I/O: the dashboard client and the probe produce these, the planner consumes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Optional

KNOWN_TYPES = ("master", "slave", "offline")

ALIVE = "alive"
DOWN = "down"
AUTH_ERROR = "auth_error"
ERROR = "error"


def normalize_addr(addr: Optional[str]) -> Optional[str]:
    """Compare addresses the way Redis and the dashboard may spell them ('localhost' is 127.0.0.1)."""
    if addr is None:
        return None
    host, sep, port = addr.strip().rpartition(":")
    if not sep:
        return addr.strip().lower()
    host = host.strip("[]").lower()
    if host in ("localhost", "::ffff:127.0.0.1"):
        host = "127.0.0.1"
    return "%s:%s" % (host, port)


@dataclass(frozen=True)
class Server:
    addr: str
    type: str
    # The dashboard's own view of the server (Codis 3 polls every server): True when its last poll got an
    # answer, False when it got an error or a timeout, None when the dashboard keeps no view (Codis 2).
    dashboard_alive: Optional[bool] = None


@dataclass(frozen=True)
class ServerGroup:
    id: int
    servers: tuple[Server, ...] = ()
    # Why the dashboard itself says the group must not be touched now (a promotion left half done, a slot
    # migration running), or None.
    busy: Optional[str] = None

    def of_type(self, server_type: str) -> list[Server]:
        return [s for s in self.servers if s.type == server_type]

    @property
    def master(self) -> Optional[Server]:
        masters = self.of_type("master")
        return masters[0] if len(masters) == 1 else None

    def snapshot(self) -> dict[str, str]:
        return {s.addr: s.type for s in sorted(self.servers, key=lambda s: s.addr)}

    def with_types(self, types: dict[str, str]) -> "ServerGroup":
        return replace(self, servers=tuple(replace(s, type=types.get(s.addr, s.type)) for s in self.servers))


@dataclass(frozen=True)
class Topology:
    groups: tuple[ServerGroup, ...] = ()
    # What a promotion makes of the old master: Codis 2 marks it offline, Codis 3 keeps it last, as a slave.
    demoted_type: str = "offline"

    def group(self, gid: int) -> Optional[ServerGroup]:
        return next((g for g in self.groups if g.id == gid), None)

    @property
    def addrs(self) -> list[str]:
        return sorted({s.addr for g in self.groups for s in g.servers})

    def with_groups(self, groups: tuple[ServerGroup, ...]) -> "Topology":
        return replace(self, groups=groups)

    def snapshot(self) -> dict[str, dict[str, str]]:
        """The shape shown in --diff: group -> address -> type."""
        return {"group %d" % g.id: g.snapshot() for g in sorted(self.groups, key=lambda g: g.id)}


@dataclass(frozen=True)
class ProbeResult:
    """What one Redis server said about itself (or why it said nothing) after up to N attempts."""
    addr: str
    status: str
    error: str = ""
    attempts: int = 1
    role: Optional[str] = None
    master_addr: Optional[str] = None
    link_up: Optional[bool] = None
    last_io_seconds: Optional[int] = None
    link_down_seconds: Optional[int] = None
    offset: Optional[int] = None
    priority: Optional[int] = None
    loading: bool = False
    syncing: bool = False
    replid: Optional[str] = None
    keys: Optional[int] = None
    replicas: tuple[str, ...] = field(default_factory=tuple)

    @property
    def alive(self) -> bool:
        return self.status == ALIVE

    def replicates_from(self, master: str) -> bool:
        return self.role == "slave" and normalize_addr(self.master_addr) == normalize_addr(master)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["replicas"] = list(self.replicas)
        return out


@dataclass
class GroupHistory:
    """What earlier passes saw of one group (kept in the state file)."""
    master: Optional[str] = None
    master_offset: Optional[int] = None
    seen_alive_at: Optional[float] = None
    down_since: Optional[float] = None
    last_failover_at: Optional[float] = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GroupHistory":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
