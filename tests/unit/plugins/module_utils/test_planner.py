"""The pure planner, one rule per test: facts in, decisions and reasons out."""
from __future__ import annotations

from typing import Any

from ansible_collections.codis.ha.plugins.module_utils._planner import (
    DEGRADED,
    FAILOVER,
    HEALTHY,
    NO_CANDIDATE,
    PROMOTE,
    READD,
    REFUSED,
    REMOVE_PROXY,
    REPAIR,
    REPOINT,
    SET_PING_PERIOD,
    SKIPPED,
    Policy,
    plan,
    plan_group,
    predict,
)
from ansible_collections.codis.ha.plugins.module_utils._topology import (
    ALIVE,
    AUTH_ERROR,
    DOWN,
    ERROR,
    GroupHistory,
    ProbeResult,
    Proxy,
    Server,
    ServerGroup,
    Topology,
)

M, S1, S2, S3 = "10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379", "10.0.0.4:6379"


def group(*servers: tuple[str, str], gid: int = 1) -> ServerGroup:
    return ServerGroup(gid, tuple(Server(a, t) for a, t in servers))


def master(addr: str, offset: int = 100, **kw: Any) -> ProbeResult:
    return ProbeResult(addr, ALIVE, role="master", offset=offset, **kw)


def slave(addr: str, of: str = M, offset: int = 100, **kw: Any) -> ProbeResult:
    kw.setdefault("link_up", True)
    kw.setdefault("last_io_seconds", 1)
    kw.setdefault("priority", 100)
    return ProbeResult(addr, ALIVE, role="slave", master_addr=of, offset=offset, **kw)


def dead(addr: str) -> ProbeResult:
    return ProbeResult(addr, DOWN, "Connection refused", 2)


def slave_after_master_died(addr: str, offset: int = 100, **kw: Any) -> ProbeResult:
    kw.setdefault("link_up", False)
    kw.setdefault("last_io_seconds", -1)
    kw.setdefault("link_down_seconds", 3)
    return slave(addr, offset=offset, **kw)


def probes(*results: ProbeResult) -> dict[str, ProbeResult]:
    return {p.addr: p for p in results}


G3 = group((M, "master"), (S1, "slave"), (S2, "slave"))
POLICY = Policy()


def test_healthy_group_needs_nothing() -> None:
    d = plan_group(G3, probes(master(M), slave(S1), slave(S2)), POLICY)
    assert (d.decision, d.actions) == (HEALTHY, ())


def test_dead_master_promotes_highest_offset_slave() -> None:
    d = plan_group(G3, probes(dead(M), slave_after_master_died(S1, 90), slave_after_master_died(S2, 100)), POLICY)
    assert d.decision == FAILOVER
    assert [(a.action, a.server) for a in d.actions] == [(PROMOTE, S2), (REPOINT, S1)]
    assert d.actions[0].previous_master == M and "highest replication offset (100)" in d.reason


def test_ties_go_to_lower_priority_then_address() -> None:
    p = probes(dead(M), slave_after_master_died(S1, priority=50), slave_after_master_died(S2, priority=10))
    assert plan_group(G3, p, POLICY).actions[0].server == S2
    p = probes(dead(M), slave_after_master_died(S1), slave_after_master_died(S2))
    assert plan_group(G3, p, POLICY).actions[0].server == S1


def test_never_a_dead_slave() -> None:
    d = plan_group(G3, probes(dead(M), dead(S1), slave_after_master_died(S2, 1)), POLICY)
    assert d.actions[0].server == S2 and "%s down" % S1 in d.reason


def test_never_priority_zero() -> None:
    d = plan_group(G3, probes(dead(M), slave_after_master_died(S1, 999, priority=0),
                              slave_after_master_died(S2, 1)), POLICY)
    assert d.actions[0].server == S2 and "replica-priority 0" in d.reason


R, R_NEW = "a" * 40, "b" * 40  # the dead master's replication history, and the promoted server's own


def test_a_priority_zero_slave_with_more_data_is_not_repointed_after_the_promotion() -> None:
    """The promoted server has less of the history than the slave that may not be promoted: re-pointing that
    one would make it discard, in a full sync, writes that exist nowhere else."""
    d = plan_group(G3, probes(dead(M), slave_after_master_died(S1, 999, priority=0, replid=R),
                              slave_after_master_died(S2, 10, replid=R)), POLICY)
    assert d.decision == FAILOVER and [(a.action, a.server) for a in d.actions] == [(PROMOTE, S2)]
    assert "%s replicates from %s and holds more of the master's history (offset 999)" % (S1, M) in d.reason
    assert "is not re-pointed" in d.reason
    # With less data than the promoted server it follows as usual.
    d = plan_group(G3, probes(dead(M), slave_after_master_died(S1, 5, priority=0, replid=R),
                              slave_after_master_died(S2, 10, replid=R)), POLICY)
    assert [(a.action, a.server) for a in d.actions] == [(PROMOTE, S2), (REPOINT, S1)]


def test_the_kept_slave_stays_kept_after_the_new_master_took_writes() -> None:
    """The new master's offset grows past the kept slave's, but its copy of the old history still ends where it
    was promoted (second_repl_offset): the slave still holds writes it lacks."""
    after = group((M, "offline"), (S2, "master"), (S1, "slave"))
    new_master = master(S2, 5000, replid=R_NEW, replid2=R, second_offset=11)
    d = plan_group(after, probes(dead(M), new_master, slave_after_master_died(S1, 999, priority=0, replid=R)),
                   POLICY)
    assert d.decision == SKIPPED and not d.actions
    assert "holds more of the master's history (offset 999) than %s has of it (10)" % S2 in d.reason
    d = plan_group(after, probes(dead(M), new_master, slave_after_master_died(S1, 10, priority=0, replid=R)),
                   POLICY)
    assert [(a.action, a.server) for a in d.actions] == [(REPOINT, S1)]
    # A replica of the live master's current history (chained behind another server) is never 'ahead' of it,
    # whatever the timing of the two probes.
    d = plan_group(after, probes(dead(M), new_master, slave(S1, of=S3, offset=5100, replid=R_NEW)), POLICY)
    assert [(a.action, a.server) for a in d.actions] == [(REPOINT, S1)]


def test_never_an_offline_server() -> None:
    g = group((M, "master"), (S1, "offline"), (S2, "slave"))
    d = plan_group(g, probes(dead(M), slave_after_master_died(S1, 999), slave_after_master_died(S2, 1)), POLICY)
    assert d.actions[0].server == S2 and "type offline" in d.reason


def test_never_a_slave_of_another_master() -> None:
    d = plan_group(G3, probes(dead(M), slave(S1, of=S3, offset=999), slave_after_master_died(S2, 1)), POLICY)
    assert d.actions[0].server == S2 and "replicates from %s" % S3 in d.reason


def test_never_a_loading_or_syncing_slave() -> None:
    d = plan_group(G3, probes(dead(M), slave_after_master_died(S1, 999, syncing=True),
                              slave_after_master_died(S2, 1)), POLICY)
    assert d.actions[0].server == S2 and "sync with the master in progress" in d.reason
    d = plan_group(G3, probes(dead(M), slave_after_master_died(S1, 999, loading=True),
                              slave_after_master_died(S2, 1)), POLICY)
    assert d.actions[0].server == S2


def test_no_candidate_leaves_group_alone() -> None:
    d = plan_group(G3, probes(dead(M), dead(S1), dead(S2)), POLICY)
    assert (d.decision, d.actions) == (NO_CANDIDATE, ())
    assert "no slave can take over" in d.reason
    d = plan_group(group((M, "master")), probes(dead(M)), POLICY)
    assert d.decision == NO_CANDIDATE and "the group has no slave" in d.reason


def test_slave_still_seeing_the_master_refuses_failover() -> None:
    d = plan_group(G3, probes(dead(M), slave(S1, last_io_seconds=3), slave_after_master_died(S2)), POLICY)
    assert (d.decision, d.actions) == (REFUSED, ())
    assert "seen alive by %s" % S1 in d.reason


def test_link_up_but_silent_for_long_is_no_witness() -> None:
    d = plan_group(G3, probes(dead(M), slave(S1, last_io_seconds=40), slave(S2, last_io_seconds=40)), POLICY)
    assert d.decision == FAILOVER


def test_live_master_is_never_replaced() -> None:
    d = plan_group(G3, probes(master(M, 1), slave(S1, offset=999), slave(S2)), POLICY)
    assert not any(a.action == PROMOTE for a in d.actions)


def test_stray_slave_is_repointed() -> None:
    d = plan_group(G3, probes(master(M), slave(S1, of=S3), slave(S2)), POLICY)
    assert d.decision == REPAIR and [(a.action, a.server, a.master) for a in d.actions] == [(REPOINT, S1, M)]


def test_slave_that_is_a_master_is_repointed_and_its_data_reported() -> None:
    d = plan_group(G3, probes(master(M), master(S1, 77, keys=5), slave(S2)), POLICY)
    assert d.actions[0].action == REPOINT and "offset 77, 5 keys" in d.actions[0].reason


def test_repoint_disabled() -> None:
    d = plan_group(G3, probes(master(M), slave(S1, of=S3), slave(S2)), Policy(repoint_slaves=False))
    assert d.decision == HEALTHY


def test_live_offline_server_is_readded() -> None:
    g = group((M, "master"), (S1, "offline"))
    d = plan_group(g, probes(master(M), master(S1, 5, keys=2)), POLICY)
    assert [(a.action, a.server) for a in d.actions] == [(READD, S1)]
    assert "offset 5, 2 keys" in d.actions[0].reason
    assert plan_group(g, probes(master(M), master(S1)), Policy(reuse_offline=False)).decision == DEGRADED


def test_dead_offline_server_is_left_alone() -> None:
    g = group((M, "master"), (S1, "offline"))
    assert plan_group(g, probes(master(M), dead(S1)), POLICY).decision == DEGRADED


def test_old_master_is_not_readded_in_the_failover_pass() -> None:
    d = plan_group(G3, probes(dead(M), slave_after_master_died(S1), slave_after_master_died(S2)), POLICY)
    assert M not in [a.server for a in d.actions[1:]]


def test_unknown_type_two_masters_no_master_empty_are_skipped() -> None:
    cases = {
        "unknown type 'weird'": group((M, "master"), (S1, "weird")),
        "2 servers have type master": group((M, "master"), (S1, "master")),
        "no server has type master": group((S1, "slave"), (S2, "offline")),
        "no servers": group(),
    }
    p = probes(master(M), slave(S1), slave(S2))
    for needle, g in cases.items():
        d = plan_group(g, p, POLICY)
        assert d.decision == SKIPPED and needle in d.reason and d.actions == ()


def test_master_answering_an_error_is_skipped() -> None:
    d = plan_group(G3, probes(ProbeResult(M, ERROR, "ERR weird"), slave(S1), slave(S2)), POLICY)
    assert d.decision == SKIPPED and "ERR weird" in d.reason


def test_every_server_answering_garbage_is_named() -> None:
    d = plan_group(G3, probes(ProbeResult(M, ERROR, "ERR weird"), slave(S1), ProbeResult(S2, ERROR, "odd ROLE")),
                   POLICY)
    assert d.decision == SKIPPED and d.actions == ()
    assert all(part in d.reason for part in (M, "ERR weird", S2, "odd ROLE")), d.reason


def test_master_that_reports_role_slave_is_skipped() -> None:
    d = plan_group(G3, probes(slave(M, of=S3), slave(S1), slave(S2)), POLICY)
    assert d.decision == SKIPPED and "reports role slave" in d.reason


def test_an_auth_error_skips_its_group_and_the_others_are_planned() -> None:
    topo = Topology((G3, group((S3, "master"), gid=2)))
    p = probes(dead(M), slave_after_master_died(S1), slave_after_master_died(S2), ProbeResult(S3, AUTH_ERROR, "NOAUTH"))
    result = plan(topo, p, POLICY)
    assert len(result.errors) == 1 and "NOAUTH" in result.errors[0]
    assert {a.group for a in result.actions} == {1}
    [skipped] = result.skipped
    assert skipped.group == 2 and "authentication to Redis failed at %s" % S3 in skipped.reason


def test_groups_filter() -> None:
    topo = Topology((G3, group((S3, "master"), gid=2)))
    result = plan(topo, probes(dead(M), slave_after_master_died(S1), slave_after_master_died(S2), dead(S3)),
                  Policy(groups=frozenset({2})))
    assert [d.group for d in result.decisions] == [2]


def test_predict_applies_the_plan() -> None:
    topo = Topology((G3,))
    result = plan(topo, probes(dead(M), slave_after_master_died(S1, 5), slave_after_master_died(S2, 1)), POLICY)
    assert predict(topo, result).snapshot() == {"group 1": {M: "offline", S1: "master", S2: "slave"}}


# ------------------------------------------------------------------ safety rules
from ansible_collections.codis.ha.plugins.module_utils._topology import GroupHistory  # noqa: E402


def test_down_after_refuses_until_confirmed() -> None:
    p = probes(dead(M), slave_after_master_died(S1), slave_after_master_died(S2))
    policy = Policy(down_after=5)
    assert plan_group(G3, p, policy, GroupHistory(master=M, down_since=100.0), now=103.0).decision == REFUSED
    assert plan_group(G3, p, policy, None, now=103.0).decision == REFUSED
    assert plan_group(G3, p, policy, GroupHistory(master=M, down_since=100.0), now=106.0).decision == FAILOVER


def test_a_second_failover_within_min_failover_interval_is_made_and_reported_as_flapping() -> None:
    # Refusing it left a group without a master in a soak, until its killed master came back empty and its
    # slaves copied that: anti-flapping reports, it never keeps a group dead.
    p = probes(dead(M), slave_after_master_died(S1), slave_after_master_died(S2))
    recent = GroupHistory(master=M, last_failover_at=1000.0)
    d = plan_group(G3, p, Policy(min_failover_interval=300), recent, now=1100.0)
    assert d.decision == FAILOVER and d.flapping and "last failed over 100 s ago" in d.reason
    later = plan_group(G3, p, Policy(min_failover_interval=300), recent, now=1301.0)
    assert later.decision == FAILOVER and not later.flapping and "flapping" not in later.reason
    # The second opinion still holds within the interval: a master its slaves see is not failed over.
    seen = dict(p, **{S1: slave(S1, last_io_seconds=2)})
    assert plan_group(G3, seen, Policy(min_failover_interval=300), recent, now=1100.0).decision == REFUSED


def test_stale_slave_is_excluded() -> None:
    p = probes(dead(M), slave_after_master_died(S1, 999, link_down_seconds=200),
               slave_after_master_died(S2, 10, link_down_seconds=3))
    d = plan_group(G3, p, POLICY)
    assert d.actions[0].server == S2 and "stale: link down for 200 s" in d.reason
    assert plan_group(G3, p, Policy(force=True)).actions[0].server == S1


def test_a_stale_slave_holding_more_than_every_fresh_one_is_not_passed_over_for_less() -> None:
    """Staleness is about data: when the fresh slaves lag behind the stale one in the same history (or an
    operator's REPLICAOF restarted a slave's link clock), promoting a fresh one would lose more."""
    p = probes(dead(M), slave_after_master_died(S1, 999, link_down_seconds=200, replid=R),
               slave_after_master_died(S2, 10, link_down_seconds=3, replid=R))
    assert plan_group(G3, p, POLICY).actions[0].server == S1
    # A slave that was promoted half way, then pointed back at the dead master: it holds R up to 10 only.
    repointed = slave_after_master_died(S2, 10, link_down_seconds=0, replid=R_NEW, replid2=R, second_offset=11)
    assert plan_group(G3, dict(p, **{S2: repointed}), POLICY).actions[0].server == S1


def test_a_half_done_promotion_with_more_data_is_finished_when_the_other_slave_was_repointed_by_an_operator() -> None:
    """Long chaos run (Codis 3, session 6): both slaves were promoted half way from the master's history R; an
    operator pointed the one with a third of the writes back at the dead master (its own history R_NEW, R before
    it). No slave replicates R any more and no pass saw the master alive, so R was known only through that slave."""
    repointed = slave_after_master_died(S1, 44, link_down_seconds=0, replid=R_NEW, replid2=R, second_offset=45)
    half_done = ProbeResult(S2, ALIVE, role="master", offset=132, replid="c" * 40, replid2=R, second_offset=133)
    d = plan_group(G3, probes(dead(M), repointed, half_done), POLICY)
    assert d.decision == FAILOVER and d.actions[0].server == S2 and "finishing a half-done promotion" in d.reason


def test_slave_never_linked_is_stale() -> None:
    p = probes(dead(M), slave_after_master_died(S1, 0, link_down_seconds=-1), slave_after_master_died(S2, 5))
    d = plan_group(G3, p, POLICY)
    assert d.actions[0].server == S2 and "never up" in d.reason


def test_state_lengthens_the_master_down_time_used_for_staleness() -> None:
    p = probes(dead(M), slave_after_master_died(S1, 50, link_down_seconds=100))
    g = group((M, "master"), (S1, "slave"))
    # The only slave sets the estimate itself, and it says nothing about when the master died: refused, blind.
    blind = plan_group(g, p, POLICY)
    assert blind.decision == REFUSED and "not promoting %s blind" % S1 in blind.reason, blind.reason
    assert plan_group(g, p, Policy(force=True)).decision == FAILOVER
    p = probes(dead(M), slave_after_master_died(S1, 50, link_down_seconds=100), slave_after_master_died(S2, 5))
    assert plan_group(G3, p, POLICY, GroupHistory(master=M, down_since=0.0), now=95.0).actions[0].server == S1


def test_data_loss_bound() -> None:
    p = probes(dead(M), slave_after_master_died(S1, 900), slave_after_master_died(S2, 800))
    h = GroupHistory(master=M, master_offset=1000)
    d = plan_group(G3, p, Policy(max_data_loss_bytes=150), h)
    assert d.actions[0].server == S1 and "100 bytes behind" in d.reason and "would lose 200 bytes" in d.reason
    assert plan_group(G3, p, Policy(max_data_loss_bytes=50), h).decision == NO_CANDIDATE
    # The bound only applies to the master the offset was remembered for.
    assert plan_group(G3, p, Policy(max_data_loss_bytes=50), GroupHistory(master=S3, master_offset=1000)).decision == FAILOVER


def test_mass_failure_refuses_all() -> None:
    groups = tuple(group((f"10.1.{i}.1:1", "master"), (f"10.1.{i}.2:1", "slave"), gid=i) for i in range(1, 4))
    p = {}
    for i in range(1, 4):
        p.update(probes(dead(f"10.1.{i}.1:1"), slave_after_master_died(f"10.1.{i}.2:1").__class__(
            f"10.1.{i}.2:1", ALIVE, role="slave", master_addr=f"10.1.{i}.1:1", offset=1, link_up=False,
            link_down_seconds=1, priority=100)))
    result = plan(Topology(groups), p, Policy(max_failovers_per_pass=2))
    assert [d.decision for d in result.decisions] == [REFUSED] * 3 and result.actions == []
    assert len(plan(Topology(groups), p, Policy(max_failovers_per_pass=3)).actions) == 3
    assert len(plan(Topology(groups), p, Policy(max_failovers_per_pass=2, force=True)).actions) == 3


def test_force_never_overrides_a_witness() -> None:
    d = plan_group(G3, probes(dead(M), slave(S1), slave_after_master_died(S2)), Policy(force=True))
    assert d.decision == REFUSED


def test_a_refused_master_with_linked_slaves_is_not_failed_over() -> None:
    """A killed Redis drops its replicas' links at once; a refusal while their links are up is a rule between this
    host and a live master, whatever the age of their last I/O within the window."""
    refused = ProbeResult(M, DOWN, "Connection refused", 2, refused=True)
    heard_3s_ago = probes(slave(S1, last_io_seconds=3), slave(S2, last_io_seconds=3))
    assert plan_group(G3, dict(heard_3s_ago, **{M: refused}), POLICY).decision == REFUSED
    links_dropped = probes(slave_after_master_died(S1), slave_after_master_died(S2))
    assert plan_group(G3, dict(links_dropped, **{M: refused}), POLICY).decision == FAILOVER


def test_a_slave_whose_offset_stood_still_beyond_the_ping_period_is_no_witness() -> None:
    silent = ProbeResult(M, DOWN, "Timeout", 2, down_for=2.2)
    learned = GroupHistory(master=M, seen_alive_at=99.5, ping_period=1)

    def heard(still_for: float | None, still_last_io: int | None) -> dict[str, ProbeResult]:
        looks = dict(still_for=still_for, still_last_io=still_last_io, last_io_seconds=0)
        return dict(probes(slave(S1, **looks), slave(S2, **looks)), **{M: silent})

    # Frozen: no ping moved the offsets for 2.2 s, the later look says 2 s: down in the very first pass.
    assert plan_group(G3, heard(2.2, 2), POLICY, learned, now=100.0).decision == FAILOVER
    # Any of these keeps the slaves as witnesses: the offset stood still for less than a period and its slack,
    # the later look heard the master within the period, one look only, the period unknown.
    for looks in (heard(1.4, 2), heard(2.2, 1), heard(None, None)):
        assert plan_group(G3, looks, POLICY, learned, now=100.0).decision == REFUSED
    assert plan_group(G3, heard(2.2, 2), POLICY, GroupHistory(master=M, seen_alive_at=99.5), now=100.0).decision \
        == REFUSED
    # One slave that heard the master is enough to refuse.
    mixed = dict(heard(2.2, 2), **{S2: slave(S2, last_io_seconds=0, still_for=0.0, still_last_io=0)})
    assert plan_group(G3, mixed, POLICY, learned, now=100.0).decision == REFUSED


def test_a_pass_that_saw_the_master_silent_through_its_attempts_counts_that_toward_down_after() -> None:
    links_dropped = probes(slave_after_master_died(S1), slave_after_master_died(S2))
    policy = Policy(down_after=1)
    for down_for, decision in ((2.2, FAILOVER), (0.2, REFUSED)):
        p = dict(links_dropped, **{M: ProbeResult(M, DOWN, "Timeout", 2, down_for=down_for)})
        assert plan_group(G3, p, policy, None, now=100.0).decision == decision
    # Seen down by an earlier pass 0.9 s before this one, and 0.2 s through this one's attempts.
    p = dict(links_dropped, **{M: ProbeResult(M, DOWN, "Timeout", 2, down_for=0.2)})
    assert plan_group(G3, p, policy, GroupHistory(master=M, down_since=99.1), now=100.0).decision == FAILOVER


def test_the_witness_window_comes_from_the_masters_ping_period() -> None:
    silent = ProbeResult(M, DOWN, "Timeout", 2)
    heard_3s_ago = dict(probes(slave(S1, last_io_seconds=3), slave(S2, last_io_seconds=3)), **{M: silent})
    learned = GroupHistory(master=M, seen_alive_at=90.0, ping_period=1)
    assert plan_group(G3, heard_3s_ago, POLICY, learned, now=100.0).decision == FAILOVER  # window 2 s
    assert plan_group(G3, heard_3s_ago, POLICY, GroupHistory(master=M, seen_alive_at=90.0), now=100.0).decision \
        == REFUSED  # period unknown: the fixed 15 s
    # How long ago this host lost the master says nothing: at Redis's default period an idle live master's
    # slaves report 0 to 10 s. A slave that heard its last ping 3, 5 or 9 s ago, 0.5 s after this host lost the
    # master, is a witness (the old rule, "heard from it after this tool lost it", failed over a live idle
    # master cut off from this host only, in a soak at Redis's defaults).
    period_10 = GroupHistory(master=M, seen_alive_at=99.5, ping_period=10)
    for age in (3, 5, 9, 15):
        heard = dict(probes(slave(S1, last_io_seconds=age), slave(S2, last_io_seconds=age)), **{M: silent})
        d = plan_group(G3, heard, POLICY, period_10, now=100.0)
        assert d.decision == REFUSED and "seen alive by" in d.reason, (age, d.reason)
    # Past the window (period plus half of it) the silence outlasts any ping: no witness.
    heard_16s_ago = dict(probes(slave(S1, last_io_seconds=16), slave(S2, last_io_seconds=16)), **{M: silent})
    assert plan_group(G3, heard_16s_ago, POLICY, period_10, now=100.0).decision == FAILOVER
    heard_1s_ago = dict(probes(slave(S1, last_io_seconds=1), slave(S2, last_io_seconds=1)), **{M: silent})
    assert plan_group(G3, heard_1s_ago, POLICY, GroupHistory(master=M, seen_alive_at=99.5), now=100.0).decision \
        == REFUSED


def test_a_master_restarted_without_its_data_is_replaced_by_the_slave_holding_the_most_of_its_history() -> None:
    # Killed and restarted in place with no data while the dashboard still lists it: a new history at offset 0,
    # and its slaves, syncing from it, still hold the old one until the full sync completes.
    record = GroupHistory(master=M, master_offset=5000, master_replid=R, seen_alive_at=99.0)
    empty = master(M, 0, replid=R_NEW, keys=0)
    syncing = dict(link_up=False, syncing=True, link_down_seconds=1)
    p = probes(empty, slave(S1, offset=5000, replid=R, **syncing), slave(S2, offset=4900, replid=R, **syncing))
    d = plan_group(G3, p, POLICY, record, now=100.0)
    assert d.decision == FAILOVER and d.keep_record and d.data_loss is None, d.reason
    assert [(a.action, a.server) for a in d.actions] == [(PROMOTE, S1), (READD, M), (REPOINT, S2)]
    assert "lost its data" in d.reason and "is promoted before" in d.reason
    assert "will be replaced by a full sync" in d.actions[1].reason  # its writes since the restart, reported
    # The best slave lacks part of it: the failover still saves what it can, and says what is gone.
    p = dict(p, **{S1: slave(S1, offset=4800, replid=R, **syncing)})
    d = plan_group(G3, p, POLICY, record, now=100.0)
    assert [a.server for a in d.actions if a.action == PROMOTE] == [S2]
    assert d.data_loss is not None and "lacks 100 bytes" in d.data_loss
    # A slave that may not be promoted is no way out, but the loss is named.
    p = probes(empty, slave(S1, offset=5000, replid=R, priority=0, **syncing), slave(S2, offset=0, replid=R_NEW))
    d = plan_group(G3, p, POLICY, record, now=100.0)
    assert not d.actions and d.data_loss is not None and d.keep_record and "replica-priority 0" in d.reason


def test_a_master_whose_slaves_already_copied_its_empty_data_set_is_reported_as_data_lost() -> None:
    record = GroupHistory(master=M, master_offset=5000, master_replid=R, seen_alive_at=99.0)
    p = probes(master(M, 300, replid=R_NEW), slave(S1, offset=300, replid=R_NEW), slave(S2, offset=300, replid=R_NEW))
    d = plan_group(G3, p, POLICY, record, now=100.0)
    assert d.decision == HEALTHY and not d.actions and not d.keep_record
    assert d.data_loss is not None and "at least 5000 bytes" in d.data_loss and "no server" in d.data_loss


def test_a_new_history_that_continues_the_old_one_is_no_loss() -> None:
    record = GroupHistory(master=M, master_offset=5000, master_replid=R, seen_alive_at=99.0)
    # Same history, a slave probed a moment after the master under writes: ahead of it, no loss.
    p = probes(master(M, 5000, replid=R), slave(S1, offset=5100, replid=R), slave(S2, offset=5000, replid=R))
    assert plan_group(G3, p, POLICY, record, now=100.0).data_loss is None
    # A master that continued the recorded history (promoted from it, replid2) holds all its slaves have.
    continued = master(M, 5600, replid=R_NEW, replid2=R, second_offset=5001)
    p = probes(continued, slave(S1, offset=5600, replid=R_NEW), slave(S2, offset=5000, replid=R))
    d = plan_group(G3, p, POLICY, record, now=100.0)
    assert d.decision == HEALTHY and d.data_loss is None and not d.actions
    # No record of the master's history (no state_path, or another master recorded): nothing is inferred.
    p = probes(master(M, 0, replid=R_NEW), slave(S1, offset=5000, replid=R), slave(S2, offset=5000, replid=R))
    assert plan_group(G3, p, POLICY, None, now=100.0).decision == HEALTHY
    assert plan_group(G3, p, POLICY, GroupHistory(master=S3, master_replid=R), now=100.0).decision == HEALTHY


def test_a_restarted_master_of_a_group_that_never_held_a_key_is_left_alone() -> None:
    # An idle group's history is its master's pings: a slave holding more of it holds nothing worth a failover.
    record = GroupHistory(master=M, master_offset=84, master_replid=R, seen_alive_at=99.0, master_keys=0)
    p = probes(master(M, 0, replid=R_NEW, keys=0), slave(S1, offset=84, replid=R, keys=0, link_up=False),
               slave(S2, offset=0, replid=R_NEW, keys=0))
    d = plan_group(G3, p, POLICY, record, now=100.0)
    assert not d.actions and d.data_loss is None, d.reason


def test_a_master_restarted_empty_does_not_take_the_data_of_a_slave_kept_aside() -> None:
    # Found by the long chaos run: S1 (replica-priority 0) was kept aside with writes no other server held, still
    # following the dead old master's history; the group's master S2 then restarted empty. Re-pointing S1 at it
    # would discard those writes; it is kept for an operator and the loss of S2's history is named.
    after = group((M, "offline"), (S1, "slave"), (S2, "master"))
    record = GroupHistory(master=S2, master_offset=5000, master_replid=R_NEW, seen_alive_at=99.0, master_keys=40)
    p = probes(dead(M), slave(S1, of=M, offset=4000, replid=R, priority=0, keys=30, link_up=False),
               master(S2, 0, replid="c" * 40, keys=0))
    d = plan_group(after, p, POLICY, record, now=100.0)
    assert not d.actions and d.decision == SKIPPED and d.data_loss is not None, d.reason
    assert "holds 30 keys of a replication history" in d.reason
    # And on every later pass, once the record has taken the restarted master's new history.
    adopted = GroupHistory(master=S2, master_offset=0, master_replid="c" * 40, seen_alive_at=99.5, master_keys=0)
    later = plan_group(after, p, POLICY, adopted, now=101.0)
    assert not later.actions and later.decision == SKIPPED and "holds 30 keys" in later.reason, later.reason
    # Without keys of its own it is brought under the master as usual.
    p = dict(p, **{S1: slave(S1, of=M, offset=0, replid="d" * 40, priority=0, keys=0, link_up=False)})
    assert [a.action for a in plan_group(after, p, POLICY, record, now=100.0).actions] == [REPOINT]


def test_a_richer_half_done_promotion_of_a_history_the_pass_cannot_place_is_not_discarded() -> None:
    # Long chaos run: S1 was half-promoted twice (its replid2 is its own first promotion's history, not the
    # master's) and pointed back at the dead master; S2, half-promoted once from the master's history R, holds
    # every write. No record of the master: the pass cannot tie S2 to it, and promoting S1 would discard S2's data.
    p = probes(dead(M), slave_after_master_died(S1, 44, replid="e" * 40, replid2="f" * 40),
               ProbeResult(S2, ALIVE, role="master", offset=132, replid="c" * 40, replid2=R, second_offset=45))
    d = plan_group(G3, p, POLICY)
    assert d.decision == REFUSED and not d.actions and d.master_down, d.reason
    assert "answers role master with more data (offset 132," in d.reason and "an operator must decide" in d.reason
    # With the master's history known (a pass recorded it), S2's promotion is finished.
    d = plan_group(G3, p, POLICY, GroupHistory(master=M, master_replid=R, seen_alive_at=90.0), now=100.0)
    assert d.decision == FAILOVER and d.actions[0].server == S2


def test_a_slave_holding_the_only_copy_of_a_history_the_candidate_lacks_is_not_repointed() -> None:
    # Long chaos run: S1 was cut off before the master restarted empty; S2 (replica-priority 0) then took the
    # restarted master's only writes; the master died and S1 is the candidate. Re-pointing S2 would discard them.
    p = probes(dead(M), slave_after_master_died(S1, 0, replid=R, keys=0),
               slave_after_master_died(S2, 132, replid=R_NEW, priority=0, keys=3))
    d = plan_group(G3, p, POLICY)
    assert [(a.action, a.server) for a in d.actions] == [(PROMOTE, S1)], d.reason
    assert "holds 3 keys of a replication history" in d.reason
    # A slave that took nothing of its own history since a half-done promotion holds the history it continued.
    back = slave_after_master_died(S2, 44, replid=R_NEW, replid2=R, second_offset=45, priority=0, keys=3)
    d = plan_group(G3, dict(p, **{S2: back, S1: slave_after_master_died(S1, 100, replid=R, keys=5)}), POLICY)
    assert [(a.action, a.server) for a in d.actions] == [(PROMOTE, S1), (REPOINT, S2)], d.reason


def test_data_of_a_history_the_group_went_on_from_is_not_foreign_and_the_slave_is_repointed() -> None:
    # The soak (session 8): B, then C (went on from B), then D (from C); S1 restarted from the RDB of a full sync
    # it made under B and follows an offline server; the master S2 knows only D and C. Without the group's lineage
    # S1's keys looked like nobody else's and the group kept no slave for good.
    b, c, d = "b" * 40, "c" * 40, "d" * 40
    g = group((S2, "master"), (S1, "slave"), (S3, "offline"))
    p = probes(master(S2, 3558136, replid=d, replid2=c, second_offset=3540570, keys=82000),
               slave(S1, of=S3, offset=2519223, replid=b, keys=59092), dead(S3))
    blind = plan_group(g, p, POLICY, GroupHistory(master=S2, master_replid=d, seen_alive_at=99.0), now=100.0)
    assert blind.decision == SKIPPED and "holds 59092 keys of a replication history" in blind.reason
    lineage = {b: 2600000, c: 3540569, d: 3558000}
    known = plan_group(g, p, POLICY, GroupHistory(master=S2, master_replid=d, seen_alive_at=99.0, lineage=lineage),
                       now=100.0)
    assert known.decision == REPAIR and [(a.action, a.server) for a in known.actions] == [(REPOINT, S1)]
    # Further along B than the group went on from it: writes of B no later master took. Kept.
    ahead = dict(p, **{S1: slave(S1, of=S3, offset=2700000, replid=b, keys=59092)})
    kept = plan_group(g, ahead, POLICY, GroupHistory(master=S2, seen_alive_at=99.0, lineage=lineage), now=100.0)
    assert kept.decision == SKIPPED and not kept.actions
    # A master whose history is not of the lineage (restarted without its data) descends from none of it.
    fresh = dict(p, **{S2: master(S2, 100, replid="e" * 40, keys=5)})
    d2 = plan_group(g, fresh, POLICY, GroupHistory(master=S2, seen_alive_at=99.0, lineage=lineage), now=100.0)
    assert d2.decision == SKIPPED and not d2.actions, d2.reason


def test_the_lineage_follows_the_masters_continuations_and_starts_again_on_an_unrelated_history() -> None:
    from ansible_collections.codis.ha.plugins.module_utils._topology import LINEAGE_SIZE, extend_lineage

    a, b = "a" * 40, "b" * 40
    first = extend_lineage(None, master(M, 500, replid=a, replid2="0" * 40, second_offset=-1))
    assert first == {a: 500}
    promoted = extend_lineage(first, master(S1, 900, replid=b, replid2=a, second_offset=601))
    assert promoted == {a: 600, b: 900}
    assert extend_lineage(promoted, master(S1, 50, replid=b)) == {a: 600, b: 900}  # an RDB's older offset
    assert extend_lineage(promoted, master(S2, 7, replid="c" * 40)) == {"c" * 40: 7}  # restarted empty
    many = None
    for i in range(LINEAGE_SIZE + 5):
        many = extend_lineage(many, master(M, i + 1, replid="%040x" % (i + 1), replid2="%040x" % i,
                                           second_offset=i + 1 if i else -1))
    assert many is not None and len(many) == LINEAGE_SIZE and "%040x" % (LINEAGE_SIZE + 5) in many


def test_a_slave_following_a_returning_old_master_is_repointed_with_it() -> None:
    # The hour-long soak: S3, an old master of the group, came back from its RDB (a fresh replication id) and
    # S1 went on replicating from it; taking S1's copy of S3's data for foreign data skipped the whole group for
    # good (S3 was not re-added either). Both are brought under the master, their data reported as replaced.
    g = group((S2, "master"), (S1, "slave"), (S3, "offline"))
    p = probes(master(S2, 3800000, replid="d" * 40, keys=86000),
               slave(S1, of=S3, offset=2652781, replid="e" * 40, keys=62198),
               master(S3, 2652781, replid="e" * 40, keys=62198))
    d = plan_group(g, p, POLICY)
    assert d.decision == REPAIR and sorted((a.action, a.server) for a in d.actions) == [(READD, S3), (REPOINT, S1)]
    [repoint] = [a for a in d.actions if a.action == REPOINT]
    assert "an old master of the group that came back" in repoint.reason and "62198 keys" in repoint.reason
    # A slave of that server holding another history (its own writes) is still kept for an operator.
    other = dict(p, **{S1: slave(S1, of=S3, offset=2652781, replid="f" * 40, keys=62198)})
    assert plan_group(g, other, POLICY).decision == SKIPPED


def test_a_slave_restarted_from_the_rdb_of_an_old_full_sync_holds_the_lineage_not_foreign_data() -> None:
    # The hour-long soak (seed 2 again): Redis restarts a former replica from its RDB with a new replication id,
    # the RDB's history as the one it went on from (second_repl_offset = the RDB's offset + 1), nothing of its own.
    # Re-added under a master that then died, it was kept as the keeper of foreign data: 19 s without a master
    # when the next master died, the slave never brought under it.
    b, d = "b" * 40, "d" * 40
    g = group((S2, "master"), (S1, "slave"), (S3, "offline"))
    p = probes(master(S2, 3100000, replid=d, replid2="c" * 40, second_offset=3079925, keys=70000),
               slave(S1, of=S3, offset=2142514, replid="9" * 40, replid2=b, second_offset=2142515, keys=50331,
                     link_up=False, syncing=True), dead(S3))
    lineage = {b: 2600000, "c" * 40: 3079924, d: 3100000}
    known = plan_group(g, p, POLICY, GroupHistory(master=S2, seen_alive_at=99.0, lineage=lineage), now=100.0)
    assert known.decision == REPAIR and [(a.action, a.server) for a in known.actions] == [(REPOINT, S1)], known.reason
    blind = plan_group(g, p, POLICY, GroupHistory(master=S2, seen_alive_at=99.0), now=100.0)
    assert blind.decision == SKIPPED and "holds 50331 keys" in blind.reason


def test_a_master_loading_an_old_rdb_is_replaced_before_its_slaves_copy_it() -> None:
    # The hour-long soak (session 8): a master killed and restarted at once loads the RDB of an old full sync; the
    # pass said "loading, waiting for it", recorded the history it answered meanwhile, and the slaves then copied
    # the old data set: every write since that RDB gone, 13 to 17 % of the acknowledged writes in an hour.
    from ansible_collections.codis.ha.plugins.module_utils._state import next_history

    r, old, fresh = "a" * 40, "e" * 40, "f" * 40
    record = GroupHistory(master=M, master_offset=5000, master_replid=r, seen_alive_at=99.0, master_keys=900)
    loading = ProbeResult(M, ALIVE, role="master", offset=3000, replid=fresh, replid2=old, second_offset=3001,
                          keys=500, loading=True)
    p = probes(loading, slave(S1, offset=5000, replid=r, keys=900, link_up=False),
               slave(S2, offset=4990, replid=r, keys=899, link_up=False))
    d = plan_group(G3, p, POLICY, record, now=100.0)
    assert d.decision == FAILOVER and [(a.action, a.server) for a in d.actions] == [(PROMOTE, S1), (REPOINT, S2)]
    assert "lost its data" in d.reason
    # The record is not replaced by what a loading master answers: the next pass still has the evidence.
    kept = next_history({1: record}, [G3], p, [], {}, 100.0)[1]
    assert kept.master_replid == r and kept.master_offset == 5000
    # A loading master whose history this pass cannot read is waited for, as before.
    blind = dict(p, **{M: ProbeResult(M, ALIVE, "loading", 1, loading=True)})
    assert plan_group(G3, blind, POLICY, record, now=100.0).decision == SKIPPED


def test_a_role_master_slave_of_a_redis_without_replication_ids_holding_more_is_not_discarded() -> None:
    # The real Codis 3.2 (codis-server is Redis 3.2: INFO has no master_replid): a promotion left half done, the
    # other slave behind. The pass promoted the one behind and re-pointed the one holding every write at it.
    # Redis 3.2 restarts the offset of a slave promoted by SLAVEOF NO ONE at 0: its keys tell what it holds.
    p = probes(dead(M), slave_after_master_died(S1, 17055, keys=400),
               ProbeResult(S2, ALIVE, role="master", offset=0, keys=900))
    d = plan_group(G3, p, POLICY)
    assert d.decision == REFUSED and not d.actions and d.master_down, d.reason
    assert "%s answers role master with more data (offset 0, 900 keys against 400)" % S2 in d.reason
    assert "reports no replication ID: Redis before 4.0" in d.reason and "an operator must decide" in d.reason
    # Holding no more than the candidate, it loses nothing by following it.
    p[S2] = ProbeResult(S2, ALIVE, role="master", offset=0, keys=400)
    d = plan_group(G3, p, POLICY)
    assert [(a.action, a.server) for a in d.actions] == [(PROMOTE, S1), (REPOINT, S2)], d.reason


def test_without_a_record_slaves_all_cut_off_long_ago_are_not_promoted_blind() -> None:
    # The module without a state file: both slaves' links cut 50 minutes ago, the master killed now. Their link-down
    # ages alone made them look as fresh as the master's death: one was promoted, 500 of 600 writes lost.
    p = probes(dead(M), slave_after_master_died(S1, 100, link_down_seconds=3000),
               slave_after_master_died(S2, 90, link_down_seconds=3001))
    d = plan_group(G3, p, POLICY)
    assert d.decision == REFUSED and not d.actions and d.master_down, d.reason
    assert "every slave lost its link at least 3000 s ago" in d.reason and "state_path" in d.reason
    # A pass that saw the master alive dates its death: the same slaves are stale, and said so.
    seen = GroupHistory(master=M, seen_alive_at=99.0)
    assert plan_group(G3, p, POLICY, seen, now=100.0).decision == NO_CANDIDATE
    # One slave that lost its link recently dates it too.
    p[S2] = slave_after_master_died(S2, 90, link_down_seconds=2)
    assert [a.server for a in plan_group(G3, p, POLICY).actions if a.action == PROMOTE] == [S2]


def test_slaves_still_in_a_full_syncs_handshake_with_an_unreachable_master_are_waited_for() -> None:
    """A soak: the watcher cut off from a master promoted and given its slaves seconds before, both slaves waiting
    out its diskless sync delay (ROLE `handshake`, link down); the pass promoted one of them, which held none of
    the master's writes since its promotion."""
    silent = ProbeResult(M, DOWN, "Timeout", 2, down_for=2.2)
    waiting = probes(slave_after_master_died(S1, link_state="handshake"),
                     slave_after_master_died(S2, link_state="handshake"))
    fresh = GroupHistory(master=M, seen_alive_at=97.0, sync_delay=5)
    decision = plan_group(G3, dict(waiting, **{M: silent}), POLICY, fresh, now=100.0)
    assert decision.decision == REFUSED and not decision.master_down, decision.reason
    assert "%s, %s are in a full sync's handshake" % (S1, S2) in decision.reason, decision.reason
    assert "waiting up to 10 s" in decision.reason, decision.reason
    # A master that froze then is failed over once the delay and the grace have passed since it was last seen;
    # the delay is the master's own (read while it was alive), Redis's 5 s when never read.
    assert plan_group(G3, dict(waiting, **{M: silent}), POLICY, fresh, now=107.1).decision == FAILOVER
    slow = GroupHistory(master=M, seen_alive_at=97.0, sync_delay=30)
    assert plan_group(G3, dict(waiting, **{M: silent}), POLICY, slow, now=120.0).decision == REFUSED
    unknown = GroupHistory(master=M, seen_alive_at=97.0)
    assert plan_group(G3, dict(waiting, **{M: silent}), POLICY, unknown, now=106.0).decision == REFUSED
    # Not waited for: a refused connection (the process is dead), slaves merely reconnecting (`connect`), no record
    # of the master alive, and force.
    killed = ProbeResult(M, DOWN, "Connection refused", 2, refused=True, down_for=2.2)
    assert plan_group(G3, dict(waiting, **{M: killed}), POLICY, fresh, now=100.0).decision == FAILOVER
    reconnecting = probes(slave_after_master_died(S1, link_state="connect"),
                          slave_after_master_died(S2, link_state="connecting"))
    assert plan_group(G3, dict(reconnecting, **{M: silent}), POLICY, fresh, now=100.0).decision == FAILOVER
    assert plan_group(G3, dict(waiting, **{M: silent}), POLICY, None, now=100.0).decision == FAILOVER
    forced = Policy(force=True)
    assert plan_group(G3, dict(waiting, **{M: silent}), forced, fresh, now=100.0).decision == FAILOVER


def test_a_live_masters_ping_period_is_brought_down_to_max_ping_period() -> None:
    capped = Policy(max_ping_period=1)
    healthy = probes(master(M, ping_period=10), slave(S1), slave(S2))
    decision = plan_group(G3, healthy, capped, None)
    [action] = decision.actions
    assert decision.decision == HEALTHY and action.action == SET_PING_PERIOD and action.period == 1
    assert action.server == M and "repl-ping-replica-period is 10 s" in action.reason
    # Nothing to do: at or below the cap, a period the pass could not read, the option off.
    for seen, policy in ((master(M, ping_period=1), capped), (master(M), capped), (master(M, ping_period=10), POLICY)):
        assert plan_group(G3, dict(healthy, **{M: seen}), policy, None).actions == ()
    # A degraded master is capped too (it is the group's working master); a master the pass fails over is not.
    alone = probes(master(M, ping_period=10), slave_after_master_died(S1), slave_after_master_died(S2))
    assert [a.action for a in plan_group(G3, alone, capped, None).actions] == [SET_PING_PERIOD]
    gone = probes(ProbeResult(M, DOWN, "refused", 2, refused=True, down_for=2.0), slave_after_master_died(S1),
                  slave_after_master_died(S2, offset=90))
    failover = plan_group(G3, gone, capped, None, now=100.0)
    assert failover.decision == FAILOVER and SET_PING_PERIOD not in [a.action for a in failover.actions]
    # Check mode's predicted topology keeps the master a master.
    topology = Topology((G3,))
    predicted = predict(topology, plan(topology, healthy, capped))
    assert predicted.groups[0].snapshot() == G3.snapshot()


# ------------------------------------------------------------------ proxies (Codis 3)
def _proxy_topology(**proxy: Any) -> Topology:
    return Topology((G3,), proxies=(Proxy("p1", "10.0.0.9:11080", **proxy),), demoted_type="slave")


MASTER_DIED = probes(dead(M), slave_after_master_died(S1, 90), slave_after_master_died(S2, 100))


def test_a_proxy_silent_here_while_the_dashboards_poll_has_not_failed_holds_the_failover_back() -> None:
    """The dashboard gives a silent proxy a second and polls every second or two: a proxy that just stopped still
    looks alive to it, and a promote sent then waits on it with the dashboard's whole API (seen in CI)."""
    for view in (True, None):
        [d] = plan(_proxy_topology(dashboard_alive=view, refused=False, silent=True), MASTER_DIED, POLICY).decisions
        assert (d.decision, d.actions) == (REFUSED, ()), d
        assert "proxy p1 (10.0.0.9:11080) is silent to an HTTP request" in d.reason
        assert "waits for the dashboard's next poll" in d.reason


def test_a_proxy_silent_here_and_failed_in_the_dashboards_poll_is_removed_before_the_promote() -> None:
    [d] = plan(_proxy_topology(dashboard_alive=False, refused=False, silent=True), MASTER_DIED, POLICY).decisions
    assert [(a.action, a.server) for a in d.actions][:2] == [(REMOVE_PROXY, "10.0.0.9:11080"), (PROMOTE, S2)]
    assert "is hung" in d.actions[0].reason


def test_a_proxy_that_answers_here_or_was_not_looked_at_does_not_hold_a_failover() -> None:
    for checked in ({}, {"dashboard_alive": True, "refused": False, "silent": False}):
        [d] = plan(_proxy_topology(**checked), MASTER_DIED, POLICY).decisions
        assert [a.action for a in d.actions][0] == PROMOTE, d


def test_a_doubtful_proxy_leaves_a_healthy_group_alone() -> None:
    [d] = plan(_proxy_topology(dashboard_alive=True, refused=True),
               probes(master(M), slave(S1), slave(S2)), POLICY).decisions
    assert d.decision == HEALTHY


# ------------------------------------------------------------------ a former master promoted back
# The real Codis 2 soak: group 3's master S2 froze; the promote of S1 waited 47 s for a proxy, and S1 was killed
# meanwhile. S2 thawed (listed offline, still role master with every write) and S3 followed it; the passes said
# "no candidate" for 5 s, then skipped the group while S1 loaded, beside a second writable master.
FORMER = group((S1, "master"), (S2, "offline"), (S3, "slave"))
R_OLD = "a" * 40


def _former_probes(**former: Any) -> dict[str, ProbeResult]:
    former.setdefault("replid", R_OLD)
    return probes(ProbeResult(S1, DOWN, "Connection refused", 2, refused=True),
                  master(S2, former.pop("offset", 1000), **former), slave(S3, of=S2, offset=1000, replid=R_OLD))


def test_a_former_master_holding_the_groups_history_is_promoted_back_when_no_slave_can_take_over() -> None:
    history = GroupHistory(master=S1, lineage={R_OLD: 990})
    d = plan_group(FORMER, _former_probes(), POLICY, history)
    assert d.decision == FAILOVER and [(a.action, a.server) for a in d.actions] == [(PROMOTE, S2)], d
    assert "no slave can take over" in d.reason and "promoting it back" in d.reason and d.data_loss is None


def test_the_dead_masters_writes_since_the_former_master_are_reported_lost() -> None:
    d = plan_group(FORMER, _former_probes(), POLICY, GroupHistory(master=S1, lineage={R_OLD: 990, "b" * 40: 1500}))
    assert d.decision == FAILOVER and "at least 500 bytes" in (d.data_loss or ""), d


def test_a_former_master_is_not_promoted_back_without_proof_that_it_holds_the_groups_history() -> None:
    cases = {
        "its history is not the group's (restarted without its data)": (_former_probes(replid="c" * 40), {R_OLD: 990}),
        "it holds less of it than the group had": (_former_probes(offset=500), {R_OLD: 990}),
        "no record of the group's histories": (_former_probes(), {}),
        "still loading": (_former_probes(loading=True), {R_OLD: 990}),
    }
    for what, (seen, lineage) in cases.items():
        d = plan_group(FORMER, seen, POLICY, GroupHistory(master=S1, lineage=lineage))
        assert d.decision == NO_CANDIDATE and d.actions == (), what


def test_a_former_master_is_not_promoted_back_while_the_listed_master_may_be_alive_and_cut_off() -> None:
    """No slave follows the listed master, so none can witness it: only a refused connection proves it dead."""
    seen = _former_probes()
    seen[S1] = ProbeResult(S1, DOWN, "Timeout connecting to server", 2)
    d = plan_group(FORMER, seen, POLICY, GroupHistory(master=S1, lineage={R_OLD: 990}))
    assert d.decision == NO_CANDIDATE and d.actions == () and "may be alive and cut off from here" in d.reason, d


def test_a_former_master_is_not_promoted_back_over_a_live_server_that_does_not_follow_it() -> None:
    """A slave of the dead master that is alive (here: its link down since long before, stale) may hold the
    dead master's writes that the former master lacks."""
    seen = _former_probes()
    seen[S3] = slave_after_master_died(S3, of=S1, offset=1200, link_down_seconds=500)
    d = plan_group(FORMER, seen, POLICY, GroupHistory(master=S1, seen_alive_at=998.0, lineage={R_OLD: 990}), 1000.0)
    assert d.decision == NO_CANDIDATE and d.actions == () and "stale" in d.reason, d
