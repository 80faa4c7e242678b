"""The codis_ha module run in-process (as Ansible runs it) against the simulated cluster."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from simulator import Cluster
from tests.helpers import FAST, run_module


def _mutations(c: Cluster) -> list[tuple[str, str]]:
    return [(a["method"], a["path"]) for a in c.audit]


def _one_master_each(c: Cluster) -> None:
    for gid, masters in c.masters().items():
        assert len(masters) == 1, "group %d has masters %s" % (gid, masters)


def test_healthy_cluster_no_change(cluster: Cluster, module_args: dict[str, Any]) -> None:
    result = run_module(module_args)
    assert result["changed"] is False and result["actions"] == []
    assert [g["decision"] for g in result["groups"]] == ["healthy"] * 3
    assert "skipped" not in result and "failed" not in result and "warnings" not in result
    assert cluster.audit == []


def test_master_crash_promotes_and_repoints(cluster: Cluster, module_args: dict[str, Any]) -> None:
    cluster.write(1, 20)
    old = cluster.master_of(1)
    cluster.kill(old)
    result = run_module(module_args)
    assert result["changed"] is True and "failed" not in result
    new = cluster.master_of(1)
    assert new != old and cluster.servers(1)[old] == cluster.demoted_type
    assert cluster.role(new)["role"] == "master"
    [other] = [s for s in cluster.slaves_of(1) if s != old]
    assert cluster.role(other)["master"] == new and cluster.role(other)["link_up"]
    assert cluster.lost_writes(1) == []
    assert [(a["action"], a["status"]) for a in result["actions"]] == [("promote", "done"), ("repoint", "done")]
    _one_master_each(cluster)


def test_second_pass_after_failover_makes_no_mutating_call(
        cluster: Cluster, module_args: dict[str, Any]) -> None:
    cluster.kill(cluster.master_of(2))
    assert run_module(module_args)["changed"] is True
    calls = len(cluster.audit)
    again = run_module(module_args)
    assert again["changed"] is False and again["actions"] == []
    assert len(cluster.audit) == calls


def test_first_listed_slave_dead_promotes_the_live_one(cluster: Cluster, module_args: dict[str, Any]) -> None:
    old = cluster.master_of(1)
    first, second = cluster.slaves_of(1)  # the dashboard lists servers sorted by address
    cluster.kill(first)
    cluster.kill(old)
    result = run_module(module_args)
    assert cluster.master_of(1) == second
    assert "%s down" % first in result["actions"][0]["reason"]


def test_most_advanced_slave_is_chosen(cluster: Cluster, module_args: dict[str, Any]) -> None:
    first, second = cluster.slaves_of(1)
    cluster.set_lag(first, 3)
    cluster.write(1, 10)
    cluster.kill(cluster.master_of(1))
    run_module(module_args)
    assert cluster.master_of(1) == second
    assert cluster.lost_writes(1) == []


def test_slave_that_never_synced_is_not_promoted(cluster: Cluster, module_args: dict[str, Any]) -> None:
    first, second = cluster.slaves_of(1)
    cluster.cut_link(second)
    cluster.write(1, 10)
    cluster.cut_link(first)  # both links down now; the second never got any data
    cluster.kill(cluster.master_of(1))
    run_module(module_args)
    assert cluster.master_of(1) == first


def test_priority_zero_is_never_promoted(cluster: Cluster, module_args: dict[str, Any]) -> None:
    first, second = cluster.slaves_of(1)
    cluster.set_priority(second, 0)
    cluster.set_lag(first, 2)
    cluster.write(1, 5)
    cluster.kill(cluster.master_of(1))
    result = run_module(module_args)
    assert cluster.master_of(1) == first
    assert "replica-priority 0" in result["actions"][0]["reason"]


def test_auth_healthy_with_password() -> None:
    with Cluster.start(groups=2, slaves=1, password="pw") as c:
        result = run_module(dict(FAST, dashboard_url=c.dashboard_url, redis_password="pw"))
        assert result["changed"] is False and "failed" not in result
        assert [g["decision"] for g in result["groups"]] == ["healthy", "healthy"]


def test_auth_missing_is_not_a_dead_master_and_changes_nothing() -> None:
    with Cluster.start(groups=2, slaves=1, password="pw") as c:
        c.kill(c.master_of(1))  # even a real failure is not acted on with bad credentials
        result = run_module(dict(FAST, dashboard_url=c.dashboard_url))
        assert result["failed"] is True and result["changed"] is False
        assert "authentication to Redis" in result["msg"] and "nothing was changed" in result["msg"]
        assert c.audit == []


def test_wrong_password_is_reported_and_never_leaks(codis: int) -> None:
    with Cluster.start(groups=1, slaves=1, password="right", codis=codis) as c:
        result = run_module(dict(FAST, dashboard_url=c.dashboard_url, redis_password="wrong-secret-42"))
        assert result["failed"] is True and "invalid username-password pair" in result["msg"]
        assert "wrong-secret-42" not in repr(result)


def test_acl_user() -> None:
    with Cluster.start(groups=1, slaves=1, users={"default": "admin", "ha": "hapw"}) as c:
        c.kill(c.master_of(1))
        result = run_module(dict(FAST, dashboard_url=c.dashboard_url, redis_username="ha",
                                 redis_password="hapw"))
        assert result["changed"] is True and "failed" not in result


def test_check_mode_plans_and_changes_nothing(cluster: Cluster, module_args: dict[str, Any]) -> None:
    old = cluster.master_of(1)
    cluster.kill(old)
    before = cluster.servers(1)
    result = run_module(module_args, check=True)
    assert result["changed"] is True
    assert [a["status"] for a in result["actions"]] == ["planned", "planned"]
    assert cluster.servers(1) == before and cluster.audit == []
    real = run_module(module_args)
    assert [a["server"] for a in real["actions"]] == [a["server"] for a in result["actions"]]


def test_diff_shows_topology_before_and_after(cluster: Cluster, module_args: dict[str, Any]) -> None:
    old = cluster.master_of(3)
    other = cluster.slaves_of(3)
    cluster.kill(old)
    planned = run_module(module_args, check=True, diff=True)
    done = run_module(module_args, diff=True)
    new = cluster.master_of(3)
    [follower] = [s for s in other if s != new]
    assert "  %s: master (down)\n" % old in planned["diff"]["before"]
    assert "  %s: %s (down)\n" % (old, cluster.demoted_type) in planned["diff"]["after"]
    assert "  %s: master (role master)\n" % new in planned["diff"]["after"]
    assert "  %s: slave (follows %s)\n" % (new, old) in planned["diff"]["before"]
    # The re-point shows even on Codis 3, where the dashboard's types do not change for it.
    assert "  %s: slave (follows %s)\n" % (follower, old) in planned["diff"]["before"]
    assert "  %s: slave (follows %s)\n" % (follower, new) in planned["diff"]["after"]
    assert done["diff"]["after"] == planned["diff"]["after"]


def test_diff_of_a_codis3_repoint_shows_the_change(cluster: Cluster, module_args: dict[str, Any]) -> None:
    stray = cluster.slaves_of(1)[0]
    cluster.slaveof(stray, cluster.master_of(2))
    done = run_module(module_args, diff=True)
    assert [a["action"] for a in done["actions"]] == ["repoint"]
    assert done["diff"]["before"] != done["diff"]["after"]
    assert "  %s: slave (follows %s)\n" % (stray, cluster.master_of(1)) in done["diff"]["after"]


def test_stray_slave_is_repointed(cluster: Cluster, module_args: dict[str, Any]) -> None:
    stray = cluster.slaves_of(1)[0]
    cluster.slaveof(stray, cluster.master_of(2))
    result = run_module(module_args)
    assert [(a["action"], a["server"]) for a in result["actions"]] == [("repoint", stray)]
    assert cluster.role(stray)["master"] == cluster.master_of(1)
    assert "replicates from %s" % cluster.master_of(2) in result["actions"][0]["reason"]


def test_repoint_disabled_leaves_stray_slave(cluster: Cluster, module_args: dict[str, Any]) -> None:
    stray = cluster.slaves_of(1)[0]
    cluster.slaveof(stray, cluster.master_of(2))
    result = run_module(dict(module_args, repoint_slaves=False))
    assert result["changed"] is False and cluster.role(stray)["master"] == cluster.master_of(2)


def test_old_master_returning_is_readded_with_divergent_writes_reported(
        cluster: Cluster, module_args: dict[str, Any]) -> None:
    old = cluster.master_of(1)
    cluster.kill(old)
    run_module(module_args)
    cluster.revive(old)
    cluster.world.write(old, 4)  # writes taken by the returning master while unrouted
    result = run_module(module_args)
    [readd] = result["actions"]
    # Codis 2 marked it offline (re-added as a slave); Codis 3 kept it listed as a slave (re-pointed).
    expected = "readd" if cluster.codis == 2 else "repoint"
    assert (readd["action"], readd["server"], readd["status"]) == (expected, old, "done")
    assert "4 keys" in readd["reason"]
    assert cluster.servers(1)[old] == "slave" and cluster.role(old)["master"] == cluster.master_of(1)
    _one_master_each(cluster)


def test_reuse_offline_disabled_leaves_old_master_alone(codis2_cluster: Cluster, codis2_args: dict[str, Any]) -> None:
    old = codis2_cluster.master_of(1)
    codis2_cluster.kill(old)
    run_module(codis2_args)
    codis2_cluster.revive(old)
    result = run_module(dict(codis2_args, reuse_offline=False))
    assert result["changed"] is False and codis2_cluster.servers(1)[old] == codis2_cluster.demoted_type


def test_promote_500_after_commit_reports_true_outcome(codis2_cluster: Cluster, codis2_args: dict[str, Any]) -> None:
    codis2_cluster.kill(codis2_cluster.master_of(1))
    codis2_cluster.dashboard_fault("promote_500_after_commit", 1)
    result = run_module(codis2_args)
    assert "failed" not in result
    promote = result["actions"][0]
    assert promote["status"] == "done" and "had applied the promotion" in promote["detail"]
    assert codis2_cluster.master_of(1) == promote["server"]


def test_a_proxy_taken_offline_by_the_promotion_is_a_warning(
        codis2_cluster: Cluster, codis2_args: dict[str, Any]) -> None:
    """Codis 2 (measured on the real binaries): proxies holding requests to a frozen old master do not acknowledge
    the promote; the dashboard applies it, marks them offline (they shut themselves down) and answers 500. The
    failover stands; the pass says the proxies are gone. A proxy that was offline already is not named."""
    codis2_cluster.dashboard.register_proxy("proxy_1", "127.0.0.1:19000")
    codis2_cluster.dashboard.register_proxy("proxy_2", "127.0.0.1:19001", state="offline")
    codis2_cluster.kill(codis2_cluster.master_of(1))
    codis2_cluster.dashboard_fault("proxies_hold", 1)
    result = run_module(codis2_args)
    promote = result["actions"][0]
    assert promote["status"] == "done" and "receiver timeout" in promote["detail"]
    warnings = json.dumps(result.get("warnings", []))
    assert "proxy proxy_1 was online before this pass's promotion and the dashboard now lists it as mark_offline" \
        in warnings and "proxy_2" not in warnings, result
    quiet = run_module(codis2_args)  # nothing promoted: the proxies are not read, nothing is said again
    assert "proxy_1" not in json.dumps(quiet.get("warnings", []))


def test_lock_conflict_is_retried(codis2_cluster: Cluster, codis2_args: dict[str, Any]) -> None:
    codis2_cluster.kill(codis2_cluster.master_of(1))
    codis2_cluster.dashboard_fault("lock_conflict", 2)
    result = run_module(codis2_args)
    assert "failed" not in result and result["actions"][0]["status"] == "done"
    assert [a["status"] for a in codis2_cluster.audit[:3]] == [500, 500, 200]


def test_one_group_error_does_not_stop_the_others(codis2_cluster: Cluster, codis2_args: dict[str, Any]) -> None:
    codis2_cluster.kill(codis2_cluster.master_of(1))
    codis2_cluster.kill(codis2_cluster.master_of(2))
    # More than the retries: the promote that meets them fails. Groups are worked on side by side, so which
    # group that is depends on which reaches the dashboard first; the other must fail over all the same.
    codis2_cluster.dashboard_fault("lock_conflict", 5)
    result = run_module(codis2_args)
    assert result["failed"] is True and "2 action(s) failed" in result["msg"]
    by_group = {(a["group"], a["action"]): a["status"] for a in result["actions"]}
    unlucky = [gid for gid in (1, 2) if by_group[(gid, "promote")] == "failed"]
    assert len(unlucky) == 1, by_group
    lucky = 3 - unlucky[0]
    assert by_group[(unlucky[0], "repoint")] == "failed"
    assert by_group[(lucky, "promote")] == "done"
    assert result["changed"] is True
    _one_master_each(codis2_cluster)


@pytest.mark.parametrize("fault", ["down", "garbage", "truncated", "slow"])
def test_dashboard_fault_fails_cleanly_and_changes_nothing(cluster: Cluster, module_args: dict[str, Any],
                                                           fault: str) -> None:
    cluster.kill(cluster.master_of(1))
    cluster.dashboard_fault(fault, 3000 if fault == "slow" else True)
    result = run_module(dict(module_args, dashboard_timeout=0.5))
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("cannot read the server groups from the dashboard, nothing was changed")
    assert "Traceback" not in result["msg"]
    cluster.clear_dashboard_faults()
    assert cluster.audit == []


def test_empty_cluster_is_not_an_outage() -> None:
    with Cluster.start(groups=0) as c:
        result = run_module(dict(FAST, dashboard_url=c.dashboard_url))
        assert "failed" not in result and result["groups"] == [] and result["changed"] is False


def test_hung_master_pass_time_is_one_probe_budget(module_args: dict[str, Any], codis: int) -> None:
    with Cluster.start(groups=4, slaves=2, codis=codis) as c:
        for gid in (1, 2, 3):
            c.hang(c.master_of(gid))
        c.clock.advance(20)  # past the slaves' last I/O threshold: they stop vouching for the masters
        args = dict(module_args, dashboard_url=c.dashboard_url, probe_timeout=0.5, probe_attempts=2,
                    probe_interval=0.1)
        start = time.monotonic()
        result = run_module(args, check=True)
        elapsed = time.monotonic() - start
        assert [a["action"] for a in result["actions"]].count("promote") == 3
        # Three hung masters probed in parallel: one budget (2 x 0.5 + 0.1), not three.
        assert elapsed < 2 * (2 * 0.5 + 0.1)


def test_no_live_slave_leaves_group_as_is_and_the_task_fails_loudly(
        cluster: Cluster, module_args: dict[str, Any]) -> None:
    old = cluster.master_of(1)
    for addr in [old] + cluster.slaves_of(1):
        cluster.kill(addr)
    result = run_module(module_args)
    assert result["changed"] is False and result["failed"] is True
    assert "left without a working master: group 1 (master %s is down" % old in result["msg"]
    group = result["groups"][0]
    assert group["decision"] == "no_candidate" and "no slave can take over" in group["reason"]
    assert cluster.master_of(1) == old and cluster.audit == []


def test_a_master_without_a_linked_slave_is_degraded_and_named(
        cluster: Cluster, module_args: dict[str, Any]) -> None:
    for addr in cluster.slaves_of(2):
        cluster.kill(addr)
    result = run_module(module_args)
    assert "failed" not in result and result["changed"] is False
    assert [g["decision"] for g in result["groups"]] == ["healthy", "degraded", "healthy"]
    assert "not healthy: group 2 degraded: master %s is alive but has no live slave" % cluster.master_of(2) \
        in result["msg"]


def test_unknown_server_type_skips_only_that_group(codis2_cluster: Cluster, codis2_args: dict[str, Any]) -> None:
    codis2_cluster.inject_server_type(2, codis2_cluster.slaves_of(2)[0], "weird")
    codis2_cluster.kill(codis2_cluster.master_of(2))
    codis2_cluster.kill(codis2_cluster.master_of(3))
    result = run_module(codis2_args)
    assert [s["group"] for s in result["skipped_groups"]] == [2]
    assert "unknown type 'weird'" in result["skipped_groups"][0]["reason"]
    assert [(a["group"], a["action"]) for a in result["actions"]][0] == (3, "promote")
    assert not any(a["group"] == 2 for a in result["actions"])


def test_two_masters_group_is_skipped(codis2_cluster: Cluster, codis2_args: dict[str, Any]) -> None:
    codis2_cluster.inject_server_type(1, codis2_cluster.slaves_of(1)[0], "master")
    result = run_module(codis2_args)
    assert result["skipped_groups"][0]["group"] == 1 and "2 servers have type master" in \
        result["skipped_groups"][0]["reason"]
    assert codis2_cluster.audit == []


def test_many_groups_in_one_pass() -> None:
    with Cluster.start(groups=20, slaves=2) as c:
        dead = [gid for gid in c.group_ids() if gid % 3 == 0]
        for gid in dead:
            c.kill(c.master_of(gid))
        result = run_module(dict(FAST, dashboard_url=c.dashboard_url))
        assert "failed" not in result
        assert sorted(a["group"] for a in result["actions"] if a["action"] == "promote") == dead
        _one_master_each(c)


def test_groups_option_limits_the_pass(cluster: Cluster, module_args: dict[str, Any]) -> None:
    cluster.kill(cluster.master_of(1))
    cluster.kill(cluster.master_of(2))
    result = run_module(dict(module_args, groups=[2]))
    assert [g["id"] for g in result["groups"]] == [2]
    assert {a["group"] for a in result["actions"]} == {2}
    assert cluster.servers(1)[cluster.master_of(1)] == "master"


@pytest.mark.parametrize("mode", ["refuse", "hang"])
def test_observer_partition_is_not_failed_over(cluster: Cluster, module_args: dict[str, Any],
                                               mode: str) -> None:
    master = cluster.master_of(1)
    cluster.partition(master, mode)  # cut off from this host only: its slaves still see it
    result = run_module(module_args)
    assert result["changed"] is False and cluster.audit == []
    [refusal] = [s for s in result["skipped_groups"] if s["group"] == 1]
    assert "unreachable from here, seen alive by" in refusal["reason"]
    assert cluster.master_of(1) == master


def test_hung_master_is_failed_over_once_slaves_stop_hearing_from_it(
        cluster: Cluster, module_args: dict[str, Any]) -> None:
    master = cluster.master_of(1)
    cluster.hang(master)
    assert run_module(module_args)["changed"] is False  # slaves heard from it 0 s ago
    cluster.clock.advance(16)
    result = run_module(module_args)
    assert result["actions"][0]["action"] == "promote" and cluster.master_of(1) != master


@pytest.mark.parametrize("bad,needle", [
    ({"probe_attempts": 0}, "probe_attempts must be at least 1"),
    ({"probe_timeout": 0}, "probe_timeout must be greater than 0"),
    ({"dashboard_url": "ftp://x"}, "dashboard_url must be an http"),
    ({"groups": ["one"]}, "groups"),
    ({"no_such_option": 1}, "no_such_option"),
])
def test_bad_arguments_fail_clearly(cluster: Cluster, module_args: dict[str, Any], bad: dict[str, Any],
                                    needle: str) -> None:
    result = run_module(dict(module_args, **bad))
    assert result["failed"] is True and needle in result["msg"]
    assert cluster.audit == []


def test_a_lost_rack_is_failed_over_in_parallel_with_one_mutating_call_at_a_time() -> None:
    """Every master dies at once. Groups are carried out side by side, but the Codis 2 dashboard refuses a second
    mutating call while its lock is held (`obtaining lock timed out`): the executor sends one at a time, so every
    promotion and re-point lands, reported in the plan's order."""
    with Cluster.start(groups=6, slaves=2, redis_timeout=0.5) as cluster:
        cluster.dashboard.faults.proxy_ack_seconds = 0.2  # each promote holds the dashboard's lock a while
        old = {gid: cluster.master_of(gid) for gid in cluster.group_ids()}
        for master in old.values():
            cluster.kill(master)
        result = run_module(dict(FAST, dashboard_url=cluster.dashboard_url, parallel_groups=4))
        assert "failed" not in result, result.get("msg")
        assert [a["group"] for a in result["actions"] if a["action"] == "promote"] == sorted(old)
        assert all(a["status"] == "done" for a in result["actions"])
        assert all(cluster.master_of(gid) != master for gid, master in old.items())
        assert not [a for a in cluster.audit if a["status"] != 200], cluster.audit
