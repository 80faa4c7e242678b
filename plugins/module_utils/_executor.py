# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Carry a plan out through the dashboard and prove each step by re-reading the dashboard and Redis.

The dashboard can lie in both directions: a 500 after a promotion it applied (a proxy did not
acknowledge), and an addServer that answers 500 but stored the server. So the outcome of every call is
decided by re-reading, never by the HTTP status alone. One group's failure never stops the others.

Groups are carried out in parallel (up to `parallel_groups` at a time: a lost rack fails many over at once),
but the dashboard sees one mutating call at a time: Codis 2 takes its coordinator lock without waiting and
answers a second caller `obtaining lock timed out`. What runs side by side is the verification (probes,
re-reads), which is where a failover spends its time.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar, Union

from ansible_collections.codis.ha.plugins.module_utils._dashboard import DashboardClient, DashboardError, LockConflict
from ansible_collections.codis.ha.plugins.module_utils._deadline import NO_DEADLINE, Deadline
from ansible_collections.codis.ha.plugins.module_utils._planner import (
    PROMOTE,
    REMOVE_PROXY,
    SET_PING_PERIOD,
    Action,
    GroupDecision,
    Plan,
)
from ansible_collections.codis.ha.plugins.module_utils._probe import Prober
from ansible_collections.codis.ha.plugins.module_utils._topology import (
    ProbeResult,
    Server,
    Topology,
    Word,
    same_server,
)


class Status(Word):
    """What became of one action."""
    PLANNED = "planned"
    DONE = "done"
    FAILED = "failed"


PLANNED, DONE, FAILED = Status.PLANNED, Status.DONE, Status.FAILED
T = TypeVar("T")


@dataclass
class ActionResult:
    action: Action
    status: Status
    detail: str = ""
    # Refused by the Codis 2 dashboard's lock (`zkutil: obtaining lock timed out`): nothing was changed.
    lock_refused: bool = False

    def as_dict(self) -> dict[str, object]:
        out = self.action.as_dict()
        out.update(status=str(self.status), detail=self.detail)
        return out


@dataclass
class Outcome:
    results: list[ActionResult]
    skipped: list[tuple[int, str]]

    @property
    def changed(self) -> bool:
        return any(r.status in (DONE, PLANNED) for r in self.results)

    @property
    def failed(self) -> list[ActionResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def lock_refused(self) -> set[int]:
        """The groups a change of which the dashboard's lock refused."""
        return {r.action.group for r in self.results if r.lock_refused}


class Executor:
    def __init__(self, dashboard: DashboardClient, prober: Prober, verify_timeout: float = 10.0,
                 verify_interval: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, deadline: Deadline = NO_DEADLINE,
                 parallel_groups: int = 1) -> None:
        self.dashboard = dashboard
        self.parallel_groups = max(parallel_groups, 1)
        self._mutating = threading.Lock()
        self.deadline = deadline
        self.prober = prober
        self.verify_timeout = verify_timeout
        self.verify_interval = verify_interval
        self._clock = clock
        self._sleep = sleep

    def run(self, plan: Plan, topology: Topology, check_mode: bool,
            probes: Optional[dict[str, ProbeResult]] = None) -> Outcome:
        """`probes`: what the pass saw of each server when it planned."""
        outcome = Outcome([], [])
        acting = [d for d in plan.decisions if d.actions]
        if check_mode:
            for decision in acting:
                outcome.results.extend(ActionResult(a, PLANNED) for a in decision.actions)
            return outcome
        # A dead proxy makes every promote fail: it is removed first, before any group acts.
        first = [d for d in acting if any(a.action == REMOVE_PROXY for a in d.actions)]
        rest = [d for d in acting if d not in first]
        seen = probes or {}
        parts = [self._run_group(d, topology, seen) for d in first]
        if self.parallel_groups > 1 and len(rest) > 1:
            with ThreadPoolExecutor(max_workers=min(self.parallel_groups, len(rest)),
                                    thread_name_prefix="codis-ha-group") as pool:
                parts.extend(pool.map(lambda d: self._run_group(d, topology, seen), rest))
        else:
            parts.extend(self._run_group(d, topology, seen) for d in rest)
        for part in parts:  # in the plan's order, whatever order the groups finished in
            outcome.results.extend(part.results)
            outcome.skipped.extend(part.skipped)
        return outcome

    def _run_group(self, decision: GroupDecision, topology: Topology, seen: dict[str, ProbeResult]) -> Outcome:
        outcome = Outcome([], [])
        if self.deadline.expired:
            outcome.results.extend(ActionResult(a, FAILED, "not attempted: the pass deadline (%s s) was reached"
                                                % self.deadline.seconds) for a in decision.actions)
            return outcome
        planned = topology.group(decision.group)
        try:
            current = self.dashboard.group(decision.group)
        except DashboardError as exc:
            outcome.results.extend(ActionResult(a, FAILED, "not attempted: could not re-read the group "
                                                "before acting: %s" % exc) for a in decision.actions)
            return outcome
        if planned is None or current.snapshot() != planned.snapshot() or current.invalid:
            # Another runner (or an operator) changed the group since it was read: its plan is stale.
            outcome.skipped.append((decision.group, "the group changed in the dashboard between reading "
                                    "and acting (%s -> %s); left for the next pass"
                                    % (planned.snapshot() if planned else {}, current.snapshot())))
            return outcome
        for index, action in enumerate(decision.actions):
            if action.action == PROMOTE:
                result = self._promote(action)
            elif action.action == REMOVE_PROXY:
                result = self._remove_proxy(action)
            elif action.action == SET_PING_PERIOD:
                result = self._set_ping_period(action)
            else:
                result = self._add_slave(action, seen.get(action.server))
            outcome.results.append(result)
            if result.status == FAILED and action.action in (PROMOTE, REMOVE_PROXY):
                outcome.results.extend(ActionResult(a, FAILED, "not attempted: %s failed" % (
                    "the promotion" if action.action == PROMOTE else "removing the dead or hung proxy"))
                    for a in decision.actions[index + 1:])
                return outcome
        return outcome

    # ------------------------------------------------------------------ the sequence every action shares
    def _apply(self, action: Action, change: Callable[[], Any], read: Callable[[], T], what: str,
               read_what: str) -> Union[ActionResult, tuple[T, str]]:
        """Sends one change, then reads back what the dashboard stores: a failed result, or (what was read, the
        dashboard's error answer or ""). An error answer is kept, not trusted: a dashboard may apply a
        change and still answer an error (a timeout, a proxy that did not acknowledge), so the outcome is read."""
        answer = ""
        try:
            with self._mutating:
                change()
        except LockConflict as exc:
            # The lock was never taken: nothing was changed, and there is nothing to wait for.
            return ActionResult(action, FAILED, "not applied, the dashboard's lock is held by another client "
                                "(%s); left for the next pass" % exc, lock_refused=True)
        except DashboardError as exc:
            answer = str(exc)
        try:
            return read(), answer
        except DashboardError as exc:
            return ActionResult(action, FAILED, "%s; and %s could not be re-read to learn the outcome: %s" % (
                answer or "%s answered OK" % what, read_what, exc))

    # ------------------------------------------------------------------ promote
    def _promote(self, action: Action) -> ActionResult:
        applied = self._apply(action, lambda: self.dashboard.promote(action.group, Server(action.server, "slave")),
                              lambda: self.dashboard.group(action.group), "promote", "the group")
        if isinstance(applied, ActionResult):
            return applied
        group, answer = applied
        masters = [s.addr for s in group.of_type("master")]
        if masters != [action.server]:
            return ActionResult(action, FAILED, "%sthe dashboard now lists master(s) %s" % (
                answer + "; " if answer else "promote answered OK but ", masters or "none"))
        is_master: Callable[[ProbeResult], bool] = lambda p: p.alive and p.role == "master"
        seen = self._wait_for(action.server, is_master)
        retried = ""
        if not is_master(seen) and seen.alive:
            # The dashboard switched its records but its SLAVEOF NO ONE did not take (Codis 3 only logs
            # that): without a retry the group would have no writable master.
            try:
                with self._mutating:
                    resent = self.dashboard.retry_master(action.group, action.server)
                if resent:
                    retried = "; the dashboard's SLAVEOF NO ONE had not taken, a sync action sent it again"
                    seen = self._wait_for(action.server, is_master)
            except DashboardError as exc:
                retried = "; asking the dashboard to send SLAVEOF NO ONE again failed: %s" % exc
        if not is_master(seen):
            return ActionResult(action, FAILED, "the dashboard names %s master but it reports %s%s" % (
                action.server, _describe(seen), retried))
        detail = "dashboard lists %s as master and it answers role master at offset %s%s" % (
            action.server, seen.offset, retried)
        if answer:
            detail = "the dashboard answered an error (%s) but had applied the promotion; %s" % (answer, detail)
        return ActionResult(action, DONE, detail)

    # ------------------------------------------------------------------ a dead proxy
    def _remove_proxy(self, action: Action) -> ActionResult:
        applied = self._apply(action, lambda: self.dashboard.remove_proxy(action.proxy or ""),
                              lambda: [p.token for p in self.dashboard.topology().proxies], "remove", "the proxies")
        if isinstance(applied, ActionResult):
            return applied
        listed, answer = applied
        if action.proxy in listed:
            return ActionResult(action, FAILED, "%sthe dashboard still lists proxy %s" % (
                answer + "; " if answer else "", action.proxy))
        return ActionResult(action, DONE, "the dashboard no longer lists proxy %s%s" % (
            action.proxy, " (it answered: %s)" % answer if answer else ""))

    # ------------------------------------------------------------------ a master's ping period
    def _set_ping_period(self, action: Action) -> ActionResult:
        problem = self.prober.set_ping_period(action.server, action.period or 0)
        if problem:
            return ActionResult(action, FAILED, "%s did not take the ping period: %s" % (action.server, problem))
        seen = self.prober.probe(action.server)
        if seen.ping_period != action.period:
            return ActionResult(action, FAILED, "%s answered OK but reports %s" % (
                action.server, "a ping period of %s s" % seen.ping_period if seen.alive else _describe(seen)))
        return ActionResult(action, DONE, "%s pings its slaves every %d s" % (action.server, action.period))

    # ------------------------------------------------------------------ repoint / readd
    def _add_slave(self, action: Action, planned: Optional[ProbeResult]) -> ActionResult:
        if same_server(action.server, action.master):
            return ActionResult(action, FAILED, "refused: would demote the group's own master")
        demoted = self._stop_a_second_master(action, planned)
        result = self._recorded_as_slave(action)
        if demoted:
            result.detail = "%s; then %s" % (demoted, result.detail)
        return result

    def _recorded_as_slave(self, action: Action) -> ActionResult:
        """addServer as a slave, and proof that the dashboard stores it so and that it follows the master."""
        applied = self._apply(action, lambda: self.dashboard.add_server(action.group, action.server, "slave"),
                              lambda: self.dashboard.group(action.group), "addServer", "the group")
        if isinstance(applied, ActionResult):
            return applied
        group, answer = applied
        stored = group.snapshot().get(action.server)
        if stored != "slave":
            return ActionResult(action, FAILED, "%sthe dashboard stores %s as %s" % (
                answer + "; " if answer else "", action.server, stored))
        # Verified once it follows the master: waiting for its link to come up would hold the pass for a full sync
        # (Redis's default 5 s delay plus the transfer), and a soak saw a fault in that window go unseen until a
        # master restarted empty had wiped its slaves. The next pass sees the sync end.
        seen = self._wait_for(action.server, lambda p: p.replicates_from(action.master))
        if not seen.replicates_from(action.master):
            return ActionResult(action, FAILED, "%s%s reports %s, not a slave of %s" % (
                answer + "; " if answer else "", action.server, _describe(seen), action.master))
        link = "link up" if seen.link_up else "link still down (sync in progress; later passes see it end)"
        detail = "%s replicates from %s, %s" % (action.server, action.master, link)
        if answer:
            detail = "the dashboard answered an error (%s) but stored the slave; %s" % (answer, detail)
        return ActionResult(action, DONE, detail)

    def _stop_a_second_master(self, action: Action, planned: Optional[ProbeResult]) -> str:
        """A server to be made a slave that answers role master is a second writable master beside the group's (an
        old master back from a freeze or a partition): every write it takes is lost when it follows. It is made a
        slave of the group's master here, directly (SLAVEOF: what the dashboard's own call sends), before the
        dashboard is asked to record it, since the dashboard may refuse the call or hold it for a minute: the hour at
        the role's defaults on the real Codis 2 saw 5.1 s of two writable masters while its lock, held by a promote
        waiting on a proxy, refused the re-add twice. `planned`: what the pass's probe saw of the server (a probe of
        its own only without it: a repoint must not cost a probe more). Returns what was done, in a sentence, or ""."""
        seen = planned if planned is not None else self.prober.probe(action.server)
        if not (seen.alive and seen.role == "master"):
            return ""
        held = self._why_not_demote(action)
        if held:
            return "%s answers role master beside the group's master; not demoted directly: %s" % (action.server, held)
        problem = self.prober.replicate_from(action.server, action.master)
        if problem:
            return "%s answers role master beside the group's master; SLAVEOF %s failed: %s" % (
                action.server, action.master, problem)
        return "%s answered role master beside the group's master %s (two writable masters): made its slave " \
               "directly (SLAVEOF), before the dashboard's call" % (action.server, action.master)

    def _why_not_demote(self, action: Action) -> str:
        """Why demoting `action.server` directly could demote the group's real master, or "": the dashboard must
        still list `action.master` as the group's only master (another runner or an operator may have promoted the
        server since the plan was made) and `action.master` must answer role master now."""
        try:
            group = self.dashboard.group(action.group)
        except DashboardError as exc:
            return "the group could not be re-read: %s" % exc
        masters = [s.addr for s in group.of_type("master")]
        if len(masters) != 1 or not same_server(masters[0], action.master):
            return "the dashboard now lists master(s) %s" % (masters or "none")
        master = self.prober.probe(masters[0])
        if not (master.alive and master.role == "master"):
            return "the group's master %s reports %s" % (masters[0], _describe(master))
        return ""

    def _wait_for(self, addr: str, condition: Callable[[ProbeResult], bool]) -> ProbeResult:
        deadline = self._clock() + self.deadline.cap(self.verify_timeout)
        while True:
            seen = self.prober.probe(addr)
            if condition(seen) or self._clock() >= deadline:
                return seen
            self._sleep(self.verify_interval)


def _describe(seen: Optional[ProbeResult]) -> str:
    if seen is None:
        return "nothing"
    if not seen.alive:
        return "%s (%s)" % (seen.status, seen.error)
    if seen.role == "slave":
        return "role slave of %s (link %s)" % (seen.master_addr, "up" if seen.link_up else "down")
    return "role %s" % seen.role
