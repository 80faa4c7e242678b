"""Several watchers, end to end: three runner processes (the role's runner, distinct observer_ids) against real
redis-server processes behind the simulator's dashboard, agreeing through a real ZooKeeper or etcd on loopback.

A watcher is cut off from some Redis ports with iptables (simulator/netfaults.py: each runner has its own group
id, and an OUTPUT rule with an owner match on it drops its packets to the ports, so its probes time out as across
a partition). Every wait is on a condition with a deadline."""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from simulator.coordinators import CoordinatorProcess
from simulator.netfaults import dropped
from simulator.real import RealCluster
from simulator.watchers import Watcher
from tests.helpers import wait_for

INTERVAL = 1.0
PROBE = dict(probe_timeout=0.3, probe_attempts=2, probe_interval=0.05)
# What a pass spends probing a master that does not answer: every attempt times out.
PROBE_BUDGET = PROBE["probe_attempts"] * (PROBE["probe_timeout"] + PROBE["probe_interval"])
SESSION = 3.0  # coordinator_timeout: the ZooKeeper session or etcd lease that holds the lock


class View:
    """The coordinator as the test sees it: who holds the lock, how many observations each watcher wrote."""

    def __init__(self, coordinator: CoordinatorProcess, root: str) -> None:
        self.kind, self.root = coordinator.kind, root
        if self.kind == "zookeeper":
            from kazoo.client import KazooClient
            self.zk = KazooClient("127.0.0.1:%d" % coordinator.port)
            self.zk.start(timeout=10)
        else:
            from etcd3gw.client import Etcd3Client
            self.etcd = Etcd3Client(host="127.0.0.1", port=coordinator.port, api_path="/v3/", timeout=5)

    def holder(self) -> Optional[str]:
        if self.kind == "zookeeper":
            if not self.zk.exists(self.root + "/lock"):
                return None
            contenders = self.zk.Lock(self.root + "/lock").contenders()
            return contenders[0] if contenders else None
        value = self.etcd.get(self.root + "/lock")
        return value[0].decode() if value else None

    def writes(self, observer: str) -> int:
        """How many times the observer has published (its node's version; etcd: the key's version)."""
        path = "%s/observers/%s" % (self.root, observer)
        if self.kind == "zookeeper":
            stat = self.zk.exists(path)
            return stat.version + 1 if stat else 0
        found = self.etcd.get(path, metadata=True)
        return int(found[0][1].get("version", 0)) if found else 0

    def published(self, observer: str) -> dict[str, Any]:
        path = "%s/observers/%s" % (self.root, observer)
        if self.kind == "zookeeper":
            return json.loads(self.zk.get(path)[0]) if self.zk.exists(path) else {}
        found = self.etcd.get(path)
        return json.loads(found[0]) if found else {}

    def close(self) -> None:
        if self.kind == "zookeeper":
            self.zk.stop()
            self.zk.close()
        else:
            self.etcd.session.close()


@pytest.fixture
def world(coordinator: CoordinatorProcess, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    root = "/e2e-" + request.node.name.replace("[", "-").replace("]", "")
    workdir = Path(tempfile.mkdtemp(prefix="codis-ha-watchers-"))
    with RealCluster.start(groups=1, slaves=2) as real:
        view = View(coordinator, root)
        watchers = {n: Watcher(n, workdir, dict(PROBE, dashboard_url=real.dashboard_url, dashboard_timeout=2,
                                                verify_timeout=10, coordinator=coordinator.url(root), quorum=2,
                                                observer_id=n, observation_ttl=3, coordinator_timeout=SESSION),
                               interval=INTERVAL) for n in ("w1", "w2", "w3")}
        try:
            yield dict(real=real, view=view, watchers=watchers, coordinator=coordinator, root=root)
        finally:
            for w in watchers.values():
                w.kill()
            view.close()
            for w in watchers.values():
                print("---- %s\n%s" % (w.name, w.text()[-3000:]))
            subprocess.run(["rm", "-rf", str(workdir)], check=False)


def promote_calls(real: RealCluster) -> int:
    return sum(1 for a in real.dashboard.audit if a.path.endswith("/promote"))


def all_published(world: dict[str, Any], names: list[str], at_least: int = 1) -> bool:
    return all(world["view"].writes(n) >= at_least for n in names)


def test_a_killed_master_is_promoted_once_within_two_intervals_and_the_probe_budget(world: dict[str, Any]) -> None:
    real, watchers = world["real"], world["watchers"]
    for w in watchers.values():
        w.start()
    wait_for(lambda: all_published(world, list(watchers)), 30, interval=0.05, what="every watcher's first pass")
    master = real.master_of(1)
    real.kill(master)
    killed = time.monotonic()
    wait_for(lambda: real.master_of(1) != master, 30, interval=0.02, what="a failover")
    elapsed = time.monotonic() - killed
    new = real.master_of(1)
    [other] = list(real.slaves_of(1))
    real.wait_linked(other, new)
    # Settled: every watcher has run at least two more passes, and none promoted again.
    marks = {n: world["view"].writes(n) for n in watchers}
    wait_for(lambda: all(world["view"].writes(n) >= marks[n] + 2 for n in watchers), 30, interval=0.05,
             what="two more passes of every watcher")
    assert promote_calls(real) == 1 and real.master_of(1) == new
    print("three watchers, quorum 2: failed over %.2f s after the kill (bound %.2f s)"
          % (elapsed, 2 * INTERVAL + PROBE_BUDGET + 1.0))
    # Two intervals plus the probe budget, plus 1 s for a pass's own work (fork, dashboard, coordinator).
    assert elapsed <= 2 * INTERVAL + PROBE_BUDGET + 1.0


def test_a_watcher_cut_off_from_the_masters_alone_fails_nothing_over(world: dict[str, Any]) -> None:
    real, watchers, view = world["real"], world["watchers"], world["view"]
    master = real.master_of(1)
    ports = [p.port for p in real.processes.values()]
    with dropped(ports, gid=watchers["w1"].gid):
        for w in watchers.values():
            w.start()

        def w1_sees_it_down() -> bool:
            seen = view.published("w1").get("groups", {}).get("1", {})
            return seen.get("down") is True and seen.get("master") == master

        wait_for(w1_sees_it_down, 30, interval=0.05, what="w1 to publish the master down")
        marks = {n: view.writes(n) for n in watchers}
        wait_for(lambda: all(view.writes(n) >= marks[n] + 3 for n in watchers), 30, interval=0.05,
                 what="three more passes of every watcher")
        assert view.published("w2")["groups"]["1"]["down"] is False
        assert promote_calls(real) == 0 and real.master_of(1) == master
        # w1 alone judges it down (its slaves do not answer it either, so none vouches for the master).
        assert view.published("w1")["groups"]["1"]["down"] is True


def test_the_acting_watcher_killed_mid_failover_is_finished_by_another_without_a_second_promote(
        world: dict[str, Any]) -> None:
    real, watchers, view = world["real"], world["watchers"], world["view"]
    real.dashboard.faults.proxy_ack_seconds = 3.0  # the promote is recorded, then proxies take 3 s to answer
    for w in watchers.values():
        w.start()
    wait_for(lambda: all_published(world, list(watchers)), 30, interval=0.05, what="every watcher's first pass")
    master = real.master_of(1)
    real.kill(master)
    # In the middle: the dashboard has recorded the promote, the acting pass waits for its answer.
    wait_for(lambda: real.master_of(1) != master and view.holder(), 30, interval=0.01,
             what="the promote under way")
    acting = view.holder()
    new = real.master_of(1)
    watchers[acting].kill()
    killed = time.monotonic()
    [other] = list(real.slaves_of(1))
    real.wait_linked(other, new, timeout=SESSION + 20)
    finished = time.monotonic() - killed
    wait_for(lambda: view.holder() not in (None, acting) or view.holder() is None, 30, interval=0.05,
             what="the lock to leave the killed watcher")
    assert promote_calls(real) == 1 and real.master_of(1) == new
    print("acting watcher %s killed mid-failover; %s finished it %.1f s later (session %.0f s)"
          % (acting, "another watcher", finished, SESSION))


def test_with_the_coordinator_down_nothing_fails_over_and_the_log_says_why(world: dict[str, Any]) -> None:
    real, watchers = world["real"], world["watchers"]
    for w in watchers.values():
        w.start()
    wait_for(lambda: all_published(world, list(watchers)), 30, interval=0.05, what="every watcher's first pass")
    world["coordinator"].stop()
    try:
        master = real.master_of(1)
        real.kill(master)
        wait_for(lambda: all("cannot connect to the coordinator" in w.text() or "coordinator" in w.text()
                             and "failed to" in w.text() for w in watchers.values()), 30, interval=0.05,
                 what="every watcher to log the coordinator's absence")
        # Let each watcher run two more passes after it said so: still nothing promoted.
        counts = {n: w.text().count("no failover and no change") for n, w in watchers.items()}
        wait_for(lambda: all(w.text().count("no failover and no change") >= counts[n] + 2
                             for n, w in watchers.items()), 30, interval=0.05, what="two more failed passes each")
        assert promote_calls(real) == 0 and real.master_of(1) == master
    finally:
        world["coordinator"].start()


def test_two_watchers_seeing_different_slaves_never_promote_two_servers(world: dict[str, Any]) -> None:
    real, watchers = world["real"], world["watchers"]
    a, b = real.slaves_of(1)
    master = real.master_of(1)
    # w1 cannot reach slave a, w2 cannot reach slave b: each would promote the other one.
    with dropped([real.processes[a].port], gid=watchers["w1"].gid), \
            dropped([real.processes[b].port], gid=watchers["w2"].gid):
        for name in ("w1", "w2"):
            watchers[name].start()
        wait_for(lambda: all_published(world, ["w1", "w2"]), 30, interval=0.05, what="both watchers' first pass")
        real.kill(master)
        wait_for(lambda: real.master_of(1) != master, 30, interval=0.02, what="a failover")
        marks = {n: world["view"].writes(n) for n in ("w1", "w2")}
        wait_for(lambda: all(world["view"].writes(n) >= marks[n] + 3 for n in ("w1", "w2")), 30, interval=0.05,
                 what="three more passes of both")
        roles = {s: real.role(s) for s in (a, b)}
        assert promote_calls(real) == 1 and sorted(roles.values()) == ["master", "slave"], roles


def test_a_master_restarted_empty_is_replaced_without_waiting_for_votes_it_cannot_get(world: dict[str, Any]) -> None:
    # The three-watcher soak: the restarted master answers every watcher, so none votes it down; the rescue was
    # refused for want of a quorum until its slaves had copied the empty data set. Redis's default diskless sync
    # waits 5 s before it sends that data set: the watchers have that long.
    real, watchers, view = world["real"], world["watchers"], world["view"]
    master = real.master_of(1)
    real.processes[master].extra += ["--repl-diskless-sync-delay", "5"]  # Redis's default, once restarted
    keys = real.write(1, 500)
    real.wait_in_sync(1)
    for w in watchers.values():
        w.start()
    marks = {n: 0 for n in watchers}
    wait_for(lambda: all(view.writes(n) >= marks[n] + 2 for n in watchers), 30, interval=0.05,
             what="two passes of every watcher (each records the master's history)")
    real.restart(master)  # killed, and back on its port with no data, still listed as the master
    wait_for(lambda: real.master_of(1) != master, 15, interval=0.02, what="the slave holding the writes promoted")
    new = real.master_of(1)
    assert real.missing(new, keys) == [] and promote_calls(real) == 1
