"""A Codis 3.x dashboard (`codis-dashboard`, the topom API) over real HTTP, as unkind as the real one.

Behaviour follows the Codis 3.x part of ../shared/codis-dashboard-api.md: every route but the overview needs the
xauth token derived from the product name; errors are HTTP 800 with JSON `{"Cause", "Stack"}`; actions are PUT
without a body and answer `"OK"`; a group's servers[0] is its master; promote refuses index 0, a group promoting
another index and a running slot migration, does not check that the target is alive, goes through the
preparing / prepared / finished states, moves the old master to the END of the list and only logs a failed
SLAVEOF NO ONE; add requires SLOTSINFO (codis-server); re-pointing is an asynchronous sync action. The dashboard
polls every server itself (every `stats_interval` seconds) and serves what it last saw.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from typing import Any, Optional

from .http_base import AuditEntry, DashboardError, DashboardHTTP
from .model import World
from .ports import bound_socket

MAX_GROUP_ID = 9999
# The real dashboard's stats loop gives each proxy a second to answer (RefreshProxyStats(time.Second)).
PROXY_POLL_TIMEOUT = 1.0


def xauth(product_name: str) -> str:
    return hashlib.sha256(("Codis-XAuth-[%s]" % product_name).encode()).hexdigest()[:32]


class Codis3Dashboard(DashboardHTTP):
    error_status = 800
    content_type = "application/json; charset=utf-8"
    server_version = "codis-dashboard-simulator"

    def __init__(self, world: Optional[World], host: str = "127.0.0.1", port: int = 0,
                 product_name: str = "codis-demo", product_auth: str = "", redis_timeout: float = 5.0,
                 redis_side: Optional[Any] = None, stats_interval: float = 1.0, action_interval: float = 0.05) -> None:
        self.product_auth = product_auth
        self.xauth = xauth(product_name)
        self.groups3: dict[int, dict[str, Any]] = {}
        self.stats_cache: dict[str, dict[str, Any]] = {}
        # Registered proxies: token -> model, and the admin port of each live one (a listening socket that a
        # killed proxy closes, so that connecting to it is refused).
        self.proxies: dict[str, dict[str, Any]] = {}
        self.proxy_ports: dict[str, socket.socket] = {}
        self.proxy_stats: dict[str, dict[str, Any]] = {}
        self.hung_proxies: set[str] = set()
        self.hung_since: dict[str, float] = {}
        self.sentinels: list[str] = []  # Redis Sentinels registered (sentinels.model.servers)
        # Right after a promote, the new master's stats show an EOF for about a second: the promote's CLIENT KILL
        # cut the dashboard's own connection.
        self.eof_until: dict[str, float] = {}
        self.stats_interval = stats_interval
        self.action_interval = action_interval
        self._topom_lock = threading.Lock()  # the real topom serialises every call on one mutex
        self._stop_background = threading.Event()
        self._background: Optional[threading.Thread] = None
        super().__init__(world, host=host, port=port, product_name=product_name, redis_timeout=redis_timeout,
                         redis_side=redis_side)
        self.start()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        super().start()
        if self._background is None:
            self._stop_background.clear()
            self._background = threading.Thread(target=self._run_background, name="simulator-topom", daemon=True)
            self._background.start()

    def add_proxy(self) -> str:
        """A registered proxy whose admin port accepts connections; returns its token."""
        listener = bound_socket()
        listener.listen(16)
        with self._state_lock:
            token = "%032x" % (len(self.proxies) + 1)
            port = listener.getsockname()[1]
            self.proxies[token] = {"id": len(self.proxies) + 1, "token": token, "start_time": "2026-01-01 00:00:00",
                                   "admin_addr": "127.0.0.1:%d" % port, "proto_type": "tcp4",
                                   "proxy_addr": "127.0.0.1:%d" % (port + 1), "product_name": self.product_name}
            self.proxy_ports[token] = listener
        threading.Thread(target=self._serve_proxy_admin, args=(token, listener), daemon=True,
                         name="simulator-proxy-%s" % token[-4:]).start()
        return token

    def _serve_proxy_admin(self, token: str, listener: socket.socket) -> None:
        """The proxy's admin port: any request gets a short HTTP answer; a hung proxy takes the connection and
        says nothing (as a stopped process whose kernel still completes the handshake)."""
        held: list[socket.socket] = []
        while True:
            try:
                conn, _peer = listener.accept()
            except OSError:  # closed: the proxy died or was removed
                break
            if token in self.hung_proxies:
                held.append(conn)
                continue
            with contextlib.suppress(OSError), conn:
                conn.settimeout(1.0)
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n"
                             b"null")
        for conn in held:
            conn.close()

    def kill_proxy(self, token: str) -> None:
        """The proxy process dies; it stays registered. Its admin port now refuses connections."""
        with self._state_lock:
            listener = self.proxy_ports.pop(token, None)
        if listener is not None:
            # shutdown first: a close alone leaves the socket listening while a thread waits in accept().
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def hang_proxy(self, token: str, hung: bool = True) -> None:
        """The proxy stops (SIGSTOP) and keeps its port: connections are taken and never answered, the
        dashboard's poll of it times out, and each call the dashboard makes to it (a promote's resync, a removal's
        shutdown) holds the topom lock, every API call included, for `hung_proxy_wait` seconds, then fails."""
        with self._state_lock:
            if hung:
                self.hung_proxies.add(token)
                self.hung_since[token] = time.monotonic()
            else:
                self.hung_proxies.discard(token)

    def proxy_alive(self, token: str) -> bool:
        with self._state_lock:
            return token in self.proxy_ports

    def stop(self) -> None:
        for token in list(self.proxy_ports):
            self.kill_proxy(token)
        thread, self._background = self._background, None
        if thread is not None:
            self._stop_background.set()
            thread.join(timeout=10)
        super().stop()

    def _run_background(self) -> None:
        next_poll = 0.0
        while not self._stop_background.is_set():
            now = time.monotonic()
            if now >= next_poll and not self.faults.stale_stats:
                self.poll()
                next_poll = now + self.stats_interval
            self._run_one_sync_action()
            self._stop_background.wait(self.action_interval)

    # ------------------------------------------------------------------ seeding and reading
    def seed_group(self, gid: int, servers: list[tuple[str, str]]) -> None:
        ordered = [a for a, t in servers if t == "master"] + [a for a, t in servers if t != "master"]
        with self._state_lock:
            self.groups3[gid] = {"id": gid, "servers": [_server(a) for a in ordered], "promoting": {},
                                 "out_of_sync": False}

    def inject_server(self, gid: int, addr: str, server_type: Optional[str]) -> None:
        raise ValueError("Codis 3 has no server types: a group's first server is its master")

    def masters(self) -> dict[int, list[str]]:
        with self._state_lock:
            return {gid: [g["servers"][0]["server"]] if g["servers"] else [] for gid, g in self.groups3.items()}

    def servers(self, gid: int) -> dict[str, str]:
        with self._state_lock:
            servers = self.groups3.get(gid, {}).get("servers", [])
            return {s["server"]: "master" if i == 0 else "slave" for i, s in enumerate(servers)}

    def group_ids(self) -> list[int]:
        with self._state_lock:
            return sorted(self.groups3)

    def promoting(self, gid: int) -> dict[str, Any]:
        with self._state_lock:
            return dict(self.groups3[gid]["promoting"])

    def poll(self) -> None:
        """What the dashboard's own stats loop does: INFO every server, remember what it saw."""
        with self._state_lock:
            addrs = [s["server"] for g in self.groups3.values() for s in g["servers"]]
        seen = {addr: self.redis_side.stats(addr) for addr in addrs}
        now = int(self.world.clock.now()) if self.world is not None else int(time.time())
        for addr in addrs:
            if self.eof_until.get(addr, 0) > time.monotonic():
                seen[addr] = {"error": {"Cause": "EOF"}, "unixtime": now}
        # The real loops store what they saw under the topom lock: while a call to a hung proxy holds it, the
        # stats stand still (and the next poll stores newer ones); an ordinary call holds it for milliseconds.
        if not self._topom_lock.acquire(timeout=0.5):
            return
        try:
            with self._state_lock:
                self.stats_cache = seen
                self.proxy_stats = {token: self._proxy_poll(token, model, now) for token, model in self.proxies.items()}
        finally:
            self._topom_lock.release()

    def _proxy_poll(self, token: str, model: dict[str, Any], now: int) -> dict[str, Any]:
        """The dashboard's poll of one proxy. A hung one is given PROXY_POLL_TIMEOUT: until it has been hung that
        long, the dashboard still shows its last answer (fresh), as the real one does for up to three seconds."""
        if token in self.hung_proxies:
            if time.monotonic() - self.hung_since.get(token, 0.0) < PROXY_POLL_TIMEOUT and token in self.proxy_stats:
                return self.proxy_stats[token]
            return {"timeout": True, "unixtime": now}
        if token in self.proxy_ports:
            return {"stats": {"online": True, "closed": False}, "unixtime": now}
        return {"error": {"Cause": "dial tcp %s: connect: connection refused" % model["admin_addr"]}, "unixtime": now}

    # ------------------------------------------------------------------ API
    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        try:
            with self._topom_lock:
                status, text = self._route(method, path.split("?", 1)[0].rstrip("/"))
        except DashboardError as exc:
            status, text = 800, json.dumps({"Cause": str(exc), "Stack": [
                "github.com/CodisLabs/codis/pkg/topom/topom_group.go (simulated)"]})
        if method == "PUT":
            self.audit.append(AuditEntry(time.time(), method, path, "", status, text))
        return status, text

    def _route(self, method: str, path: str) -> tuple[int, str]:
        if method == "GET" and path == "/topom":
            return 200, _pretty(self._overview())
        if method == "GET" and path == "/api/topom/model":
            return 200, _pretty(self._model())
        m = re.fullmatch(r"/api/topom/stats/([^/]*)", path)
        if m and method == "GET":
            self._check_xauth(m.group(1))
            return 200, _pretty(self._stats())
        m = re.fullmatch(r"/api/topom/group/(create|add|del|promote|resync)/([^/]*)/([^/]+)(?:/([^/]+))?(?:/([^/]+))?",
                         path)
        if m and method == "PUT":
            verb, token, gid_text, addr, datacenter = m.groups()
            self._check_xauth(token)
            gid = _gid(gid_text)
            if verb == "create" and addr is None:
                return self._create(gid)
            if verb == "resync" and addr is None:
                return self._resync(gid)
            if verb == "add" and addr:
                return self._add(gid, addr, datacenter or "")
            if verb == "del" and addr and datacenter is None:
                return self._del(gid, addr)
            if verb == "promote" and addr and datacenter is None:
                return self._promote(gid, addr)
        m = re.fullmatch(r"/api/topom/sentinels/add/([^/]*)/([^/]+)", path)
        if m and method == "PUT":
            # The real one first flushes the sentinel's config (it must be a live Sentinel); this one keeps the
            # address, so that a pass sees a cluster that Sentinel guards.
            self._check_xauth(m.group(1))
            with self._state_lock:
                if m.group(2) in self.sentinels:
                    raise DashboardError("sentinel-[%s] already exists" % m.group(2))
                self.sentinels.append(m.group(2))
            return 200, _OK
        m = re.fullmatch(r"/api/topom/proxy/remove/([^/]*)/([^/]+)/([01])", path)
        if m and method == "PUT":
            self._check_xauth(m.group(1))
            return self._remove_proxy(m.group(2), m.group(3) == "1")
        m = re.fullmatch(r"/api/topom/group/action/(create|remove)/([^/]*)/([^/]+)", path)
        if m and method == "PUT":
            self._check_xauth(m.group(2))
            return self._create_action(m.group(3)) if m.group(1) == "create" else self._remove_action(m.group(3))
        return 404, "404 page not found"

    def _check_xauth(self, token: str) -> None:
        if not token:
            raise DashboardError("missing xauth, please check product name & auth")
        if token != self.xauth:
            raise DashboardError("invalid xauth, please check product name & auth")

    # ------------------------------------------------------------------ reads
    def _model(self) -> dict[str, Any]:
        return {"token": "0b1d5e7e3f2a4c6d8e9f0a1b2c3d4e5f", "start_time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "admin_addr": "%s:%d" % (self._host, self._port), "product_name": self.product_name,
                "pid": 4242, "pwd": "/opt/codis", "sys": "Linux simulator"}

    def _overview(self) -> dict[str, Any]:
        return {"version": "3.2.2-simulator", "compile": "simulated",
                "config": {"coordinator_name": "filesystem", "admin_addr": "%s:%d" % (self._host, self._port),
                           "product_name": self.product_name, "product_auth": self.product_auth},
                "model": self._model(), "stats": self._stats()}

    def _stats(self) -> dict[str, Any]:
        with self._state_lock:
            models = [json.loads(json.dumps(self.groups3[gid])) for gid in sorted(self.groups3)]
            stats = {addr: dict(v) for addr, v in self.stats_cache.items()}
        return {
            "closed": False, "slots": self._slots(),
            # An empty Go slice marshals as null, not [].
            "group": {"models": models or None, "stats": stats},
            "proxy": {"models": self._proxy_models(), "stats": self._proxy_stats()},
            "slot_action": {"interval": 0, "disabled": False, "progress": {"status": ""},
                            "executor": self.faults.migration},
            # servers is omitted while empty (omitempty in models.Sentinel).
            "sentinels": {"model": dict({"servers": list(self.sentinels)} if self.sentinels else {},
                                        out_of_sync=False), "stats": {}, "masters": {}},
        }

    def _proxy_models(self) -> list[dict[str, Any]]:
        with self._state_lock:
            return [dict(m) for m in self.proxies.values()]

    def _proxy_stats(self) -> dict[str, Any]:
        with self._state_lock:
            return {token: dict(v) for token, v in self.proxy_stats.items() if token in self.proxies}

    def _slots(self) -> list[dict[str, Any]]:
        """The slot mappings; with the `migrating_slots` fault the first N are being moved, which the real
        dashboard shows only here (slot_action.executor stays 0 between batches)."""
        with self._state_lock:
            gids = sorted(self.groups3)
        if not gids:
            return []
        out = []
        for sid in range(16):
            slot: dict[str, Any] = {"id": sid, "group_id": gids[sid % len(gids)], "action": {}}
            if sid < self.faults.migrating_slots:
                slot["action"] = {"index": sid + 1, "state": "migrating", "target_id": gids[(sid + 1) % len(gids)]}
            out.append(slot)
        return out

    # ------------------------------------------------------------------ group actions
    def _group(self, gid: int) -> dict[str, Any]:
        group = self.groups3.get(gid)
        if group is None:
            raise DashboardError("group-[%d] doesn't exist" % gid)
        return group

    @staticmethod
    def _refuse_while_promoting(group: dict[str, Any]) -> None:
        if group["promoting"]:
            raise DashboardError("group-[%d] is promoting" % group["id"])

    def _index(self, group: dict[str, Any], addr: str) -> int:
        for i, s in enumerate(group["servers"]):
            if s["server"] == addr:
                return i
        raise DashboardError("group-[%d] doesn't have server-[%s]" % (group["id"], addr))

    def _create(self, gid: int) -> tuple[int, str]:
        if gid <= 0 or gid > MAX_GROUP_ID:
            raise DashboardError("invalid group id = %d, out of range" % gid)
        with self._state_lock:
            if gid in self.groups3:
                raise DashboardError("group-[%d] already exists" % gid)
            self.groups3[gid] = {"id": gid, "servers": [], "promoting": {}, "out_of_sync": False}
        return 200, _OK

    def _resync(self, gid: int) -> tuple[int, str]:
        with self._state_lock:
            self._group(gid)["out_of_sync"] = False
        return 200, _OK

    def _add(self, gid: int, addr: str, datacenter: str) -> tuple[int, str]:
        with self._state_lock:
            if any(s["server"] == addr for g in self.groups3.values() for s in g["servers"]):
                raise DashboardError("server-[%s] already exists" % addr)
            group = self._group(gid)
            self._refuse_while_promoting(group)
        # Only Codis's own redis build may join a group.
        self.redis_side.slotsinfo(addr)
        with self._state_lock:
            group["servers"].append(_server(addr, datacenter))
        return 200, _OK

    def _del(self, gid: int, addr: str) -> tuple[int, str]:
        with self._state_lock:
            group = self._group(gid)
            index = self._index(group, addr)
            self._refuse_while_promoting(group)
            if index == 0 and len(group["servers"]) != 1:
                raise DashboardError("group-[%d] can't remove master, still in use" % gid)
            del group["servers"][index]
        return 200, _OK

    def _promote(self, gid: int, addr: str) -> tuple[int, str]:
        hung: list[str] = []
        with self._state_lock:
            group = self._group(gid)
            index = self._index(group, addr)
            promoting = group["promoting"]
            if promoting:
                if index != promoting.get("index", 0):
                    raise DashboardError("group-[%d] is promoting index = %d" % (gid, index))
            elif index == 0:
                raise DashboardError("group-[%d] can't promote master" % gid)
            if self.faults.migration:
                # One migration batch executing: the real dashboard refuses only while it runs (a fraction of a
                # second), so each refusal uses one up. Slots that wait or move between batches refuse nothing.
                self.faults.migration -= 1
                raise DashboardError("slots-migration is running = 1")
            if not promoting:
                group["promoting"] = {"index": index, "state": "preparing"}
            hung = sorted(t for t in self.proxies if t in self.hung_proxies and t in self.proxy_ports)
        if hung:
            # Preparing and prepared each call every proxy: two calls of hung_proxy_wait with the topom lock held
            # (the caller holds it, so every API call waits), and the promotion stays in "preparing".
            time.sleep(2 * self.faults.hung_proxy_wait)
            raise DashboardError("proxy-[%s] resync slots failed: Put http://%s/api/proxy/fillslots: net/http: "
                                 "request canceled (Client.Timeout exceeded while awaiting headers)"
                                 % (hung[0], self.proxies[hung[0]]["admin_addr"]))
        with self._state_lock:
            dead = sorted(t for t in self.proxies if t not in self.proxy_ports)
            if dead:
                # A registered proxy cannot resync its slots: the promotion stays in "preparing".
                raise DashboardError("proxy-[%s] resync slots failed: dial tcp %s: connect: connection refused"
                                     % (dead[0], self.proxies[dead[0]]["admin_addr"]))
            if self.faults.promote_stuck > 0:
                # The proxies did not take the slot lock: the real dashboard rolls back to "preparing" and
                # leaves the group there for an operator.
                self.faults.promote_stuck -= 1
                group["promoting"] = {"index": index, "state": "preparing"}
                raise DashboardError("proxy-[%s] resync slots failed: receiver timeout" % "proxy-1")
            index = group["promoting"]["index"]
            servers = group["servers"]
            ordered = [servers[index]] + [s for i, s in enumerate(servers) if i not in (0, index)] + [servers[0]]
            for s in ordered:
                s["action"] = {}
                s["replica_group"] = False
            group["servers"] = ordered
            group["promoting"] = {"state": "finished"}
        if self.faults.proxy_ack_seconds:
            time.sleep(self.faults.proxy_ack_seconds)
        self.eof_until[addr] = time.monotonic() + 1.0
        try:
            if self.faults.promote_slaveof_fails > 0:
                self.faults.promote_slaveof_fails -= 1
                raise DashboardError("redis %s set master to NO:ONE failed" % addr)
            self.redis_side.slaveof(addr, None)
        except DashboardError:
            pass  # the real dashboard only logs this
        with self._state_lock:
            group["promoting"] = {}
        return 200, _OK

    def _remove_proxy(self, token: str, force: bool) -> tuple[int, str]:
        with self._state_lock:
            if token not in self.proxies:
                raise DashboardError("proxy-[%s] doesn't exist" % token)
            alive = token in self.proxy_ports
            hung = token in self.hung_proxies
        if hung:
            time.sleep(self.faults.hung_proxy_wait)  # the shutdown call to it, the topom lock held
            if not force:
                raise DashboardError("proxy-[%s] shutdown failed" % token)
        if not alive and not force:
            # The real dashboard first asks the proxy to shut down; a dead one cannot answer.
            raise DashboardError("dial tcp %s: connect: connection refused" % self.proxies[token]["admin_addr"])
        with self._state_lock:
            del self.proxies[token]
            self.proxy_stats.pop(token, None)
            self.hung_proxies.discard(token)
        self.kill_proxy(token)
        return 200, _OK

    def _create_action(self, addr: str) -> tuple[int, str]:
        with self._state_lock:
            group, index = self._group_of(addr)
            self._refuse_while_promoting(group)
            server = group["servers"][index]
            if server["action"].get("state") == "pending":
                raise DashboardError("server-[%s] action already exist" % addr)
            top = max([s["action"].get("index", 0) for g in self.groups3.values() for s in g["servers"]] + [0])
            server["action"] = {"index": top + 1, "state": "pending"}
        return 200, _OK

    def _remove_action(self, addr: str) -> tuple[int, str]:
        with self._state_lock:
            group, index = self._group_of(addr)
            self._refuse_while_promoting(group)
            if not group["servers"][index]["action"].get("state"):
                raise DashboardError("server-[%s] action doesn't exist" % addr)
            group["servers"][index]["action"] = {}
        return 200, _OK

    def _group_of(self, addr: str) -> tuple[dict[str, Any], int]:
        for group in self.groups3.values():
            for i, s in enumerate(group["servers"]):
                if s["server"] == addr:
                    return group, i
        raise DashboardError("server-[%s] doesn't exist" % addr)

    def _run_one_sync_action(self) -> None:
        """The dashboard's sync loop: the pending action with the lowest index, SLAVEOF its group's master."""
        with self._state_lock:
            pending = [(s["action"]["index"], g, s) for g in self.groups3.values() if not g["promoting"]
                       for s in g["servers"] if s["action"].get("state") == "pending"]
            if not pending:
                return
            group, server = min(pending, key=lambda p: p[0])[1:]
            server["action"] = {"state": "syncing"}
            master = None if group["servers"][0] is server else group["servers"][0]["server"]
        try:
            self.redis_side.slaveof(server["server"], master)
            state = "synced"
        except DashboardError:
            state = "synced_failed"
        with self._state_lock:
            server["action"] = {"state": state}


def _server(addr: str, datacenter: str = "") -> dict[str, Any]:
    return {"server": addr, "datacenter": datacenter, "action": {}, "replica_group": False}


def _gid(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DashboardError("strconv.Atoi: parsing %r: invalid syntax" % text) from None


def _pretty(value: Any) -> str:
    return json.dumps(value, indent="    ")


_OK = json.dumps("OK")
