"""Real redis-server processes (Debian's package) on loopback, behind the simulator's Codis 2.x dashboard.

`RealCluster.start(groups=2, slaves=2)` starts one redis-server per server, makes the slaves replicate, waits
until every link is up, and seeds a dashboard whose promote and addServer send real SLAVEOF commands.
Faults are real too: SIGKILL, SIGSTOP/SIGCONT, restart on the same port with empty data.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import redis

from .dashboard2 import Codis2Dashboard
from .http_base import RealRedis
from .lifecycle import Closing
from .ports import free_port
from .waiting import wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
FAST_SYNC = ["--save", "", "--appendonly", "no", "--repl-diskless-sync", "yes",
             "--repl-diskless-sync-delay", "0"]


@dataclass
class TLSFiles:
    """A CA and a server certificate for 127.0.0.1, made with openssl for one test run."""
    ca: str
    cert: str
    key: str

    @classmethod
    def make(cls, directory: str) -> "TLSFiles":
        d = Path(directory)

        def run(*args: str) -> None:
            subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=d)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=codis-ha test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")
        (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
        return cls(str(d / "ca.crt"), str(d / "server.crt"), str(d / "server.key"))


@dataclass
class RedisProcess:
    port: int
    workdir: str
    extra: list[str] = field(default_factory=list)
    tls: Optional[TLSFiles] = None
    password: Optional[str] = None
    proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def addr(self) -> str:
        return "127.0.0.1:%d" % self.port

    def args(self) -> list[str]:
        args = [REDIS_SERVER, "--bind", "127.0.0.1", "--dir", self.workdir, "--daemonize", "no",
                "--logfile", os.path.join(self.workdir, "redis.log")] + FAST_SYNC
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls.cert,
                     "--tls-key-file", self.tls.key, "--tls-ca-cert-file", self.tls.ca,
                     "--tls-auth-clients", "no", "--tls-replication", "yes"]
        else:
            args += ["--port", str(self.port)]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        return args + self.extra

    def client(self, **kwargs: Any) -> "redis.Redis[Any]":
        options: dict[str, Any] = dict(host="127.0.0.1", port=self.port, password=self.password, retry=None,
                                       socket_timeout=2, socket_connect_timeout=2, protocol=2,
                                       decode_responses=True)
        if self.tls:
            options.update(ssl=True, ssl_ca_certs=self.tls.ca)
        options.update(kwargs)
        return redis.Redis(**options)

    def start(self) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.answers, 10, "redis-server on %s to answer PING" % self.addr)

    def answers(self) -> bool:
        try:
            with contextlib.closing(self.client(socket_timeout=0.5, socket_connect_timeout=0.5)) as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    def port_closed(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) != 0

    def kill(self) -> None:
        """kill -9, then wait for the port to close (PID 1 here reaps slowly, so not for the PID)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
        wait_until(self.port_closed, 10, "%s to close its port" % self.addr)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def role(self) -> list[Any]:
        with contextlib.closing(self.client()) as c:
            return list(c.execute_command("ROLE"))

    def replication(self) -> dict[str, Any]:
        with contextlib.closing(self.client()) as c:
            return dict(c.info("replication"))


class RealCluster(Closing):
    def __init__(self, groups: int = 2, slaves: int = 2, password: Optional[str] = None, tls: bool = False,
                 extra: Optional[list[str]] = None, dashboard_port: int = 0,
                 dashboard_password: Optional[str] = None) -> None:
        self.workdir = tempfile.mkdtemp(prefix="codis-ha-real-")
        self.tls = TLSFiles.make(self.workdir) if tls else None
        self.password = password
        self.extra = list(extra or [])
        self.processes: dict[str, RedisProcess] = {}
        ssl = dict(ssl=True, ssl_ca_certs=self.tls.ca) if self.tls else None
        self.dashboard = Codis2Dashboard(None, port=dashboard_port, redis_side=RealRedis(
            timeout=2.0, password=dashboard_password or password, ssl=ssl))
        self._add_groups_or_close(groups, slaves)

    def server_process(self, port: int, workdir: str) -> RedisProcess:
        """The process a new server runs (Debian's redis-server here; codis-server for real Codis 3)."""
        return RedisProcess(port, workdir, self.extra, self.tls, self.password)

    def new_server(self) -> RedisProcess:
        port = free_port()
        server = self.server_process(port, os.path.join(self.workdir, str(port)))
        server.start()
        self.processes[server.addr] = server
        return server

    def add_group(self, gid: int, slaves: int) -> list[str]:
        master = self.new_server()
        replicas = [self.new_server() for _index in range(slaves)]
        for replica in replicas:
            with contextlib.closing(replica.client()) as c:
                c.execute_command("SLAVEOF", "127.0.0.1", master.port)
        for replica in replicas:
            self.wait_linked(replica.addr, master.addr)
        self.dashboard.seed_group(gid, [(master.addr, "master")] + [(r.addr, "slave") for r in replicas])
        return [master.addr] + [r.addr for r in replicas]

    def close(self) -> None:
        self.dashboard.stop()
        for server in self.processes.values():
            if server.proc is not None:
                server.resume()
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ truth, read from the processes
    def role(self, addr: str) -> Optional[str]:
        try:
            return str(self.processes[addr].role()[0])
        except redis.RedisError:
            return None

    def linked(self, addr: str, master: str) -> bool:
        try:
            info = self.processes[addr].replication()
        except redis.RedisError:
            return False
        return (info.get("role") == "slave" and "%s:%s" % (info.get("master_host"), info.get("master_port"))
                == master and info.get("master_link_status") == "up")

    def wait_linked(self, addr: str, master: str, timeout: float = 20) -> None:
        wait_until(lambda: self.linked(addr, master), timeout, "%s to replicate from %s" % (addr, master),
                   interval=0.02)

    def wait_in_sync(self, gid: int, timeout: float = 20) -> None:
        """Every slave has acknowledged the master's whole replication stream."""
        master = self.processes[self.master_of(gid) or ""]

        def synced() -> bool:
            info = master.replication()
            offset = info.get("master_repl_offset")
            slaves = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            return len(slaves) == len(self.slaves_of(gid)) and all(s.get("offset") == offset for s in slaves)

        wait_until(synced, timeout, "group %d's slaves to catch up" % gid, interval=0.02)

    def write(self, gid: int, count: int, prefix: str = "key", addr: Optional[str] = None) -> list[str]:
        """`count` keys written to the group's master (or to `addr`, a client that has not switched)."""
        keys = ["%s:%d:%d" % (prefix, gid, i) for i in range(count)]
        with contextlib.closing(self.processes[addr or self.master_of(gid) or ""].client()) as c:
            pipe = c.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, key)
            pipe.execute()
        return keys

    def missing(self, addr: str, keys: list[str]) -> list[str]:
        with contextlib.closing(self.processes[addr].client()) as c:
            values = c.mget(keys)
        return [k for k, v in zip(keys, values) if v != k]

    # ------------------------------------------------------------------ faults
    def kill(self, addr: str) -> None:
        self.processes[addr].kill()

    def pause(self, addr: str) -> None:
        self.processes[addr].pause()

    def resume(self, addr: str) -> None:
        self.processes[addr].resume()

    def restart(self, addr: str) -> None:
        """The same port again, with no data (no RDB, no AOF) and no replication: a returning old master."""
        server = self.processes[addr]
        if server.proc is not None:
            server.kill()
        server.start()
