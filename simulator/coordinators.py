"""Real coordinators for the several-watchers tests and benchmarks: Debian's ZooKeeper (standalone, on a JRE) and
etcd 3.4, each started on free loopback ports with its data in a temporary directory, stopped (or killed, as a
fault) by the test. Every wait is on a condition with a deadline."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from typing import Any, Optional

from .real import free_port
from .waiting import wait_until

ZOOKEEPER_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/*"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def _answers(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class CoordinatorProcess:
    """`host`: the address it listens on, loopback unless a benchmark gives it one inside its own namespace."""
    kind = ""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.dir = tempfile.mkdtemp(prefix="codis-ha-%s-" % self.kind)
        self.host = host
        self.port = port or free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log_path = os.path.join(self.dir, "server.log")

    def args(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def url(self, root: str = "/codis-ha") -> str:
        return "%s://%s:%d%s" % (self.kind, self.host, self.port, root)

    def start(self) -> "CoordinatorProcess":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                         start_new_session=True)
        wait_until(self.ready, 60, "%s on %s:%d to answer" % (self.kind, self.host, self.port), interval=0.1)
        return self

    def stop(self) -> None:
        """SIGKILL (the coordinator is gone at once, as when its host dies); waits for the port to close."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_until(lambda: not _answers(self.host, self.port), 20, "%s to close its port" % self.kind,
                   interval=0.05)
        self.proc.wait(timeout=20)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "CoordinatorProcess":
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ZooKeeperProcess(CoordinatorProcess):
    """Standalone ZooKeeper; a short tick so that sessions of 2 s and more are allowed (min 2 ticks)."""
    kind = "zookeeper"

    def args(self) -> list[str]:
        config = os.path.join(self.dir, "zoo.cfg")
        with open(config, "w", encoding="utf-8") as out:
            out.write("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=%s\n"
                      "admin.enableServer=false\nminSessionTimeout=1000\nmaxSessionTimeout=60000\n"
                      "4lw.commands.whitelist=ruok\n" % (os.path.join(self.dir, "data"), self.port, self.host))
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        return ["java", "-Xmx256m", "-cp", ZOOKEEPER_CLASSPATH, "-Dzookeeper.admin.enableServer=false",
                "org.apache.zookeeper.server.ZooKeeperServerMain", config]

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"ruok")
                return sock.recv(4) == b"imok"
        except OSError:
            return False


class EtcdProcess(CoordinatorProcess):
    kind = "etcd"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.peer_port = free_port()

    def args(self) -> list[str]:
        client = "http://%s:%d" % (self.host, self.port)
        peer = "http://%s:%d" % (self.host, self.peer_port)
        return [ETCD, "--name", "t", "--data-dir", os.path.join(self.dir, "data"), "--listen-client-urls", client,
                "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls",
                peer, "--initial-cluster", "t=" + peer, "--log-level", "warn"]

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                return b'"health":"true"' in sock.recv(4096)
        except OSError:
            return False


def start(kind: str) -> CoordinatorProcess:
    return (ZooKeeperProcess() if kind == "zookeeper" else EtcdProcess()).start()
