# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The facts a pass works on: what the dashboard says (Topology) and what each Redis says (ProbeResult).

Plain data, no I/O: the dashboard client and the probe produce these, the planner consumes them.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any, Callable, Optional

KNOWN_TYPES = ("master", "slave", "offline")


class Word(str, Enum):
    """A word of the module's vocabulary (a decision, an action, a status): it compares equal to its text, and
    prints and serialises as that text, so results and log lines read the same as plain strings did."""

    def __str__(self) -> str:
        return str.__str__(self)  # the text itself, without the enum's `value` lookup (2,000 a pass)

    def __format__(self, spec: str) -> str:
        return format(str.__str__(self), spec)


class ServerStatus(Word):
    """What a probe of one server found."""
    ALIVE = "alive"
    DOWN = "down"
    AUTH_ERROR = "auth_error"
    ERROR = "error"


ALIVE, DOWN, AUTH_ERROR, ERROR = ServerStatus.ALIVE, ServerStatus.DOWN, ServerStatus.AUTH_ERROR, ServerStatus.ERROR


def parse_addr(addr: Any) -> tuple[str, int]:
    """(host, port) of a `host:port` or `[ipv6]:port` address, the host in one canonical spelling; ValueError
    with the reason otherwise. Addresses are identities: two spellings of one server must compare equal."""
    if not isinstance(addr, str):
        raise ValueError("not a string")
    return _parse_text(addr)


# A pass parses the same few addresses dozens of times (54 calls for 9 servers); the answer
# depends on the text alone. An address that is refused raises each time: exceptions are not cached.
@functools.lru_cache(maxsize=8192)
def _parse_text(addr: str) -> tuple[str, int]:
    text = addr.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("an IPv6 address must be written [address]:port")
        port = rest[1:]
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError("no port")
        if ":" in host:
            raise ValueError("an IPv6 address must be written [address]:port")
    if not port.isdigit() or not port.isascii() or len(port) > 10 or not 1 <= int(port) <= 65535:
        raise ValueError("port %r is not a number from 1 to 65535" % port)
    if not host or len(host) > 253 or any(c.isspace() or not c.isprintable() or c in "/@[]" for c in host):
        raise ValueError("host %r is not a host name or IP address" % host)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        host = host.lower().rstrip(".")
        return ("127.0.0.1" if host == "localhost" else host), int(port)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.compressed, int(port)


def format_addr(host: str, port: int) -> str:
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def canonical_addr(addr: Any) -> Optional[str]:
    """The canonical spelling of an address, or None when it is not one."""
    try:
        return format_addr(*parse_addr(addr))
    except ValueError:
        return None


def normalize_addr(addr: Optional[str]) -> Optional[str]:
    """Compare addresses the way Redis and the dashboard may spell them ('localhost' is 127.0.0.1)."""
    if addr is None:
        return None
    return canonical_addr(addr) or addr.strip().lower()


def same_server(a: Optional[str], b: Optional[str]) -> bool:
    return a is not None and b is not None and normalize_addr(a) == normalize_addr(b)


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
    # Why the dashboard itself says the group must not be touched now (a promotion left half done), or None.
    busy: Optional[str] = None
    # Codis 3: the slot migration under way, if any ("slot(s) 3, 4 in state pending"). Not a reason to wait: the
    # dashboard accepts a promote between migration batches, and a migration whose source master died never ends.
    migrating: Optional[str] = None
    # Codis 3: the server the dashboard was promoting when it stopped (promoting.index), if the group is busy so.
    promoting: Optional[str] = None
    # Why the group, as listed, is not something the tool may act on (a malformed or duplicated address, a
    # server that another group lists too), or None.
    invalid: Optional[str] = None
    # Addresses of entries the tool could not read (a server without a string type): not servers of the group,
    # but a group that lists one of them too shares a server with this one all the same.
    unreadable: tuple[str, ...] = ()

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


# How long a proxy's admin port may leave an HTTP request unanswered before this host calls it hung. A live
# proxy answers in milliseconds; the dashboard's own poll gives up after 1 s.
HANG_EVIDENCE = 2.0


@dataclass(frozen=True)
class Proxy:
    """A proxy the dashboard lists (Codis 3). A dead or hung one blocks every promotion until it is removed."""
    token: str
    admin_addr: str
    # The dashboard's fresh poll of it: True answered, False an error or a timeout, None no fresh view.
    dashboard_alive: Optional[bool] = None
    # When that poll ended (the dashboard's unixtime, whole seconds), if it is fresh.
    polled_at: Optional[float] = None
    # This host's own check of its admin port: True refused (nothing listens), None not checked.
    refused: Optional[bool] = None
    # The port took this host's connection but sent no byte of an answer to an HTTP request in HANG_EVIDENCE
    # seconds (a stopped process, a host that froze with its sockets open); None not checked.
    silent: Optional[bool] = None

    @property
    def dead(self) -> bool:
        """Dead by two opinions: the dashboard's poll failed and its admin port refuses a connection."""
        return self.dashboard_alive is False and self.refused is True

    @property
    def hung(self) -> bool:
        """Hung by two opinions: the dashboard's poll failed and the admin port takes a connection but is silent."""
        return self.dashboard_alive is False and self.silent is True

    @property
    def doubtful(self) -> bool:
        """Not answering this host while the dashboard's poll has not (yet) failed: the dashboard polls a proxy
        every second or two and gives a silent one a second, so a proxy that just stopped looks alive to it for up
        to three seconds, and a promote sent then waits on it with the dashboard's whole API (a minute)."""
        return not (self.dead or self.hung) and (self.refused is True or self.silent is True)

    @property
    def state(self) -> str:
        if self.dead:
            return "dead (the dashboard's poll failed and its admin port refuses)"
        if self.doubtful:
            return "%s this host, and the dashboard's last poll of it %s" % (
                "refusing" if self.refused else "silent to an HTTP request (%g s) from" % HANG_EVIDENCE,
                "answered" if self.dashboard_alive else "is not fresh (the dashboard was busy or has not polled it)")
        return "hung (the dashboard's poll failed and its admin port takes a connection but answers nothing in " \
               "%g s)" % HANG_EVIDENCE


@dataclass(frozen=True)
class Topology:
    groups: tuple[ServerGroup, ...] = ()
    proxies: tuple[Proxy, ...] = ()
    # What a promotion makes of the old master: Codis 2 marks it offline, Codis 3 keeps it last, as a slave.
    demoted_type: str = "offline"
    # Codis 3: the Redis Sentinels registered in the dashboard (its stats' sentinels.model.servers), if any.
    sentinels: tuple[str, ...] = ()
    # Why the dashboard listed no group, in its own words, when they can also mean a mistake of ours (Codis 2
    # answers "zk: node does not exist" for an empty cluster and for a wrong product name or path alike).
    empty_answer: Optional[str] = None

    def group(self, gid: int) -> Optional[ServerGroup]:
        return next((g for g in self.groups if g.id == gid), None)

    def with_groups(self, groups: tuple[ServerGroup, ...]) -> "Topology":
        return replace(self, groups=groups)

    def identity_conflicts(self, identity: Callable[[str], str]) -> "Topology":
        """The same topology with every group that shares a server with another group, or lists one server
        twice under two spellings, marked invalid. `identity` maps a listed address to the server it names."""
        where: dict[str, list[tuple[int, str, str]]] = {}
        for g in self.groups:
            entries = [(s.addr, s.type) for s in g.servers] + [(a, "an unreadable entry") for a in g.unreadable]
            for addr, listed_as in entries:
                where.setdefault(identity(addr), []).append((g.id, addr, listed_as))
        problems: dict[int, str] = {}
        for ident, listed in sorted(where.items()):
            gids = sorted({entry[0] for entry in listed})
            if len(gids) > 1:
                places = ", ".join("%d (%s as %s)" % entry for entry in listed)
                why = ("server %s is listed in groups %s; a server belongs to one group, an operator must remove "
                       "it from all but one" % (ident, places))
            elif len(listed) > 1:
                spellings = ", ".join("%s as %s" % entry[1:] for entry in listed)
                why = ("server %s is listed %d times in the group (%s); one server under two spellings, an "
                       "operator must remove the extra entry" % (ident, len(listed), spellings))
            else:
                continue
            for gid in gids:
                problems.setdefault(gid, why)
        if not problems:
            return self
        return self.with_groups(tuple(g if g.id not in problems or g.invalid else replace(g, invalid=problems[g.id])
                                      for g in self.groups))

    def snapshot(self) -> dict[str, dict[str, str]]:
        """The shape shown in --diff: group -> address -> type."""
        return {"group %d" % g.id: g.snapshot() for g in sorted(self.groups, key=lambda g: g.id)}


@dataclass(frozen=True)
class ProbeResult:
    """What one Redis server said about itself (or why it said nothing) after up to N attempts."""
    addr: str
    status: ServerStatus
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
    # The replication history this server continued from (INFO master_replid2): a slave that was promoted keeps
    # its old master's replid here, which tells a half-done promotion from a stranger.
    replid2: Optional[str] = None
    # INFO second_repl_offset: the first byte this server did NOT take from the history in replid2 (-1: none).
    second_offset: Optional[int] = None
    keys: Optional[int] = None
    # The connection was refused (the host answered, nothing listens): a dead process, not a silent host.
    refused: bool = False
    # The master's repl-ping-replica-period (CONFIG GET), when it lets us read it: sizes the witness window.
    ping_period: Optional[int] = None
    # The master's repl-diskless-sync-delay (CONFIG GET): how long a full sync from it waits before it starts.
    sync_delay: Optional[int] = None
    # A slave's replication state as ROLE names it: connected, sync (a full sync's transfer), handshake (the master
    # answered and the slave waits for its reply to PSYNC: all through a diskless full sync's delay), connecting,
    # connect.
    link_state: Optional[str] = None
    # When the answer arrived (time.monotonic()), for a server that answered.
    answered_at: Optional[float] = None
    # A server that never answered: how long it stayed silent through this probe's attempts, first to last.
    down_for: float = 0.0
    # A slave of an unreachable master, looked at again at the end of the probe phase: how long its replication
    # offset stood still between the two looks (link up to the same master both times), and the last I/O age it
    # reported the second time. A live master pings its slaves every ping period, which moves their offsets.
    still_for: Optional[float] = None
    still_last_io: Optional[int] = None

    @property
    def alive(self) -> bool:
        return self.status == ALIVE

    def replicates_from(self, master: str) -> bool:
        return self.role == "slave" and same_server(self.master_addr, master)

    def linked_to(self, master: str) -> bool:
        """A live slave of `master` whose replication link is up."""
        return self.alive and self.replicates_from(master) and bool(self.link_up)

    def holds_history_to(self, replid: Optional[str]) -> Optional[int]:
        """How far this server holds the replication history `replid` (the offset a replica of that history
        could continue from here), or None if it is not one of its histories."""
        if not replid or not replid.strip("0"):  # all zeros: Redis's "no such history"
            return None
        if replid == self.replid:
            return self.offset or 0
        if replid == self.replid2:
            if self.second_offset is not None and self.second_offset > 0:
                return self.second_offset - 1
            return self.offset or 0
        return None


LINEAGE_SIZE = 16  # histories remembered per group: failovers far enough back are long in every server's data


def extend_lineage(lineage: Optional[dict[str, int]], seen: "ProbeResult") -> dict[str, int]:
    """The lineage with what a live master shows: its history to its offset, and the history it went on from to
    the point it went on. A master whose histories are both unknown to a non-empty lineage (restarted without its
    data, or a server from elsewhere) starts a new one: nothing says it holds the old."""
    known = dict(lineage or {})
    went_on = seen.replid2 if (seen.replid2 and seen.replid2.strip("0") and seen.second_offset is not None
                               and seen.second_offset > 0) else None
    if known and not any(r in known for r in (seen.replid, went_on) if r):
        known = {}
    for replid, offset in ((went_on, (seen.second_offset or 1) - 1), (seen.replid, seen.offset or 0)):
        if replid and replid.strip("0"):
            known[replid] = max(known.get(replid, 0), offset)
    while len(known) > LINEAGE_SIZE:
        # Offsets run on from one history to the next: the lowest is the oldest (the state file keeps no order).
        del known[min(known, key=lambda r: (known[r], r))]
    return known


@dataclass
class GroupHistory:
    """What earlier passes saw of one group (kept in the state file)."""
    master: Optional[str] = None
    master_offset: Optional[int] = None
    seen_alive_at: Optional[float] = None
    down_since: Optional[float] = None
    last_failover_at: Optional[float] = None
    master_replid: Optional[str] = None
    ping_period: Optional[int] = None
    sync_delay: Optional[int] = None
    # How many keys the master held then: a history of pings alone is no data to lose.
    master_keys: Optional[int] = None
    # The group's lineage: each replication history its masters were seen holding (as their own or as the one
    # they went on from), with the furthest offset the group held it to. Kept across failovers; a master with a
    # history unrelated to it starts it again.
    lineage: Optional[dict[str, int]] = None
    # Since when the Codis 2 dashboard's lock has refused every change this group needed (no change went through
    # since): a lock older than any call holds it was left by a dashboard killed during a call.
    lock_refused_since: Optional[float] = None

    @classmethod
    def from_dict(cls, data: Any, now: float, created_at: Optional[float] = 0.0) -> tuple["GroupHistory", list[str]]:
        """The history a state file holds, each field checked: a field of the wrong type, a time that is not
        finite, lies in the future or before the file was created (`created_at`; None: unknown, every time is
        dropped), a master seen down before it was last seen alive, is dropped with a note (forgetting only makes
        the pass more careful: a down_since of 0, 1970, bypassed down_after on the first pass)."""
        if not isinstance(data, dict):
            return cls(), ["not an object"]
        kept: dict[str, Any] = {}
        notes = []
        for f in fields(cls):
            value = data.get(f.name)
            if value is None:
                continue
            if f.name == "master":
                ok = isinstance(value, str) and canonical_addr(value) is not None
            elif f.name == "master_replid":
                ok = isinstance(value, str) and len(value) <= 64
            elif f.name == "lineage":
                ok = isinstance(value, dict) and len(value) <= LINEAGE_SIZE and all(
                    isinstance(k, str) and len(k) <= 64 and isinstance(v, int) and not isinstance(v, bool)
                    and v >= 0 for k, v in value.items())
            elif f.name == "ping_period":
                ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 3600
            elif f.name == "sync_delay":
                ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3600
            elif f.name in ("master_offset", "master_keys"):
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else:
                ok = created_at is not None and is_time(value, now, since=created_at)
            if ok:
                kept[f.name] = value
            else:
                notes.append("%s=%s ignored" % (f.name, clip(repr(value), 60)))
        if kept.get("down_since") is not None and kept["down_since"] < kept.get("seen_alive_at", -math.inf):
            notes.append("down_since=%s ignored (before seen_alive_at=%s)" % (kept["down_since"],
                                                                              kept["seen_alive_at"]))
            del kept["down_since"]
        return cls(**kept), notes


def is_time(value: Any, now: float, since: float = 0.0) -> bool:
    """A wall-clock time a state file may hold: a finite number from `since` to a minute past `now`."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and since <= value <= now + 60)


def clip(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters and marked so: a message quotes what it was given, never all of it."""
    return text if len(text) <= limit else text[:limit] + "..."
