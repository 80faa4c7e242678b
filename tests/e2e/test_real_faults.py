"""Real faults with real redis-server processes: a stale slave, a half-done promotion, a frozen host (the master
stopped and its port's packets dropped, so nothing answers and the slaves' links stay up). Every wait is on a
condition with a deadline; the iptables rules touch loopback only and are removed whatever happens."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.netfaults import dropped, group_id
from simulator.real import RealCluster
from tests.e2e.test_real_redis import ARGS
from tests.helpers import pass_params, promotions, run_module, run_module_process, wait_for


def _pass(cluster: RealCluster, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return run_module(dict(ARGS, dashboard_url=cluster.dashboard_url, state_path=str(tmp_path / "state.json"),
                           **extra))


def _info(cluster: RealCluster, addr: str) -> dict[str, Any]:
    return cluster.processes[addr].replication()


def test_a_slave_cut_off_before_the_master_died_is_not_promoted(tmp_path: Path) -> None:
    with RealCluster.start(groups=1, slaves=1) as real:
        master = real.master_of(1)
        [slave] = real.slaves_of(1)
        real.write(1, 100)
        real.wait_in_sync(1)
        # Cut the slave off for good: a wrong masterauth fails every reconnect, its master stays the same.
        with contextlib.closing(real.processes[slave].client()) as c:
            c.config_set("masterauth", "not-the-password")
            c.execute_command("CLIENT", "KILL", "TYPE", "master")
        wait_for(lambda: (_info(real, slave).get("master_link_down_since_seconds") or 0) >= 4, 20,
                 what="the slave's link to be down for 4 s")
        keys = real.write(1, 500, prefix="late")  # acknowledged by the master alone
        assert _pass(real, tmp_path, stale_margin=1)["changed"] is False  # the master is seen alive, recorded
        real.kill(master)
        result = _pass(real, tmp_path, stale_margin=1)
        assert promotions(result) == [] and real.master_of(1) == master
        assert result["groups"][0]["decision"] == "no_candidate" and "stale" in result["groups"][0]["reason"]
        assert result["failed"] is True and "left without a working master" in result["msg"]
        assert real.missing(slave, keys) == keys  # what a promotion would have lost


def test_a_half_done_promotion_is_finished_on_the_slave_holding_every_write(tmp_path: Path) -> None:
    with RealCluster.start(groups=1, slaves=2) as real:
        master = real.master_of(1)
        ahead, behind = real.slaves_of(1)
        real.write(1, 100)
        real.wait_in_sync(1)
        real.pause(behind)  # falls behind: it misses the next writes
        keys = real.write(1, 300, prefix="late")
        wait_for(lambda: real.missing(ahead, keys) == [], 20, what="the other slave to hold every write")
        real.kill(master)
        real.resume(behind)
        real.dashboard.faults.promote_half_done = 1  # SLAVEOF NO ONE reaches `ahead`, the record is not written
        first = _pass(real, tmp_path)
        assert first["failed"] is True and real.role(ahead) == "master" and real.master_of(1) == master
        second = _pass(real, tmp_path)
        assert promotions(second) == [ahead], second["msg"]
        assert "finishing a half-done promotion" in second["actions"][0]["reason"]
        assert real.missing(ahead, keys) == []
        real.wait_linked(behind, ahead)
        assert real.missing(behind, keys) == []


# The module's own probe defaults: a master that never answers is probed for 2.2 s.
DEFAULT_PROBES = {k: pass_params()[k] for k in ("probe_timeout", "probe_attempts", "probe_interval")}
SHORT_PROBES = dict(probe_timeout=0.3)  # 0.65 s: shorter than a ping period and its slack
PING_EVERY_SECOND = ["--repl-ping-replica-period", "1", "--repl-timeout", "60"]


@pytest.mark.parametrize("probes", [SHORT_PROBES, DEFAULT_PROBES], ids=["short-probes", "default-probes"])
def test_a_frozen_host_is_failed_over_once_its_slaves_heard_nothing_for_a_ping_period(
        tmp_path: Path, probes: dict[str, Any]) -> None:
    with RealCluster.start(groups=1, slaves=2, extra=PING_EVERY_SECOND) as real:
        master = real.master_of(1)
        keys = real.write(1, 200)
        real.wait_in_sync(1)
        assert _pass(real, tmp_path)["changed"] is False  # learns the master's ping period while it lives
        real.pause(master)
        results: list[dict[str, Any]] = []
        try:
            with dropped([real.processes[master].port]):
                frozen_at = time.monotonic()

                def failed_over() -> bool:
                    results.append(_pass(real, tmp_path, **probes))
                    return bool(promotions(results[-1]))

                wait_for(failed_over, 40, interval=0.5, what="a failover of the frozen master")
                elapsed = time.monotonic() - frozen_at
        finally:
            real.resume(master)
        if probes is DEFAULT_PROBES:
            # At once, the slaves had heard from the master within the last second; by the end of the master's
            # 2.2 s probe their offsets had stood still for two periods: not even a ping. The first pass acts.
            assert len(results) == 1, [r["groups"][0]["reason"] for r in results]
        else:
            # Probes shorter than a period cannot see the offsets stand still: the witness window decides, later.
            assert len(results) >= 2 and "seen alive by" in results[0]["groups"][0]["reason"]
        result = results[-1]
        # The slaves' links were still up (repl-timeout is 60 s): no link dropped to tell.
        links = {s["addr"]: s["link_up"] for s in result["groups"][0]["servers"] if s["addr"] != master}
        assert all(links.values()), links
        [new] = promotions(result)
        assert real.missing(new, keys) == []
        print("frozen master (ping period 1 s) failed over after %.1f s, %d pass(es)" % (elapsed, len(results)))


def test_a_live_master_only_this_pass_cannot_reach_keeps_its_slaves_as_witnesses(tmp_path: Path) -> None:
    with RealCluster.start(groups=1, slaves=2, extra=PING_EVERY_SECOND) as real:
        master = real.master_of(1)
        args = dict(ARGS, dashboard_url=real.dashboard_url, state_path=str(tmp_path / "state.json"))
        assert run_module_process(args)["changed"] is False  # learns the master's ping period
        gid = group_id("codis-ha-cutoff")
        with dropped([real.processes[master].port], gid):
            result = run_module_process(dict(args, **DEFAULT_PROBES), gid)
        assert promotions(result) == [] and real.master_of(1) == master, result["msg"]
        group = result["groups"][0]
        assert group["decision"] == "refused" and "seen alive by" in group["reason"], group["reason"]
        assert real.role(master) == "master"


def test_without_a_state_file_slaves_cut_off_before_the_master_died_are_not_promoted_blind() -> None:
    # The module as a playbook calls it first (no state_path): no pass has seen the master alive, so the slaves'
    # link-down ages are the only clock. Both cut off long before the kill, they looked as fresh as its death: one
    # was promoted and every write since the cut was lost.
    with RealCluster.start(groups=1, slaves=2) as real:
        master = real.master_of(1)
        real.write(1, 100)
        real.wait_in_sync(1)
        for slave in real.slaves_of(1):
            with contextlib.closing(real.processes[slave].client()) as c:
                c.config_set("masterauth", "not-the-password")  # every reconnect fails
                c.execute_command("CLIENT", "KILL", "TYPE", "master")
        wait_for(lambda: all((_info(real, s).get("master_link_down_since_seconds") or 0) >= 3
                             for s in real.slaves_of(1)), 20, what="both slaves' links to be down for 3 s")
        keys = real.write(1, 500, prefix="late")  # acknowledged by the master alone
        real.kill(master)
        result = run_module(dict(ARGS, dashboard_url=real.dashboard_url, stale_margin=1))
        reason = result["groups"][0]["reason"]
        assert promotions(result) == [] and real.master_of(1) == master, reason
        assert result["groups"][0]["decision"] == "refused" and "blind" in reason and "state_path" in reason, reason
        assert result["failed"] is True and "left without a working master" in result["msg"], result["msg"]
        assert all(real.missing(s, keys) == keys for s in real.slaves_of(1))  # what a promotion would have lost
