"""End to end with real redis-server processes (Debian's package) behind the simulator's dashboard.

The dashboard runs in real mode: promote sends a real SLAVEOF NO ONE, addServer a real SLAVEOF. Every fault is
real (SIGKILL, SIGSTOP, a restart with empty data), and every wait is on a condition with a deadline.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from simulator.real import RealCluster
from tests.helpers import promotions, run_module, wait_for

PASSWORD = "e2e-s3cret"
# Short replication timeouts, so that slaves notice a stopped master in seconds rather than a minute.
QUICK_TIMEOUTS = ["--repl-timeout", "2", "--repl-ping-replica-period", "1"]
ARGS = dict(probe_timeout=0.5, probe_attempts=2, probe_interval=0.05, verify_timeout=15.0, dashboard_timeout=5.0)


@pytest.fixture
def real() -> Iterator[RealCluster]:
    with RealCluster.start(groups=2, slaves=2, extra=QUICK_TIMEOUTS) as cluster:
        yield cluster


def one_pass(cluster: RealCluster, **extra: Any) -> dict[str, Any]:
    return run_module(dict(ARGS, dashboard_url=cluster.dashboard_url, **extra))


def written_and_synced(cluster: RealCluster, gid: int, count: int) -> tuple[str, list[str]]:
    """The group's master and `count` keys written through it that every slave has acknowledged."""
    old = cluster.master_of(gid)
    assert old is not None
    keys = cluster.write(gid, count)
    cluster.wait_in_sync(gid)
    return old, keys


def test_kill_9_of_a_master_keeps_every_acknowledged_write_and_the_other_slave_follows(real: RealCluster) -> None:
    old, keys = written_and_synced(real, 1, 500)
    real.kill(old)

    result = one_pass(real)
    assert not result.get("failed"), result["msg"]
    [new] = promotions(result)
    assert real.master_of(1) == new and real.role(new) == "master"
    assert real.missing(new, keys) == []
    [other] = [s for s in real.slaves_of(1) if s != new]
    real.wait_linked(other, new)
    assert real.missing(other, keys) == []
    assert real.servers(1)[old] == "offline"
    assert real.masters()[2] and one_pass(real)["changed"] is False


def test_a_stopped_master_is_failed_over_once_its_slaves_lose_it_too(real: RealCluster) -> None:
    old, keys = written_and_synced(real, 2, 200)
    real.pause(old)
    try:
        first = one_pass(real)
        # Slaves still see the link up for repl-timeout (2 s): the second opinion holds the failover back.
        assert promotions(first) == [], first["groups"]
        new = wait_for(lambda: promotions(one_pass(real)), 20, interval=0.2, what="a failover of the stopped master")[0]
        assert real.missing(new, keys) == []
    finally:
        real.resume(old)
    # The old master comes back believing it is a master; the next pass makes it a slave of the new one.
    wait_for(lambda: one_pass(real) and real.linked(old, new), 30, interval=0.2,
             what="the returning old master to follow the new one")
    assert real.servers(2)[old] == "slave" and real.masters()[2] == [new]


def test_the_first_slave_dead_too_promotes_the_other(real: RealCluster) -> None:
    old, keys = written_and_synced(real, 1, 100)
    first_slave, second_slave = real.slaves_of(1)
    real.kill(first_slave)
    real.kill(old)
    result = one_pass(real)
    assert promotions(result) == [second_slave]
    assert real.missing(second_slave, keys) == []
    assert first_slave in str(result["groups"])


def test_requirepass_with_an_acl_user_for_the_probes() -> None:
    # The dashboard uses the password of the default user (Codis 2 knows no ACL users); codis-ha probes
    # with a user that may only read the replication state.
    acl = ["--user", "codisha", "on", ">probe-pw", "-@all", "+ping", "+info", "+role", "+config|get",
           "+client|setname", "+hello"]
    with RealCluster.start(groups=1, slaves=2, password=PASSWORD, extra=QUICK_TIMEOUTS + acl) as cluster:
        old, keys = written_and_synced(cluster, 1, 100)
        wrong = one_pass(cluster, redis_username="codisha", redis_password="not-it")
        assert wrong["failed"] and "authentication" in wrong["msg"] and wrong["changed"] is False
        cluster.kill(old)
        result = one_pass(cluster, redis_username="codisha", redis_password="probe-pw")
        assert not result.get("failed"), result["msg"]
        [new] = promotions(result)
        assert cluster.missing(new, keys) == [] and cluster.role(new) == "master"
        assert "probe-pw" not in str(result)


def test_tls_with_a_ca_made_by_the_test() -> None:
    with RealCluster.start(groups=1, slaves=2, tls=True, extra=QUICK_TIMEOUTS) as cluster:
        assert cluster.tls is not None
        old, keys = written_and_synced(cluster, 1, 100)
        plain = one_pass(cluster)
        # Without TLS every server looks unreachable: no candidate, nothing changed.
        assert plain["changed"] is False and plain["groups"][0]["decision"] != "failover", plain["groups"]
        cluster.kill(old)
        result = one_pass(cluster, redis_tls=True, redis_tls_ca_path=cluster.tls.ca)
        assert not result.get("failed"), result["msg"]
        [new] = promotions(result)
        assert cluster.missing(new, keys) == []
        [other] = [s for s in cluster.slaves_of(1) if s != new]
        cluster.wait_linked(other, new)


def test_a_restarted_empty_old_master_is_never_promoted_and_rejoins_as_a_slave(real: RealCluster) -> None:
    old, keys = written_and_synced(real, 1, 300)
    real.kill(old)
    [new] = promotions(one_pass(real))
    real.restart(old)  # same port, no data: it answers as an empty master
    result = one_pass(real)
    assert promotions(result) == []
    real.wait_linked(old, new)
    assert real.missing(old, keys) == [] and real.masters()[1] == [new]


def test_a_stray_slave_of_another_group_is_not_promoted(real: RealCluster) -> None:
    old = real.master_of(1)
    other_master = real.master_of(2)
    assert old is not None and other_master is not None
    stray, faithful = real.slaves_of(1)
    with contextlib.closing(real.processes[stray].client()) as c:
        c.execute_command("SLAVEOF", "127.0.0.1", other_master.rsplit(":", 1)[1])
    real.wait_linked(stray, other_master)
    keys = real.write(1, 100)
    wait_for(lambda: real.missing(faithful, keys) == [], 10, what="the faithful slave to have the writes")
    real.kill(old)
    result = one_pass(real)
    assert promotions(result) == [faithful]
    assert real.missing(faithful, keys) == []


def test_many_groups_fail_over_in_one_pass() -> None:
    with RealCluster.start(groups=6, slaves=1, extra=QUICK_TIMEOUTS) as cluster:
        killed = {}
        for gid in (1, 3, 5):
            killed[gid] = cluster.master_of(gid)
            cluster.write(gid, 50)
            cluster.wait_in_sync(gid)
        for addr in killed.values():
            cluster.kill(addr)
        result = one_pass(cluster)
        assert not result.get("failed"), result["msg"]
        assert len(promotions(result)) == 3
        for gid in range(1, 7):
            master = cluster.master_of(gid)
            assert master is not None and cluster.role(master) == "master"
            assert (master != killed[gid]) if gid in killed else master not in promotions(result)


def test_cli_up_real_serves_real_processes_and_stops_them(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "up", "--real", "--groups", "1", "--slaves", "1",
                             "--port", "0", "--state-file", str(state)], stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: state.exists() and state.stat().st_size > 0, 20, what="the state file")
        urls = json.loads(state.read_text())
        pids = urls["pids"]
        assert len(pids) == 2
        master = run_module(dict(ARGS, dashboard_url=urls["dashboard"]))["groups"][0]["master"]
        os.kill(pids[master], signal.SIGKILL)
        promoted = wait_for(lambda: promotions(run_module(dict(ARGS, dashboard_url=urls["dashboard"]))), 20,
                            interval=0.2, what="a failover through the CLI's cluster")
        assert promoted != [master]
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=20)[0]
    assert "stopped" in out
