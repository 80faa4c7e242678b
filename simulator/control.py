"""A small JSON control API on loopback, so that a running simulator can be driven from a shell."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from .cluster import Cluster


def _ops(cluster: Cluster, stop: threading.Event) -> dict[str, Callable[[dict[str, Any]], Any]]:
    return {
        "status": lambda a: cluster.status(),
        "kill": lambda a: cluster.kill(a["addr"]),
        "hang": lambda a: cluster.hang(a["addr"]),
        "revive": lambda a: cluster.revive(a["addr"]),
        "partition": lambda a: cluster.partition(a["addr"], a.get("mode") or "hang"),
        "heal": lambda a: cluster.heal(a["addr"]),
        "slow": lambda a: cluster.slow(a["addr"], int(a["ms"])),
        "flaky": lambda a: cluster.flaky(a["addr"], int(a["every"])),
        "cut": lambda a: cluster.cut_link(a["addr"], True),
        "replication": lambda a: cluster.set_replication(a["addr"], a.get("ping_period"), a.get("sync_delay")),
        "write": lambda a: len(cluster.write(int(a["group"]), int(a.get("count", 1)))),
        "fault": lambda a: cluster.dashboard_fault(a["name"], _parse_value(a.get("value", True))),
        "clear": lambda a: cluster.clear_dashboard_faults(),
        "stop": lambda a: stop.set(),
    }


def _parse_value(value: Any) -> Any:
    if isinstance(value, str):
        if value.lower() in ("true", "on", "yes"):
            return True
        if value.lower() in ("false", "off", "no"):
            return False
        if value.isdigit():
            return int(value)
    return value


class ControlServer:
    def __init__(self, cluster: Cluster, port: int = 0) -> None:
        self.stop_requested = threading.Event()
        ops = _ops(cluster, self.stop_requested)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _answer(self, status: int, value: Any) -> None:
                payload = json.dumps(value, indent=2).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._answer(200, ops["status"]({}))

            def do_POST(self) -> None:
                try:
                    args = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                    op = ops[args.pop("op")]
                    self._answer(200, {"ok": True, "result": op(args)})
                except (KeyError, ValueError, TypeError) as exc:
                    self._answer(400, {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)})

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="simulator-control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
