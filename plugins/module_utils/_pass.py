# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One check-and-promote pass: read, probe, plan, act, verify, report.

The module file only validates its arguments (`_options`) and hands them here; the result (`_report`) is a plain
dict ready for exit_json / fail_json, so the pass can also run from tests and benchmarks without Ansible around it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

from ansible_collections.codis.ha.plugins.module_utils._coordinator import (
    Coordinator,
    CoordinatorError,
    CoordinatorSettings,
    open_coordinator,
)
from ansible_collections.codis.ha.plugins.module_utils._dashboard import (
    Codis2Client,
    Codis3Client,
    DashboardClient,
    DashboardError,
    detect_version,
)
from ansible_collections.codis.ha.plugins.module_utils._deadline import Deadline
from ansible_collections.codis.ha.plugins.module_utils._executor import DONE, FAILED, ActionResult, Executor, Outcome
from ansible_collections.codis.ha.plugins.module_utils._http import Transport
from ansible_collections.codis.ha.plugins.module_utils._options import PassOptions
from ansible_collections.codis.ha.plugins.module_utils._planner import (
    FAILOVER,
    HEALTHY,
    PROMOTE,
    REFUSED,
    REMOVE_STALE_LOCK,
    SKIPPED,
    Action,
    Plan,
    another_is_acting,
    apply_quorum,
    observations,
    plan,
    predict,
)
from ansible_collections.codis.ha.plugins.module_utils._probe import Prober, http_silent, port_refuses, server_identity
from ansible_collections.codis.ha.plugins.module_utils._report import (
    PassResult,
    listing_nothing,
    nothing_done,
    report,
    without_working_master,
)
from ansible_collections.codis.ha.plugins.module_utils._state import (
    PassLock,
    StateError,
    load_state,
    next_history,
    save_state,
)
from ansible_collections.codis.ha.plugins.module_utils._topology import (
    HANG_EVIDENCE,
    GroupHistory,
    ProbeResult,
    Proxy,
    ServerGroup,
    Topology,
    clip,
)

UNREADABLE = "cannot read the server groups from the dashboard, nothing was changed: %s"


def run_pass(params: dict[str, Any], check_mode: bool = False, diff: bool = False,
             planner: Callable[..., Plan] = plan, clock: Callable[[], float] = time.time) -> PassResult:
    """`planner` is replaceable so that tests can show the checks catch a naive policy; `clock` (wall time, for
    the history: down_after, anti-flapping, the witness window) so that tests and the simulator can drive it."""
    started = time.monotonic()
    options = PassOptions.from_params(params)
    deadline = Deadline(options.pass_timeout)
    try:
        client = dashboard_client(options, deadline)
    except DashboardError as exc:
        return nothing_done(UNREADABLE % exc)
    try:
        return _Pass(client, options, check_mode, diff, started, planner, deadline, clock).run()
    finally:
        client.close()


def dashboard_client(options: PassOptions, deadline: Optional[Deadline] = None) -> DashboardClient:
    """The client for the dashboard's version; `auto` asks the dashboard once. One HTTP session for the pass."""
    try:
        transport = Transport(options.dashboard_url, options.dashboard_timeout, options.validate_certs,
                              options.ca_path, deadline or Deadline(None))
    except ValueError as exc:
        raise DashboardError(str(exc)) from None
    version = options.codis_version
    product_name = options.product_name
    try:
        client: DashboardClient
        if version == "auto":
            detected, reported = detect_version(transport.url, transport=transport)
            version = str(detected)
            product_name = product_name or reported
        if version == "3":
            if not product_name:
                raise DashboardError("Codis 3 needs product_name (the xauth token is derived from it)")
            client = Codis3Client(transport.url, product_name, options.dashboard_timeout, transport=transport)
        else:
            client = Codis2Client(transport.url, options.dashboard_timeout, transport=transport)
        client.promote_timeout = options.promote_timeout
        return client
    except BaseException:
        transport.close()
        raise


def check_proxies(topology: Topology, timeout: float) -> Topology:
    """Our own look at each proxy the dashboard says is not answering: does its admin port refuse, or take the
    connection and say nothing? Dead or hung takes both opinions; a proxy that only the dashboard cannot reach is
    not removed."""
    return _look_at_proxies(topology, [p for p in topology.proxies if p.dashboard_alive is False], timeout)


def _look_at_proxies(topology: Topology, proxies: list[Proxy], timeout: float) -> Topology:
    """All at once: a rack's frozen proxies cost HANG_EVIDENCE once, not once each."""
    def look(proxy: Proxy) -> Proxy:
        refused = port_refuses(proxy.admin_addr, timeout)
        return replace(proxy, refused=refused, silent=http_silent(proxy.admin_addr, timeout, HANG_EVIDENCE)
                       if refused is False else None)

    if not proxies:
        return topology
    with ThreadPoolExecutor(max_workers=min(len(proxies), 64), thread_name_prefix="codis-ha-proxy") as pool:
        checked = {p.token: p for p in pool.map(look, proxies)}
    return replace(topology, proxies=tuple(checked.get(p.token, p) for p in topology.proxies))


def confirm_proxies(client: DashboardClient, topology: Topology, timeout: float) -> Topology:
    """Before a promotion, our own look at the proxies the dashboard's poll did not call failed. One that does
    not answer here is asked of the dashboard once more: its poll failing since makes it dead or hung (removed
    first); a poll that ended a second into our look and got an answer clears our doubt (the dashboard reaches
    it, a promote will not wait on it); anything else leaves it doubtful, and the planner holds the failover back
    for a pass."""
    began = time.monotonic()
    topology = _look_at_proxies(topology, [p for p in topology.proxies if p.dashboard_alive is not False], timeout)
    if not any(p.doubtful for p in topology.proxies):
        return topology
    try:
        again = {p.token: p for p in client.topology().proxies}
    except DashboardError:
        return topology
    # When our look began on the dashboard's clock (its Date header, whole seconds, read after the look ended):
    # at most a second before the true moment, never after it.
    began_there = client.dashboard_time() - (time.monotonic() - began)
    return replace(topology, proxies=tuple(_second_poll(p, again.get(p.token), began_there) if p.doubtful else p
                                           for p in topology.proxies))


def _second_poll(proxy: Proxy, again: Optional[Proxy], began: float) -> Proxy:
    if again is None:  # no longer registered: a promote does not call it
        return replace(proxy, refused=None, silent=None)
    if again.dashboard_alive is False:
        return replace(proxy, dashboard_alive=False, polled_at=again.polled_at)
    # Its poll time is whole seconds and `began` may be a second early: two seconds past it is a poll that ended
    # at least a second into our look, and it got an answer.
    if again.dashboard_alive and again.polled_at is not None and again.polled_at >= began + 2:
        return replace(proxy, dashboard_alive=True, polled_at=again.polled_at, refused=None, silent=None)
    return proxy


def read_topology(client: DashboardClient, options: PassOptions) -> tuple[Topology, list[ServerGroup]]:
    """The dashboard's groups with every address resolved to its server, proxies checked, and the groups this
    pass is for."""
    topology = client.topology()
    resolved: dict[str, str] = {}
    topology = topology.identity_conflicts(lambda a: resolved.get(a) or resolved.setdefault(a, server_identity(a)))
    topology = check_proxies(topology, options.probe.timeout)
    wanted = options.policy.groups
    return topology, [g for g in topology.groups if wanted is None or g.id in wanted]


def stand_aside_for_sentinel(topology: Topology, the_plan: Plan) -> Plan:
    """Codis 3 with Redis Sentinel registered in the dashboard: Sentinel fails the masters over and the dashboard
    follows it (1.6 to 3.4 s later, measured). A promote through the dashboard would tell every sentinel to stop
    watching the group, and undoing Sentinel's promotion would fight it: this pass reports and changes nothing."""
    if not topology.sentinels:
        return the_plan
    why = ("Redis Sentinel is registered in the dashboard (%s) and fails this cluster's masters over, the dashboard "
           "following it; codis.ha stands aside and reports" % ", ".join(topology.sentinels))
    return replace(the_plan, decisions=tuple(
        replace(d, decision=SKIPPED, actions=(), reason="%s; %s" % (why, d.reason), deferred_to="Redis Sentinel")
        if d.decision != HEALTHY else d for d in the_plan.decisions))


@dataclass
class _Look:
    """What the pass saw and decided: the dashboard's groups, the probes, the plan and the time it was made."""
    topology: Topology
    selected: list[ServerGroup]
    probes: dict[str, ProbeResult] = field(default_factory=dict)
    plan: Plan = field(default_factory=Plan)
    now: float = 0.0


class _Pass:
    """One pass: the dashboard client, the options, the clock and the deadline it runs under."""

    def __init__(self, client: DashboardClient, options: PassOptions, check_mode: bool, diff: bool, started: float,
                 planner: Callable[..., Plan], deadline: Deadline, clock: Callable[[], float]) -> None:
        self.client, self.options, self.check_mode, self.diff = client, options, check_mode, diff
        self.started, self.planner, self.deadline, self.clock = started, planner, deadline, clock
        self.prober = Prober(options.probe)
        # The pass's first look: what the dashboard showed of the selected groups, and what the probes found.
        self.first_shown: list[tuple[int, dict[str, str]]] = []
        self.first: dict[str, ProbeResult] = {}

    def run(self) -> PassResult:
        try:
            topology, selected = read_topology(self.client, self.options)
        except DashboardError as exc:
            return nothing_done(UNREADABLE % exc)
        look = _Look(topology, selected)
        state_path = self.options.state_path
        if not state_path:
            return self.decide_and_act(look, {})
        lock = PassLock(state_path + ".lock", create=not self.check_mode)
        try:
            acquired = lock.acquire()
        except (OSError, StateError) as exc:
            return nothing_done("cannot take the pass lock %s.lock, nothing was changed: %s" % (state_path, exc))
        if not acquired:
            reason = "another pass is running on this host (lock %s.lock held)" % state_path
            return nothing_done(None, reason + "; nothing was done.",
                                [{"group": g.id, "reason": reason} for g in selected])
        try:
            return self.with_state(look, state_path)
        finally:
            lock.release()

    def with_state(self, look: _Look, state_path: str) -> PassResult:
        try:
            history, warnings, created_at = load_state(state_path, self.clock(), move_aside=not self.check_mode)
        except StateError as exc:
            return nothing_done("cannot use the state file, nothing was changed: %s" % exc)
        outcome = self.decide_and_act(look, history)
        outcome.warnings.extend(warnings)
        if not self.check_mode and outcome.history is not None:
            try:
                save_state(state_path, outcome.history, created_at)
            except (OSError, StateError) as exc:
                outcome.warnings.append("could not write the state file %s: %s" % (state_path, exc))
        return outcome

    def decide(self, look: _Look, history: dict[int, GroupHistory]) -> _Look:
        """Probe and plan. The pass's time is when its probes start: a runner starts passes exactly an interval
        apart, so down_after 1 with a 1 s interval confirms on the second pass, whatever the probes cost."""
        now = self.clock()
        shown = [(g.id, g.snapshot()) for g in look.selected]
        if self.first and shown == self.first_shown:
            # A second look (under the lock) at what the dashboard showed then: only what answered is asked
            # again; the silence of the rest was measured moments ago, and asking a frozen master again would
            # cost a whole probe budget more.
            probes = self.prober.look_again(look.selected, self.first)
        else:
            self.first_shown[:] = shown
            self.first.clear()
            self.first.update(self.prober.probe_all([s.addr for g in look.selected for s in g.servers]))
            probes = self.prober.look_again_at_witnesses(look.selected, self.first)
        the_plan = self.planner(look.topology, probes, self.options.policy, history, now)
        if any(d.decision == FAILOVER for d in the_plan.decisions) and look.topology.proxies:
            look = replace(look, topology=confirm_proxies(self.client, look.topology, self.options.probe.timeout))
            the_plan = self.planner(look.topology, probes, self.options.policy, history, now)
        return replace(look, probes=probes, plan=stand_aside_for_sentinel(look.topology, the_plan), now=now)

    def decide_and_act(self, look: _Look, history: dict[int, GroupHistory]) -> PassResult:
        look = self.decide(look, history)
        coordinator: Optional[Coordinator] = None
        coordination_failed: Optional[str] = None
        try:
            if self.options.coordinator is not None:
                try:
                    coordinator = open_coordinator(self.options.coordinator)
                    look = self.coordinate(coordinator, self.options.coordinator, look, history)
                except (CoordinatorError, DashboardError) as exc:
                    coordination_failed = "%s; no failover and no change (the watchers cannot agree without it)" % exc
                    look = replace(look, plan=look.plan.withheld(REFUSED, coordination_failed))
            promoting = not self.check_mode and any(a.action == PROMOTE for a in look.plan.actions)
            proxies_before = self.client.proxy_states() if promoting else None
            outcome = Executor(self.client, self.prober, verify_timeout=self.options.verify_timeout,
                               deadline=self.deadline, parallel_groups=self.options.parallel_groups).run(
                                   look.plan, look.topology, self.check_mode, look.probes)
            outcome.results.extend(self.remove_stale_lock(history, outcome, look.now))
            taken_offline = proxies_taken_offline(proxies_before, self.client.proxy_states()
                                                  if proxies_before else None)
        finally:
            if coordinator is not None:
                coordinator.close()
        passed = self.result(look, history, outcome, [coordination_failed] if coordination_failed else [])
        passed.warnings.extend(taken_offline)
        return passed

    def remove_stale_lock(self, history: dict[int, GroupHistory], outcome: Outcome, now: float) -> list[ActionResult]:
        """Codis 2's lock nodes are not ephemeral: a dashboard killed during a call leaves its lock, and every later
        change is refused for good (two hour-long soaks lost their dashboard that way). A lock that has refused every
        change a group needed for `stale_lock_after` seconds, across passes (the state file's clock), is older than
        any call holds it (a promote waiting on its proxies, 30 to 45 s on the real binaries): it is removed as
        `codis-config action remove-lock` does, and the next pass makes the change."""
        after = self.options.stale_lock_after
        refused = sorted(outcome.lock_refused)
        since = [(gid, history[gid].lock_refused_since) for gid in refused if gid in history]
        aged = [(gid, t) for gid, t in since if t is not None and now - t >= after]
        if not after or not aged:
            return []
        gid, first = aged[0]
        action = Action(gid, REMOVE_STALE_LOCK, "", None, "", (
            "the dashboard's lock has refused every change group %d needed for %.0f s, longer than any call holds it "
            "(stale_lock_after %s s): a Codis 2 dashboard killed during a call leaves its lock for good; removed as "
            "`codis-config action remove-lock` does, and the change is left to the next pass") % (
                gid, now - first, after))
        try:
            self.client.force_remove_locks()
        except DashboardError as exc:
            return [ActionResult(action, FAILED, "GET /api/force_remove_locks failed: %s" % exc)]
        return [ActionResult(action, DONE, "GET /api/force_remove_locks answered OK")]

    def coordinate(self, coordinator: Coordinator, settings: CoordinatorSettings, look: _Look,
                   history: dict[int, GroupHistory]) -> _Look:
        """Several watchers: the quorum's verdict, and under the cluster's lock a second read and plan (another
        watcher may have acted since our first look)."""
        look = replace(look, plan=_agree(coordinator, settings, look.topology, look.plan, self.check_mode))
        if not look.plan.actions or self.check_mode:
            return look
        holder = coordinator.lock()
        if holder is not None:
            return replace(look, plan=another_is_acting(look.plan, holder))
        topology, selected = read_topology(self.client, self.options)
        look = self.decide(_Look(topology, selected), history)
        look = replace(look, plan=_agree(coordinator, settings, look.topology, look.plan, self.check_mode))
        if not coordinator.holds_lock():
            raise CoordinatorError("lost the cluster's lock before acting")
        return look

    def result(self, look: _Look, history: dict[int, GroupHistory], outcome: Outcome,
               problems: list[str]) -> PassResult:
        after: Optional[Topology] = None
        if self.diff:
            after = predict(look.topology, look.plan) if self.check_mode else _reread(self.client, look.topology,
                                                                                      outcome)
        result = report(look.topology, look.probes, look.plan, outcome, after, self.diff, self.started)
        remembered = next_history(history, look.selected, look.probes, look.plan.decisions,
                                  {r.action.group: r.action.server for r in outcome.results
                                   if r.action.action == PROMOTE and r.status == DONE}, look.now,
                                  outcome.lock_refused)
        problems = problems + _problems(look, outcome)
        return PassResult(result, "; ".join(problems) or None, warnings=_warnings(look, self.options),
                          history=remembered)


def proxies_taken_offline(before: Optional[dict[str, str]], after: Optional[dict[str, str]]) -> list[str]:
    """Codis 2: a proxy online before this pass's promotion and not after. Its dashboard waits 30 s for every
    proxy to acknowledge a promotion; a proxy that holds requests to a frozen old master cannot, is marked offline,
    and shuts itself down (measured on the real binaries): every client on it lost its connection."""
    if not before or after is None:
        return []
    return ["proxy %s was online before this pass's promotion and the dashboard now lists it as %s: the Codis 2 "
            "dashboard marks a proxy offline when it does not acknowledge a promotion within 30 s (requests held "
            "by a frozen old master keep it from switching) and the proxy shuts itself down, so its clients lost "
            "their connections; start it again and set it online" % (proxy, after.get(proxy, "gone"))
            for proxy, state in sorted(before.items()) if state == "online" and after.get(proxy) != "online"]


def _problems(look: _Look, outcome: Outcome) -> list[str]:
    """What fails the task: errors of the plan, failed actions, writes gone, groups left without a master."""
    problems = []
    if look.plan.errors:
        more = len(look.plan.errors) - 3
        problems.append("; ".join(look.plan.errors[:3]) + (
            "; and %d more server(s) like this" % more if more > 0 else ""))
    if outcome.failed:
        problems.append("%d action(s) failed: %s" % (len(outcome.failed), "; ".join(
            "%s %s in group %d: %s" % (r.action.action, r.action.server, r.action.group, r.detail)
            for r in outcome.failed)))
    # Writes gone for good are an incident whatever else the pass did: the task fails so that it is seen.
    problems += ["group %d: %s" % (d.group, d.data_loss) for d in look.plan.decisions if d.data_loss]
    masterless = without_working_master(look.selected, look.probes, look.plan, outcome)
    if masterless:
        problems.append("group(s) left without a working master: %s" % "; ".join(
            "group %d (%s)" % (gid, clip(reason)) for gid, reason in masterless))
    return problems


def _warnings(look: _Look, options: PassOptions) -> list[str]:
    """What the task reports without failing: flapping, failovers during a migration, a dashboard listing nothing."""
    flapping = ["group %d failed over again within min_failover_interval (%s s): %s" % (
        d.group, options.policy.min_failover_interval, clip(d.reason)) for d in look.plan.decisions
        if d.flapping and d.actions]
    groups = {g.id: g for g in look.selected}
    migrating = ["group %d failed over during a slot migration (%s); the dashboard carries the migration on from "
                 "the new master" % (d.group, groups[d.group].migrating) for d in look.plan.decisions
                 if d.actions and d.group in groups and groups[d.group].migrating
                 and any(a.action == PROMOTE for a in d.actions)]
    return flapping + migrating + list(filter(None, [listing_nothing(look.topology)]))


def _agree(coordinator: Coordinator, settings: CoordinatorSettings, topology: Topology, the_plan: Plan,
           check_mode: bool) -> Plan:
    """Publish what this pass saw (not in check mode: an observation is a vote), read every fresh one, and keep
    only the failovers that `quorum` watchers agree on."""
    masters = {g.id: (g.master.addr if g.master else None) for g in topology.groups}
    own = {"observer": settings.observer_id, "groups": observations(the_plan, masters)}
    if not check_mode:
        coordinator.publish(own)
    fresh = coordinator.fresh()
    fresh[settings.observer_id] = own  # in check mode, what this pass would publish
    return apply_quorum(the_plan, fresh, settings.quorum, len(fresh))


def _reread(client: DashboardClient, before: Topology, outcome: Outcome) -> Topology:
    if not outcome.results:
        return before
    try:
        return client.topology()
    except DashboardError:
        return before
