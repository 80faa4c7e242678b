"""The soak: real redis-server at Redis's defaults, each Redis host in a network namespace of its own, the role's
runner at 1 s, a client writing to whatever the dashboard lists, and a seeded nemesis; every acknowledged write is
counted at the end.

    sudo .venv/bin/python bench/soak.py --seconds 360 --seed 1 --groups 3       # a run, as the issue's
    sudo .venv/bin/python bench/soak.py --seconds 100 --seed 1 --groups 2 --json out.json
    sudo .venv/bin/python bench/soak.py --seconds 3600 --seed 7 --dashboard codis2   # real Codis 2 and codis-proxy

Layout (every address lives inside namespaces this script makes, and every namespace is removed at the end):
a namespace `<tag>lan` holds a bridge; `<tag>ctl` holds this driver, the dashboard (the simulator's Codis 2 dashboard
in real mode, sending real SLAVEOF), the writer and the sampler; `<tag>w` holds the runner (the role's runner file,
module at its defaults with a state file); `<tag>h<N>` holds one redis-server each, all on port 6379 at 10.77.0.N.
With `--watchers 3` three runners (hosts 3, 4 and 5) agree through a real ZooKeeper in `<tag>ctl` (quorum 2, every
other coordination option at its default); the cut faults cut off the first of them, as they cut off the first
sentinel. With `--dashboard codis2` the dashboard is the real Codis 2 one (`codis-config dashboard`, built by
scripts/build_codis.sh) on a ZooKeeper in `<tag>ctl`, and the writer writes through a real `codis-proxy` there
(each group's keys hash-tagged into its slots); "dashboard down" kills it with -9 and restarts it.

Redis runs at its defaults (`repl-ping-replica-period 10`, `repl-timeout 60`, diskless sync after 5 s), without
persistence (`--save '' --appendonly no`). A restarted server comes back empty if it never was a replica, and
otherwise with the data of its last full sync: a replica writes the RDB it receives to disk before loading it
(`repl-diskless-load disabled`, Redis's default) and loads it again at start, with that history's replication id
and offset. Both are what a node restarted by systemd does.

Nemesis, one fault at a time on a random group, a fault every `--every` seconds:
- kill: SIGKILL the master; it is restarted on its port after 1 to 20 s (an operator, systemd);
- kill_restart_now: SIGKILL and a restart at once (faster than a pass: the dashboard still lists it);
- freeze: the master's host stops (SIGSTOP, and its namespace drops every packet: nothing answers, no reset)
  for 15 to 30 s;
- cut_busy / cut_idle: only the watcher is cut off from the master for 15 to 20 s; idle: the group's writer
  pauses 5 s before and during the cut (its slaves hear only the 10 s pings);
- slave_cut: a slave cut off from its master for 20 s;
- dashboard_down: the dashboard refuses every request for 10 s;
- second_fault: the master is killed, and the master that replaces it is killed 3 s after the failover.

Per fault and summed: acknowledged writes lost, the part no tool could have saved (every acknowledged write the best
surviving slave lacked right after the fault), writes a restarted master took before a pass replaced it, writes
acknowledged by a server the sampler's record no longer listed as master (a restarted or thawed old master within a
sample, a tenth of a second, of the promote: the record is stamped when a sample starts), seconds without a writable
master where the dashboard routes, false failovers (a promotion while the old master was neither dead, frozen nor
restarted), seconds with two writable masters (a server that was the group's master and kept its data, answering
role master beside the dashboard's master), and the part of those seconds after a whole pass had run since the
sampler first saw it answer (passes read from each runner's metrics file): a thawed old master answers before any
tool can demote it; after a pass it must not.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import ensure_collection_path, plot_to, write_json  # noqa: E402
from simulator.waiting import wait_until  # noqa: E402
from simulator.watchers import runner_command, runner_env, runner_metrics  # noqa: E402

SUBNET = "10.77.0"
CTL, WATCHER = 2, 3  # host numbers of the driver's and the (first) runner's namespaces
WATCHER_HOSTS = (3, 4, 5)  # with --watchers 3: a runner on each, agreeing through ZooKeeper (quorum 2) on CTL
ZOOKEEPER_PORT = 2181
SENTINEL_HOSTS = (4, 5, 6)  # three sentinels, each on a host of its own; the cut faults cut off the first
SENTINEL_PORT = 26379
FIRST_REDIS = 10
PORT = 6379
REDIS_ARGS = ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
FAULTS = ("kill", "kill_restart_now", "freeze", "cut_busy", "cut_idle", "slave_cut", "dashboard_down",
          "second_fault")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


# ------------------------------------------------------------------------------------------------ the network
class Network:
    """Namespaces on one bridge. Made in the root namespace, removed whatever happens."""

    def __init__(self, tag: str, hosts: list[int]) -> None:
        self.tag = tag
        self.hosts = hosts
        self.made: list[str] = []

    def ns(self, host: int) -> str:
        return "%sh%d" % (self.tag, host)

    @property
    def lan(self) -> str:
        return "%slan" % self.tag

    def __enter__(self) -> "Network":
        try:
            sh("ip", "netns", "add", self.lan)
            self.made.append(self.lan)
            sh("ip", "-n", self.lan, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", self.lan, "link", "set", "br0", "up")
            for host in self.hosts:
                ns = self.ns(host)
                sh("ip", "netns", "add", ns)
                self.made.append(ns)
                inner, outer = "%sa%d" % (self.tag, host), "%sb%d" % (self.tag, host)
                sh("ip", "link", "add", inner, "type", "veth", "peer", "name", outer)
                sh("ip", "link", "set", inner, "netns", ns)
                sh("ip", "link", "set", outer, "netns", self.lan)
                sh("ip", "-n", self.lan, "link", "set", outer, "master", "br0", "up")
                sh("ip", "-n", ns, "addr", "add", "%s.%d/24" % (SUBNET, host), "dev", inner)
                sh("ip", "-n", ns, "link", "set", inner, "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)
        self.made = []

    def run_in(self, host: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host)]


# ------------------------------------------------------------------------------------------------ redis hosts
@dataclass
class RedisHost:
    host: int
    workdir: Path
    prefix: list[str]
    proc: Optional[subprocess.Popen[bytes]] = None
    started_at: float = 0.0
    frozen: bool = False

    @property
    def addr(self) -> str:
        return "%s.%d:%d" % (SUBNET, self.host, PORT)

    def client(self, timeout: float = 0.5) -> Any:
        import redis

        return redis.Redis(host="%s.%d" % (SUBNET, self.host), port=PORT, socket_timeout=timeout,
                           socket_connect_timeout=timeout, retry=None, decode_responses=True)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()  # before it answers: a write it takes from then is the new process's
        self.proc = subprocess.Popen(self.prefix + [
            "redis-server", "--bind", "%s.%d" % (SUBNET, self.host), "--port", str(PORT), "--dir", str(self.workdir),
            "--logfile", str(self.workdir / "redis.log")] + REDIS_ARGS, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_until(self.answers, 20, "redis-server at %s" % self.addr, interval=0.02)

    def answers(self) -> bool:
        with contextlib.suppress(Exception), contextlib.closing(self.client(0.3)) as c:
            return bool(c.ping())
        return False

    def kill(self) -> None:
        if self.proc is None:
            return
        self.thaw()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)
        self.proc = None
        wait_until(lambda: not self.answers(), 20, "%s to stop answering" % self.addr, interval=0.02)

    def freeze(self) -> None:
        """A host that stops: the process and every packet (no reset to anyone, links stay up)."""
        if self.proc is None or self.frozen:
            return
        self.frozen = True
        self.proc.send_signal(signal.SIGSTOP)
        sh(*self.prefix, "iptables", "-w", "-I", "INPUT", "-j", "DROP")
        sh(*self.prefix, "iptables", "-w", "-I", "OUTPUT", "-j", "DROP")

    def thaw(self) -> None:
        if not self.frozen:
            return
        sh(*self.prefix, "iptables", "-w", "-D", "INPUT", "-j", "DROP", check=False)
        sh(*self.prefix, "iptables", "-w", "-D", "OUTPUT", "-j", "DROP", check=False)
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def cut_from(self, host: int, on: bool) -> None:
        """Packets between this host and another dropped (or no longer)."""
        verb = "-I" if on else "-D"
        other = "%s.%d" % (SUBNET, host)
        sh(*self.prefix, "iptables", "-w", verb, "INPUT", "-s", other, "-j", "DROP", check=on)
        sh(*self.prefix, "iptables", "-w", verb, "OUTPUT", "-d", other, "-j", "DROP", check=on)

    def role(self, timeout: float = 0.15) -> Optional[str]:
        with contextlib.suppress(Exception), contextlib.closing(self.client(timeout)) as c:
            return str(c.execute_command("ROLE")[0])
        return None


# ------------------------------------------------------------------------------------------------ real Codis 2
DASHBOARD_PORT, PROXY_PORT, PROXY_HTTP_PORT = 18087, 19000, 11000


class RealCodis2Side:
    """`--dashboard codis2`: the real Codis 2 dashboard (`codis-config dashboard`) and a real `codis-proxy` in the
    driver's namespace, on a ZooKeeper there. The writer writes through the proxy (the slots spread over the groups,
    each group's keys hash-tagged into its own slots); the runner talks to the dashboard; "dashboard down" kills it
    with -9 and restarts it with the operator's ZooKeeper step. Answers what the soak asks of the simulator's
    dashboard (seed_group, masters, set_down, stop); promotions are read from the sampler's record."""

    def __init__(self, workdir: Path, zookeeper: Any) -> None:
        from simulator.real_codis import CODIS2, Codis2Control, bin_dir

        self.workdir = workdir
        self.daemons: list[Any] = []
        self.control = Codis2Control(bin_dir(CODIS2), workdir, "%s.%d" % (SUBNET, CTL), DASHBOARD_PORT, zookeeper,
                                     "soak", self._daemon)
        self.dashboard_daemon = self.control.start_dashboard()
        self.audit: list[Any] = []
        self.proxy: Any = None
        self.proxy_exits: list[float] = []

    def _daemon(self, name: str, args: list[str]) -> Any:
        from simulator.real_codis import Daemon

        started = Daemon(name, args, self.workdir)
        started.start()
        self.daemons.append(started)
        return started

    def seed_group(self, gid: int, servers: list[tuple[str, str]]) -> None:
        self.control.add_group(gid, servers[0][0], [addr for addr, _type in servers[1:]])

    def start_proxy(self, groups: int) -> None:
        self.control.assign_slots(groups)
        self.proxy = self.control.start_proxy("proxy_1", PROXY_PORT, PROXY_HTTP_PORT)
        wait_until(self._proxy_serves, 60, "the proxy to serve")

    def supervise_proxy(self, stop: threading.Event, now: Callable[[], float]) -> None:
        """An operator's supervisor: a proxy that exits is started again and put online. The Codis 2 dashboard
        marks a proxy offline when it does not acknowledge a promote within 30 s, and the proxy then shuts itself
        down; each such exit is recorded (soak time)."""
        counted = None
        while not stop.wait(0.5):
            if self.proxy.alive():
                continue
            if self.proxy is not counted:  # one exit, however many starts it takes
                self.proxy_exits.append(now())
                counted = self.proxy
            try:
                self.proxy = self.control.start_proxy("proxy_1", PROXY_PORT, PROXY_HTTP_PORT)
            except Exception:  # noqa: BLE001 - the dashboard down meanwhile: start over at the next look
                self.daemons[-1].kill()

    def proxy_client(self, timeout: float = 0.5) -> Any:
        import redis

        # No CLIENT SETINFO on connect: a Codis proxy closes the session on any CLIENT command.
        return redis.Redis(host="%s.%d" % (SUBNET, CTL), port=PROXY_PORT, socket_timeout=timeout,
                           socket_connect_timeout=timeout, retry=None, protocol=2, decode_responses=True,
                           lib_name=None, lib_version=None)

    def _proxy_serves(self) -> bool:
        with contextlib.suppress(Exception), contextlib.closing(self.proxy_client()) as c:
            return bool(c.set("soak:probe", "1"))
        return False

    def masters(self) -> Optional[dict[int, list[str]]]:
        """The groups' masters as the dashboard lists them; None when it does not answer."""
        from simulator.real_codis import http

        try:
            status, text = http("GET", self.control.url + "/api/server_groups", timeout=1.0)
            groups = json.loads(text) if status == 200 else None
        except (OSError, ValueError):
            return None
        if not isinstance(groups, list):
            return None
        return {g["id"]: [s["addr"] for s in g.get("servers") or [] if s["type"] == "master"] for g in groups}

    def set_down(self, down: bool) -> None:
        if down:
            self.dashboard_daemon.kill()
            wait_until(lambda: not self.control.answers(), 20, "the dashboard to stop answering")
        else:
            self.control.forget_killed_dashboard()
            self.dashboard_daemon.start()
            wait_until(self.control.answers, 60, "the dashboard to answer again")

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.kill()


def hash_tags(groups: int) -> dict[int, str]:
    """Per group, a hash tag whose Codis slot (crc32 of the tag, mod 1024) lies in the slots the group serves."""
    import zlib

    from simulator.real_codis import SLOTS, slot_range

    tags = {}
    for index in range(groups):
        first, last = slot_range(index, groups)
        tags[index + 1] = next("g%d-%d" % (index + 1, n) for n in range(100000)
                               if first <= zlib.crc32(b"g%d-%d" % (index + 1, n)) % SLOTS <= last)
    return tags


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class Fault:
    kind: str
    group: int
    started: float
    ended: Optional[float] = None
    note: str = ""
    unavoidable: set[str] = field(default_factory=set)
    lost: int = 0
    unavailable: float = 0.0
    two_masters: float = 0.0
    two_masters_after_pass: float = 0.0
    false_failovers: int = 0


def snapshot(acked: dict[str, tuple[float, str]]) -> list[tuple[str, tuple[float, str]]]:
    """The writer thread's dict as a list, newest last. Copying it while the writer adds to it can still fail with
    "dictionary changed size during iteration" (an hour-long run died of it twice): it is tried again."""
    for _attempt in range(100):
        try:
            return list(acked.items())
        except RuntimeError:
            continue
    return list(acked.copy().items())


class Soak:
    def __init__(self, net: Network, groups: int, seed: int, seconds: float, every: float, workdir: Path,
                 faults: tuple[str, ...], contender: str = "codis.ha", watchers: int = 1,
                 dashboard: str = "simulator", max_ping_period: int = 1) -> None:
        self.net = net
        self.max_ping_period = max_ping_period
        self.contender = contender
        self.watchers = watchers
        self.rng = random.Random(seed)
        self.seconds = seconds
        self.every = every
        self.workdir = workdir
        self.faults_allowed = faults
        self.hosts: dict[str, RedisHost] = {}
        self.groups = list(range(1, groups + 1))
        self.real = dashboard == "codis2"
        self.dashboard: Any = None  # made in start_cluster: the real one needs its ZooKeeper first
        self.tags = hash_tags(groups)
        # Per group: key -> (when acknowledged, by which server).
        self.acked: dict[int, dict[str, tuple[float, str]]] = defaultdict(dict)
        self.paused: set[int] = set()
        self.stop = threading.Event()
        self.faults: list[Fault] = []
        # time, group, writable master, the other servers answering role master beside it (while it is writable)
        self.samples: list[tuple[float, int, bool, tuple[str, ...]]] = []
        self.passes: set[tuple[float, float]] = set()  # (started, ended) of every runner's passes, from its metrics
        self.dead_or_frozen: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.restarted: dict[str, list[float]] = defaultdict(list)
        self.master_since: dict[str, float] = {}
        self.listed: dict[int, list[tuple[float, str]]] = {}  # per group: (since, the dashboard's master)
        self.routes: dict[int, list[tuple[float, str]]] = defaultdict(list)  # real Codis 2: (since, the proxy's)
        self.members: dict[int, list[str]] = {}
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.view: dict[int, Optional[str]] = {}  # Sentinel's master of each group, refreshed every 50 ms
        self.runners: list[subprocess.Popen[bytes]] = []
        self.zookeeper: Any = None
        self.t0 = time.monotonic()
        self.wall0 = time.time()  # the runner's metrics are in Unix time: one origin, so one pass reads the same

    # -------------------------------------------------------------- set-up
    def start_dashboard(self) -> None:
        """The simulator's Codis 2 dashboard in real mode (it sends real SLAVEOF), or the real one and its proxy."""
        if self.real:
            self.dashboard = RealCodis2Side(self.workdir, self.start_zookeeper())
            threading.Thread(target=self._follow_dashboard, daemon=True).start()
            return
        from simulator.dashboard2 import Codis2Dashboard
        from simulator.http_base import RealRedis

        self.dashboard = Codis2Dashboard(None, host="%s.%d" % (SUBNET, CTL), port=DASHBOARD_PORT,
                                         redis_side=RealRedis(timeout=2.0))

    def start_zookeeper(self) -> Any:
        if self.zookeeper is None:
            from simulator.coordinators import ZooKeeperProcess

            self.zookeeper = ZooKeeperProcess("%s.%d" % (SUBNET, CTL), ZOOKEEPER_PORT).start()
        return self.zookeeper

    def _follow_dashboard(self) -> None:
        """The real dashboard is asked every 50 ms whom it lists (a question per write would load it); while it
        does not answer, the last answer stands, as the proxy's routes do."""
        while not self.stop.is_set():
            masters = self.dashboard.masters()
            if masters is not None:
                for gid in self.groups:
                    listed = masters.get(gid, [])
                    self.view[gid] = listed[0] if len(listed) == 1 else None
            self.stop.wait(0.05)

    def _follow_proxy_routes(self) -> None:
        """Real Codis 2: when the proxy began routing each group to a new master (its confirmation in ZooKeeper),
        read every second: the dashboard lists a promoted master before its proxies route to it."""
        control, after = self.dashboard.control, -1
        while not self.stop.is_set():
            try:
                with control.zk_session() as zk:
                    while not self.stop.wait(1.0):
                        after, switches = control.proxy_switches(zk, after)
                        for unix, gid, master in switches:
                            self.routes[gid].append((unix - self.wall0, master))
            except Exception:  # noqa: BLE001 - ZooKeeper away a moment: a new session, reading on from `after`
                self.stop.wait(1.0)

    def start_cluster(self) -> None:
        self.start_dashboard()
        host = FIRST_REDIS
        for gid in self.groups:
            members = []
            for _index in range(3):
                server = RedisHost(host, self.workdir / ("redis-%d" % host), self.net.run_in(host))
                server.start()
                self.hosts[server.addr] = server
                members.append(server)
                host += 1
            master, slaves = members[0], members[1:]
            for slave in slaves:
                with contextlib.closing(slave.client(2)) as c:
                    c.execute_command("REPLICAOF", "%s.%d" % (SUBNET, master.host), PORT)
            wait_until(lambda s=slaves, m=master: all(self._linked(x, m) for x in s), 30, "group %d to sync" % gid)
            self.dashboard.seed_group(gid, [(master.addr, "master")] + [(s.addr, "slave") for s in slaves])
            self.members[gid] = [m.addr for m in members]
            self.view[gid] = master.addr
            self.master_since[master.addr] = self.now()
            self.listed[gid] = [(self.now(), master.addr)]
        if self.real:
            self.dashboard.start_proxy(len(self.groups))
            threading.Thread(target=self.dashboard.supervise_proxy, args=(self.stop, self.now), daemon=True).start()
            threading.Thread(target=self._follow_proxy_routes, daemon=True).start()

    def _linked(self, slave: RedisHost, master: RedisHost) -> bool:
        with contextlib.suppress(Exception), contextlib.closing(slave.client(0.5)) as c:
            info = c.info("replication")
            return bool(info.get("master_link_status") == "up" and info.get("master_host") == "%s.%d" % (
                SUBNET, master.host))
        return False

    def start_runners(self) -> None:
        """The role's runner at 1 s, module at its defaults with a state file; with three watchers each on a host of
        its own, agreeing through ZooKeeper (quorum 2)."""
        coordination: dict[str, Any] = {}
        if self.watchers > 1:
            coordination = {"coordinator": self.start_zookeeper().url("/codis-ha"), "quorum": 2}
        for index, host in enumerate(WATCHER_HOSTS[:self.watchers]):
            wdir = self.runner_dir(index)
            wdir.mkdir(parents=True, exist_ok=True)
            config = wdir / "runner.json"
            args = dict(coordination, dashboard_url=self.dashboard_url, state_path=str(wdir / "state.json"),
                        max_ping_period=self.max_ping_period)
            if coordination:
                args["observer_id"] = "w%d" % (index + 1)
            config.write_text(json.dumps({
                "module_args": args, "collections_path": str(ROOT / "build" / "collections"), "log": "stdout",
                "interval": 1.0, "metrics_path": str(wdir / "metrics.prom")}))
            runner = subprocess.Popen(
                self.net.run_in(host) + runner_command(config, "--loop-seconds", str(self.seconds + 600)),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, env=runner_env())
            self.runners.append(runner)
            threading.Thread(target=self._keep_log, args=(runner, wdir / "runner.log"), daemon=True).start()

    def _keep_log(self, runner: "subprocess.Popen[bytes]", path: Path) -> None:
        """The runner's lines with the soak's clock in front, to be read beside the faults' times."""
        assert runner.stdout is not None
        with open(path, "ab") as log:
            for line in runner.stdout:
                log.write(b"[%8.1f] %s" % (self.now(), line))
                log.flush()

    @property
    def dashboard_url(self) -> str:
        return "http://%s.%d:%d" % (SUBNET, CTL, DASHBOARD_PORT)

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -------------------------------------------------------------- the writer and the sampler
    def master(self, gid: int) -> Optional[str]:
        """Where the clients write: the dashboard's master (codis.ha; through the proxy with the real dashboard), or
        Sentinel's (a Sentinel-aware client)."""
        if self.contender == "sentinel" or self.real:
            return self.view.get(gid)
        masters = self.dashboard.masters().get(gid, [])
        return masters[0] if len(masters) == 1 else None

    def start_sentinels(self) -> None:
        for i, host in enumerate(SENTINEL_HOSTS):
            lines = ["port %d" % SENTINEL_PORT, "bind %s.%d" % (SUBNET, host), "daemonize no", "protected-mode no",
                     "dir %s" % self.workdir, "sentinel resolve-hostnames no"]
            for gid in self.groups:
                master = self.hosts[self.members[gid][0]]
                lines += ["sentinel monitor g%d %s.%d %d 2" % (gid, SUBNET, master.host, PORT),
                          "sentinel down-after-milliseconds g%d 1000" % gid,
                          "sentinel failover-timeout g%d 180000" % gid, "sentinel parallel-syncs g%d 1" % gid]
            conf = self.workdir / ("sentinel-%d.conf" % i)
            conf.write_text("\n".join(lines) + "\n")
            with open(self.workdir / ("sentinel-%d.log" % i), "ab") as log:
                self.sentinels.append(subprocess.Popen(self.net.run_in(host) + ["redis-sentinel", str(conf)],
                                                       stdout=log, stderr=subprocess.STDOUT))
        wait_until(self._sentinels_know_everyone, 60, "the sentinels to discover each other and the replicas")
        threading.Thread(target=self._follow_sentinels, daemon=True).start()

    def _sentinel(self, host: int, timeout: float = 0.5) -> Any:
        import redis

        return redis.Redis(host="%s.%d" % (SUBNET, host), port=SENTINEL_PORT, socket_timeout=timeout,
                           socket_connect_timeout=timeout, retry=None, decode_responses=True)

    def _sentinels_know_everyone(self) -> bool:
        with contextlib.suppress(Exception), contextlib.closing(self._sentinel(SENTINEL_HOSTS[-1])) as c:
            return all(len(c.execute_command("SENTINEL", "sentinels", "g%d" % g)) == len(SENTINEL_HOSTS) - 1 and
                       len(c.execute_command("SENTINEL", "replicas", "g%d" % g)) == 2 for g in self.groups)
        return False

    def _follow_sentinels(self) -> None:
        """A Sentinel-aware client: asks the sentinels (the last one first: the cut faults cut off the first) whom
        to write to."""
        while not self.stop.is_set():
            for host in reversed(SENTINEL_HOSTS):
                with contextlib.suppress(Exception), contextlib.closing(self._sentinel(host, 0.2)) as c:
                    for gid in self.groups:
                        ip, port = c.execute_command("SENTINEL", "get-master-addr-by-name", "g%d" % gid)
                        self.view[gid] = "%s:%s" % (ip, port)
                    break
            self.stop.wait(0.05)

    def writer(self, gid: int) -> None:
        """~200 writes a second to whatever the dashboard lists as the group's master (with the real dashboard,
        through the proxy, which routes them there), each acknowledged write recorded with that master."""
        n = 0
        clients: dict[str, Any] = {}
        while not self.stop.is_set():
            if gid in self.paused:
                self.stop.wait(0.05)
                continue
            addr = self.master(gid)
            if addr is None:
                self.stop.wait(0.005)
                continue
            route = "proxy" if self.real else addr
            client = clients.get(route)
            if client is None:
                client = clients[route] = self.dashboard.proxy_client(0.2) if self.real else self.hosts[addr].client(0.2)
            key = "{%s}:%d" % (self.tags[gid], n)
            try:
                client.set(key, n)
                self.acked[gid][key] = (self.now(), addr)
                n += 1
            except Exception:  # noqa: BLE001 - any failure is an unacknowledged write; the next goes on
                with contextlib.suppress(Exception):
                    client.close()
                clients.pop(route, None)
            self.stop.wait(0.005)

    def sampler(self) -> None:
        """Every 100 ms, per group: is the dashboard's master a live master (writable), and does another server
        that was the group's master and kept its data answer role master beside it (two writable masters)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=16) as pool:
            while not self.stop.is_set():
                started = self.now()
                roles = dict(zip(self.hosts, pool.map(lambda h: h.role(), self.hosts.values())))
                for gid in self.groups:
                    listed = self.master(gid)
                    writable = listed is not None and roles.get(listed) == "master"
                    others = [a for a in self.members[gid] if a != listed
                              and roles.get(a) == "master" and a in self.master_since
                              and self.hosts[a].started_at - self.t0 <= self.master_since[a]]
                    self.samples.append((started, gid, writable, tuple(others) if writable else ()))
                    if listed is not None and self.listed[gid][-1][1] != listed:
                        self.listed[gid].append((started, listed))
                        self.master_since[listed] = started
                self.read_passes()
                self.stop.wait(max(0.1 - (self.now() - started), 0.0))

    def read_passes(self) -> None:
        """Each runner's metrics file says when its last pass ended and how long it took: read every sample (a
        tenth of a second; passes are a second apart), it gives every pass."""
        for index in range(len(self.runners)):
            values = runner_metrics(self.runner_dir(index) / "metrics.prom")
            if "codis_ha_last_pass_timestamp_seconds" in values and "codis_ha_last_pass_duration_seconds" in values:
                ended = values["codis_ha_last_pass_timestamp_seconds"] - self.wall0
                self.passes.add((ended - values["codis_ha_last_pass_duration_seconds"], ended))

    def runner_dir(self, index: int) -> Path:
        return self.workdir / ("runner" if index == 0 else "runner-%d" % (index + 1))

    # -------------------------------------------------------------- the nemesis
    def group_hosts(self, gid: int) -> tuple[Optional[RedisHost], list[RedisHost]]:
        master = self.master(gid)
        return (self.hosts.get(master) if master else None,
                [self.hosts[a] for a in self.members[gid] if a != master])

    def unavoidable(self, gid: int, slaves: list[RedisHost]) -> set[str]:
        """Right after the master stopped: every write acknowledged so far that the best surviving slave lacks (a
        slave restarted from an old full sync's RDB and still syncing when the master died lacks far more than the
        last seconds: no tool can give it back). The slaves keep their data until a full sync from a new or
        restarted master, which starts no sooner than a pass promotes or Redis's 5 s diskless delay."""
        wanted = [key for key, _value in snapshot(self.acked[gid])]
        best: Optional[set[str]] = None
        for slave in slaves:
            if slave.frozen or slave.proc is None:
                continue
            with contextlib.suppress(Exception), contextlib.closing(slave.client(5)) as c:
                missing = set()
                for first in range(0, len(wanted), 10000):
                    chunk = wanted[first:first + 10000]
                    missing.update(k for k, v in zip(chunk, c.mget(chunk)) if v is None)
                if best is None or len(missing) < len(best):
                    best = missing
        return best if best is not None else set(wanted)

    def mark_down(self, addr: str, start: float, end: float) -> None:
        self.dead_or_frozen[addr].append((start, end))

    def restart_later(self, server: RedisHost, delay: float) -> None:
        def go() -> None:
            if self.stop.wait(delay):
                return
            if server.proc is None:
                server.start()
                self.restarted[server.addr].append(server.started_at - self.t0)
        threading.Thread(target=go, daemon=True).start()

    def kill_master(self, gid: int, fault: Fault, restart_after: float) -> Optional[str]:
        master, slaves = self.group_hosts(gid)
        if master is None or master.proc is None:
            return None
        start = self.now()
        master.kill()
        if restart_after <= 0:
            master.start()
            self.restarted[master.addr].append(master.started_at - self.t0)
            self.mark_down(master.addr, start, self.now())
        else:
            self.mark_down(master.addr, start, start + restart_after)
            self.restart_later(master, restart_after)
        fault.unavoidable |= self.unavoidable(gid, slaves)  # after the restart: it must not wait for this
        return master.addr

    def inject(self, kind: str, gid: int) -> Fault:
        fault = Fault(kind, gid, self.now())
        master, slaves = self.group_hosts(gid)
        if kind == "kill":
            fault.note = str(self.kill_master(gid, fault, self.rng.uniform(1, 20)))
        elif kind == "kill_restart_now":
            fault.note = str(self.kill_master(gid, fault, 0))
        elif kind == "freeze" and master is not None and master.proc is not None:
            length = self.rng.uniform(15, 30)
            start = self.now()
            master.freeze()
            fault.unavoidable |= self.unavoidable(gid, slaves)
            self.mark_down(master.addr, start, start + length)
            self.stop.wait(max(start + length - self.now(), 0.0))
            master.thaw()
        elif kind in ("cut_busy", "cut_idle") and master is not None:
            if kind == "cut_idle":
                self.paused.add(gid)
                self.stop.wait(5)
            watcher = SENTINEL_HOSTS[0] if self.contender == "sentinel" else WATCHER
            master.cut_from(watcher, True)
            try:
                self.stop.wait(self.rng.uniform(15, 20))
            finally:
                master.cut_from(watcher, False)
                self.paused.discard(gid)
        elif kind == "slave_cut" and master is not None and slaves:
            slave = self.rng.choice(slaves)
            slave.cut_from(master.host, True)
            try:
                self.stop.wait(20)
            finally:
                slave.cut_from(master.host, False)
        elif kind == "dashboard_down":
            self.dashboard.set_down(True)
            try:
                self.stop.wait(10)
            finally:
                self.dashboard.set_down(False)
        elif kind == "second_fault":
            first = self.kill_master(gid, fault, self.rng.uniform(10, 20))
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: self.master(gid) not in (None, first), 15, "a failover", interval=0.05)
            self.stop.wait(3)
            second = self.kill_master(gid, fault, self.rng.uniform(10, 20))
            fault.note = "%s then %s" % (first, second)
        fault.ended = self.now()
        return fault

    # -------------------------------------------------------------- the whole run
    def run(self) -> dict[str, Any]:
        self.start_cluster()
        if self.contender == "sentinel":
            self.start_sentinels()
        else:
            self.start_runners()
        threads = [threading.Thread(target=self.writer, args=(gid,), daemon=True) for gid in self.groups]
        threads.append(threading.Thread(target=self.sampler, daemon=True))
        for t in threads:
            t.start()
        try:
            self.stop.wait(10)  # the runner's first passes record every master
            deadline = self.seconds
            while self.now() < deadline and not self.stop.is_set():
                kind = self.rng.choice(self.faults_allowed)
                gid = self.rng.choice(self.groups)
                self.faults.append(self.inject(kind, gid))
                self.stop.wait(max(self.every - (self.faults[-1].ended or 0) + self.faults[-1].started, 2.0))
            healthy = self.settle()
        finally:
            self.stop.set()
            for t in threads:
                t.join(10)
            for runner in self.runners:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(runner.pid, signal.SIGKILL)
                runner.wait(10)
            if self.zookeeper is not None:
                self.zookeeper.close()
            for sentinel in self.sentinels:
                sentinel.kill()
                sentinel.wait(10)
        return self.report(healthy)

    def settle(self) -> bool:
        """Every fault healed, every dead server restarted empty; then every group must be healthy within 60 s:
        the dashboard's master answers role master and every other server of the group replicates from it."""
        for server in self.hosts.values():
            server.thaw()
        for server in self.hosts.values():
            if server.proc is None:
                server.start()
                self.restarted[server.addr].append(server.started_at - self.t0)

        def healthy() -> bool:
            for gid in self.groups:
                master = self.master(gid)
                if master is None or self.hosts[master].role() != "master":
                    return False
                if not all(self._linked(self.hosts[a], self.hosts[master])
                           for a in self.members[gid] if a != master):
                    return False
            return True

        try:
            wait_until(healthy, 60, "every group healthy", interval=0.5)
            return True
        except TimeoutError:
            return False

    # -------------------------------------------------------------- the numbers
    def lost(self, gid: int) -> set[str]:
        master = self.master(gid)
        keys = list(self.acked[gid])
        if master is None:
            return set(keys)
        missing: set[str] = set()
        with contextlib.closing(self.hosts[master].client(5)) as c:
            for i in range(0, len(keys), 5000):
                chunk = keys[i:i + 5000]
                missing.update(k for k, v in zip(chunk, c.mget(chunk)) if v is None)
        return missing

    def _by_restarted(self, at: float, addr: str) -> bool:
        """Acknowledged by a server after it was restarted empty and before a pass took it out of the dashboard's
        master role."""
        restarts = [r for r in self.restarted[addr] if r <= at]
        return bool(restarts) and not any(restarts[-1] <= since <= at for history in self.listed.values()
                                          for since, listed in history if listed != addr)

    def _sample(self, keys: dict[int, set[str]],
                routed: Optional[dict[int, dict[str, tuple[float, str]]]] = None) -> list[dict[str, Any]]:
        """The first 20 of those writes, each with when and by whom it was acknowledged (`routed`: the proxy's
        route where known)."""
        rows = ({"key": k, "acked_at": round(self.acked[g][k][0], 2),
                 "by": (routed[g] if routed else self.acked[g])[k][1]} for g in self.groups for k in keys[g])
        return sorted(rows, key=lambda r: r["acked_at"])[:20]

    def _routed_to(self, gid: int, at: float, addr: str) -> str:
        """The server the real proxy sent a write to. The writer names the master the dashboard listed when it began
        the write, but Codis 2 lists a promoted master before its proxy routes to it (the promote writes the master's
        node, then waits for the proxies to confirm): a write acknowledged before that confirmation went to the
        master before (seed 17 of session 13: 5 writes taken by a master restarted from an old snapshot, 0.06 to
        0.18 s after the dashboard listed its slave). Unchanged when no confirmation of this listing is on record,
        or a proxy exited in between (a restarted proxy routes by the dashboard's nodes at once)."""
        if not self.real:
            return addr
        history = self.listed.get(gid, [])
        index = max((i for i, (since, a) in enumerate(history) if a == addr and since <= at + 0.2), default=None)
        if not index:  # not on record, or the group's first master
            return addr
        since, before = history[index][0], history[index - 1][1]
        confirmed = [t for t, a in self.routes.get(gid, []) if a == addr and since - 1.0 <= t <= since + 60.0]
        if not confirmed or confirmed[0] <= at or any(since - 1.0 <= t <= at for t in self.dashboard.proxy_exits):
            return addr
        return before

    def _stale_route(self, gid: int, at: float, addr: str) -> bool:
        """Acknowledged by a server that was not the group's listed master at that moment."""
        listed = [a for since, a in self.listed.get(gid, []) if since <= at]
        return bool(listed) and listed[-1] != addr

    def _blind(self, t: float, gid: int) -> str:
        """What the watcher could not see at `t`, as a fault made it so: the dashboard (down), the group's master
        (cut off from the watcher), or "other" (nothing: it saw all a pass needs). The next pass after a fault ends
        is given 2 s."""
        for f in self.faults:
            if f.started <= t <= (f.ended if f.ended is not None else float("inf")) + 2.0:
                if f.kind == "dashboard_down":
                    return "dashboard_down"
                if f.kind in ("cut_busy", "cut_idle") and f.group == gid:
                    return "watcher_cut_from_master"
        return "other"

    def after_a_pass(self) -> Any:
        """A test of one sample: has a whole pass run since this other master began answering beside the listed one
        (a thawed or restarted old master: no tool can demote it before it answers, and a pass that began before
        may have probed it still frozen)? The episode is the run of samples of the group that name it."""
        import bisect

        passes = sorted(self.passes)
        starts = [start for start, _end in passes]
        first_end = [float("inf")] * (len(passes) + 1)  # the earliest end of a pass starting at or after index i
        for i in range(len(passes) - 1, -1, -1):
            first_end[i] = min(passes[i][1], first_end[i + 1])
        starts_of: dict[tuple[int, str], list[float]] = defaultdict(list)  # each episode's first sample
        last_seen: dict[tuple[int, str], float] = {}
        for t, gid, _writable, others in self.samples:
            for other in others:
                if last_seen.get((gid, other), -1.0) < t - 0.35:  # a gap of more than a few samples: a new episode
                    starts_of[(gid, other)].append(t)
                last_seen[(gid, other)] = t

        def test(t: float, gid: int, other: str) -> bool:
            began = [b for b in starts_of[(gid, other)] if b <= t]
            if not began:
                return False
            return first_end[bisect.bisect_left(starts, began[-1])] <= t
        return test

    def promotions(self) -> list[tuple[float, int, str, str]]:
        """(time, group, promoted, previous master) from the simulator's audit log and the sampler's record of whom
        the dashboard listed (Sentinel and the real dashboard: from the record alone)."""
        if self.contender == "sentinel" or self.real:
            return [(t, gid, addr, history[i - 1][1]) for gid, history in self.listed.items()
                    for i, (t, addr) in enumerate(history) if i > 0]
        out = []
        for entry in self.dashboard.audit:
            if entry.method != "POST" or not entry.path.endswith("/promote") or entry.status != 200:
                continue
            body = json.loads(entry.body)
            gid, promoted, t = int(body.get("group_id", 0)), str(body.get("addr")), entry.time - self.wall0
            before = [addr for since, addr in self.listed.get(gid, []) if since <= t and addr != promoted]
            out.append((t, gid, promoted, before[-1] if before else ""))
        return out

    def report(self, healthy: bool) -> dict[str, Any]:
        lost = {gid: self.lost(gid) for gid in self.groups}
        unavoidable = {gid: set().union(*[f.unavoidable for f in self.faults if f.group == gid]) for gid in self.groups}
        # Writes a master restarted empty took before the pass replaced it: kept by no slave, and discarded when
        # the slave that still held the group's data is promoted (the alternative was to discard all of that).
        to_empty = {gid: {k for k in lost[gid] if self._by_restarted(*self.acked[gid][k])} for gid in self.groups}
        # Writes acknowledged by a server the record no longer lists as the group's master: a restarted or thawed
        # old master within one sample of the promote (the record is stamped when a sample starts, up to a tenth
        # of a second before it reads the dashboard). Counted apart, never as lost beyond and never hidden.
        routed = {gid: {k: (self.acked[gid][k][0], self._routed_to(gid, *self.acked[gid][k])) for k in lost[gid]}
                  for gid in self.groups}
        stale = {gid: {k for k in lost[gid] - to_empty[gid] if self._stale_route(gid, *routed[gid][k])}
                 for gid in self.groups}
        beyond = {gid: lost[gid] - unavoidable[gid] - to_empty[gid] - stale[gid] for gid in self.groups}
        # Each sample is charged to the fault in progress in its group, or the one that most recently ended
        # (its aftermath), or to none.
        per_group_faults = defaultdict(list)
        for f in self.faults:
            per_group_faults[f.group].append(f)
        step = 0.1
        no_master = two = two_after_pass = 0.0
        blind_after_pass: dict[str, float] = defaultdict(float)
        after_a_pass = self.after_a_pass()
        for t, gid, writable, others in self.samples:
            owner = next((f for f in reversed(per_group_faults[gid]) if f.started <= t), None)
            if not writable:
                no_master += step
                if owner is not None:
                    owner.unavailable += step
            if others:
                two += step
                if owner is not None:
                    owner.two_masters += step
                if any(after_a_pass(t, gid, other) for other in others):
                    two_after_pass += step
                    blind_after_pass[self._blind(t, gid)] += step
                    if owner is not None:
                        owner.two_masters_after_pass += step
        false = []
        for t, gid, promoted, old in self.promotions():
            previous = [f for f in per_group_faults[gid] if f.started <= t <= (f.ended or t) + 25]
            dead = any(s <= t <= e + 2 for s, e in self.dead_or_frozen[old])
            restarted = any(t - 30 <= r <= t for r in self.restarted[old])
            if not (dead or restarted):
                false.append({"time": round(t, 1), "group": gid, "promoted": promoted, "previous": old,
                              "faults": [f.kind for f in previous]})
                for f in previous[-1:]:
                    f.false_failovers += 1
        for gid in self.groups:
            for key in beyond[gid]:
                # A write is lost by a fault that came after it was acknowledged: the first one in its group.
                at = self.acked[gid][key][0]
                owner = next((f for f in per_group_faults[gid] if f.started >= at - 0.05),
                             per_group_faults[gid][-1] if per_group_faults[gid] else None)
                if owner is not None:
                    owner.lost += 1
        kinds: dict[str, dict[str, float]] = {}
        for f in self.faults:
            row = kinds.setdefault(f.kind, {"count": 0, "lost_beyond": 0, "unavoidable": 0, "unavailable_s": 0.0,
                                            "two_masters_s": 0.0, "two_masters_after_pass_s": 0.0,
                                            "false_failovers": 0})
            row["count"] += 1
            row["lost_beyond"] += f.lost
            row["unavoidable"] += len(f.unavoidable)
            row["unavailable_s"] = round(row["unavailable_s"] + f.unavailable, 1)
            row["two_masters_s"] = round(row["two_masters_s"] + f.two_masters, 1)
            row["two_masters_after_pass_s"] = round(row["two_masters_after_pass_s"] + f.two_masters_after_pass, 1)
            row["false_failovers"] += f.false_failovers
        return {
            "contender": self.contender, "watchers": self.watchers if self.contender == "codis.ha" else 0,
            "dashboard": "real Codis 2 and codis-proxy" if self.real else "simulator (real mode)",
            "max_ping_period": self.max_ping_period if self.contender == "codis.ha" else None,
            "proxy_exits": [round(t, 1) for t in self.dashboard.proxy_exits] if self.real else [],
            "seconds": round(self.now(), 1), "groups": len(self.groups),
            "acknowledged": sum(len(v) for v in self.acked.values()),
            "lost": sum(len(v) for v in lost.values()),
            "unavoidable_lost": sum(len(lost[g] & unavoidable[g]) for g in self.groups),
            "lost_to_empty_restart": sum(len(v) for v in to_empty.values()),
            "lost_by_stale_route": sum(len(v) for v in stale.values()),
            # of them: sent by the real proxy to the master before, the dashboard already listing the new one
            "lost_before_proxy_switch": sum(1 for g in self.groups for k in stale[g]
                                            if routed[g][k][1] != self.acked[g][k][1]),
            "stale_route_sample": self._sample(stale, routed),
            "lost_beyond_unavoidable": sum(len(v) for v in beyond.values()),
            "unavailable_s": round(no_master, 1), "two_masters_s": round(two, 1),
            "two_masters_after_pass_s": round(two_after_pass, 1) if self.contender == "codis.ha" else None,
            # Of it: while no pass could read the dashboard, while the watcher could not see the group's master
            # (each with 2 s after the fault for the next pass), and the rest.
            "two_masters_after_pass_by_cause": {k: round(v, 1) for k, v in sorted(blind_after_pass.items())},
            "passes": len(self.passes),
            "false_failovers": false, "healthy_at_end": healthy,
            "lost_beyond_sample": self._sample(beyond),
            "restarts": {a: [round(r, 2) for r in rs] for a, rs in self.restarted.items()},
            "listed": {g: [(round(t, 2), a) for t, a in v] for g, v in self.listed.items()},
            "proxy_routes": {g: [(round(t, 3), a) for t, a in v] for g, v in self.routes.items()},
            "faults": [{"kind": f.kind, "group": f.group, "at": round(f.started, 1),
                        "for": round((f.ended or f.started) - f.started, 1), "note": f.note,
                        "unavoidable": len(f.unavoidable), "lost_beyond": f.lost,
                        "unavailable_s": round(f.unavailable, 1), "two_masters_s": round(f.two_masters, 1),
                        "two_masters_after_pass_s": round(f.two_masters_after_pass, 1),
                        "false_failovers": f.false_failovers} for f in self.faults],
            "per_kind": kinds,
        }


def plot(data: dict[str, Any], path: Path) -> None:
    kinds = sorted(data["per_kind"])
    with plot_to(path) as ax:
        means = [data["per_kind"][k]["unavailable_s"] / max(data["per_kind"][k]["count"], 1) for k in kinds]
        ax.bar(kinds, means, color="#4a7")
        ax.set_ylabel("seconds without a writable master, per fault")
        who = data["contender"] + (" x3, ZooKeeper quorum 2" if data.get("watchers", 1) > 1 else "")
        ax.set_title("soak: %s, Redis defaults (%d s, %d acknowledged writes)" % (
            who, data["seconds"], data["acknowledged"]), fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)


def inner(options: argparse.Namespace) -> int:
    """Runs inside the driver's namespace."""
    import warnings

    # redis-py 8 warns at every client made with lib_name=None (the proxy's, made again after every failed write).
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    net = Network(options.tag, [])
    workdir = Path(options.workdir)
    soak = Soak(net, options.groups, options.seed, options.seconds, options.every, workdir,
                tuple(options.faults.split(",")), options.contender, options.watchers, options.dashboard,
                options.max_ping_period)
    try:
        data = soak.run()
    finally:
        for server in soak.hosts.values():
            with contextlib.suppress(Exception):
                server.thaw()
                if server.proc is not None:
                    server.proc.send_signal(signal.SIGKILL)
                    server.proc.wait(10)
        if soak.dashboard is not None:
            soak.dashboard.stop()
    data.update(seed=options.seed, every=options.every)
    Path(options.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


def keep_files(tmp: Path, keep: Path) -> None:
    keep.mkdir(parents=True, exist_ok=True)
    for runner in sorted(tmp.glob("runner*")):
        for name in ("runner.log", "state.json"):
            if (runner / name).exists():
                suffix = runner.name[len("runner"):]
                (keep / (name.replace(".", suffix + ".", 1))).write_bytes((runner / name).read_bytes())
    # Each Redis log (a slave's view of its link: "Connection with master lost", "MASTER <-> REPLICA sync"), and
    # the real dashboard's and proxy's logs when they ran.
    for log in sorted(tmp.glob("redis-*/redis.log")) + sorted(tmp.glob("*.log*")):
        (keep / ("%s-%s" % (log.parent.name, log.name) if log.parent != tmp else log.name)).write_bytes(
            log.read_bytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--seconds", type=float, default=360)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--every", type=float, default=25.0, help="seconds from one fault's start to the next's")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--contender", choices=["codis.ha", "sentinel"], default="codis.ha",
                        help="who fails over: the role's runner, or three Redis Sentinels (quorum 2, "
                             "down-after-milliseconds 1000) followed by a Sentinel-aware writer")
    parser.add_argument("--dashboard", choices=["simulator", "codis2"], default="simulator",
                        help="the simulator's Codis 2 dashboard in real mode, clients writing to the master it "
                             "lists; or the real Codis 2 dashboard and a real codis-proxy in the write path")
    parser.add_argument("--watchers", type=int, choices=[1, 3], default=1,
                        help="codis.ha: one runner, or three agreeing through ZooKeeper (quorum 2)")
    parser.add_argument("--max-ping-period", type=int, default=1,
                        help="codis.ha: the module's max_ping_period (1, the role's default; 0 leaves Redis's 10)")
    parser.add_argument("--json", default=str(ROOT / "docs" / "bench-results" / "soak.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "soak.png"))
    parser.add_argument("--keep", default="", help="a directory to copy the runner's log and state file into")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="", help=argparse.SUPPRESS)
    options = parser.parse_args()
    unknown = set(options.faults.split(",")) - set(FAULTS)
    if unknown:
        parser.error("unknown faults: %s" % ", ".join(sorted(unknown)))
    if options.contender == "sentinel" and options.dashboard != "simulator":
        parser.error("Sentinel's clients ask the sentinels whom to write to: --dashboard codis2 is for codis.ha")
    if options.inner:
        return inner(options)
    if os.geteuid() != 0:
        parser.error("network namespaces need root")
    ensure_collection_path()
    import tempfile

    tag = "sk%d" % (os.getpid() % 100000)
    hosts = [CTL, WATCHER] + list(SENTINEL_HOSTS) + list(range(FIRST_REDIS, FIRST_REDIS + 3 * options.groups))
    with tempfile.TemporaryDirectory(prefix="codis-ha-soak-") as tmp, Network(tag, hosts) as net:
        out = Path(tmp) / "soak.json"
        done = subprocess.run(net.run_in(CTL) + [
            sys.executable, str(Path(__file__).resolve()), "--inner", "--tag", tag, "--workdir", tmp,
            "--seconds", str(options.seconds), "--seed", str(options.seed), "--groups", str(options.groups),
            "--every", str(options.every), "--faults", options.faults, "--contender", options.contender,
            "--watchers", str(options.watchers), "--dashboard", options.dashboard,
            "--max-ping-period", str(options.max_ping_period), "--json", str(out)], check=False)
        if done.returncode != 0 or not out.exists():
            print("the soak failed (exit %d); runner log: %s" % (done.returncode, (
                Path(tmp) / "runner" / "runner.log").read_text(errors="replace")[-3000:] if (
                Path(tmp) / "runner" / "runner.log").exists() else "none"))
            return 1
        data = json.loads(out.read_text())
        if options.keep:  # the runners' logs and state files and every Redis log, to study a finding
            keep_files(Path(tmp), Path(options.keep))
    write_json(Path(options.json), data)
    with contextlib.suppress(ImportError):
        plot(data, Path(options.plot))
    keep = {k: v for k, v in data.items() if k != "faults"}
    print(json.dumps(keep, indent=2))
    for f in data["faults"]:
        print("  %(at)6.1f s  group %(group)d  %(kind)-16s %(for)5.1f s  unavailable %(unavailable_s)5.1f s  "
              "lost beyond %(lost_beyond)d  unavoidable %(unavoidable)d  false %(false_failovers)d  %(note)s" % f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
