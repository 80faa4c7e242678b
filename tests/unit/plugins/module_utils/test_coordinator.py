"""The coordinator's pure parts: its URL, its options, and the quorum applied to a plan."""
from __future__ import annotations

import math

import pytest

from ansible_collections.codis.ha.plugins.module_utils._coordinator import coordinator_problems, parse_coordinator_url
from ansible_collections.codis.ha.plugins.module_utils._planner import (
    FAILOVER,
    HEALTHY,
    PROMOTE,
    REFUSED,
    SKIPPED,
    Action,
    GroupDecision,
    Plan,
    Policy,
    another_is_acting,
    apply_quorum,
    plan_group,
)
from ansible_collections.codis.ha.plugins.module_utils._state import GroupHistory
from ansible_collections.codis.ha.plugins.module_utils._topology import ALIVE, ProbeResult, Server, ServerGroup

M, S = "10.0.0.1:6379", "10.0.0.2:6379"


def test_urls() -> None:
    assert parse_coordinator_url("zookeeper://zk1:2181,zk2/codis-ha") == (
        "zookeeper", (("zk1", 2181), ("zk2", 2181)), "/codis-ha", False)
    assert parse_coordinator_url("etcds://[::1]:2379") == ("etcd", (("::1", 2379),), "/codis-ha", True)
    assert parse_coordinator_url("etcd://127.0.0.1:2379/a/b/") == ("etcd", (("127.0.0.1", 2379),), "/a/b", False)


@pytest.mark.parametrize("url, culprit", [
    ("consul://c:8500/x", "expected zookeeper://"),
    ("zookeeper://zk1:0/x", "zk1:0"),
    ("zookeeper://zk1:2181,,zk2/x", "empty host"),
    ("etcd://user:secret@etcd1:2379/x", "coordinator_username"),
    ("etcd://etcd1:2379/a b", "may only hold"),
    ("zookeeper://zk1:99999/x", "99999"),
])
def test_bad_urls_name_the_culprit(url: str, culprit: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_coordinator_url(url)
    assert culprit in str(err.value) and "secret" not in str(err.value)


def test_option_problems() -> None:
    assert coordinator_problems({"quorum": 2}, "h") == ["quorum=2 needs coordinator: without one a single watcher decides"]
    assert coordinator_problems({}, "h") == []
    base = {"coordinator": "zookeeper://zk:2181/x"}
    assert coordinator_problems(base, "h") == []
    assert "quorum must be at least 1 and at most 99, got 0" in coordinator_problems(dict(base, quorum=0), "h")[0]
    assert "observer_id 'a b'" in coordinator_problems(dict(base, observer_id="a b"), "h")[0]
    assert "observation_ttl" in coordinator_problems(dict(base, observation_ttl=math.nan), "h")[0]
    assert "go together" in coordinator_problems(dict(base, coordinator_username="u"), "h")[0]


def failover_plan() -> Plan:
    return Plan((GroupDecision(1, FAILOVER, "master down", S, (Action(1, PROMOTE, S, M, S, "why"),),
                               master_down=True),
                 GroupDecision(2, HEALTHY, "fine", "10.0.0.3:6379")))


def seen(down: bool, master: str = M) -> dict[str, object]:
    return {"groups": {"1": {"master": master, "down": down}}}


def test_quorum_counts_fresh_votes_on_the_same_master() -> None:
    one = apply_quorum(failover_plan(), {"a": seen(True), "b": seen(False)}, 2, 2)
    assert one.decisions[0].decision == REFUSED and not one.decisions[0].actions
    assert "only 1 watcher(s) see the master down (a)" in one.decisions[0].reason
    # A vote about another master (an older view of the group) does not count.
    other = apply_quorum(failover_plan(), {"a": seen(True), "b": seen(True, "10.0.0.9:6379")}, 2, 2)
    assert other.decisions[0].decision == REFUSED
    # Addresses are identities: another spelling of the same server counts.
    two = apply_quorum(failover_plan(), {"a": seen(True), "b": seen(True, "[::ffff:10.0.0.1]:6379")}, 2, 2)
    assert two.decisions[0].decision == FAILOVER and "2 of 2 watcher(s) see the master down (a, b), quorum 2" in (
        two.decisions[0].actions[0].reason)
    assert two.decisions[1] == failover_plan().decisions[1]


def test_a_master_that_lost_its_data_is_replaced_without_waiting_for_a_quorum() -> None:
    # The three-watcher soak: the master restarted empty answers everyone, so no watcher votes it down, and every
    # rescue was refused until its slaves had copied the empty data set. The evidence is what the servers said.
    s2 = "10.0.0.3:6379"
    group = ServerGroup(1, (Server(M, "master"), Server(S, "slave"), Server(s2, "slave")))
    syncing = dict(role="slave", master_addr=M, link_up=False, syncing=True, link_down_seconds=1, priority=100)
    probes = {M: ProbeResult(M, ALIVE, role="master", offset=0, replid="b" * 40, keys=0),
              S: ProbeResult(S, ALIVE, offset=5000, replid="a" * 40, keys=50, **syncing),  # type: ignore[arg-type]
              s2: ProbeResult(s2, ALIVE, offset=4900, replid="a" * 40, keys=49, **syncing)}  # type: ignore[arg-type]
    record = GroupHistory(master=M, master_offset=5000, master_replid="a" * 40, seen_alive_at=99.0, master_keys=50)
    decision = plan_group(group, probes, Policy(), record, now=100.0)
    assert decision.decision == FAILOVER and "lost its data" in decision.reason and not decision.master_down
    kept = apply_quorum(Plan((decision,)), {"a": seen(False), "b": seen(False)}, 2, 2)
    assert kept.decisions[0] == decision
    # A master judged down still waits for the others.
    assert apply_quorum(failover_plan(), {"a": seen(False)}, 2, 2).decisions[0].decision == REFUSED


def test_garbage_observations_count_for_nothing() -> None:
    junk = {"a": seen(True), "b": {"groups": []}, "c": {"groups": {"1": {"master": M, "down": "yes"}}}, "d": []}
    assert apply_quorum(failover_plan(), junk, 2, 4).decisions[0].decision == REFUSED  # type: ignore[arg-type]


def test_the_lock_holder_acts_the_others_defer_without_failing() -> None:
    deferred = another_is_acting(failover_plan(), "w9")
    assert deferred.decisions[0].decision == SKIPPED and deferred.decisions[0].deferred_to == "w9"
    assert deferred.decisions[0].reason.startswith("another watcher (w9) holds the cluster's lock and is acting")
    assert not deferred.actions
