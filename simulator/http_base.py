"""What the simulated Codis 2.x and 3.x dashboards share: an HTTP server on loopback that can be taken down, made
slow or made to answer garbage, an audit log of mutating calls, and the Redis side the dashboard talks to (fake
nodes or real redis-server processes). Each dashboard's API lives in its own module and derives from this base;
neither derives from the other.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from .info import render_info
from .model import World


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
    # Codis 2: the registered proxies hold requests to the old master (its host froze): none acknowledges the next
    # promote, which the dashboard applies, then marks them mark_offline (they shut themselves down) and answers
    # 500 after its 30 s wait (`proxy_ack_seconds` stands for that wait here).
    proxies_hold: int = 0
    lock_conflict: int = 0
    # Codis 2: the lock a dashboard killed during a call left in ZooKeeper (its lock nodes are not ephemeral): every
    # mutating call is refused until GET /api/force_remove_locks (`codis-config action remove-lock`) removes it.
    stale_lock: bool = False
    # Codis 3.x only
    promote_stuck: int = 0  # promote stops in "preparing" (proxies did not answer) and answers an error
    promote_slaveof_fails: int = 0  # the SLAVEOF NO ONE step fails; the real dashboard only logs it
    migration: int = 0  # migration batches executing (slot_action.executor): each refuses one promote
    migrating_slots: int = 0
    # Seconds the registered proxies take to acknowledge a promote (about 0.5 on the real binaries).
    proxy_ack_seconds: float = 0.0
    # Codis 3: seconds each of the dashboard's calls to a hung proxy lasts before its HTTP client gives up (60 on
    # the real one, whose promote makes two such calls). The call holds the topom lock: every API call waits.
    hung_proxy_wait: float = 60.0
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
        # The real dashboard follows every slave-of with CONFIG REWRITE, which fails on a server started without
        # a config file: the SLAVEOF took, the dashboard reports an error anyway.
        if not node.config_file:
            raise DashboardError("ERR The server is running without a config file")

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


class DashboardHTTP:
    """The HTTP side of a dashboard; a subclass answers `handle(method, path, body) -> (status, text)`."""
    error_status = 500
    content_type = "text/plain; charset=utf-8"
    server_version = "codis-dashboard-simulator"

    def __init__(self, world: Optional[World], host: str = "127.0.0.1", port: int = 0,
                 product_name: str = "codis-demo", redis_timeout: float = 5.0,
                 redis_side: Optional[Any] = None) -> None:
        """`world` for fake nodes; or `redis_side=RealRedis(...)` to front real redis-server processes."""
        if redis_side is None:
            assert world is not None, "fake nodes need a World"
            redis_side = ModelRedis(world, redis_timeout)
        self.redis_side = redis_side
        self.world = world
        self.product_name = product_name
        self.faults = DashboardFaults()
        self.audit: list[AuditEntry] = []
        self.redis_timeout = redis_timeout
        self._state_lock = threading.RLock()
        self._host = host
        self._port = port
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._connections: set[socket.socket] = set()

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return "http://%s:%d" % (self._host, self._port)

    def start(self) -> None:
        if self._server is not None:
            return
        handler = type("Handler", (_Handler,), {"dashboard": self})
        server = _QuietServer((self._host, self._port), handler)
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


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up early is no error of the server's: a real dashboard says nothing either."""


class _Handler(BaseHTTPRequestHandler):
    dashboard: DashboardHTTP
    protocol_version = "HTTP/1.1"
    # Go's net/http sets TCP_NODELAY on every connection; without it the body, written after the headers, waits
    # for the client's delayed ACK: 40 ms a request, which made the dashboard look 40 ms slower than a real one.
    disable_nagle_algorithm = True

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
        try:
            self.send_response(status)
            # An unknown route is Go's plain-text 404 on both dashboards (the contract test compares them).
            self.send_header("Content-Type", "text/plain; charset=utf-8" if status == 404 else dash.content_type)
            self.send_header("Content-Length", str(len(payload)))
            if truncated:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2] if truncated else payload)
        except (BrokenPipeError, ConnectionResetError):
            truncated = True  # the client left: nothing to say to it
        if truncated:
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = _dispatch
