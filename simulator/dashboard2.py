"""A Codis 2.x dashboard (`codis-config dashboard`) over real HTTP, as unkind as the real one.

Behaviour follows ../shared/codis-dashboard-api.md: 200 with pretty JSON for reads, `{"msg": "OK",
"ret": 0}` for successful mutations, 500 with a plain-text Go error string for every error, everything sent
as text/plain; promote takes the group from the BODY's group_id; addServer is an upsert forced to the URL
group; the coordinator lock never waits; servers come back sorted by address (the etcd quirk).
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from .http_base import AuditEntry, DashboardError, DashboardHTTP
from .model import World

LOCK_TIMEOUT = "zkutil: obtaining lock timed out"
KNOWN_TYPES = ("master", "slave", "offline")


@dataclass
class Codis2State:
    """The coordinator's content: group id -> list of Server dicts, in insertion order."""
    product_name: str = "codis-demo"
    groups: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    sort_servers: bool = True
    # GET /api/proxy/list: the registered proxies (none unless a test registers one).
    proxies: list[dict[str, Any]] = field(default_factory=list)

    def group_json(self, gid: int) -> dict[str, Any]:
        servers = [dict(s) for s in self.groups[gid]]
        if self.sort_servers:
            servers.sort(key=lambda s: str(s.get("addr")))
        return {"id": gid, "product_name": self.product_name, "servers": servers or None}


class Codis2Dashboard(DashboardHTTP):
    server_version = "codis-config-simulator"  # errors: HTTP 500 with text/plain, the base's defaults

    def __init__(self, world: Optional[World], host: str = "127.0.0.1", port: int = 0,
                 product_name: str = "codis-demo", redis_timeout: float = 5.0,
                 redis_side: Optional[Any] = None) -> None:
        super().__init__(world, host, port, product_name, redis_timeout, redis_side)
        self.state = Codis2State(product_name=product_name)
        self._coordinator_lock = threading.Lock()
        self.start()

    # ------------------------------------------------------------------ seeding and reading
    def seed_group(self, gid: int, servers: list[tuple[str, str]]) -> None:
        with self._state_lock:
            self.state.groups[gid] = [{"type": t, "group_id": gid, "addr": a} for a, t in servers]

    def register_proxy(self, name: str, addr: str, state: str = "online") -> None:
        """A proxy as the real dashboard lists it (the fields of GET /api/proxy/list on release2.0)."""
        with self._state_lock:
            self.state.proxies.append({"id": name, "addr": addr, "last_event": "", "last_event_ts": 0,
                                       "state": state, "description": "", "debug_var_addr": addr, "pid": 0,
                                       "start_at": ""})

    def inject_server(self, gid: int, addr: str, server_type: Optional[str]) -> None:
        """Store a server as-is (e.g. an unknown type), bypassing every check."""
        with self._state_lock:
            servers = self.state.groups.setdefault(gid, [])
            servers[:] = [s for s in servers if s["addr"] != addr]
            servers.append({"type": server_type, "group_id": gid, "addr": addr})

    def masters(self) -> dict[int, list[str]]:
        with self._state_lock:
            return {gid: [s["addr"] for s in servers if s["type"] == "master"]
                    for gid, servers in self.state.groups.items()}

    def servers(self, gid: int) -> dict[str, str]:
        with self._state_lock:
            return {s["addr"]: s["type"] for s in self.state.groups.get(gid, [])}

    def group_ids(self) -> list[int]:
        with self._state_lock:
            return sorted(self.state.groups)

    def poll(self) -> None:
        """The Codis 2 dashboard keeps no view of its own of the servers."""

    # ------------------------------------------------------------------ redis side effects
    def _send_slaveof(self, addr: str, master: Optional[str]) -> None:
        """What the Go dashboard does with a TCP connection to the server."""
        self.redis_side.slaveof(addr, master)

    # ------------------------------------------------------------------ API
    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        mutating = method in ("PUT", "POST", "DELETE")
        try:
            if mutating:
                if self.faults.lock_conflict > 0:
                    self.faults.lock_conflict -= 1
                    raise DashboardError(LOCK_TIMEOUT)
                if self.faults.stale_lock:
                    raise DashboardError(LOCK_TIMEOUT)
                if not self._coordinator_lock.acquire(blocking=False):
                    raise DashboardError(LOCK_TIMEOUT)
                try:
                    status, text = self._route(method, path, body)
                finally:
                    self._coordinator_lock.release()
            else:
                status, text = self._route(method, path, body)
        except DashboardError as exc:
            status, text = 500, str(exc)
        if mutating:
            self.audit.append(AuditEntry(time.time(), method, path, body.decode(errors="replace"),
                                         status, text))
        return status, text

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        path = path.split("?", 1)[0].rstrip("/")
        if path == "/api/force_remove_locks" and method == "GET":
            # Deletes every lock node, a running call's included; here only the one a killed dashboard left.
            self.faults.stale_lock = False
            return 200, _OK
        if path == "/api/proxy/list" and method == "GET":
            with self._state_lock:
                return 200, json.dumps(self.state.proxies, indent="  ").replace("\n", "\n ")
        if path == "/api/server_groups":
            if method == "GET":
                return 200, _pretty(self._list_groups())
            if method == "PUT":
                return self._create_group(_decode_body(body))
        m = re.fullmatch(r"/api/server_group/([^/]+)(?:/(addServer|removeServer|promote))?", path)
        if m:
            if not m.group(1).isdigit():
                return 404, "404 page not found"
            gid, action = int(m.group(1)), m.group(2)
            if action is None and method == "GET":
                return 200, _pretty(self._get_group(gid))
            if action is None and method == "DELETE":
                return self._delete_group(gid)
            if action == "addServer" and method == "PUT":
                return self._add_server(gid, _decode_body(body))
            if action == "removeServer" and method == "PUT":
                return self._remove_server(gid, _decode_body(body))
            if action == "promote" and method == "POST":
                return self._promote(_decode_body(body))
        return 404, "404 page not found"

    def _list_groups(self) -> list[dict[str, Any]]:
        with self._state_lock:
            if not self.state.groups:
                raise DashboardError("zk: node does not exist")
            return [self.state.group_json(gid) for gid in sorted(self.state.groups)]

    def _get_group(self, gid: int) -> dict[str, Any]:
        with self._state_lock:
            if gid not in self.state.groups:
                raise DashboardError("group %d is not found" % gid)
            return self.state.group_json(gid)

    def _create_group(self, body: dict[str, Any]) -> tuple[int, str]:
        gid = _as_int(body.get("id"))
        with self._state_lock:
            if gid in self.state.groups:
                raise DashboardError("group already exists")
            self.state.groups[gid] = []
        return 200, _OK

    def _delete_group(self, gid: int) -> tuple[int, str]:
        with self._state_lock:
            if gid not in self.state.groups:
                raise DashboardError("group %d is not found" % gid)
            del self.state.groups[gid]
        return 200, _OK

    def _add_server(self, gid: int, body: dict[str, Any]) -> tuple[int, str]:
        addr = str(body.get("addr") or "")
        server_type = str(body.get("type") or "")
        if not addr:
            # The real dashboard crashed on this once; answer an error rather than store garbage.
            raise DashboardError("invalid server address")
        with self._state_lock:
            servers = self.state.groups.setdefault(gid, [])
            master = next((s for s in servers if s["type"] == "master"), None)
            if server_type == "master" and master is not None and master["addr"] != addr:
                raise DashboardError("node already exists")
            if not servers:
                server_type = "master"
            existing = next((s for s in servers if s["addr"] == addr), None)
            if existing is None:
                servers.append({"type": server_type, "group_id": gid, "addr": addr})
            else:
                existing["type"] = server_type
                existing["group_id"] = gid
        if server_type == "slave" and master is not None and master["addr"] != addr:
            self._send_slaveof(addr, master["addr"])
        return 200, _OK

    def _remove_server(self, gid: int, body: dict[str, Any]) -> tuple[int, str]:
        addr = str(body.get("addr") or "")
        with self._state_lock:
            if gid not in self.state.groups:
                raise DashboardError("group %d is not found" % gid)
            servers = self.state.groups[gid]
            target = next((s for s in servers if s["addr"] == addr), None)
            if target is None:
                raise DashboardError("no such addr")
            if target["type"] == "master":
                raise DashboardError("cannot remove master, use promote first")
            servers.remove(target)
        return 200, _OK

    def _promote(self, body: dict[str, Any]) -> tuple[int, str]:
        gid = _as_int(body.get("group_id"))
        addr = str(body.get("addr") or "")
        with self._state_lock:
            if gid not in self.state.groups:
                raise DashboardError("group %d is not found" % gid)
            servers = self.state.groups[gid]
            if not any(s["addr"] == addr for s in servers):
                raise DashboardError("no such addr")
        self._send_slaveof(addr, None)
        if self.faults.promote_half_done > 0:
            # The coordinator write failed after SLAVEOF NO ONE (a ZooKeeper session expired): the target is a
            # Redis master now, the group still lists the old one.
            self.faults.promote_half_done -= 1
            raise DashboardError("zk: session has been expired by the server")
        with self._state_lock:
            for s in self.state.groups.get(gid, []):
                if s["type"] == "master" and s["addr"] != addr:
                    s["type"] = "offline"
                if s["addr"] == addr:
                    s["type"] = "master"
        if self.faults.proxy_ack_seconds:
            time.sleep(self.faults.proxy_ack_seconds)  # every online proxy acknowledges, polled every 500 ms
        if self.faults.proxies_hold > 0:
            self.faults.proxies_hold -= 1
            with self._state_lock:
                held = [p for p in self.state.proxies if p["state"] == "online"]
                for proxy in held:
                    proxy["state"] = "mark_offline"
            if held:
                raise DashboardError("Some proxies may not stop cleanly: %s receiver timeout"
                                     % ", ".join(p["id"] for p in held))
        if self.faults.promote_500_after_commit > 0:
            self.faults.promote_500_after_commit -= 1
            raise DashboardError("Some proxies may not stop cleanly: proxy_1 receiver timeout")
        if self.faults.dead_proxy_wait > 0:
            # Still under the coordinator lock: every other mutating call meanwhile gets the lock timeout.
            time.sleep(self.faults.dead_proxy_wait)
            raise DashboardError("zk: node does not exist")
        return 200, _OK


_OK = json.dumps({"msg": "OK", "ret": 0}, indent="    ")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent="    ")


def _as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _decode_body(body: bytes) -> dict[str, Any]:
    # Malformed JSON reaches the real handler as a zero-value struct, it is not rejected.
    try:
        value = json.loads(body.decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
