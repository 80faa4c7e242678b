"""A Codis 2.x dashboard (`codis-config dashboard`) over real HTTP, as unkind as the real one.

Behaviour follows ../shared/codis-dashboard-api.md: 200 with pretty JSON for reads, `{"msg": "OK",
"ret": 0}` for successful mutations, 500 with a plain-text Go error string for every error, everything sent
as text/plain; promote takes the group from the BODY's group_id; addServer is an upsert forced to the URL
group; the coordinator lock never waits; servers come back sorted by address (the etcd quirk).
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from .model import World, render_info

LOCK_TIMEOUT = "zkutil: obtaining lock timed out"
KNOWN_TYPES = ("master", "slave", "offline")


class DashboardError(Exception):
    """An error the real dashboard would answer with HTTP 500 and this text."""


@dataclass
class DashboardFaults:
    down: bool = False
    garbage: bool = False
    truncated: bool = False
    slow_ms: int = 0
    promote_500_after_commit: int = 0
    promote_half_done: int = 0  # SLAVEOF NO ONE sent, then the coordinator write fails: nothing recorded
    # Codis 2: a proxy killed while still registered. A promote stores the new master, then holds the coordinator
    # lock for this many seconds (the real one: about 30, until the proxy's session expires) and answers 500.
    dead_proxy_wait: float = 0.0
    lock_conflict: int = 0
    # Codis 3.x only
    promote_stuck: int = 0  # promote stops in "preparing" (proxies did not answer) and answers an error
    promote_slaveof_fails: int = 0  # the SLAVEOF NO ONE step fails; the real dashboard only logs it
    migration: int = 0  # running slot migrations (slot_action.executor); promote refuses meanwhile
    migrating_slots: int = 0  # slots whose action state is "migrating" while the executor shows 0
    stale_stats: bool = False  # the dashboard's own stats loop is stuck: it serves what it saw last


@dataclass
class AuditEntry:
    time: float
    method: str
    path: str
    body: str
    status: int
    response: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Codis2State:
    """The coordinator's content: group id -> list of Server dicts, in insertion order."""
    product_name: str = "codis-demo"
    groups: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    sort_servers: bool = True

    def group_json(self, gid: int) -> dict[str, Any]:
        servers = [dict(s) for s in self.groups[gid]]
        if self.sort_servers:
            servers.sort(key=lambda s: str(s.get("addr")))
        return {"id": gid, "product_name": self.product_name, "servers": servers or None}


class ModelRedis:
    """The dashboard's Redis side for fake nodes: SLAVEOF goes through the node model."""

    def __init__(self, world: World, timeout: float) -> None:
        self.world = world
        self.timeout = timeout

    def slaveof(self, addr: str, master: Optional[str]) -> None:
        node = self.world.nodes.get(addr)
        if node is None or node.killed:
            raise DashboardError("dial tcp %s: connect: connection refused" % addr)
        if node.hung:
            time.sleep(self.timeout)
            raise DashboardError("read tcp 127.0.0.1:0->%s: i/o timeout" % addr)
        self.world.slaveof(addr, master)

    def stats(self, addr: str) -> dict[str, Any]:
        """What the Codis 3 dashboard's stats loop records for a server (RedisStats)."""
        now = int(self.world.clock.now())
        node = self.world.nodes.get(addr)
        if node is None or node.killed:
            return {"error": {"cause": "dial tcp %s: connect: connection refused" % addr}, "unixtime": now}
        if node.hung:
            return {"timeout": True, "unixtime": now}
        with self.world.lock:
            self.world.refresh(node)
            info = render_info(self.world, node, ["default"])
        return {"stats": _info_fields(info), "unixtime": now}

    def slotsinfo(self, addr: str) -> None:
        node = self.world.nodes.get(addr)
        if node is None or node.killed:
            raise DashboardError("dial tcp %s: connect: connection refused" % addr)
        if not node.codis_server:
            raise DashboardError("ERR unknown command 'SLOTSINFO'")


def _info_fields(info: str) -> dict[str, str]:
    fields = {}
    for line in info.splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    if fields.get("role") == "slave":
        fields["master_addr"] = "%s:%s" % (fields.get("master_host"), fields.get("master_port"))
    return fields


class RealRedis:
    """The dashboard's Redis side for real redis-server processes: a real SLAVEOF over TCP (or TLS), with
    the password the real dashboard is configured with, and its errors in the Go dashboard's words."""

    def __init__(self, timeout: float = 5.0, password: Optional[str] = None,
                 ssl: Optional[dict[str, Any]] = None) -> None:
        self.timeout = timeout
        self.password = password
        self.ssl = ssl or {}

    def _client(self, addr: str) -> Any:
        import redis  # only the real mode needs redis-py

        host, port = addr.rsplit(":", 1)
        return redis.Redis(host=host, port=int(port), password=self.password, socket_timeout=self.timeout,
                           socket_connect_timeout=self.timeout, retry=None, protocol=2, lib_name=None,
                           **self.ssl)

    def stats(self, addr: str) -> dict[str, Any]:
        import redis

        now = int(time.time())
        client = self._client(addr)
        try:
            info = client.info()
        except redis.TimeoutError:
            return {"timeout": True, "unixtime": now}
        except redis.RedisError as exc:
            return {"error": {"cause": str(exc)}, "unixtime": now}
        finally:
            client.close()
        text = "\n".join("%s:%s" % (k, v) for k, v in info.items() if not isinstance(v, dict))
        return {"stats": _info_fields(text), "unixtime": now}

    def slotsinfo(self, addr: str) -> None:
        import redis

        client = self._client(addr)
        try:
            client.execute_command("SLOTSINFO")
        except redis.RedisError as exc:
            raise DashboardError(str(exc)) from exc
        finally:
            client.close()

    def slaveof(self, addr: str, master: Optional[str]) -> None:
        import redis

        client = self._client(addr)
        try:
            if master is None:
                client.execute_command("SLAVEOF", "NO", "ONE")
            else:
                m_host, m_port = master.rsplit(":", 1)
                client.execute_command("SLAVEOF", m_host, m_port)
        except redis.TimeoutError as exc:
            raise DashboardError("read tcp 127.0.0.1:0->%s: i/o timeout" % addr) from exc
        except redis.ConnectionError as exc:
            raise DashboardError("dial tcp %s: connect: connection refused" % addr) from exc
        except redis.RedisError as exc:
            raise DashboardError("ERR %s" % exc) from exc
        finally:
            client.close()


class Codis2Dashboard:
    error_status = 500
    content_type = "text/plain; charset=utf-8"
    server_version = "codis-config-simulator"

    def __init__(self, world: Optional[World], host: str = "127.0.0.1", port: int = 0,
                 product_name: str = "codis-demo", redis_timeout: float = 5.0,
                 redis_side: Optional[Any] = None) -> None:
        """`world` for fake nodes; or `redis_side=RealRedis(...)` to front real redis-server processes."""
        if redis_side is None:
            assert world is not None, "fake nodes need a World"
            redis_side = ModelRedis(world, redis_timeout)
        self.redis_side = redis_side
        self.world = world
        self.state = Codis2State(product_name=product_name)
        self.faults = DashboardFaults()
        self.audit: list[AuditEntry] = []
        self.redis_timeout = redis_timeout
        self._coordinator_lock = threading.Lock()
        self._state_lock = threading.RLock()
        self._host = host
        self._port = port
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._connections: set[socket.socket] = set()
        self.start()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return "http://%s:%d" % (self._host, self._port)

    def start(self) -> None:
        if self._server is not None:
            return
        handler = type("Handler", (_Handler,), {"dashboard": self})
        server = ThreadingHTTPServer((self._host, self._port), handler)
        server.daemon_threads = False
        server.block_on_close = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="simulator-dashboard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = None
        server.shutdown()
        # Idle keep-alive connections would hold their handler threads (and server_close) forever.
        with self._state_lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def set_down(self, down: bool) -> None:
        self.faults.down = down
        if down:
            self.stop()
        else:
            self.start()

    # ------------------------------------------------------------------ seeding and reading
    def seed_group(self, gid: int, servers: list[tuple[str, str]]) -> None:
        with self._state_lock:
            self.state.groups[gid] = [{"type": t, "group_id": gid, "addr": a} for a, t in servers]

    def inject_server(self, gid: int, addr: str, server_type: str) -> None:
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


class _Handler(BaseHTTPRequestHandler):
    dashboard: Codis2Dashboard
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        with self.dashboard._state_lock:
            self.dashboard._connections.add(self.connection)

    def finish(self) -> None:
        with self.dashboard._state_lock:
            self.dashboard._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def date_time_string(self, timestamp: Optional[float] = None) -> str:
        # The Date header follows the world's clock, which tests move forward without sleeping.
        world = self.dashboard.world
        return super().date_time_string(world.clock.now() if world is not None and timestamp is None else timestamp)

    def _dispatch(self) -> None:
        dash = self.dashboard
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if dash.faults.slow_ms:
            time.sleep(dash.faults.slow_ms / 1000.0)
        status, text = dash.handle(self.command, self.path, body)
        payload = text.encode()
        if self.command == "GET" and status == 200 and dash.faults.garbage:
            payload = b"<html><body>502 Bad Gateway</body></html>"
        truncated = self.command == "GET" and status == 200 and dash.faults.truncated
        self.server_version = dash.server_version
        self.send_response(status)
        self.send_header("Content-Type", dash.content_type)
        self.send_header("Content-Length", str(len(payload)))
        if truncated:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2] if truncated else payload)
        if truncated:
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = _dispatch
