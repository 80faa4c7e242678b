# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a pass returns: the result dict for exit_json / fail_json, its one-sentence message, the diff, and which
groups were left without a working master."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.codis.ha.plugins.module_utils._executor import DONE, FAILED, PLANNED, Outcome
from ansible_collections.codis.ha.plugins.module_utils._planner import (
    FAILOVER,
    HEALTHY,
    PROMOTE,
    REFUSED,
    REMOVE_PROXY,
    REPAIR,
    SET_PING_PERIOD,
    Plan,
)
from ansible_collections.codis.ha.plugins.module_utils._topology import (
    DOWN,
    GroupHistory,
    ProbeResult,
    ServerGroup,
    Topology,
    clip,
)


@dataclass
class PassResult:
    """What the module returns: `failed_msg` set means fail_json."""
    result: dict[str, Any] = field(default_factory=dict)
    failed_msg: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    history: Optional[dict[int, GroupHistory]] = None


def nothing_done(failed_msg: Optional[str], msg: str = "",
                 skipped: Optional[list[dict[str, Any]]] = None) -> PassResult:
    """A pass that stopped before planning: the same keys as any other result, all empty."""
    result: dict[str, Any] = {"changed": False, "actions": [], "groups": [], "skipped_groups": skipped or []}
    if msg:
        result["msg"] = msg
    return PassResult(result, failed_msg)


def without_working_master(groups: list[ServerGroup], probes: dict[str, ProbeResult], the_plan: Plan,
                           outcome: Outcome) -> list[tuple[int, str]]:
    """Groups whose listed master is down and that this pass did not fail over, with the reason. A master that
    a slave or the dashboard still sees is not counted: the refusal says it may well be working."""
    decisions = {d.group: d for d in the_plan.decisions}
    promoted = {r.action.group for r in outcome.results if r.action.action == PROMOTE and r.status in (DONE, PLANNED)}
    out = []
    for group in groups:
        master = group.master
        decision = decisions.get(group.id)
        if master is None or decision is None or group.id in promoted:
            continue
        seen = probes.get(master.addr)
        if seen is None or seen.status != DOWN:
            continue
        if (decision.decision == REFUSED and not decision.master_down) or decision.deferred_to:
            continue
        out.append((group.id, decision.reason))
    return out


def report(topology: Topology, probes: dict[str, ProbeResult], the_plan: Plan, outcome: Outcome,
           after: Optional[Topology], diff: bool, started: float) -> dict[str, Any]:
    decisions = {d.group: d for d in the_plan.decisions}
    groups = []
    for group in topology.groups:
        decision = decisions.get(group.id)
        if decision is None:
            continue
        groups.append({
            "id": group.id,
            "master": decision.master,
            "decision": str(decision.decision),
            "reason": decision.reason,
            "servers": [_server_report(s.addr, s.type, probes.get(s.addr)) for s in group.servers],
        })
    skipped = [{"group": d.group, "reason": d.reason} for d in the_plan.skipped]
    skipped += [{"group": gid, "reason": reason} for gid, reason in outcome.skipped]
    actions = [r.as_dict() for r in outcome.results]
    result: dict[str, Any] = {
        "changed": outcome.changed,
        "actions": actions,
        "groups": groups,
        "skipped_groups": skipped,
        "msg": _sentence(groups, outcome) + (" " + nothing_listed[0].upper() + nothing_listed[1:]
                                             if (nothing_listed := listing_nothing(topology)) else ""),
        "pass_seconds": round(time.monotonic() - started, 3),
    }
    if diff:
        wanted = {g["id"] for g in groups}
        before = topology.with_groups(tuple(g for g in topology.groups if g.id in wanted))
        after_t = topology.with_groups(tuple(g for g in (after or topology).groups if g.id in wanted))
        roles_before = {addr: _role_text(seen) for addr, seen in probes.items()}
        roles_after = dict(roles_before)
        for r in outcome.results:
            if r.status in (DONE, PLANNED) and r.action.action == PROMOTE:
                roles_after[r.action.server] = "role master"
            elif r.status in (DONE, PLANNED) and r.action.action == SET_PING_PERIOD:
                seen = probes.get(r.action.server)
                roles_before[r.action.server] += ", pings every %s s" % (seen.ping_period if seen else "?")
                roles_after[r.action.server] += ", pings every %s s" % r.action.period
            elif r.status in (DONE, PLANNED) and r.action.action != REMOVE_PROXY:
                roles_after[r.action.server] = "follows %s" % r.action.master
        result["diff"] = {"before": _diff_text(before, roles_before), "after": _diff_text(after_t, roles_after)}
    return result


def _diff_text(topology: Topology, roles: dict[str, str]) -> str:
    """One line per server with its type in the dashboard and what it does in Redis, so that Ansible's line
    diff shows exactly what changed (on Codis 3 a re-point changes no type, only whom the server follows)."""
    lines = []
    for name, servers in topology.snapshot().items():
        lines.append("%s:" % name)
        lines.extend("  %s: %s (%s)" % (addr, server_type, roles.get(addr, "not probed"))
                     for addr, server_type in servers.items())
    return "\n".join(lines) + "\n"


def _role_text(seen: ProbeResult) -> str:
    if not seen.alive:
        return seen.status
    if seen.role == "slave":
        return "follows %s" % seen.master_addr
    return "role %s" % seen.role


def _server_report(addr: str, server_type: str, seen: Optional[ProbeResult]) -> dict[str, Any]:
    if seen is None:
        return {"addr": addr, "type": server_type, "alive": None, "status": "not probed"}
    return {"addr": addr, "type": server_type, "alive": seen.alive, "status": str(seen.status), "role": seen.role,
            "offset": seen.offset, "master": seen.master_addr, "link_up": seen.link_up, "priority": seen.priority,
            "error": seen.error}


def _sentence(groups: list[dict[str, Any]], outcome: Outcome) -> str:
    parts = []
    by_status: dict[str, int] = {}
    for r in outcome.results:
        key = "%s %s" % (r.action.action, r.status)
        by_status[key] = by_status.get(key, 0) + 1
    if by_status:
        parts.append(", ".join("%d %s" % (n, k) for k, n in sorted(by_status.items())))
    counts: dict[str, int] = {}
    for g in groups:
        counts[g["decision"]] = counts.get(g["decision"], 0) + 1
    parts.append("%d group(s): %s" % (len(groups), ", ".join(
        "%d %s" % (n, d.replace("_", " ")) for d, n in sorted(counts.items())) or "none"))
    if outcome.skipped:
        parts.append("%d group(s) left for the next pass" % len(outcome.skipped))
    # Every group that is not healthy is named with its reason: degraded must be loud.
    trouble = [g for g in groups if g["decision"] not in (HEALTHY, FAILOVER, REPAIR)]
    failed = {r.action.group for r in outcome.results if r.status == FAILED}
    trouble += [g for g in groups if g["decision"] in (FAILOVER, REPAIR) and g["id"] in failed]
    if trouble:
        named = ["group %d %s: %s" % (g["id"], g["decision"].replace("_", " "), clip(g["reason"], 200))
                 for g in trouble]
        parts.append("not healthy: " + "; ".join(named))
    return "; ".join(parts) + "."


def listing_nothing(topology: Topology) -> str:
    """What to say when the dashboard lists no group in words that can also mean a mistake of ours, or ""."""
    if topology.groups or not topology.empty_answer:
        return ""
    return ("the dashboard lists no server group: %s, which it answers for an empty cluster and for a wrong "
            "product name or ZooKeeper path in its configuration alike; nothing is watched" % topology.empty_answer)
