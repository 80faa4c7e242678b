# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The failover decision: topology + probe results + policy -> actions, each with its reason.

Pure: no sockets, no HTTP, no clock. Read `plan_group` top to bottom: every branch ends in a decision
and a sentence that says why. Refusals are decisions too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ansible_collections.codis.ha.plugins.module_utils._topology import (
    AUTH_ERROR,
    ERROR,
    KNOWN_TYPES,
    GroupHistory,
    ProbeResult,
    ServerGroup,
    Topology,
)

PROMOTE = "promote"
REPOINT = "repoint"
READD = "readd"

HEALTHY = "healthy"
REPAIR = "repair"
FAILOVER = "failover"
NO_CANDIDATE = "no_candidate"
SKIPPED = "skipped"
REFUSED = "refused"


@dataclass(frozen=True)
class Policy:
    repoint_slaves: bool = True
    reuse_offline: bool = True
    groups: Optional[frozenset[int]] = None
    # A slave whose link is up and heard from the master this recently is a witness that the master is
    # alive; above Redis's 10 s replica ping period so that an idle healthy master still counts.
    witness_max_io_seconds: int = 15
    down_after: float = 0.0
    min_failover_interval: float = 300.0
    stale_margin: float = 10.0
    max_data_loss_bytes: Optional[int] = None
    max_failovers_per_pass: Optional[int] = None
    force: bool = False


@dataclass(frozen=True)
class Action:
    group: int
    action: str
    server: str
    previous_master: Optional[str]
    master: str  # the master of the group once this action is done
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"group": self.group, "action": self.action, "server": self.server,
                "previous_master": self.previous_master, "reason": self.reason}


@dataclass(frozen=True)
class GroupDecision:
    group: int
    decision: str
    reason: str
    master: Optional[str] = None
    actions: tuple[Action, ...] = ()


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


def plan(topology: Topology, probes: dict[str, ProbeResult], policy: Policy,
         history: Optional[dict[int, GroupHistory]] = None, now: float = 0.0) -> Plan:
    groups = [g for g in sorted(topology.groups, key=lambda g: g.id)
              if policy.groups is None or g.id in policy.groups]
    # A refused password says nothing about a server's health: the groups that hold such a server are not
    # planned, the others are (during a password rotation the rest of the cluster stays protected). The pass
    # still fails, so that the refusal is seen.
    decisions = [plan_group(g, probes, policy, (history or {}).get(g.id), now) for g in groups]
    return Plan(tuple(limit_failovers(decisions, policy)), tuple(_auth_errors(groups, probes)))


def limit_failovers(decisions: list[GroupDecision], policy: Policy) -> list[GroupDecision]:
    """Many masters down at once, seen from one host, usually means that host is the one cut off."""
    failovers = [d for d in decisions if d.decision == FAILOVER]
    limit = policy.max_failovers_per_pass
    if limit is None or len(failovers) <= limit or policy.force:
        return decisions
    why = ("%d groups would fail over in one pass, above max_failovers_per_pass=%d: this host is probably "
           "cut off from the masters, so none is failed over (force overrides)" % (len(failovers), limit))
    return [GroupDecision(d.group, REFUSED, "%s; %s" % (why, d.reason), d.master) if d.decision == FAILOVER
            else d for d in decisions]


def plan_group(group: ServerGroup, probes: dict[str, ProbeResult], policy: Policy,
               history: Optional[GroupHistory] = None, now: float = 0.0) -> GroupDecision:
    problem = group_problem(group, probes)
    if problem:
        return GroupDecision(group.id, SKIPPED, problem)
    master = group.master
    if master is None:  # group_problem() has ruled this out; kept for the type checker
        return GroupDecision(group.id, SKIPPED, "no single master")
    seen = probes[master.addr]

    if seen.alive:
        if seen.loading:
            return GroupDecision(group.id, SKIPPED, "master %s is loading its dataset; waiting for it"
                                 % master.addr, master.addr)
        if seen.role != "master":
            return GroupDecision(group.id, SKIPPED, "master %s is alive but reports role %s (of %s); an "
                                 "operator must decide which server is the master"
                                 % (master.addr, seen.role, seen.master_addr), master.addr)
        actions = repair_actions(group, master.addr, probes, policy, exclude=())
        if not actions:
            return GroupDecision(group.id, HEALTHY, "master %s is alive and every live slave replicates "
                                 "from it" % master.addr, master.addr)
        return GroupDecision(group.id, REPAIR, "master %s is alive; %d server(s) to bring back under it"
                             % (master.addr, len(actions)), master.addr, tuple(actions))

    down = "master %s is down (%d failed probe(s): %s)" % (master.addr, seen.attempts, seen.error)
    witnesses = master_witnesses(group, master.addr, probes, policy)
    if witnesses:
        return GroupDecision(group.id, REFUSED, "master %s is unreachable from here, seen alive by %s; "
                             "not failing over a master that its slaves still see"
                             % (master.addr, ", ".join(witnesses)), master.addr)
    if master.dashboard_alive and not policy.force:
        return GroupDecision(group.id, REFUSED, "master %s is unreachable from here, but the dashboard's own "
                             "last poll of it succeeded; not failing over a master the dashboard still reaches "
                             "(force overrides)" % master.addr, master.addr)
    # Only a clock started for this very master counts: a stored time for another master is no evidence.
    down_for = (max(now - history.down_since, 0.0) if history and history.down_since is not None
                and history.master == master.addr else 0.0)
    if down_for < policy.down_after and not policy.force:
        return GroupDecision(group.id, REFUSED, "%s, seen down for %.1f s so far; down_after is %s s, waiting "
                             "for later passes to confirm" % (down, down_for, policy.down_after), master.addr)
    since_failover = now - history.last_failover_at if history and history.last_failover_at else None
    if since_failover is not None and since_failover < policy.min_failover_interval and not policy.force:
        return GroupDecision(group.id, REFUSED, "%s, but the group failed over %.0f s ago, inside "
                             "min_failover_interval (%s s); not flapping (force overrides)"
                             % (down, since_failover, policy.min_failover_interval), master.addr)
    known_offset = history.master_offset if history and history.master == master.addr else None
    candidate, exclusions = select_candidate(group, master.addr, probes, policy, down_for, known_offset)
    if candidate is None:
        return GroupDecision(group.id, NO_CANDIDATE, "%s and no slave can take over: %s"
                             % (down, _explain(exclusions) or "the group has no slave"), master.addr)
    chosen = probes[candidate]
    why = "%s; %s has the highest replication offset (%d) among eligible slaves" % (
        down, candidate, chosen.offset or 0)
    if known_offset is not None:
        why += " (%d bytes behind the master's last known offset %d)" % (
            max(known_offset - (chosen.offset or 0), 0), known_offset)
    if exclusions:
        why += "; not eligible: %s" % _explain(exclusions)
    promote = Action(group.id, PROMOTE, candidate, master.addr, candidate, why)
    after = group.with_types({master.addr: "offline", candidate: "master"})
    followers = repair_actions(after, candidate, probes, policy, exclude=(master.addr,))
    return GroupDecision(group.id, FAILOVER, why, candidate, (promote,) + tuple(followers))


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
        # An answer the tool does not understand is no basis for a decision about the group, either way.
        return "server %s answered something the tool does not understand (%s); not deciding for this group" % (
            garbled[0], probes[garbled[0]].error)
    return None


def master_witnesses(group: ServerGroup, master: str, probes: dict[str, ProbeResult],
                     policy: Policy) -> list[str]:
    """Slaves that still have a live link to the master: the second opinion before a failover."""
    out = []
    for server in sorted(group.of_type("slave"), key=lambda s: s.addr):
        seen = probes[server.addr]
        if (seen.alive and seen.replicates_from(master) and seen.link_up
                and seen.last_io_seconds is not None and seen.last_io_seconds <= policy.witness_max_io_seconds):
            out.append("%s (link up, last I/O %d s ago)" % (server.addr, seen.last_io_seconds))
    return out


def select_candidate(group: ServerGroup, old_master: str, probes: dict[str, ProbeResult],
                     policy: Optional[Policy] = None, down_for: float = 0.0,
                     known_offset: Optional[int] = None) -> tuple[Optional[str], list[tuple[str, str]]]:
    """Sentinel-style: filter with a named reason per exclusion, then a total order."""
    policy = policy or Policy()
    master_down_for = _master_down_for(group, old_master, probes, down_for)
    eligible: list[ProbeResult] = []
    exclusions: list[tuple[str, str]] = []
    for server in sorted(group.servers, key=lambda s: s.addr):
        if server.addr == old_master:
            continue
        seen = probes[server.addr]
        reason = _ineligible(server.type, seen, old_master)
        if reason is None and not policy.force:
            reason = _stale(seen, master_down_for, policy) or _too_far_behind(seen, known_offset, policy)
        if reason:
            exclusions.append((server.addr, reason))
        else:
            eligible.append(probes[server.addr])
    if not eligible:
        return None, exclusions
    best = min(eligible, key=lambda p: (-(p.offset or 0), p.priority or 0, p.addr))
    return best.addr, exclusions


def _master_down_for(group: ServerGroup, master: str, probes: dict[str, ProbeResult], down_for: float) -> float:
    """How long the master has been gone: the freshest slave's link-down age, or what the passes saw."""
    ages = [p.link_down_seconds for p in (probes[s.addr] for s in group.of_type("slave"))
            if p.alive and p.replicates_from(master) and p.link_up is False
            and p.link_down_seconds is not None and p.link_down_seconds >= 0]
    return max(min(ages) if ages else 0.0, down_for)


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


def _ineligible(server_type: str, seen: ProbeResult, old_master: str) -> Optional[str]:
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
    if seen.syncing:
        return "sync with the master in progress"
    if seen.priority == 0:
        return "replica-priority 0"
    if seen.offset is None:
        return "no replication offset reported"
    return None


def repair_actions(group: ServerGroup, master: str, probes: dict[str, ProbeResult], policy: Policy,
                   exclude: tuple[str, ...]) -> list[Action]:
    """Slaves that do not follow `master` are re-pointed; live `offline` servers are re-added."""
    actions = []
    for server in sorted(group.servers, key=lambda s: s.addr):
        if server.addr == master or server.addr in exclude:
            continue
        seen = probes[server.addr]
        if not seen.alive or seen.loading:
            continue
        if server.type == "slave" and policy.repoint_slaves and not seen.replicates_from(master):
            actions.append(Action(group.id, REPOINT, server.addr, None, master,
                                  "slave %s %s; re-pointed to master %s%s" % (
                                      server.addr, _following(seen), master, _divergence(seen))))
        elif server.type == "offline" and policy.reuse_offline:
            actions.append(Action(group.id, READD, server.addr, None, master,
                                  "offline server %s is alive (%s); re-added as a slave of %s%s" % (
                                      server.addr, _following(seen), master, _divergence(seen))))
    return actions


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


def predict(topology: Topology, plan_: Plan) -> Topology:
    """The topology the dashboard should show once the plan is carried out (for check mode's diff)."""
    groups = []
    for group in topology.groups:
        types: dict[str, str] = {}
        for action in plan_.actions:
            if action.group != group.id:
                continue
            if action.action == PROMOTE:
                types[action.previous_master or ""] = topology.demoted_type
                types[action.server] = "master"
            else:
                types[action.server] = "slave"
        groups.append(group.with_types(types))
    return topology.with_groups(tuple(groups))
