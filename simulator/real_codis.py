"""The real Codis binaries on loopback, for the real-binary tests and benchmarks (built from the upstream sources by
`scripts/build_codis.sh`; see `../shared/codis/README.md`).

`RealCodis2.start(groups=1, slaves=2, proxies=1)`: ZooKeeper, the Codis 2 dashboard (`codis-config dashboard`),
Debian's redis-server for every server, slots 0-1023 spread over the groups and `proxies` real `codis-proxy`
processes put online. `RealCodis3.start(...)`: the Codis 3 dashboard on a filesystem coordinator, `codis-server`
(Codis's Redis 3.2, which answers the SLOTSINFO the dashboard's add needs) with a config file (every slave-of the
dashboard sends is followed by CONFIG REWRITE), and real proxies. Both answer what `RealCluster` answers (the groups
as the dashboard stores them, each server's truth from the process, the same faults), plus the proxies: a client
writes through `proxy_client()` during every failover, and a proxy can be killed or hung.

Every wait is on a condition with a deadline; every process is killed and every directory removed on close.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import redis

from .coordinators import ZooKeeperProcess
from .ports import free_port
from .real import FAST_SYNC, RealCluster, RedisProcess
from .waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
CODIS2 = "codis-release2.0-8b4b7d35"
CODIS3 = "codis-release3.2-de1ad026"
SLOTS = 1024


def slot_range(index: int, groups: int) -> tuple[int, int]:
    """The slots (first, last) the harnesses give the group at `index` (0-based) of `groups`: an even split."""
    return index * SLOTS // groups, (index + 1) * SLOTS // groups - 1


def xauth(product: str) -> str:
    """Codis 3's token: the first 16 bytes of sha256("Codis-XAuth-[<product>]") in hex (kept apart from the
    collection's own copy: this harness is the other side of the contract)."""
    return hashlib.sha256(("Codis-XAuth-[%s]" % product).encode()).hexdigest()[:32]


class BinariesMissing(RuntimeError):
    pass


def bin_dir(release: str) -> Path:
    """The cached binaries of one release; built (a minute, offline) when they are missing."""
    cache = Path(os.environ.get("CODIS_CACHE") or ROOT / "build" / "codis")
    where = cache / release
    if not (where / "codis-proxy").exists():
        done = subprocess.run(["bash", str(ROOT / "scripts" / "build_codis.sh")], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0 or not (where / "codis-proxy").exists():
            raise BinariesMissing("scripts/build_codis.sh failed (exit %d): %s" % (
                done.returncode, (done.stdout + done.stderr)[-2000:]))
    return where


def http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - loopback, test harness
            return answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


@dataclass
class Daemon:
    """One Go process of Codis (dashboard or proxy), in a session of its own so that a kill takes it whole."""
    name: str
    args: list[str]
    workdir: Path
    proc: Optional[subprocess.Popen[bytes]] = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / ("%s.out" % self.name)

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
                                         start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        self.proc = None

    def tail(self, size: int = 3000) -> str:
        texts = []
        for path in sorted(self.workdir.glob("%s*" % self.name)):
            if path.is_file() and path.suffix not in (".toml", ".ini"):
                texts.append("---- %s\n%s" % (path.name, path.read_text(errors="replace")[-size:]))
        return "\n".join(texts)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _RealCodis(RealCluster):
    """What both versions share: redis processes, proxies, the groups read from the real dashboard."""
    release = ""

    def __init__(self, groups: int = 1, slaves: int = 2, proxies: int = 1, extra: Optional[list[str]] = None,
                 product: str = "") -> None:
        # RealCluster.__init__ would start the simulator's dashboard: set up only what it needs here.
        self.workdir = tempfile.mkdtemp(prefix="codis-ha-%s-" % self.release.split("-")[1].replace(".", ""))
        self.tls = None
        self.password = None
        self.extra = list(extra or [])
        self.processes: dict[str, RedisProcess] = {}
        self.bin = bin_dir(self.release)
        self.product = product or "p%d" % free_port()
        self.daemons: list[Daemon] = []
        self.proxies: list[dict[str, Any]] = []
        self.dashboard_port = free_port()
        try:
            self.start_dashboard()
            for gid in range(1, groups + 1):
                self.add_group(gid, slaves)
            self.assign_slots(groups)
            for _index in range(proxies):
                self.add_proxy()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ the dashboard
    @property
    def dashboard_url(self) -> str:
        return "http://127.0.0.1:%d" % self.dashboard_port

    def start_dashboard(self) -> None:
        raise NotImplementedError

    def assign_slots(self, groups: int) -> None:
        raise NotImplementedError

    def add_proxy(self) -> dict[str, Any]:
        raise NotImplementedError

    def dashboard_answers(self) -> bool:
        raise NotImplementedError

    def kill_dashboard(self) -> None:
        """SIGKILL, as a crash or the OOM killer: no clean-up of its own."""
        self.dashboard_daemon.kill()
        wait_until(lambda: not _port_open(self.dashboard_port), 20, "the dashboard to close its port")

    def restart_dashboard(self) -> None:
        """The same command line again, as systemd or an operator restarts it."""
        self.dashboard_daemon.start()
        wait_until(self.dashboard_answers, 60, "the dashboard to answer again\n" + self.logs())

    def daemon(self, name: str, args: list[str]) -> Daemon:
        started = Daemon(name, args, Path(self.workdir))
        started.start()
        self.daemons.append(started)
        return started

    def logs(self) -> str:
        return "\n".join(d.tail() for d in self.daemons)

    def close(self) -> None:
        for daemon in reversed(getattr(self, "daemons", [])):
            daemon.kill()
        for server in self.processes.values():
            if server.proc is not None:
                server.resume()
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ the proxies
    def proxy_client(self, index: int = 0, timeout: float = 1.0) -> "redis.Redis[Any]":
        # No CLIENT SETINFO on connect: a Codis proxy closes the session on any CLIENT command.
        return redis.Redis(host="127.0.0.1", port=self.proxies[index]["port"], socket_timeout=timeout,
                           socket_connect_timeout=timeout, retry=None, protocol=2, decode_responses=True,
                           lib_name=None, lib_version=None)

    def proxy_serves(self, index: int = 0) -> bool:
        try:
            with contextlib.closing(self.proxy_client(index, 0.5)) as c:
                return bool(c.set("codis-ha:probe", "1"))
        except redis.RedisError:
            return False

    def kill_proxy(self, index: int = 0) -> None:
        self.proxies[index]["daemon"].kill()
        wait_until(lambda: not _port_open(self.proxies[index]["port"]), 20, "the proxy to close its port")

    def hang_proxy(self, index: int = 0) -> None:
        """SIGSTOP: its ports stay open, nothing answers."""
        self.proxies[index]["daemon"].signal(signal.SIGSTOP)

    def resume_proxy(self, index: int = 0) -> None:
        self.proxies[index]["daemon"].signal(signal.SIGCONT)


# ====================================================================================================== Codis 2
class _Codis2View:
    """The groups as the real Codis 2 dashboard stores them (GET /api/server_groups)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _groups(self) -> list[dict[str, Any]]:
        try:
            status, text = http("GET", self.url + "/api/server_groups")
        except OSError:
            return []
        if status != 200:
            return []
        return json.loads(text) or []

    def group_ids(self) -> list[int]:
        return sorted(g["id"] for g in self._groups())

    def servers(self, gid: int) -> dict[str, str]:
        for group in self._groups():
            if group["id"] == gid:
                return {s["addr"]: s["type"] for s in group.get("servers") or []}
        return {}

    def masters(self) -> dict[int, list[str]]:
        return {g["id"]: [s["addr"] for s in g.get("servers") or [] if s["type"] == "master"]
                for g in self._groups()}


@dataclass
class Codis2Control:
    """The Codis 2 dashboard (`codis-config dashboard`) and its proxies on one address, on a ZooKeeper: what the
    loopback cluster below and the soak's namespaces (bench/soak.py) both run. `daemon` starts a process and keeps
    it for the clean-up."""
    bin: Path
    workdir: Path
    host: str
    dashboard_port: int
    zookeeper: ZooKeeperProcess
    product: str
    daemon: Callable[[str, list[str]], Daemon]

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.host, self.dashboard_port)

    def config(self, name: str, **extra: str) -> Path:
        lines = {"coordinator": "zookeeper", "zk": "%s:%d" % (self.zookeeper.host, self.zookeeper.port),
                 "product": self.product, "dashboard_addr": "%s:%d" % (self.host, self.dashboard_port),
                 "password": "", "zk_session_timeout": "30000"}
        lines.update(extra)
        path = self.workdir / name
        path.write_text("".join("%s=%s\n" % item for item in lines.items()))
        return path

    def start_dashboard(self) -> Daemon:
        """Started and answering, with its slots initialised."""
        config = self.config("config.ini")
        started = self.daemon("dashboard", [
            str(self.bin / "codis-config"), "-c", str(config), "-L", str(self.workdir / "dashboard.log"),
            "dashboard", "--addr=%s:%d" % (self.host, self.dashboard_port),
            "--http-log=%s" % (self.workdir / "request.log")])
        try:
            # 120 s: a CI rehearsal beside two hour-long soaks saw the start (its ZooKeeper session first) pass 60 s.
            wait_until(self.answers, 120, "the Codis 2 dashboard to answer")
        except TimeoutError as exc:
            raise TimeoutError("%s\n%s" % (exc, started.tail())) from None  # the log as it is then, not before
        self.api("POST", "/api/slots/init")
        return started

    def answers(self) -> bool:
        try:
            return http("GET", self.url + "/api/overview", timeout=1)[0] == 200
        except OSError:
            return False

    def forget_killed_dashboard(self) -> None:
        """A dashboard killed with -9 leaves its ZooKeeper node until its session expires; the next one refuses to
        start over it. And a dashboard killed during a call leaves that call's lock node for good (Codis 2's
        `zkhelper.CreateMutex` locks are not ephemeral): every later change is refused with `zkutil: obtaining lock
        timed out` (two hour-long soaks in session 13 lost their dashboard that way). Removing both is the operator's
        step the Codis 2 documentation gives (`codis-config action remove-lock`)."""
        from kazoo.exceptions import NoNodeError
        with self.zk_session() as zk:
            for node in ["/zk/codis/db_%s/dashboard" % self.product] + self._locks(zk):
                with contextlib.suppress(NoNodeError):  # its session expired already
                    zk.delete(node)

    def leave_a_lock(self) -> None:
        """The lock node a dashboard killed during a call leaves behind (persistent, sequential, its content as the
        dashboard writes it): every later change is refused until it is removed."""
        with self.zk_session() as zk:
            zk.create("/zk/codis/db_%s/LOCK/lock-" % self.product, b'{"desc": "promote server", "pid": 1}',
                      sequence=True, makepath=True)

    def locks(self) -> list[str]:
        with self.zk_session() as zk:
            return self._locks(zk)

    def proxy_switches(self, zk: Any, after: int) -> tuple[int, list[tuple[float, int, str]]]:
        """The group changes a proxy has confirmed among the actions numbered above `after`, oldest first: (when the
        first proxy confirmed it in Unix time, group, the master it lists), and the number to read on from. A proxy confirms once it
        routes the group's slots to the new master (`Server.responseAction` after `fillSlot`), and that is later
        than the dashboard lists it: `ServerGroup.Promote` writes the master's node first and then waits on the
        proxies. `zk`: a client from `zk_session`."""
        from kazoo.exceptions import NoNodeError
        root = "/zk/codis/db_%s/ActionResponse" % self.product
        found: list[tuple[float, int, str]] = []
        try:
            numbers = sorted(int(name) for name in zk.get_children(root) if name.isdigit() and int(name) > after)
        except NoNodeError:
            return after, []
        for number in numbers:
            node = "%s/%010d" % (root, number)
            try:
                data, made = zk.get(node)
                action = json.loads(data or b"{}")
                confirmed = [zk.exists("%s/%s" % (node, proxy)) for proxy in zk.get_children(node)]
            except (NoNodeError, ValueError):
                after = number
                continue
            confirmed = [stat for stat in confirmed if stat is not None]
            target = action.get("target") or {}
            masters = [s.get("addr") for s in target.get("servers") or [] if s.get("type") == "master"]
            if not confirmed and time.time() - made.ctime / 1000.0 < 60:  # not yet: read again next time
                break
            after = number
            if confirmed and action.get("type") == "group_changed" and len(masters) == 1:
                found.append((min(stat.ctime for stat in confirmed) / 1000.0, int(target["id"]), masters[0]))
        return after, found

    @contextlib.contextmanager
    def zk_session(self) -> Iterator[Any]:
        """A client of the cluster's ZooKeeper for one errand, closed after it."""
        from kazoo.client import KazooClient
        zk = KazooClient("%s:%d" % (self.zookeeper.host, self.zookeeper.port))
        zk.start(timeout=10)
        try:
            yield zk
        finally:
            zk.stop()
            zk.close()

    def _locks(self, zk: Any) -> list[str]:
        from kazoo.exceptions import NoNodeError
        path = "/zk/codis/db_%s/LOCK" % self.product
        try:
            return ["%s/%s" % (path, child) for child in zk.get_children(path)]
        except NoNodeError:
            return []

    def api(self, method: str, path: str, body: Any = None, timeout: float = 40.0) -> Any:
        status, text = http(method, self.url + path, body, timeout)
        if status != 200:
            raise RuntimeError("%s %s: HTTP %d %s" % (method, path, status, text[:300]))
        return json.loads(text) if text.strip() else None

    def add_group(self, gid: int, master: str, replicas: list[str]) -> None:
        """The group, its master, then its slaves (the dashboard sends each SLAVEOF)."""
        self.api("PUT", "/api/server_groups", {"id": gid, "product_name": self.product})
        add = "/api/server_group/%d/addServer" % gid
        self.api("PUT", add, {"type": "master", "group_id": gid, "addr": master})
        for replica in replicas:
            self.api("PUT", add, {"type": "slave", "group_id": gid, "addr": replica})

    def assign_slots(self, groups: int) -> None:
        for index in range(groups):
            first, last = slot_range(index, groups)
            self.api("POST", "/api/slot", {"from": first, "to": last, "new_group": index + 1, "status": "online"})

    def start_proxy(self, name: str, port: int, http_port: int) -> Daemon:
        """Started, registered and put online; the caller waits for it to serve."""
        config = self.config("%s.ini" % name, proxy_id=name)
        started = self.daemon(name, [str(self.bin / "codis-proxy"), "-c", str(config), "-L",
                                     str(self.workdir / ("%s.log" % name)), "--cpu=1",
                                     "--addr=%s:%d" % (self.host, port), "--http-addr=%s:%d" % (self.host, http_port)])
        wait_until(lambda: any(p.get("id") == name for p in self.api("GET", "/api/proxy/list") or []), 60,
                   "%s to register\n%s" % (name, started.tail()))
        self.api("POST", "/api/proxy", {"id": name, "state": "online"})
        return started


class RealCodis2(_RealCodis):
    """Codis release2.0: `codis-config dashboard` on ZooKeeper, Debian's redis-server, `codis-proxy`."""
    release = CODIS2

    def start_dashboard(self) -> None:
        self.zookeeper = ZooKeeperProcess().start()
        self.dashboard = _Codis2View(self.dashboard_url)
        self.control = Codis2Control(self.bin, Path(self.workdir), "127.0.0.1", self.dashboard_port, self.zookeeper,
                                     self.product, self.daemon)
        self.dashboard_daemon = self.control.start_dashboard()

    def dashboard_answers(self) -> bool:
        return self.control.answers()

    def restart_dashboard(self) -> None:
        self.control.forget_killed_dashboard()
        super().restart_dashboard()

    def api(self, method: str, path: str, body: Any = None, timeout: float = 40.0) -> Any:
        return self.control.api(method, path, body, timeout)

    def add_group(self, gid: int, slaves: int) -> list[str]:
        master = self.new_server()
        replicas = [self.new_server() for _index in range(slaves)]
        self.control.add_group(gid, master.addr, [r.addr for r in replicas])
        for replica in replicas:
            self.wait_linked(replica.addr, master.addr)
        return [master.addr] + [r.addr for r in replicas]

    def assign_slots(self, groups: int) -> None:
        self.control.assign_slots(groups)

    def add_proxy(self) -> dict[str, Any]:
        name = "proxy_%d" % (len(self.proxies) + 1)
        port, http_port = free_port(), free_port()
        daemon = self.control.start_proxy(name, port, http_port)
        proxy = {"name": name, "port": port, "http_port": http_port, "daemon": daemon}
        self.proxies.append(proxy)
        wait_until(lambda: self.proxy_serves(len(self.proxies) - 1), 60, "%s to serve\n%s" % (name, self.logs()))
        return proxy

    def close(self) -> None:
        super().close()
        if getattr(self, "zookeeper", None) is not None:
            self.zookeeper.close()


# ====================================================================================================== Codis 3
class _Codis3View:
    """The groups as the real Codis 3 dashboard stores them (servers[0] is the master)."""

    def __init__(self, url: str, xauth: str) -> None:
        self.url = url
        self.xauth = xauth

    def stats(self) -> dict[str, Any]:
        try:
            status, text = http("GET", "%s/api/topom/stats/%s" % (self.url, self.xauth), timeout=5)
        except OSError:  # not up yet, or a fault: no groups to read
            return {}
        return json.loads(text) if status == 200 else {}

    def _models(self) -> list[dict[str, Any]]:
        return list((self.stats().get("group") or {}).get("models") or [])

    def group_ids(self) -> list[int]:
        return sorted(g["id"] for g in self._models())

    def servers(self, gid: int) -> dict[str, str]:
        for group in self._models():
            if group["id"] == gid:
                return {s["server"]: "master" if i == 0 else "slave" for i, s in enumerate(group["servers"] or [])}
        return {}

    def masters(self) -> dict[int, list[str]]:
        return {g["id"]: [g["servers"][0]["server"]] if g.get("servers") else [] for g in self._models()}


class CodisServer(RedisProcess):
    """Codis's own Redis 3.2 (`codis-server`), started from a config file the dashboard may rewrite."""

    def __init__(self, port: int, workdir: str, binary: Path, extra: list[str]) -> None:
        super().__init__(port, workdir, extra)
        self.binary = binary

    def args(self) -> list[str]:
        conf = Path(self.workdir) / "redis.conf"
        if not conf.exists():
            Path(self.workdir).mkdir(parents=True, exist_ok=True)
            options = ["bind 127.0.0.1", "port %d" % self.port, "dir %s" % self.workdir, "daemonize no",
                       "logfile %s" % os.path.join(self.workdir, "redis.log")]
            pairs = FAST_SYNC + self.extra
            options += ["%s %s" % (pairs[i].lstrip("-"), pairs[i + 1] or '""') for i in range(0, len(pairs), 2)]
            conf.write_text("\n".join(options) + "\n")
        return [str(self.binary), str(conf)]

    def start(self) -> None:
        # A restart comes back empty and without the slave-of the dashboard rewrote into its config.
        with contextlib.suppress(FileNotFoundError):
            (Path(self.workdir) / "redis.conf").unlink()
        super().start()


class RealCodis3(_RealCodis):
    """Codis release3.2: `codis-dashboard` on a filesystem coordinator, `codis-server`, `codis-proxy`."""
    release = CODIS3

    def start_dashboard(self) -> None:
        self.coordinator_dir = Path(self.workdir) / "coordinator"
        default = subprocess.run([str(self.bin / "codis-dashboard"), "--default-config"], capture_output=True,
                                 text=True, check=True).stdout
        config = _set_toml(default, coordinator_name="filesystem", coordinator_addr=str(self.coordinator_dir),
                           product_name=self.product, admin_addr="127.0.0.1:%d" % self.dashboard_port,
                           sentinel_down_after="1s", sentinel_quorum=2)
        path = Path(self.workdir) / "dashboard.toml"
        path.write_text(config)
        self.dashboard = _Codis3View(self.dashboard_url, xauth(self.product))
        self.dashboard_daemon = self.daemon("dashboard", [
            str(self.bin / "codis-dashboard"), "--ncpu=1", "--config=%s" % path,
            "--log=%s" % (Path(self.workdir) / "dashboard.log"), "--remove-lock"])
        wait_until(lambda: bool(self.dashboard.stats()), 60, "the Codis 3 dashboard to answer\n" + self.logs())

    def dashboard_answers(self) -> bool:
        return bool(self.dashboard.stats())

    def admin(self, *args: str, timeout: float = 60.0) -> str:
        done = subprocess.run([str(self.bin / "codis-admin"), "--dashboard=127.0.0.1:%d" % self.dashboard_port]
                              + list(args), capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError("codis-admin %s: exit %d %s" % (
                " ".join(args), done.returncode, (done.stdout + done.stderr)[-800:]))
        return done.stdout

    def server_process(self, port: int, workdir: str) -> RedisProcess:
        return CodisServer(port, workdir, self.bin / "codis-server", self.extra)

    def add_group(self, gid: int, slaves: int) -> list[str]:
        master = self.new_server()
        replicas = [self.new_server() for _index in range(slaves)]
        self.admin("--create-group", "--gid=%d" % gid)
        for server in [master] + replicas:
            self.admin("--group-add", "--gid=%d" % gid, "--addr=%s" % server.addr)
        for replica in replicas:
            self.admin("--sync-action", "--create", "--addr=%s" % replica.addr)
        for replica in replicas:
            self.wait_linked(replica.addr, master.addr, timeout=30)
        return [master.addr] + [r.addr for r in replicas]

    def assign_slots(self, groups: int) -> None:
        for index in range(groups):
            first, last = slot_range(index, groups)
            self.admin("--slots-assign", "--beg=%d" % first, "--end=%d" % last, "--gid=%d" % (index + 1),
                       "--confirm")

    def add_proxy(self) -> dict[str, Any]:
        name = "proxy_%d" % (len(self.proxies) + 1)
        port, admin_port = free_port(), free_port()
        default = subprocess.run([str(self.bin / "codis-proxy"), "--default-config"], capture_output=True,
                                 text=True, check=True).stdout
        config = _set_toml(default, product_name=self.product, admin_addr="127.0.0.1:%d" % admin_port,
                           proxy_addr="127.0.0.1:%d" % port, proxy_heap_placeholder="0",
                           proxy_max_offheap_size="64mb")
        path = Path(self.workdir) / ("%s.toml" % name)
        path.write_text(config)
        daemon = self.daemon(name, [str(self.bin / "codis-proxy"), "--ncpu=1", "--config=%s" % path,
                                    "--dashboard=127.0.0.1:%d" % self.dashboard_port,
                                    "--log=%s" % (Path(self.workdir) / ("%s.log" % name))])
        proxy = {"name": name, "port": port, "admin_port": admin_port, "daemon": daemon}
        self.proxies.append(proxy)
        wait_until(lambda: self.proxy_serves(len(self.proxies) - 1), 60, "%s to serve\n%s" % (name, self.logs()))
        return proxy

    def add_sentinels(self, count: int = 3) -> list[str]:
        """Debian's redis-sentinel processes registered in the dashboard (`--sentinel-add`, then `--sentinel-resync`,
        which hands them every group with the dashboard's quorum 2 and down-after 1 s), as the Codis maintainers
        recommend since 3.1. The resync fails now and then with `use of closed network connection`: tried again."""
        addrs = []
        for index in range(count):
            port = free_port()
            conf = Path(self.workdir) / ("sentinel-%d.conf" % index)
            conf.write_text("port %d\nbind 127.0.0.1\ndaemonize no\nprotected-mode no\ndir %s\n" % (
                port, self.workdir))
            self.daemon("sentinel-%d" % index, ["redis-sentinel", str(conf)])
            wait_until(lambda p=port: _port_open(p), 20, "redis-sentinel on %d" % port)
            self.admin("--sentinel-add", "--addr=127.0.0.1:%d" % port)
            addrs.append("127.0.0.1:%d" % port)

        def resynced() -> bool:
            try:
                self.admin("--sentinel-resync")
                return True
            except RuntimeError:
                return False
        wait_until(resynced, 60, "the sentinels to take the groups", interval=0.5)
        # Sentinels learn of each other from hello messages on each master, every 2 s: a master killed before that
        # leaves each sentinel alone, short of the quorum of 2, and no failover ever comes (seen in CI).
        wait_until(lambda: all(self._sentinel_knows_all(addr, count) for addr in addrs), 60,
                   "every sentinel to know the other sentinels and the replicas of every group", interval=0.2)
        return addrs

    def _sentinel_knows_all(self, addr: str, sentinels: int) -> bool:
        host, port = addr.rsplit(":", 1)
        try:
            with contextlib.closing(redis.Redis(host=host, port=int(port), socket_timeout=1, retry=None,
                                                decode_responses=True)) as client:
                masters = client.execute_command("SENTINEL", "MASTERS")
        except redis.RedisError:
            return False
        if not isinstance(masters, list) or len(masters) != len(self.dashboard.group_ids()):
            return False
        for flat in masters:
            fields = dict(zip(flat[::2], flat[1::2])) if isinstance(flat, list) else dict(flat)
            gid = int(str(fields.get("name", "")).rsplit("-", 1)[-1])
            if (int(fields.get("num-other-sentinels", 0)) != sentinels - 1
                    or int(fields.get("num-slaves", 0)) != len(self.dashboard.servers(gid)) - 1):
                return False
        return True

    def sentinel_master(self, gid: int) -> Optional[str]:
        """The master the first sentinel names for a group (`codis-<product>-<gid>`)."""
        sentinel = next(d for d in self.daemons if d.name.startswith("sentinel-"))
        port = int(re.search(r"port (\d+)", (Path(self.workdir) / (sentinel.name + ".conf")).read_text()
                             ).group(1))  # type: ignore[union-attr]
        try:
            with contextlib.closing(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, retry=None,
                                                decode_responses=True)) as c:
                host, p = c.execute_command("SENTINEL", "get-master-addr-by-name", "%s-%d" % (self.product, gid))
                return "%s:%s" % (host, p)
        except (redis.RedisError, TypeError, ValueError):
            return None

    def wait_stats_fresh(self) -> None:
        """The dashboard polls every server about once a second: wait until it has a poll of each."""
        def polled() -> bool:
            stats = (self.dashboard.stats().get("group") or {}).get("stats") or {}
            return all(isinstance(stats.get(a), dict) and stats[a].get("stats") for a in self.processes
                       if self.processes[a].proc is not None)
        wait_until(polled, 20, "the dashboard's polls of every server")


def _set_toml(text: str, **values: Any) -> str:
    for key, value in values.items():
        rendered = str(value) if isinstance(value, int) else json.dumps(str(value))
        text, count = re.subn(r"(?m)^%s\s*=.*$" % re.escape(key), "%s = %s" % (key, rendered), text)
        if count != 1:
            raise ValueError("no single %r in the default config" % key)
    return text
