"""Issue 'Real faults' on the simulator: stale slaves judged by the tool's own record, half-done promotions,
the down_after clock, the witness window sized from the master's ping period. The pass runs in-process with the
simulator's clock, so that hours pass without sleeping."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ansible_collections.codis.ha.plugins.module_utils._dashboard import Codis2Client
from ansible_collections.codis.ha.plugins.module_utils._executor import Executor
from ansible_collections.codis.ha.plugins.module_utils._pass import run_pass
from ansible_collections.codis.ha.plugins.module_utils._planner import READD, REPAIR, Action, GroupDecision, Plan
from ansible_collections.codis.ha.plugins.module_utils._probe import ProbeSettings, Prober
from simulator import Cluster
from tests.helpers import FAST, pass_params, promotions


def _pass(cluster: Cluster, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    params = pass_params(**dict(FAST, dashboard_url=cluster.dashboard_url, state_path=str(tmp_path / "state.json"),
                                **extra))
    outcome = run_pass(params, clock=cluster.clock.now)
    return dict(outcome.result, failed_msg=outcome.failed_msg)


def test_a_slave_cut_off_an_hour_ago_is_stale_though_it_is_the_only_one(
        codis2_cluster: Cluster, tmp_path: Path) -> None:
    master = codis2_cluster.master_of(1)
    stale, other = codis2_cluster.slaves_of(1)
    codis2_cluster.kill(other)  # every live slave is equally stale: the slaves' own ages say nothing
    codis2_cluster.write(1, 100)
    codis2_cluster.cut_link(stale)
    codis2_cluster.clock.advance(3600)
    codis2_cluster.write(1, 500)  # acknowledged by the master only
    assert _pass(codis2_cluster, tmp_path)["changed"] is False  # the tool sees the master alive and records it
    codis2_cluster.kill(master)
    result = _pass(codis2_cluster, tmp_path)
    assert promotions(result) == [] and codis2_cluster.master_of(1) == master
    group = result["groups"][0]
    assert group["decision"] == "no_candidate" and "stale: link down for 3600 s" in group["reason"]
    assert "left without a working master: group 1" in result["failed_msg"]


def test_without_a_record_a_slave_cut_off_long_ago_is_not_promoted_blind(
        codis2_cluster: Cluster, tmp_path: Path) -> None:
    """The same world, but the pass never saw the master alive (a new watcher): the slaves' own ages are all there
    is, and they cannot tell a slave cut off an hour before the master died from one that lost it an hour ago.
    The stale slave used to be promoted; the failover is refused as blind, and force takes the risk."""
    master = codis2_cluster.master_of(1)
    stale, other = codis2_cluster.slaves_of(1)
    codis2_cluster.kill(other)
    codis2_cluster.cut_link(stale)
    codis2_cluster.clock.advance(3600)
    codis2_cluster.kill(master)
    blind = _pass(codis2_cluster, tmp_path)
    assert promotions(blind) == [] and "blind" in blind["groups"][0]["reason"], blind["groups"][0]["reason"]
    assert promotions(_pass(codis2_cluster, tmp_path, force=True)) == [stale]


def test_a_half_done_promotion_is_finished_on_the_server_that_holds_the_newest_data(codis2_cluster: Cluster,
                                                                                    tmp_path: Path) -> None:
    master = codis2_cluster.master_of(1)
    ahead, behind = codis2_cluster.slaves_of(1)
    codis2_cluster.set_lag(behind, 50)  # 50 writes behind the other slave
    acknowledged = codis2_cluster.write(1, 200)
    codis2_cluster.kill(master)
    codis2_cluster.dashboard_fault("promote_half_done", 1)
    first = _pass(codis2_cluster, tmp_path)  # SLAVEOF NO ONE reaches `ahead`, then the dashboard fails to record it
    assert codis2_cluster.role(ahead)["role"] == "master" and codis2_cluster.master_of(1) == master
    assert first["failed_msg"] and "promote %s in group 1" % ahead in first["failed_msg"]
    second = _pass(codis2_cluster, tmp_path)
    assert promotions(second) == [ahead], second["msg"]
    assert "finishing a half-done promotion" in second["actions"][0]["reason"]
    assert codis2_cluster.master_of(1) == ahead and codis2_cluster.lost_writes(1) == []
    assert codis2_cluster.role(behind)["master"] == ahead  # the other slave follows the finished promotion
    assert set(acknowledged) <= set(w.write_id for w in codis2_cluster.world.nodes[ahead].log)


def test_a_slave_with_more_data_of_the_same_history_is_never_repointed(codis2_cluster: Cluster, tmp_path: Path) -> None:
    master = codis2_cluster.master_of(1)
    ahead, _behind = codis2_cluster.slaves_of(1)
    codis2_cluster.write(1, 20)
    codis2_cluster.slaveof(ahead, None)  # a half-done promotion while the old master lives on
    taken = codis2_cluster.world.write(ahead, 5)  # and clients found it: writes only it holds
    result = _pass(codis2_cluster, tmp_path)
    assert result["actions"] == [] and codis2_cluster.role(ahead)["role"] == "master"
    [skipped] = result["skipped_groups"]
    assert skipped["group"] == 1 and "%s answers role master with more data" % ahead in skipped["reason"]
    assert set(taken) <= {w.write_id for w in codis2_cluster.world.nodes[ahead].log}
    assert codis2_cluster.master_of(1) == master


def test_a_returning_old_master_with_its_own_history_is_still_readded(codis2_cluster: Cluster, tmp_path: Path) -> None:
    old = codis2_cluster.master_of(1)
    codis2_cluster.write(1, 10)
    codis2_cluster.kill(old)
    assert len(promotions(_pass(codis2_cluster, tmp_path))) == 1
    codis2_cluster.revive(old)  # back empty, with a history of its own
    codis2_cluster.world.write(old, 50)  # more writes than the new master holds, but not of its history
    result = _pass(codis2_cluster, tmp_path, min_failover_interval=0)
    assert [(a["action"], a["server"]) for a in result["actions"]] == [("readd", old)]


def test_a_refused_pass_does_not_start_the_down_clock(codis2_cluster: Cluster, tmp_path: Path) -> None:
    master = codis2_cluster.master_of(1)
    assert _pass(codis2_cluster, tmp_path, down_after=30)["changed"] is False  # sees the master alive: a record
    codis2_cluster.hang(master)  # SIGSTOP: its slaves keep the link up until repl-timeout
    refused = _pass(codis2_cluster, tmp_path, down_after=30)
    assert "seen alive by" in refused["groups"][0]["reason"]
    state = json.loads((tmp_path / "state.json").read_text())["groups"]["1"]
    assert state["down_since"] is None
    codis2_cluster.clock.advance(120)  # repl-timeout passes: no more witnesses, and two minutes have gone by
    waiting = _pass(codis2_cluster, tmp_path, down_after=30)
    # Down only for this pass's own probe attempts (under a second), not the two minutes since the refusal.
    seen_down = re.search(r"seen down for (\d+\.\d) s so far; down_after is 30", waiting["groups"][0]["reason"])
    assert promotions(waiting) == [] and seen_down and float(seen_down.group(1)) < 5, waiting["groups"][0]["reason"]
    codis2_cluster.clock.advance(31)
    assert len(promotions(_pass(codis2_cluster, tmp_path, down_after=30))) == 1


def test_the_witness_window_follows_the_masters_ping_period(codis2_cluster: Cluster, tmp_path: Path) -> None:
    master = codis2_cluster.master_of(1)
    codis2_cluster.world.nodes[master].ping_period = 1  # repl-ping-replica-period 1
    assert _pass(codis2_cluster, tmp_path)["changed"] is False  # learns the period while the master is alive
    assert json.loads((tmp_path / "state.json").read_text())["groups"]["1"]["ping_period"] == 1
    codis2_cluster.hang(master)  # a frozen host: no reset, the links stay up until repl-timeout
    codis2_cluster.clock.advance(1)
    assert "seen alive by" in _pass(codis2_cluster, tmp_path)["groups"][0]["reason"]
    codis2_cluster.clock.advance(2)  # last I/O 3 s ago: beyond 1 s + 1 s, no slave heard from it since
    result = _pass(codis2_cluster, tmp_path)
    assert len(promotions(result)) == 1, result["msg"]


def test_an_unknown_ping_period_keeps_the_fixed_window(codis2_cluster: Cluster, tmp_path: Path) -> None:
    master = codis2_cluster.master_of(1)
    codis2_cluster.hang(master)
    codis2_cluster.clock.advance(3)
    assert "seen alive by" in _pass(codis2_cluster, tmp_path)["groups"][0]["reason"]  # window 15 s
    codis2_cluster.clock.advance(13)
    assert len(promotions(_pass(codis2_cluster, tmp_path))) == 1


def test_codis2_promote_outwaits_a_dead_proxy_and_finishes_in_one_pass(codis2_cluster: Cluster, tmp_path: Path) -> None:
    master = codis2_cluster.master_of(1)
    codis2_cluster.kill(master)
    # A dead but registered proxy: the dashboard stores the promotion, holds its lock (2 s here, about 30 s on
    # the real one) and answers 500. A promote deadline shorter than that would leave the other slave waiting.
    codis2_cluster.dashboard_fault("dead_proxy_wait", 2.0)
    result = _pass(codis2_cluster, tmp_path, dashboard_timeout=0.5, promote_timeout=5.0)
    [promote, repoint] = result["actions"]
    assert promote["status"] == "done" and "had applied the promotion" in promote["detail"]
    assert repoint["action"] == "repoint" and repoint["status"] == "done"


def test_a_call_refused_for_the_lock_is_not_waited_for(codis2_cluster: Cluster, tmp_path: Path) -> None:
    old = codis2_cluster.master_of(1)
    stray = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.slaveof(stray, codis2_cluster.master_of(2))  # a stray slave to re-point
    codis2_cluster.dashboard_fault("lock_conflict", 100)  # every mutating call: zkutil: obtaining lock timed out
    result = _pass(codis2_cluster, tmp_path, verify_timeout=600, pass_timeout=30)
    [repoint] = result["actions"]
    assert repoint["status"] == "failed" and "not applied, the dashboard's lock is held" in repoint["detail"]
    assert result["pass_seconds"] < 30  # it did not sit out verify_timeout (600 s) or the pass deadline
    assert codis2_cluster.master_of(1) == old


def test_a_thawed_old_master_is_demoted_directly_when_the_dashboard_refuses_to_readd_it(
        codis2_cluster: Cluster, tmp_path: Path) -> None:
    """The hour at the role's defaults on the real Codis 2: an old master back from a freeze, listed offline and
    answering role master with every write, while the dashboard's lock (a promote waiting on a proxy) refused its
    re-add twice: 5.1 s of two writable masters after the pass. Now it follows the group's master after the pass
    that was refused, and the dashboard records it when it lets go."""
    old = codis2_cluster.master_of(1)
    codis2_cluster.write(1, 20)
    assert _pass(codis2_cluster, tmp_path)["changed"] is False  # a record of the group
    codis2_cluster.hang(old)
    codis2_cluster.clock.advance(120)  # past repl-timeout: no slave hears from it
    failover = _pass(codis2_cluster, tmp_path)
    [new] = promotions(failover) or [failover["groups"]]
    codis2_cluster.revive(old)  # thawed: role master, its data and its writers
    assert codis2_cluster.role(old)["role"] == "master" and codis2_cluster.servers(1)[old] == "offline"
    codis2_cluster.dashboard_fault("lock_conflict", 100)
    refused = _pass(codis2_cluster, tmp_path, min_failover_interval=0)
    [readd] = [a for a in refused["actions"] if a["server"] == old]
    assert readd["action"] == "readd" and readd["status"] == "failed"
    assert "made its slave directly (SLAVEOF)" in readd["detail"] and "lock is held" in readd["detail"], readd
    assert (codis2_cluster.role(old)["role"], codis2_cluster.role(old)["master"]) == ("slave", new)
    assert codis2_cluster.servers(1)[old] == "offline"  # the dashboard's record waits for its lock
    codis2_cluster.clear_dashboard_faults()
    recorded = _pass(codis2_cluster, tmp_path, min_failover_interval=0)
    [readd] = [a for a in recorded["actions"] if a["server"] == old]
    assert readd["status"] == "done" and "directly" not in readd["detail"], readd
    assert codis2_cluster.servers(1)[old] == "slave" and codis2_cluster.master_of(1) == new


def test_a_second_master_is_not_demoted_directly_once_the_dashboard_lists_it_master(
        codis2_cluster: Cluster) -> None:
    """The plan said: re-add the old master under the new one. Before the executor acted, another runner (or an
    operator) promoted the old master back: it is now the group's master, and demoting it would leave the group
    without one. The direct SLAVEOF is only sent while the dashboard still lists the plan's master."""
    listed = codis2_cluster.master_of(1)
    slave = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.slaveof(slave, None)  # answers role master, as a thawed old master does
    action = Action(1, READD, slave, None, "127.0.0.1:1", "a plan whose master the dashboard no longer lists")
    codis2_cluster.dashboard_fault("lock_conflict", 100)  # nor does the dashboard's own call go through
    dashboard = Codis2Client(codis2_cluster.dashboard_url, timeout=2.0, lock_retries=0)
    executor = Executor(dashboard, Prober(ProbeSettings()), verify_timeout=0.2)
    plan = Plan((GroupDecision(1, REPAIR, "a test's plan", actions=(action,)),))
    result = executor.run(plan, dashboard.topology(), check_mode=False)
    [done] = result.results
    assert "not demoted directly: the dashboard now lists master(s) ['%s']" % listed in done.detail, done.detail
    assert codis2_cluster.role(slave)["role"] == "master"


def test_a_lock_left_by_a_killed_codis2_dashboard_is_removed_once_older_than_any_call_and_the_group_fails_over(
        codis2_cluster: Cluster, tmp_path: Path) -> None:
    """Two hour-long soaks on the real Codis 2 lost their dashboard this way: killed during a call, it left its lock
    node in ZooKeeper (not ephemeral), and every change after its restart was refused for the rest of the hour."""
    old = codis2_cluster.master_of(1)
    assert _pass(codis2_cluster, tmp_path)["changed"] is False
    codis2_cluster.dashboard_fault("stale_lock", True)
    codis2_cluster.kill(old)
    refused = _pass(codis2_cluster, tmp_path)
    assert [(a["action"], a["status"]) for a in refused["actions"]][:1] == [("promote", "failed")], refused["actions"]
    codis2_cluster.clock.advance(60)  # a promote waiting on its proxies holds the lock up to 45 s: not yet
    waiting = _pass(codis2_cluster, tmp_path)
    assert "remove_stale_lock" not in [a["action"] for a in waiting["actions"]]
    assert codis2_cluster.dashboard.faults.stale_lock is True
    codis2_cluster.clock.advance(31)  # 91 s of refusals, past stale_lock_after (90 s)
    removing = _pass(codis2_cluster, tmp_path)
    [removed] = [a for a in removing["actions"] if a["action"] == "remove_stale_lock"]
    held = re.search(r"needed for (\d+) s, longer than any call holds it", removed["reason"])
    assert removed["status"] == "done" and held and 90 <= int(held.group(1)) < 100, removed
    assert codis2_cluster.dashboard.faults.stale_lock is False
    assert len(promotions(_pass(codis2_cluster, tmp_path))) == 1 and codis2_cluster.master_of(1) != old


def test_a_lock_that_lets_changes_through_between_refusals_is_never_removed(
        codis2_cluster: Cluster, tmp_path: Path) -> None:
    """Refusals with a change that went through in between are another client's calls, not a stale lock; and
    stale_lock_after 0 never removes it."""
    stray = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.dashboard_fault("lock_conflict", 100)
    codis2_cluster.slaveof(stray, codis2_cluster.master_of(2))  # a stray slave to re-point: one change a pass
    assert _pass(codis2_cluster, tmp_path)["actions"][0]["status"] == "failed"
    codis2_cluster.clock.advance(200)
    never = _pass(codis2_cluster, tmp_path, stale_lock_after=0)
    assert [a["action"] for a in never["actions"]] == ["repoint"] and codis2_cluster.dashboard.faults.lock_conflict
    codis2_cluster.clear_dashboard_faults()
    assert _pass(codis2_cluster, tmp_path)["actions"][0]["status"] == "done"  # a change went through: clock stops
    codis2_cluster.dashboard_fault("lock_conflict", 100)
    codis2_cluster.slaveof(stray, codis2_cluster.master_of(2))
    assert _pass(codis2_cluster, tmp_path)["actions"][0]["status"] == "failed"
    codis2_cluster.clock.advance(60)
    assert [a["action"] for a in _pass(codis2_cluster, tmp_path)["actions"]] == ["repoint"]  # 60 s, not 260
