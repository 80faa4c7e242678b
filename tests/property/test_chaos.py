"""Stateful chaos: faults and passes of the real pass over a live simulator; invariants are the safety
properties. A deliberately naive 2015-style policy runs through the same machine and must be caught."""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

import pytest
from hypothesis import HealthCheck, Phase, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ansible_collections.codis.ha.plugins.module_utils._pass import run_pass
from ansible_collections.codis.ha.plugins.module_utils._planner import (
    FAILOVER,
    PROMOTE,
    Action,
    GroupDecision,
    Plan,
    plan,
)
from ansible_collections.codis.ha.plugins.module_utils._topology import ProbeResult, Topology
from simulator import Cluster
from tests.helpers import pass_params

GROUPS, SLAVES = 2, 2
CHAOS = os.environ.get("HYPOTHESIS_PROFILE") == "chaos"
PASS_ARGS = dict(probe_timeout=0.05, probe_attempts=1, probe_interval=0.0, verify_timeout=0.3,
                 dashboard_timeout=2.0)


def naive_plan(topology: Topology, probes: dict[str, ProbeResult], *args: Any) -> Plan:
    """The 2015 codis-ha: master PING fails -> promote the first slave listed, alive or not."""
    decisions = []
    for group in topology.groups:
        master = group.master
        slaves = group.of_type("slave")
        if master and not probes[master.addr].alive and slaves:
            first = slaves[0].addr
            decisions.append(GroupDecision(group.id, FAILOVER, "naive", first, (
                Action(group.id, PROMOTE, first, master.addr, first, "naive"),)))
    return Plan(tuple(decisions))


class ChaosMachine(RuleBasedStateMachine):
    planner: Callable[..., Plan] = staticmethod(plan)
    codis = 2
    dashboard_faults = ["lock_conflict", "promote_500_after_commit"]

    def __init__(self) -> None:
        super().__init__()
        # Ports differ between runs: order nodes by creation, and keep the dashboard's insertion order,
        # so that a replayed example hits the same roles (the address-sorting quirk is tested elsewhere).
        self.cluster = Cluster(groups=GROUPS, slaves=SLAVES, redis_timeout=0.2, sort_servers=False,
                               codis=self.codis)
        self.addrs = list(self.cluster.nodes)
        self.params = pass_params(**PASS_ARGS, dashboard_url=self.cluster.dashboard_url)
        self.hung: set[str] = set()
        self.partitioned: set[str] = set()
        self.last_result: Optional[dict[str, Any]] = None
        self.expect_live: list[int] = []

    def teardown(self) -> None:
        self.cluster.close()

    # ------------------------------------------------------------------ the world does things
    @rule(gid=st.integers(1, GROUPS), count=st.integers(1, 5))
    def write(self, gid: int, count: int) -> None:
        master = self.cluster.master_of(gid)
        node = self.cluster.nodes.get(master) if master else None
        if node is not None and not node.killed and not node.hung and node.master is None:
            self.cluster.write(gid, count)

    @rule(i=st.integers(0, GROUPS * (SLAVES + 1) - 1))
    def kill(self, i: int) -> None:
        self.cluster.kill(self.addrs[i])
        self.hung.discard(self.addrs[i])

    @rule(gid=st.integers(1, GROUPS))
    def kill_master(self, gid: int) -> None:
        master = self.cluster.master_of(gid)
        if master is not None:
            self.cluster.kill(master)
            self.hung.discard(master)

    @rule(i=st.integers(0, GROUPS * (SLAVES + 1) - 1))
    def revive(self, i: int) -> None:
        self.cluster.revive(self.addrs[i])
        self.hung.discard(self.addrs[i])
        self.partitioned.discard(self.addrs[i])

    @rule(i=st.integers(0, GROUPS * (SLAVES + 1) - 1))
    def hang(self, i: int) -> None:
        self.cluster.hang(self.addrs[i])
        if not self.cluster.nodes[self.addrs[i]].killed:
            self.hung.add(self.addrs[i])

    @rule(i=st.integers(0, GROUPS * (SLAVES + 1) - 1), mode=st.sampled_from(["hang", "refuse"]))
    def partition(self, i: int, mode: str) -> None:
        self.cluster.partition(self.addrs[i], mode)
        self.partitioned.add(self.addrs[i])

    @rule(seconds=st.sampled_from([5, 20, 70]))
    def time_passes(self, seconds: int) -> None:
        self.cluster.clock.advance(seconds)

    @rule(data=st.data())
    def dashboard_fault(self, data: st.DataObject) -> None:
        self.cluster.dashboard_fault(data.draw(st.sampled_from(self.dashboard_faults)), 1)

    # ------------------------------------------------------------------ a pass
    def _promotable(self, gid: int) -> list[str]:
        """The slaves any sane policy could promote if the group's master is killed, else none."""
        master = self.cluster.master_of(gid)
        if master is None or not self.cluster.nodes[master].killed:
            return []
        return [addr for addr, kind in self.cluster.servers(gid).items()
                if kind == "slave" and not self.cluster.nodes[addr].killed and addr not in self.hung
                and addr not in self.partitioned and self.cluster.nodes[addr].master == master
                and self.cluster.nodes[addr].priority > 0]

    def _write_ids(self, addr: str) -> set[int]:
        with self.cluster.world.lock:
            return {w.write_id for w in self.cluster.nodes[addr].log}

    @rule(check=st.booleans())
    def run_a_pass(self, check: bool) -> None:
        before = {gid: self.cluster.servers(gid) for gid in self.cluster.group_ids()}
        audit = len(self.cluster.audit)
        promotable = {gid: self._promotable(gid) for gid in self.cluster.group_ids()}
        held = {gid: set().union(*(self._write_ids(a) for a in addrs)) for gid, addrs in promotable.items()}
        self.expect_live = [] if check else [gid for gid, addrs in promotable.items() if addrs]
        outcome = run_pass(dict(self.params), check_mode=check, planner=type(self).planner)
        self.last_result = outcome.result
        if check:
            assert len(self.cluster.audit) == audit, "check mode made a mutating call"
            assert {gid: self.cluster.servers(gid) for gid in self.cluster.group_ids()} == before
        for action in outcome.result.get("actions", []):
            if action["action"] == PROMOTE and action["status"] == "done":
                self._check_best_offset(action)
                # No acknowledged write is lost that a promotable slave still held.
                lost = held[action["group"]] - self._write_ids(action["server"])
                assert not lost, "promoting %s lost %d write(s) another slave held" % (action["server"], len(lost))

    def _check_best_offset(self, action: dict[str, Any]) -> None:
        group = next(g for g in self.last_result["groups"] if g["id"] == action["group"])
        seen = {s["addr"]: s for s in group["servers"]}
        chosen = seen[action["server"]]["offset"] or 0
        for s in group["servers"]:
            if (s["type"] == "slave" and s.get("alive") and s.get("role") == "slave"
                    and s.get("master") == action["previous_master"] and s.get("priority") != 0
                    and s["addr"] not in self.partitioned):
                assert (s["offset"] or 0) <= chosen, "promoted %s (offset %d) over %s (offset %d)" % (
                    action["server"], chosen, s["addr"], s["offset"])

    # ------------------------------------------------------------------ safety properties
    steps = 0

    @invariant()
    def count_steps(self) -> None:
        type(self).steps += 1

    @invariant()
    def never_two_masters(self) -> None:
        for gid, masters in self.cluster.masters().items():
            assert len(masters) <= 1, "group %d has masters %s" % (gid, masters)

    @invariant()
    def dashboard_master_is_a_redis_master_when_alive(self) -> None:
        for gid in self.cluster.group_ids():
            master = self.cluster.master_of(gid)
            node = self.cluster.nodes.get(master) if master else None
            if node is not None and not node.killed:
                assert node.master is None, "group %d: dashboard master %s replicates from %s" % (
                    gid, master, node.master)

    @invariant()
    def liveness_after_a_pass(self) -> None:
        for gid in self.expect_live:
            master = self.cluster.master_of(gid)
            assert master is not None and not self.cluster.nodes[master].killed, (
                "group %d still has no live master after a pass: %s" % (gid, self.last_result))
        self.expect_live = []


class NaiveChaosMachine(ChaosMachine):
    planner = staticmethod(naive_plan)


class Codis3ChaosMachine(ChaosMachine):
    """The same faults, passes and invariants against a Codis 3 dashboard. Its one-shot faults are the ones that
    leave the group recoverable (a stuck promotion is an operator's job, tested in test_codis3_sim)."""
    codis = 3
    dashboard_faults = ["promote_slaveof_fails"]


def _settings(examples: int, steps: int) -> settings:
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                    database=None if os.environ.get("CI") else settings.default.database)


@pytest.mark.parametrize("machine", [ChaosMachine, Codis3ChaosMachine], ids=["codis2", "codis3"])
def test_chaos_invariants_hold(machine: type[ChaosMachine]) -> None:
    examples, steps = (1500, 12) if CHAOS else (200, 8)
    machine.steps = 0
    run_state_machine_as_test(machine, settings=_settings(examples, steps))
    print("chaos %s: %d examples, %d checks of the invariants (one per step, plus one per example)"
          % (machine.__name__, examples, machine.steps))


def test_naive_policy_is_caught() -> None:
    # Only finding matters here, not the smallest example: no shrinking, and room for an unlucky start.
    naive = settings(_settings(3000, 10), phases=[Phase.explicit, Phase.reuse, Phase.generate])
    with pytest.raises(AssertionError, match="no live master|masters|promoted"):
        run_state_machine_as_test(NaiveChaosMachine, settings=naive)
