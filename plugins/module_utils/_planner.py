# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The failover decision: topology + probe results + policy -> actions, each with its reason.

Pure: no sockets, no HTTP, no clock. Read `plan_group` top to bottom: every branch ends in a decision
and a sentence that says why. Refusals are decisions too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

from ansible_collections.codis.ha.plugins.module_utils._topology import (
    AUTH_ERROR,
    ERROR,
    KNOWN_TYPES,
    GroupHistory,
    ProbeResult,
    Proxy,
    Server,
    ServerGroup,
    Topology,
    Word,
    same_server,
)


class ActionKind(Word):
    """What the executor does to one server (or proxy) through the dashboard."""
    PROMOTE = "promote"
    REPOINT = "repoint"
    READD = "readd"
    REMOVE_PROXY = "remove_proxy"
    SET_PING_PERIOD = "set_ping_period"  # the only one sent to Redis itself (CONFIG SET), not to the dashboard
    REMOVE_STALE_LOCK = "remove_stale_lock"  # Codis 2: decided by the pass from its state file, not planned


class Verdict(Word):
    """What the planner decided for one group."""
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    REPAIR = "repair"
    FAILOVER = "failover"
    NO_CANDIDATE = "no_candidate"
    SKIPPED = "skipped"
    REFUSED = "refused"


PROMOTE, REPOINT, READD, REMOVE_PROXY = (ActionKind.PROMOTE, ActionKind.REPOINT, ActionKind.READD,
                                         ActionKind.REMOVE_PROXY)
SET_PING_PERIOD, REMOVE_STALE_LOCK = ActionKind.SET_PING_PERIOD, ActionKind.REMOVE_STALE_LOCK
HEALTHY, DEGRADED, REPAIR, FAILOVER = Verdict.HEALTHY, Verdict.DEGRADED, Verdict.REPAIR, Verdict.FAILOVER
NO_CANDIDATE, SKIPPED, REFUSED = Verdict.NO_CANDIDATE, Verdict.SKIPPED, Verdict.REFUSED


# A slave whose link is up and heard from the master this recently is a witness that the master is alive, when
# the master's ping period is not known: above Redis's default 10 s so that an idle healthy master still counts.
WITNESS_WINDOW_UNKNOWN_PERIOD = 15.0


@dataclass(frozen=True)
class Policy:
    repoint_slaves: bool = True
    reuse_offline: bool = True
    groups: Optional[frozenset[int]] = None
    down_after: float = 0.0
    min_failover_interval: float = 300.0
    stale_margin: float = 10.0
    max_data_loss_bytes: Optional[int] = None
    max_failovers_per_pass: Optional[int] = None
    force: bool = False
    remove_dead_proxies: bool = True
    max_ping_period: int = 0


@dataclass(frozen=True)
class Action:
    group: int
    action: ActionKind
    server: str
    previous_master: Optional[str]
    master: str  # the master of the group once this action is done
    reason: str
    proxy: Optional[str] = None  # the proxy's token, for remove_proxy
    period: Optional[int] = None  # the ping period to set, for set_ping_period

    def as_dict(self) -> dict[str, object]:
        return {"group": self.group, "action": str(self.action), "server": self.server,
                "previous_master": self.previous_master, "reason": self.reason}


@dataclass(frozen=True)
class GroupDecision:
    group: int
    decision: Verdict
    reason: str
    master: Optional[str] = None
    actions: tuple[Action, ...] = ()
    # The pass judged the master down (after the second opinion): the down_after clock runs only then.
    master_down: bool = False
    # Several watchers: the change was left to this one, which holds the cluster's lock (not a failure here).
    deferred_to: Optional[str] = None
    # The group fails over again within min_failover_interval of its last failover: done, and reported.
    flapping: bool = False
    # Acknowledged writes that no server holds any more (a master restarted without its data), in a sentence.
    data_loss: Optional[str] = None
    # The master's record still holds evidence the next pass needs (the history a restarted master lost, while
    # a slave still holds it): the pass must not replace it with what the master answers now.
    keep_record: bool = False


@dataclass(frozen=True)
class Plan:
    decisions: tuple[GroupDecision, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def actions(self) -> list[Action]:
        return [a for d in self.decisions for a in d.actions]

    @property
    def skipped(self) -> list[GroupDecision]:
        return [d for d in self.decisions if d.decision in (SKIPPED, REFUSED)]

    def withheld(self, decision: Verdict, reason: str, deferred_to: Optional[str] = None) -> "Plan":
        """The same plan with every change held back: each decision that had actions becomes `decision`, without
        them, its reason prefixed with why."""
        return replace(self, decisions=tuple(held_back(d, reason, decision, deferred_to) if d.actions else d
                                             for d in self.decisions))


def held_back(decision: GroupDecision, why: str, becomes: str = REFUSED,
              deferred_to: Optional[str] = None) -> GroupDecision:
    """The decision with its actions held back: it becomes `becomes` (a refusal), its reason prefixed with why."""
    return replace(decision, decision=becomes, actions=(), reason="%s; %s" % (why, decision.reason),
                   deferred_to=deferred_to)


DOWN_AFTER_SLACK = 0.1
# A master's replication cron may run late by a fraction of a second under load: its pings are not exact.
STILL_SLACK = 0.5
# Redis's repl-diskless-sync-delay when the master's own was never read, and the time beyond it that a slave in a
# full sync's handshake is waited for (the transfer of a small data set and a pass's interval).
DEFAULT_SYNC_DELAY = 5
SYNC_GRACE = 5.0


def plan(topology: Topology, probes: dict[str, ProbeResult], policy: Policy,
         history: Optional[dict[int, GroupHistory]] = None, now: float = 0.0) -> Plan:
    groups = [g for g in sorted(topology.groups, key=lambda g: g.id)
              if policy.groups is None or g.id in policy.groups]
    # A refused password says nothing about a server's health: the groups that hold such a server are not
    # planned, the others are (during a password rotation the rest of the cluster stays protected). The pass
    # still fails, so that the refusal is seen.
    decisions = [plan_group(g, probes, policy, (history or {}).get(g.id), now) for g in groups]
    decisions = clear_dead_proxies(limit_failovers(decisions, policy), topology, policy)
    return Plan(tuple(decisions), tuple(_auth_errors(groups, probes)))


def clear_dead_proxies(decisions: list[GroupDecision], topology: Topology, policy: Policy) -> list[GroupDecision]:
    """A dead proxy that the dashboard still lists makes every Codis 3 promote fail and leaves the group
    'promoting' for an operator (measured on the real binaries). Codis 3's own codis-ha removes it first; so
    does this pass, before its first promotion, unless remove_dead_proxies is off: then nothing is promoted."""
    dead = [p for p in topology.proxies if p.dead or p.hung]
    doubtful = [p for p in topology.proxies if p.doubtful]
    failovers = [d for d in decisions if d.decision == FAILOVER]
    if not failovers:
        return decisions
    if doubtful:
        why = ("proxy %s: a promote now could wait on it with the dashboard's whole API for a minute, or fail and "
               "leave the group promoting; the failover waits for the dashboard's next poll of it (a few seconds)"
               % _named(doubtful))
        return [held_back(d, why) if d.decision == FAILOVER else d for d in decisions]
    if not dead:
        return decisions
    names = _named(dead)
    if not policy.remove_dead_proxies:
        why = ("proxy %s and still registered: a promote would fail (a hung one would also hold the dashboard's "
               "whole API about two minutes) and leave the group promoting; remove it, or set remove_dead_proxies"
               % names)
        return [held_back(d, why) if d.decision == FAILOVER else d for d in decisions]
    first = failovers[0]
    # A hung proxy's removal holds the dashboard's API until the dashboard's own call to it gives up (60 s,
    # measured on Codis 3.2); a promote sent meanwhile would wait behind it and then for the proxy again.
    removals = tuple(Action(first.group, REMOVE_PROXY, p.admin_addr, None, first.master or "",
                            "proxy %s at %s is %s and would make the promote fail; removed from the dashboard first"
                            % (p.token, p.admin_addr, p.state), proxy=p.token) for p in dead)
    return [replace(d, actions=removals + d.actions) if d is first else d for d in decisions]


def _named(proxies: list[Proxy]) -> str:
    return "; ".join("%s (%s) is %s" % (p.token, p.admin_addr, p.state) for p in proxies)


def limit_failovers(decisions: list[GroupDecision], policy: Policy) -> list[GroupDecision]:
    """Many masters down at once, seen from one host, usually means that host is the one cut off."""
    failovers = [d for d in decisions if d.decision == FAILOVER]
    limit = policy.max_failovers_per_pass
    if limit is None or len(failovers) <= limit or policy.force:
        return decisions
    why = ("%d groups would fail over in one pass, above max_failovers_per_pass=%d: this host is probably "
           "cut off from the masters, so none is failed over (force overrides)" % (len(failovers), limit))
    return [held_back(d, why) if d.decision == FAILOVER else d for d in decisions]


def plan_group(group: ServerGroup, probes: dict[str, ProbeResult], policy: Policy,
               history: Optional[GroupHistory] = None, now: float = 0.0) -> GroupDecision:
    problem = group_problem(group, probes)
    if problem and group.promoting and problem == group.busy:
        return _resume_promotion(group, probes, policy, history, now)
    if problem:
        return GroupDecision(group.id, SKIPPED, problem)
    master = group.master
    if master is None:  # group_problem() has ruled this out; kept for the type checker
        return GroupDecision(group.id, SKIPPED, "no single master")
    seen = probes[master.addr]
    # Only what earlier passes saw of this very master is evidence about it.
    record = history if history is not None and history.master == master.addr else None
    # The histories the group's masters held, whoever the master was: data a replica holds of one of them, up to
    # where the group went on from it, is data the group's master holds too.
    lineage = dict(history.lineage or {}) if history is not None else {}

    if seen.alive:
        return _plan_live_master(group, master.addr, seen, probes, policy, record, lineage)
    return _plan_dead_master(group, master, probes, policy, history, record, lineage, now)


def _plan_dead_master(group: ServerGroup, master: Server, probes: dict[str, ProbeResult], policy: Policy,
                      history: Optional[GroupHistory], record: Optional[GroupHistory], lineage: dict[str, int],
                      now: float) -> GroupDecision:
    """A master that did not answer: a second opinion (its slaves, the dashboard's own poll), down_after, then
    the failover."""
    seen = probes[master.addr]
    down = "master %s is down (%d failed probe(s): %s)" % (master.addr, seen.attempts, seen.error)
    witnesses = master_witnesses(group, master.addr, probes, policy, record)
    if witnesses:
        return GroupDecision(group.id, REFUSED, "master %s is unreachable from here, seen alive by %s; "
                             "not failing over a master that its slaves still see"
                             % (master.addr, ", ".join(witnesses)), master.addr)
    if master.dashboard_alive and not policy.force:
        return GroupDecision(group.id, REFUSED, "master %s is unreachable from here, but the dashboard's own "
                             "fresh poll of it succeeded; not failing over a master the dashboard still reaches "
                             "(force overrides)" % master.addr, master.addr)
    syncing = slaves_still_syncing(group, master.addr, probes, record, now)
    if syncing and not seen.refused and not policy.force:
        return GroupDecision(group.id, REFUSED, "master %s is unreachable from here and its slaves cannot say yet "
                             "whether it lives: %s; not failing over a master its slaves are still connecting to "
                             "(force overrides)" % (master.addr, syncing), master.addr)
    # From here on the master is judged down: the down_after clock runs (a refusal above does not start it), and
    # it includes this pass's own attempts: a master silent through them all was down that long.
    down_for = (max(now - record.down_since, 0.0) if record and record.down_since is not None else 0.0) + seen.down_for
    # Passes an interval apart read their clocks a few milliseconds apart: 1.0 s of down_after is met by two
    # passes 0.998 s apart (DOWN_AFTER_SLACK), not by a third pass a whole interval later.
    if down_for + DOWN_AFTER_SLACK < policy.down_after and not policy.force:
        return GroupDecision(group.id, REFUSED, "%s, seen down for %.1f s so far; down_after is %s s, waiting "
                             "for later passes to confirm" % (down, down_for, policy.down_after), master.addr,
                             master_down=True)
    decision = _plan_failover(group, master.addr, down, probes, policy, record, lineage,
                              _outage(group, master.addr, probes, record, down_for, now))
    # Anti-flapping never keeps a group dead: a master judged down after the second opinion is failed over
    # however recently the group last failed over (refusing left a group without a master for 44 s in a soak,
    # and then its slaves copied the empty data set of the killed master restarted in place). A second failover
    # within min_failover_interval is reported as flapping instead, for an operator to find out why.
    since_failover = now - history.last_failover_at if history and history.last_failover_at else None
    if decision.decision != FAILOVER or since_failover is None or since_failover >= policy.min_failover_interval:
        return decision
    return replace(decision, flapping=True, reason=decision.reason + (
        "; the group last failed over %.0f s ago, inside min_failover_interval (%s s): flapping, find out why its "
        "masters keep failing" % (since_failover, policy.min_failover_interval)))


def _plan_failover(group: ServerGroup, master_addr: str, down: str, probes: dict[str, ProbeResult], policy: Policy,
                   record: Optional[GroupHistory], lineage: dict[str, int], outage: float) -> GroupDecision:
    """The master is judged down: which server takes over, or why none may. Every refusal names its reason."""
    known_offset = record.master_offset if record else None
    candidate, exclusions = select_candidate(group, master_addr, probes, policy, outage, known_offset)
    finishing = half_done_promotion(group, master_addr, probes, record,
                                    probes[candidate] if candidate is not None else None)
    if finishing is not None and (candidate is None or (probes[finishing].offset or 0) >= (
            probes[candidate].offset or 0)):
        # The dashboard sent SLAVEOF NO ONE to this slave and then failed to record it: it holds the newest
        # data, so the promotion to make is that one; promoting another would make it lose its writes.
        candidate = finishing
        why = ("%s; %s already answers role master with the newest data (offset %d, continued from the master's "
               "history): finishing a half-done promotion" % (down, finishing, probes[finishing].offset or 0))
    elif candidate is None:
        return _without_a_slave(group, master_addr, probes, policy, lineage, "%s and no slave can take over: %s" % (
            down, _explain(exclusions) or "the group has no slave"))
    elif (richer := _richer_unplaced(group, probes, probes[candidate])):
        # Another tool promoted it from a history this pass cannot place (INFO shows one generation back): the
        # promotion would re-point it into a full sync from a server with less (the long chaos run: a slave
        # half-promoted twice and pointed back at the dead master by an operator, beside a half-done promotion
        # holding every write).
        return GroupDecision(group.id, REFUSED, "%s; %s; promoting %s (offset %d) would discard it: an operator "
                             "must decide" % (down, richer, candidate,
                                              probes[candidate].offset or 0), master_addr, master_down=True)
    elif (blind := _blind_failover(group, master_addr, probes, record, probes[candidate], policy)):
        return GroupDecision(group.id, REFUSED, "%s; %s" % (down, blind), master_addr, master_down=True)
    else:
        why = "%s; %s has the highest replication offset (%d) among eligible slaves" % (
            down, candidate, probes[candidate].offset or 0)
    if known_offset is not None:
        why += " (%d bytes behind the master's last known offset %d)" % (
            max(known_offset - (probes[candidate].offset or 0), 0), known_offset)
    if exclusions:
        why += "; not eligible: %s" % _explain([e for e in exclusions if e[0] != candidate])
    actions, why = _promotion(group, master_addr, probes[candidate], probes, policy, why, exclude=(master_addr,),
                              lineage=lineage)
    return GroupDecision(group.id, FAILOVER, why, candidate, actions, master_down=True)


def former_master(group: ServerGroup, master: str, probes: dict[str, ProbeResult],
                  lineage: dict[str, int]) -> Optional[str]:
    """A server of the group that the dashboard no longer lists as master (Codis 2: offline; Codis 3: a slave)
    and that still answers role master with a history the group's masters held, all of it the group is known to
    have had: the master a promotion set aside (a frozen one that thawed), not yet re-added. It is the one to
    promote back when the listed master is down and no slave can take over, provided every other server of the
    group is down or replicates from it: then nothing alive holds data it lacks (the real Codis 2 soak: the
    server being promoted was killed while its promote waited 47 s for a proxy, and the group sat without a
    master beside its thawed old master and that one's slave, both holding every write)."""
    found = [p for p in (probes[s.addr] for s in group.servers if s.addr != master and s.type in ("offline", "slave"))
             if p.alive and p.role == "master" and not p.loading and p.offset is not None and p.priority != 0
             and p.replid in lineage and p.offset >= lineage[p.replid]]
    if len(found) != 1:
        return None
    [former] = found
    others = [probes[s.addr] for s in group.servers if s.addr not in (master, former.addr)]
    if not all(not p.alive or p.replicates_from(former.addr) for p in others):
        return None
    return former.addr


def _without_a_slave(group: ServerGroup, master: str, probes: dict[str, ProbeResult], policy: Policy,
                     lineage: dict[str, int], why: str) -> GroupDecision:
    """No slave can take over from the dead master: its former master promoted back, or no candidate."""
    former = former_master(group, master, probes, lineage)
    if former is None:
        return GroupDecision(group.id, NO_CANDIDATE, why, master, master_down=True)
    if not probes[master].refused:
        # No slave follows the listed master here, so none can say it lives: only a refused connection (the host
        # answered, nothing listens) proves it dead. A silent one may be alive and cut off from here.
        return GroupDecision(group.id, NO_CANDIDATE, "%s; %s, a master of the group before it, holds the group's "
                             "history, but master %s did not refuse the connection (it timed out): it may be alive "
                             "and cut off from here, so %s is not promoted back" % (why, former, master, former),
                             master, master_down=True)
    return _promote_former_master(group, master, probes, policy, lineage, why, probes[former])


def _promote_former_master(group: ServerGroup, master: str, probes: dict[str, ProbeResult], policy: Policy,
                           lineage: dict[str, int], why: str, former: ProbeResult) -> GroupDecision:
    why = ("%s; %s, a master of the group before it, answers role master with its history (%s) to offset %d, all "
           "of it the group is known to have held, and every other live server replicates from it: promoting it "
           "back" % (why, former.addr, former.replid, former.offset or 0))
    # Offsets run on from one history to the next: a later history seen further than this one holds is the
    # dead master's writes since the group went on from it, gone unless it comes back with them.
    further = max(lineage.values(), default=0) - (former.offset or 0)
    loss = ("the writes master %s took after the group went on from %s (at least %d bytes of replication "
            "stream) are gone unless it comes back with them" % (master, former.addr, further)) if further > 0 else None
    actions, why = _promotion(group, master, former, probes, policy, why, exclude=(master,), lineage=lineage)
    return GroupDecision(group.id, FAILOVER, why, former.addr, actions, master_down=True, data_loss=loss)


def _promotion(group: ServerGroup, old_master: str, candidate: ProbeResult, probes: dict[str, ProbeResult],
               policy: Policy, why: str, exclude: tuple[str, ...],
               lineage: Optional[dict[str, int]] = None) -> tuple[tuple[Action, ...], str]:
    """The promote and the actions that bring the rest of the group under the new master, and the decision's
    reason with the servers kept out of a full sync (the promote's own reason is `why` as given)."""
    promote = Action(group.id, PROMOTE, candidate.addr, old_master, candidate.addr, why)
    after = group.with_types({old_master: "offline", candidate.addr: "master"})
    followers, kept = repair_actions(after, candidate.addr, probes, policy, exclude=exclude, ceiling=candidate,
                                     lineage=lineage)
    return (promote,) + tuple(followers), ("%s; %s" % (why, kept) if kept else why)


def _resume_promotion(group: ServerGroup, probes: dict[str, ProbeResult], policy: Policy,
                      history: Optional[GroupHistory], now: float) -> GroupDecision:
    """The dashboard stopped half way through promoting a server (Codis 3 leaves the group 'promoting'). It
    accepts a promote of that same server again, which resumes its state machine; anything else it refuses. So
    the group is planned as if it were free, and resumed only if the plan promotes that very server."""
    decision = plan_group(replace(group, busy=None, promoting=None), probes, policy, history, now)
    if decision.decision == FAILOVER and decision.actions and decision.actions[0].server == group.promoting:
        why = "resuming the dashboard's unfinished promotion of %s: %s" % (group.promoting, decision.reason)
        first = replace(decision.actions[0], reason=why)
        return replace(decision, reason=why, actions=(first,) + decision.actions[1:])
    would = ("the pass would promote %s instead" % decision.actions[0].server
             if decision.decision == FAILOVER and decision.actions else "the pass would not promote it (%s: %s)"
             % (decision.decision.replace("_", " "), decision.reason))
    return GroupDecision(group.id, SKIPPED, "%s; %s" % (group.busy, would), decision.master,
                         master_down=decision.master_down)


def _plan_live_master(group: ServerGroup, master: str, seen: ProbeResult, probes: dict[str, ProbeResult],
                      policy: Policy, record: Optional[GroupHistory] = None,
                      lineage: Optional[dict[str, int]] = None) -> GroupDecision:
    if seen.loading:
        # A master loading a data set was restarted: from the RDB of an old full sync (Redis replicas write one by
        # default), its slaves about to copy it once it is loaded. Its history already tells (the hour-long soak:
        # "loading, waiting for it", then the slaves' full sync, and every write since that RDB gone).
        lost = lost_history(group, master, seen, probes, record) if seen.replid else None
        if lost is not None:
            return _plan_lost_history(group, master, seen, probes, policy, lost, lineage)
        return GroupDecision(group.id, SKIPPED, "master %s is loading its dataset; waiting for it" % master, master)
    if seen.role != "master":
        return GroupDecision(group.id, SKIPPED, "master %s is alive but reports role %s (of %s); an operator "
                             "must decide which server is the master" % (master, seen.role, seen.master_addr),
                             master)
    lost = lost_history(group, master, seen, probes, record)
    if lost is not None:
        return _plan_lost_history(group, master, seen, probes, policy, lost, lineage)
    return with_ping_period(_plan_healthy_master(group, master, seen, probes, policy, lineage), seen, policy)


def with_ping_period(decision: GroupDecision, seen: ProbeResult, policy: Policy) -> GroupDecision:
    """The decision for a live master, with its ping period brought down to max_ping_period when it is above. Only
    where the pass knows the server is the group's working master (healthy, degraded, repaired) and read its
    period: a server it cannot identify, or whose CONFIG it cannot read, is left alone."""
    if (not policy.max_ping_period or seen.ping_period is None or seen.ping_period <= policy.max_ping_period
            or decision.decision not in (HEALTHY, DEGRADED, REPAIR)):
        return decision
    action = Action(decision.group, SET_PING_PERIOD, seen.addr, seen.addr, seen.addr,
                    "its repl-ping-replica-period is %d s: a frozen master's silence is told from an idle one's only "
                    "after a period and a half; set to %d s (max_ping_period)"
                    % (seen.ping_period, policy.max_ping_period), period=policy.max_ping_period)
    return replace(decision, actions=decision.actions + (action,))


def _plan_healthy_master(group: ServerGroup, master: str, seen: ProbeResult, probes: dict[str, ProbeResult],
                         policy: Policy, lineage: Optional[dict[str, int]] = None) -> GroupDecision:
    actions, kept = repair_actions(group, master, probes, policy, exclude=(), ceiling=seen, lineage=lineage)
    if kept:
        # Writes went to a server the dashboard does not route to (a half-done promotion while the master
        # lived on, an operator's SLAVEOF NO ONE): neither side may be discarded by the tool.
        return GroupDecision(group.id, SKIPPED, "master %s is alive, but %s" % (master, kept), master)
    if actions:
        return GroupDecision(group.id, REPAIR, "master %s is alive; %d server(s) to bring back under it%s"
                             % (master, len(actions), "; " + kept if kept else ""), master, tuple(actions))
    linked = [s.addr for s in group.of_type("slave") if probes[s.addr].linked_to(master)]
    if not linked:
        # Alive but alone: one more failure and the group has nothing to fail over to.
        return GroupDecision(group.id, DEGRADED, "master %s is alive but has no live slave with its link up; the "
                             "group cannot fail over%s" % (master, "; " + kept if kept else ""), master)
    return GroupDecision(group.id, HEALTHY, "master %s is alive and its live slaves replicate from it (%s)%s"
                         % (master, ", ".join(linked), "; " + kept if kept else ""), master)


@dataclass(frozen=True)
class LostHistory:
    """The master answers, but no longer holds the replication history it had when a pass last saw it alive."""
    replid: str
    # How far the master held that history then (its offset), and holds it now (0: not at all).
    recorded_offset: Optional[int]
    kept: int
    # Live servers of the group that hold more of it than the master now does, the most first.
    holders: tuple[ProbeResult, ...]

    def lost_bytes(self, best: int) -> int:
        """Bytes of the recorded history, up to the master's last seen offset, beyond `best`: acknowledged writes
        that no server holds (a lower bound: the master may have taken more after that pass)."""
        return max((self.recorded_offset or 0) - best, 0)


def lost_history(group: ServerGroup, master: str, seen: ProbeResult, probes: dict[str, ProbeResult],
                 record: Optional[GroupHistory]) -> Optional[LostHistory]:
    """A master restarted in place without its data (no persistence, or an old RDB) answers role master with a
    history of its own while the dashboard still lists it; its slaves hold the old one and are about to copy
    its (empty) data set by a full sync. Known only by the tool's record of the history the master had when a
    pass last saw it alive: a new replid alone is no loss (a promoted server starts one), a slave holding more
    of the recorded history than the master now holds is."""
    if record is None or not record.master_replid or seen.replid == record.master_replid:
        return None
    kept = seen.holds_history_to(record.master_replid) or 0
    # A server with no keys has nothing to save (an idle group's history is its master's pings).
    holders = [probes[s.addr] for s in group.servers if s.addr != master and probes[s.addr].alive
               and (probes[s.addr].holds_history_to(record.master_replid) or 0) > kept and probes[s.addr].keys != 0]
    if not holders and ((record.master_offset or 0) <= kept or record.master_keys == 0):
        return None
    holders.sort(key=lambda p: (-(p.holds_history_to(record.master_replid) or 0), p.addr))
    return LostHistory(record.master_replid, record.master_offset, kept, tuple(holders))


def _plan_lost_history(group: ServerGroup, master: str, seen: ProbeResult, probes: dict[str, ProbeResult],
                       policy: Policy, lost: LostHistory, lineage: Optional[dict[str, int]] = None) -> GroupDecision:
    """What is still possible when the master lost its history: promote the slave that holds the most of it
    before a full sync from the master replaces its data, and say what is gone."""
    restarted = ("master %s lost its data: it answers role master with another replication history (offset %s, "
                 "%s keys) than the one it had when last seen alive (%s at offset %s), so it was restarted "
                 "without it" % (master, seen.offset, seen.keys if seen.keys is not None else "unknown",
                                 lost.replid, lost.recorded_offset))
    # The usual candidate rules, but a slave syncing from the restarted master is exactly the one to save: until
    # the full sync completes it serves and holds its old data (the load replaces it only at the end).
    types = {s.addr: s.type for s in group.servers}
    reasons = {p.addr: _ineligible(types[p.addr], p, master, syncing_ok=True) for p in lost.holders}
    eligible = [p for p in lost.holders if reasons[p.addr] is None]
    excluded = [(p.addr, reasons[p.addr] or "") for p in lost.holders if p not in eligible]
    if not eligible:
        most = (lost.holders[0].holds_history_to(lost.replid) or 0) if lost.holders else lost.kept
        gone = lost.lost_bytes(most)
        held = ("; %s still hold(s) some of it but cannot be promoted: %s" % (
            ", ".join(p.addr for p in lost.holders), _explain(excluded)) if lost.holders else "")
        loss = ("%s; no server of the group holds the writes of that history up to offset %s: at least %d bytes "
                "of acknowledged writes are gone%s" % (restarted, lost.recorded_offset, gone, held))
        decision = _plan_healthy_master(group, master, seen, probes, policy, lineage)
        return replace(decision, reason="%s; %s" % (loss, decision.reason), data_loss=loss,
                       keep_record=bool(lost.holders))
    best = eligible[0]
    best_holds = best.holds_history_to(lost.replid) or 0
    gone = lost.lost_bytes(best_holds)
    why = ("%s; %s hold(s) more of that history and would copy its data set by a full sync: %s holds the most "
           "(offset %d) and is promoted before it does" % (restarted, ", ".join(p.addr for p in lost.holders),
                                                           best.addr, best_holds))
    if excluded:
        why += "; not eligible: %s" % _explain(excluded)
    loss = None
    if gone:
        loss = "%s; %s lacks %d bytes of it: those acknowledged writes are gone" % (restarted, best.addr, gone)
        why += "; %d bytes of the history's writes up to offset %s are held by no server" % (
            gone, lost.recorded_offset)
    # The restarted master is alive and takes writes: it is brought under the new master in the same pass (its
    # writes since the restart reported first), so that the group has one writable master, not two.
    # A master still loading cannot take a SLAVEOF yet: a later pass re-adds it (listed offline by then).
    actions, why = _promotion(group, master, best, probes, policy, why, exclude=(master,) if seen.loading else (),
                              lineage=lineage)
    return GroupDecision(group.id, FAILOVER, why, best.addr, actions, data_loss=loss, keep_record=True)


def _blind_failover(group: ServerGroup, master: str, probes: dict[str, ProbeResult], record: Optional[GroupHistory],
                    candidate: ProbeResult, policy: Policy) -> str:
    """Why a failover would be blind, or "". Without a pass's record of when the master was last seen alive, the
    slaves' link-down ages are the only clock, and slaves all cut off long ago look as fresh as the master's death:
    the module without a state file, both slaves cut 50 minutes before the master was killed, promoted one and
    lost 500 of 600 acknowledged writes. One slave that lost its link recently dates the master's death."""
    if policy.force or (record is not None and record.seen_alive_at is not None):
        return ""
    ages = _link_down_ages(group, master, probes)
    if not ages or min(ages) <= policy.stale_margin:
        return ""
    return ("no pass recorded when it was last seen alive (no state_path, or a state file new to this group), and "
            "every slave lost its link at least %d s ago: they may have been cut off that long before the master "
            "died and miss every write since; not promoting %s blind (with a state_path passes know when they last "
            "saw the master alive; force overrides)" % (min(ages), candidate.addr))


def _outage(group: ServerGroup, master: str, probes: dict[str, ProbeResult], record: Optional[GroupHistory],
            down_for: float, now: float) -> float:
    """The longest the master can have been gone. The tool's own record bounds it (it saw the master alive at
    seen_alive_at); without one, the freshest slave's link-down age is the only clue. The slaves' ages alone
    would make every slave look fresh when they all lost the link long before the master died."""
    if record is not None and record.seen_alive_at is not None:
        return max(now - record.seen_alive_at, down_for)
    ages = _link_down_ages(group, master, probes)
    return max(min(ages) if ages else 0.0, down_for)


def _link_down_ages(group: ServerGroup, master: str, probes: dict[str, ProbeResult]) -> list[int]:
    """How long ago each live slave of the master lost its link (Redis's master_link_down_since_seconds)."""
    return [p.link_down_seconds for p in (probes[s.addr] for s in group.of_type("slave"))
            if p.alive and p.replicates_from(master) and p.link_up is False
            and p.link_down_seconds is not None and p.link_down_seconds >= 0]


def half_done_promotion(group: ServerGroup, master: str, probes: dict[str, ProbeResult],
                        record: Optional[GroupHistory], candidate: Optional[ProbeResult] = None) -> Optional[str]:
    """A slave of the group that answers role master and continued from the master's replication history:
    the dashboard's promote sent it SLAVEOF NO ONE and failed to record it. The one with the newest data.
    The master's history is what its slaves replicate, what this tool recorded while it was alive, and what the
    slave about to be promoted continued from: a slave promoted half way and then pointed back at the dead master
    by an operator keeps its own history and the master's as the one before (found by the long chaos run: without
    the last, a slave with all the writes, promoted half way, was passed over for that one, which had a third)."""
    lineage = {p.replid for p in (probes[s.addr] for s in group.of_type("slave"))
               if p.alive and p.replicates_from(master) and p.replid}
    if record is not None and record.master_replid:
        lineage.add(record.master_replid)
    if candidate is not None:
        lineage.update(r for r in (candidate.replid, candidate.replid2) if r)
    found = [probes[s.addr] for s in group.of_type("slave")
             if s.addr != master and probes[s.addr].alive and probes[s.addr].role == "master"
             and not probes[s.addr].loading and probes[s.addr].offset is not None
             and probes[s.addr].replid2 in lineage]
    if not found:
        return None
    return min(found, key=lambda p: (-(p.offset or 0), p.addr)).addr


def _richer_unplaced(group: ServerGroup, probes: dict[str, ProbeResult], candidate: ProbeResult) -> str:
    """A slave of the group that answers role master, continued some history (a promotion, half done) and holds
    more than the candidate, when the half-done rule could not tie it to the master's history; which, or "".
    A server that reports no replication ID (Redis before 4.0: the codis-server of Codis 2 and 3.2) cannot be tied
    to any history, and Redis 3.2 restarts its offset at 0 on SLAVEOF NO ONE: it holds more when it holds more
    keys (the real Codis 3.2 with a slave promoted by hand: the pass re-pointed the slave holding every write at
    the one behind, which discarded them)."""
    def holds_more(p: ProbeResult) -> bool:
        if p.replid is None:
            return (p.keys or 0) > (candidate.keys or 0) or (p.offset or 0) > (candidate.offset or 0)
        return bool((p.replid2 or "").strip("0")) and (p.offset or 0) > (candidate.offset or 0)

    richer = [probes[s.addr] for s in group.of_type("slave")
              if s.addr != candidate.addr and probes[s.addr].alive and probes[s.addr].role == "master"
              and not probes[s.addr].loading and holds_more(probes[s.addr])]
    return "; ".join("%s answers role master with more data (offset %d, %s keys against %s) from a history this pass "
                     "cannot tie to the master's (%s)" % (
                         p.addr, p.offset or 0, p.keys, candidate.keys,
                         "it continued %s" % p.replid2 if p.replid else
                         "it reports no replication ID: Redis before 4.0") for p in richer)


def group_problem(group: ServerGroup, probes: dict[str, ProbeResult]) -> Optional[str]:
    """Why the tool refuses to touch this group at all, or None."""
    if group.invalid:
        return group.invalid
    if group.busy:
        return group.busy
    if not group.servers:
        return "the group has no servers"
    unknown = [s for s in group.servers if s.type not in KNOWN_TYPES]
    if unknown:
        return "server %s has unknown type %r; not acting on a group the tool does not understand" % (
            unknown[0].addr, unknown[0].type)
    masters = group.of_type("master")
    if len(masters) > 1:
        return "%d servers have type master (%s); an operator must fix the group" % (
            len(masters), ", ".join(s.addr for s in masters))
    if not masters:
        return "no server has type master; an operator must choose one"
    missing = [s.addr for s in group.servers if s.addr not in probes]
    if missing:
        return "no probe result for %s" % ", ".join(missing)
    refused = [s.addr for s in group.servers if probes[s.addr].status == AUTH_ERROR]
    if refused:
        return "authentication to Redis failed at %s (%s); a server that refuses our credentials is not down, " \
               "the group is not planned" % (", ".join(refused), probes[refused[0]].error)
    garbled = [s.addr for s in group.servers if probes[s.addr].status == ERROR]
    if garbled:
        # An answer the tool does not understand is no basis for a decision about the group, either way. Every
        # such server is named: the operator fixes them all, not one per pass.
        return "%s answered something the tool does not understand; not deciding for this group" % "; ".join(
            "server %s (%s)" % (addr, probes[addr].error) for addr in garbled)
    return None


def witness_window(policy: Policy, record: Optional[GroupHistory]) -> float:
    """How recent a slave's last I/O from the master must be to count as a sign of life. A master pings its
    replicas every repl-ping-replica-period, so an idle healthy master's slaves report up to that; the window
    is the period learned from the master while it was alive plus half of it (at least a second), and the
    policy's fixed window when the period is unknown."""
    if record is not None and record.ping_period:
        return record.ping_period + max(1.0, record.ping_period / 2.0)
    return WITNESS_WINDOW_UNKNOWN_PERIOD


def silent_longer_than_its_pings(seen: ProbeResult, ping_period: Optional[int]) -> bool:
    """Whether a slave whose link is up has heard nothing from its master for longer than the master's ping
    period, by two looks: its offset stood still between them for more than the period (plus half a second for
    a master's cron running late), and the later look reports its last I/O more than a period ago. A live master
    sends every ping period, whether or not anyone writes, and every ping moves its slaves' offsets; a frozen one
    sends nothing. The slaves' own ages alone, in whole seconds, take up to two periods more to say so."""
    if not ping_period or seen.still_for is None or seen.still_last_io is None:
        return False
    return seen.still_for > ping_period + STILL_SLACK and seen.still_last_io > ping_period


def slaves_still_syncing(group: ServerGroup, master: str, probes: dict[str, ProbeResult],
                         record: Optional[GroupHistory], now: float) -> str:
    """Slaves pointed at a master moments ago that have not linked to it yet, said as a sentence, or "". A slave
    that needs a full sync sits in ROLE's `handshake` for the master's whole repl-diskless-sync-delay (5 s by
    default: INFO shows its link down, its last I/O -1, no sync in progress) and in `sync` through the transfer:
    no witness either way, although the master answered it. A soak cut the watcher off from a master promoted and
    given its slaves seconds before; both were still waiting for their full syncs, and the pass promoted one of
    them, which held none of the master's writes since its promotion (two masters, and those writes lost). They
    are waited for while the master was seen alive less than that delay plus SYNC_GRACE ago: a master that
    froze then is failed over that much later; a refused connection (a dead process) is not waited for."""
    if record is None or record.seen_alive_at is None:
        return ""
    delay = record.sync_delay if record.sync_delay is not None else DEFAULT_SYNC_DELAY
    since = now - record.seen_alive_at
    if since >= delay + SYNC_GRACE:
        return ""
    slaves = [probes[s.addr] for s in group.of_type("slave")]
    pending = sorted(p.addr for p in slaves if p.alive and p.replicates_from(master) and not p.link_up
                     and p.link_state in ("handshake", "sync"))
    if not pending:
        return ""
    return ("%s %s in a full sync's handshake or transfer with it (its repl-diskless-sync-delay is %d s), and it "
            "was seen alive %.1f s ago; waiting up to %.0f s from then for them to link" % (
                ", ".join(pending), "is" if len(pending) == 1 else "are", delay, since, delay + SYNC_GRACE))


def master_witnesses(group: ServerGroup, master: str, probes: dict[str, ProbeResult], policy: Policy,
                     record: Optional[GroupHistory] = None) -> list[str]:
    """Slaves that still have a live link to the master: the second opinion before a failover. A slave counts
    while its silence is what a live master's gives: an idle master sends its slaves nothing but a ping every
    repl-ping-replica-period, so a slave of a live idle master reports any last I/O from 0 to the period (whole
    seconds). A slave's silence is evidence only once it outlasts a period, by its age (the window) or by its
    offset standing still between two looks (a ping moves it). How long ago this host lost the master says
    nothing about it: with Redis's default period of 10 s, a slave that last heard a ping 5 s ago, before this
    host was cut off, is a witness all the same (a soak failed over a live idle master on that rule)."""
    # A refused connection does not shorten the window: a killed Redis resets its replicas' links at once, so a
    # slave whose link is still up speaks of a live master that only this host is refused by (a REJECT rule on
    # the way), and promoting beside it would make two masters (found by the long chaos run).
    window = witness_window(policy, record)
    period = record.ping_period if record is not None else None
    out = []
    for server in sorted(group.of_type("slave"), key=lambda s: s.addr):
        seen = probes[server.addr]
        if not (seen.linked_to(master) and seen.last_io_seconds is not None):
            continue
        if seen.last_io_seconds > window:
            continue
        if silent_longer_than_its_pings(seen, period):
            continue
        out.append("%s (link up, last I/O %d s ago)" % (server.addr, seen.last_io_seconds))
    return out


def select_candidate(group: ServerGroup, old_master: str, probes: dict[str, ProbeResult],
                     policy: Optional[Policy] = None, outage: Optional[float] = None,
                     known_offset: Optional[int] = None) -> tuple[Optional[str], list[tuple[str, str]]]:
    """Sentinel-style: filter with a named reason per exclusion, then a total order. `outage` is the longest
    the master can have been gone (see _outage)."""
    policy = policy or Policy()
    master_down_for = _outage(group, old_master, probes, None, 0.0, 0.0) if outage is None else outage
    eligible: list[ProbeResult] = []
    exclusions: list[tuple[str, str]] = []
    stale: list[tuple[ProbeResult, str]] = []
    for server in sorted(group.servers, key=lambda s: s.addr):
        if server.addr == old_master:
            continue
        seen = probes[server.addr]
        reason = _ineligible(server.type, seen, old_master)
        if reason is None and not policy.force:
            reason = _too_far_behind(seen, known_offset, policy)
            stale_reason = None if reason else _stale(seen, master_down_for, policy)
            if stale_reason:
                stale.append((seen, stale_reason))
                continue
        if reason:
            exclusions.append((server.addr, reason))
        else:
            eligible.append(probes[server.addr])
    # Staleness is about data: a slave that lost its link early holds less than one that kept it. When the fresh
    # ones hold even less (they lagged, or an operator's REPLICAOF restarted a link clock), the stale one loses
    # the fewest writes; with no fresh slave at all, none is promoted.
    for seen, reason in stale:
        if eligible and all(_holds_more_than(seen, fresh) for fresh in eligible):
            eligible.append(seen)
        else:
            exclusions.append((seen.addr, reason))
    if not eligible:
        return None, exclusions
    best = min(eligible, key=lambda p: (-(p.offset or 0), p.priority or 0, p.addr))
    return best.addr, exclusions


def _holds_more_than(seen: ProbeResult, other: ProbeResult) -> bool:
    """`seen` holds writes of its replication history beyond what `other` has of that history (unknown histories
    compare as not more)."""
    end = other.holds_history_to(seen.replid)
    return end is not None and (seen.offset or 0) > end


def _stale(seen: ProbeResult, master_down_for: float, policy: Policy) -> Optional[str]:
    """A slave whose link broke well before the master died holds old data."""
    if seen.link_up is not False or seen.link_down_seconds is None:
        return None
    if seen.link_down_seconds < 0:
        return "stale: its link to the master was never up"
    if seen.link_down_seconds > master_down_for + policy.stale_margin:
        return "stale: link down for %d s, the master only for about %d s" % (
            seen.link_down_seconds, master_down_for)
    return None


def _too_far_behind(seen: ProbeResult, known_offset: Optional[int], policy: Policy) -> Optional[str]:
    if known_offset is None or policy.max_data_loss_bytes is None or seen.offset is None:
        return None
    lag = known_offset - seen.offset
    if lag > policy.max_data_loss_bytes:
        return "would lose %d bytes (master's last known offset %d), above max_data_loss_bytes=%d" % (
            lag, known_offset, policy.max_data_loss_bytes)
    return None


def _ineligible(server_type: str, seen: ProbeResult, old_master: str, syncing_ok: bool = False) -> Optional[str]:
    """Why a server may not take over from `old_master`, or None. `syncing_ok`: a slave syncing from a master
    that restarted without its data still holds its own until the sync completes, and is the one to save."""
    if server_type != "slave":
        return "type %s in the dashboard" % server_type
    if not seen.alive:
        return "down (%s)" % seen.error
    if seen.role != "slave":
        return "reports role %s" % seen.role
    if not seen.replicates_from(old_master):
        return "replicates from %s, not from the master" % seen.master_addr
    if seen.loading:
        return "loading its dataset"
    if seen.syncing and not syncing_ok:
        return "sync with the master in progress"
    if seen.priority == 0:
        return "replica-priority 0"
    if seen.offset is None:
        return "no replication offset reported"
    return None


def repair_actions(group: ServerGroup, master: str, probes: dict[str, ProbeResult], policy: Policy,
                   exclude: tuple[str, ...], ceiling: Optional[ProbeResult] = None,
                   lineage: Optional[dict[str, int]] = None) -> tuple[list[Action], str]:
    """Slaves that do not follow `master` are re-pointed; live `offline` servers are re-added. A server that
    holds more of `master`'s replication history than `master` does (what `ceiling` says of it) is never
    re-pointed: its writes would be lost to a full sync. (A returning old master has started a history of its
    own; its divergent writes are reported when it is re-added.) Returns the actions and a note on the servers
    kept out, if any."""
    actions = []
    kept = []
    # Offline servers of the group that came back answering role master (a returning old master, restarted from
    # its RDB or not): they are re-added, their own writes reported and replaced. A slave that follows one and
    # holds its history holds a copy of those same writes, no more precious (the hour-long soak: such a copy was
    # taken for foreign data and the whole group was skipped for good, the returning master not re-added either).
    returning = {s.addr: probes[s.addr] for s in group.servers if s.type == "offline" and s.addr != master
                 and probes[s.addr].alive and probes[s.addr].role == "master" and probes[s.addr].replid}
    for server in sorted(group.servers, key=lambda s: s.addr):
        if server.addr == master or server.addr in exclude:
            continue
        seen = probes[server.addr]
        if not seen.alive or seen.loading:
            continue
        if server.type == "slave" and policy.repoint_slaves and not seen.replicates_from(master):
            source = next((r for a, r in returning.items() if seen.replicates_from(a) and seen.replid == r.replid),
                          None)
            if source is not None:
                actions.append(Action(group.id, REPOINT, server.addr, None, master,
                                      "slave %s replicates from %s, an old master of the group that came back; "
                                      "re-pointed to master %s; its copy of %s's own data (offset %s, %s keys) "
                                      "will be replaced by a full sync" % (
                                          server.addr, source.addr, master, source.addr, seen.offset,
                                          seen.keys if seen.keys is not None else "unknown")))
                continue
            more = _what_it_holds_beyond(seen, ceiling) or _foreign_data(seen, ceiling, lineage or {})
            if more:
                kept.append("%s %s and is not re-pointed (a full sync would discard it); an operator must decide"
                            % (server.addr, more))
                continue
            actions.append(Action(group.id, REPOINT, server.addr, None, master,
                                  "slave %s %s; re-pointed to master %s%s" % (
                                      server.addr, _following(seen), master, _divergence(seen))))
        elif server.type == "offline" and policy.reuse_offline:
            actions.append(Action(group.id, READD, server.addr, None, master,
                                  "offline server %s is alive (%s); re-added as a slave of %s%s" % (
                                      server.addr, _following(seen), master, _divergence(seen))))
    return actions, "; ".join(kept)


def _foreign_data(seen: ProbeResult, ceiling: Optional[ProbeResult], lineage: dict[str, int]) -> str:
    """Whether replica `seen` holds keys of a replication history that `ceiling` does not hold at all: a full sync
    from it would replace them, and nothing says they are held anywhere else. Found by the long chaos run: a
    replica-priority 0 slave kept aside with the writes no other server held was re-pointed at a master restarted
    empty (its new history knows nothing of the old); and a slave of that restarted master, holding its only writes,
    was re-pointed at the slave promoted when it died, which had been cut off before the restart."""
    # A replica only: a server answering role master with a history of its own (a returning old master) holds
    # divergent writes, which re-adding it discards by design and reports.
    if ceiling is None or seen.role != "slave" or not seen.keys or not seen.replid:
        return ""
    if ceiling.holds_history_to(seen.replid) is not None:
        return ""
    # A history the group's masters held and went on from (the state file's lineage), held no further than the
    # group went on from it, is in the data of every later master of that lineage: the soak (session 8) left a
    # group without slaves for good, a slave that restarted from the RDB of an earlier full sync being taken for
    # the keeper of data no one else had (its history had been continued twice, then forgotten by full syncs).
    if (seen.replid in lineage and (seen.offset or 0) <= lineage[seen.replid]
            and any(r in lineage for r in (ceiling.replid, ceiling.replid2) if r)):
        return ""
    # A replica that took nothing of its own history since it began (a half-done promotion pointed back; a server
    # restarted from the RDB of a full sync, which comes back with a new replication id and the RDB's history as the
    # one it went on from) holds only the history it continued: known to `ceiling`, it is _holds_more's to judge;
    # of the lineage no further than the group went on from it, the master holds it.
    if seen.second_offset is not None and seen.second_offset > 0 and (seen.offset or 0) < seen.second_offset:
        if ceiling.holds_history_to(seen.replid2) is not None:
            return ""
        if (seen.replid2 in lineage and seen.second_offset - 1 <= lineage[seen.replid2]
                and any(r in lineage for r in (ceiling.replid, ceiling.replid2) if r)):
            return ""
    return "holds %s keys of a replication history (%s, offset %s) that %s does not have" % (
        seen.keys, seen.replid, seen.offset, ceiling.addr)


def _what_it_holds_beyond(seen: ProbeResult, ceiling: Optional[ProbeResult]) -> str:
    """Whether `seen` holds writes of the master's replication history that the master (`ceiling`, as probed;
    before a promotion, the candidate) lacks, and which. Two ways to hold them: a slave made master from that
    history (a half-done promotion, an operator's SLAVEOF NO ONE), or a slave that could not be promoted
    (replica-priority 0, re-pointed elsewhere) and had more of it than the promoted one."""
    if ceiling is None:
        return ""
    if seen.role == "master":
        if seen.replid2 in {r for r in (ceiling.replid, ceiling.replid2) if r} and (
                seen.offset or 0) > (ceiling.offset or 0):
            return "answers role master with more data (offset %d) than %s (offset %d)" % (
                seen.offset or 0, ceiling.addr, ceiling.offset or 0)
        return ""
    if ceiling.role == "master" and seen.replid == ceiling.replid:
        return ""  # the live master's current history: it is the source, no replica is ahead of it
    if _holds_more_than(seen, ceiling):
        return "replicates from %s and holds more of the master's history (offset %d) than %s has of it (%d)" % (
            seen.master_addr, seen.offset or 0, ceiling.addr, ceiling.holds_history_to(seen.replid))
    return ""


def _following(seen: ProbeResult) -> str:
    if seen.role == "slave":
        return "replicates from %s" % seen.master_addr
    return "is a %s" % (seen.role or "server of unknown role")


def _divergence(seen: ProbeResult) -> str:
    if seen.role != "master":
        return ""
    return "; its own data (offset %s, %s keys) will be replaced by a full sync" % (
        seen.offset, seen.keys if seen.keys is not None else "unknown")


def _explain(exclusions: list[tuple[str, str]]) -> str:
    return ", ".join("%s %s" % (addr, reason) for addr, reason in exclusions)


def _auth_errors(groups: list[ServerGroup], probes: dict[str, ProbeResult]) -> list[str]:
    addrs = sorted({s.addr for g in groups for s in g.servers})
    return ["authentication to Redis at %s failed (%s): check redis_password and redis_username; "
            "a server that refuses our credentials is not down, so nothing was changed in its group"
            % (a, probes[a].error) for a in addrs if a in probes and probes[a].status == AUTH_ERROR]


def predict(topology: Topology, the_plan: Plan) -> Topology:
    """The topology the dashboard should show once the plan is carried out (for check mode's diff)."""
    groups = []
    for group in topology.groups:
        types: dict[str, str] = {}
        for action in the_plan.actions:
            if action.group != group.id:
                continue
            if action.action == PROMOTE:
                types[action.previous_master or ""] = topology.demoted_type
                types[action.server] = "master"
            elif action.action in (REPOINT, READD):
                types[action.server] = "slave"
        groups.append(group.with_types(types))
    return topology.with_groups(tuple(groups))


# ---------------------------------------------------------------------------------------------- several watchers
# The quorum arithmetic, pure: what a pass publishes, and which failovers the fresh observations allow.
def observations(the_plan: Plan, masters: dict[int, Optional[str]]) -> dict[str, dict[str, Any]]:
    """What this pass publishes per group: which master it judged, whether down (after its own second opinion),
    and why."""
    out = {}
    for d in the_plan.decisions:
        out[str(d.group)] = {"master": masters.get(d.group), "down": bool(d.master_down),
                             "decision": d.decision, "reason": d.reason[:500]}
    return out


def votes(fresh: dict[str, dict[str, Any]], group: int, master: Optional[str]) -> list[str]:
    """The observers whose fresh observation says that this very master of the group is down."""
    out = []
    for observer, doc in sorted(fresh.items()):
        seen = (doc.get("groups") or {}).get(str(group)) if isinstance(doc, dict) else None
        if (isinstance(seen, dict) and seen.get("down") is True and isinstance(seen.get("master"), str)
                and master is not None and same_server(seen["master"], master)):
            out.append(observer)
    return out


def apply_quorum(the_plan: Plan, fresh: dict[str, dict[str, Any]], quorum: int, observers_seen: int) -> Plan:
    """A failover of a master judged down stands only when `quorum` fresh observations agree that it is down.
    A failover of a master that answered (it lost its data: a new history, its slaves holding more of the old
    one) rests on what the servers said, not on this watcher's view of the network: the quorum cannot add to it,
    and waiting for it lets the slaves copy the empty data set (the three-watcher soak: every such rescue was
    refused with "0 watcher(s) see the master down" and the next pass found the writes gone)."""
    decisions = []
    for d in the_plan.decisions:
        if d.decision != FAILOVER or not d.master_down:
            decisions.append(d)
            continue
        agree = votes(fresh, d.group, d.actions[0].previous_master if d.actions else None)
        if len(agree) >= quorum:
            note = "%d of %d watcher(s) see the master down (%s), quorum %d" % (
                len(agree), observers_seen, ", ".join(agree), quorum)
            first = replace(d.actions[0], reason="%s; %s" % (d.actions[0].reason, note))
            decisions.append(replace(d, reason="%s; %s" % (d.reason, note), actions=(first,) + d.actions[1:]))
        else:
            decisions.append(replace(d, decision=REFUSED, actions=(), reason=(
                "%s; but only %d watcher(s) see the master down (%s) of the %d with a fresh observation, quorum is "
                "%d: waiting for the others" % (d.reason, len(agree), ", ".join(agree) or "none", observers_seen,
                                                quorum))))
    return replace(the_plan, decisions=tuple(decisions))


def another_is_acting(the_plan: Plan, holder: str) -> Plan:
    """Every change planned is left to the watcher that holds the lock: it reads and plans again under it."""
    return the_plan.withheld(SKIPPED, "another watcher (%s) holds the cluster's lock and is acting" % holder, holder)
