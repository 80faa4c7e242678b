# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One check-and-promote pass: read, probe, plan, act, verify, report.

The module file only validates its arguments and hands them here; the result is a plain dict ready for
exit_json / fail_json, so the pass can also run from tests and benchmarks without Ansible around it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

from ansible_collections.codis.ha.plugins.module_utils._checks import ca_file_problem, number_problem
from ansible_collections.codis.ha.plugins.module_utils._coordinator import (
    Coordinator,
    CoordinatorError,
    CoordinatorSettings,
    another_is_acting,
    apply_quorum,
    coordinator_argument_spec,
    coordinator_problems,
    observations,
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
from ansible_collections.codis.ha.plugins.module_utils._executor import DONE, FAILED, PLANNED, Executor, Outcome
from ansible_collections.codis.ha.plugins.module_utils._http import Transport, url_problem
from ansible_collections.codis.ha.plugins.module_utils._planner import (
    FAILOVER,
    HEALTHY,
    PROMOTE,
    REFUSED,
    REMOVE_PROXY,
    REPAIR,
    SKIPPED,
    Plan,
    Policy,
    plan,
    predict,
)
from ansible_collections.codis.ha.plugins.module_utils._probe import ProbeSettings, Prober, redis_argument_spec
from ansible_collections.codis.ha.plugins.module_utils._state import (
    PassLock,
    StateError,
    load_state,
    next_history,
    not_regular,
    save_state,
)
from ansible_collections.codis.ha.plugins.module_utils._topology import (
    DOWN,
    HANG_EVIDENCE,
    GroupHistory,
    ProbeResult,
    ServerGroup,
    Topology,
    canonical_addr,
    format_addr,
    parse_addr,
)


def argument_spec() -> dict[str, Any]:
    spec = dict(
        dashboard_url=dict(type="str", required=True),
        codis_version=dict(type="str", default="auto", choices=["auto", "2", "3"]),
        product_name=dict(type="str"),
        product_auth=dict(type="str", no_log=True),
        dashboard_timeout=dict(type="float", default=5.0),
        promote_timeout=dict(type="float", default=40.0),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        repoint_slaves=dict(type="bool", default=True),
        reuse_offline=dict(type="bool", default=True),
        groups=dict(type="list", elements="int"),
        verify_timeout=dict(type="float", default=10.0),
        state_path=dict(type="path"),
        down_after=dict(type="float", default=0.0),
        min_failover_interval=dict(type="float", default=300.0),
        stale_margin=dict(type="float", default=10.0),
        max_data_loss_bytes=dict(type="int"),
        max_failovers_per_pass=dict(type="int", no_log=False),
        force=dict(type="bool", default=False),
        remove_dead_proxies=dict(type="bool", default=True),
        pass_timeout=dict(type="float", default=60.0, no_log=False),
        parallel_groups=dict(type="int", default=8),
    )
    spec.update(redis_argument_spec())
    spec.update(coordinator_argument_spec())
    return spec


# (name, lowest, highest, must be above the lowest): every number option, checked finite and in range.
NUMBER_RANGES = (
    ("dashboard_timeout", 0, 3600, True),
    ("promote_timeout", 0, 3600, True),
    ("pass_timeout", 0, 86400, True),
    ("verify_timeout", 0, 3600, False),
    ("down_after", 0, 86400, False),
    ("min_failover_interval", 0, 366 * 86400, False),
    ("stale_margin", 0, 86400, False),
    ("max_data_loss_bytes", 0, 2 ** 62, False),
    ("max_failovers_per_pass", 1, 100000, False),
    ("parallel_groups", 1, 256, False),
)


def parameter_problems(params: dict[str, Any]) -> list[str]:
    problems = ProbeSettings.from_params(params).problems()
    problems.append(url_problem(params["dashboard_url"]))
    problems.extend(number_problem(name, params.get(name), low, high, above)
                    for name, low, high, above in NUMBER_RANGES)
    bad_groups = [g for g in params.get("groups") or [] if not 0 <= g <= 2 ** 31]
    if bad_groups:
        problems.append("groups must be group ids (0 or more), got %s" % bad_groups[:5])
    if params["validate_certs"]:
        problems.append(ca_file_problem("ca_path", params.get("ca_path")))
    if params.get("codis_version") == "2" and params.get("product_name"):
        problems.append("product_name is a Codis 3 option; codis_version is 2")
    if params["down_after"] and params["down_after"] > 0 and not params.get("state_path"):
        problems.append("down_after needs state_path: passes confirm a failure through the state file")
    problems.extend(coordinator_problems(params, socket.gethostname()))
    for path in filter(None, [params.get("state_path")]):
        problems.extend(filter(None, ["state_path: %s" % p for p in [not_regular(path)] if p]
                               + ["state_path lock: %s" % p for p in [not_regular(path + ".lock")] if p]))
    return [p for p in problems if p]


@dataclass(frozen=True)
class PassOptions:
    """The module's arguments, parsed once at the edge: nothing below run_pass reads the raw params dict."""
    dashboard_url: str
    codis_version: str = "auto"
    product_name: Optional[str] = None
    dashboard_timeout: float = 5.0
    promote_timeout: float = 40.0
    pass_timeout: float = 60.0
    validate_certs: bool = True
    ca_path: Optional[str] = None
    verify_timeout: float = 10.0
    parallel_groups: int = 8
    state_path: Optional[str] = None
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    policy: Policy = field(default_factory=Policy)
    coordinator: Optional[CoordinatorSettings] = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "PassOptions":
        # codis-server's requirepass is the cluster's product_auth.
        password = params.get("redis_password") or params.get("product_auth")
        groups = params.get("groups")
        return cls(
            dashboard_url=params["dashboard_url"], codis_version=params.get("codis_version") or "auto",
            product_name=params.get("product_name"), dashboard_timeout=params["dashboard_timeout"],
            promote_timeout=max(params.get("promote_timeout") or 40.0, params["dashboard_timeout"]),
            pass_timeout=params.get("pass_timeout") or 60.0, validate_certs=params["validate_certs"],
            ca_path=params.get("ca_path"), verify_timeout=params["verify_timeout"],
            parallel_groups=params.get("parallel_groups") or 8,
            state_path=params.get("state_path"),
            probe=ProbeSettings.from_params(dict(params, redis_password=password)),
            policy=Policy(repoint_slaves=params["repoint_slaves"], reuse_offline=params["reuse_offline"],
                          groups=frozenset(groups) if groups is not None else None,
                          down_after=params["down_after"], min_failover_interval=params["min_failover_interval"],
                          stale_margin=params["stale_margin"], max_data_loss_bytes=params.get("max_data_loss_bytes"),
                          max_failovers_per_pass=params.get("max_failovers_per_pass"), force=params["force"],
                          remove_dead_proxies=params.get("remove_dead_proxies", True)),
            coordinator=CoordinatorSettings.from_params(params, socket.gethostname()))


@dataclass
class PassResult:
    """What the module returns: `failed_msg` set means fail_json."""
    result: dict[str, Any] = field(default_factory=dict)
    failed_msg: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    history: Optional[dict[int, GroupHistory]] = None


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
        return _nothing_done("cannot read the server groups from the dashboard, nothing was changed: %s" % exc)
    try:
        return _run(client, options, check_mode, diff, started, planner, deadline, clock)
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
    doubtful = [p for p in topology.proxies if p.dashboard_alive is False]
    if not doubtful:
        return topology
    checked = {}
    for proxy in doubtful:
        refused = port_refuses(proxy.admin_addr, timeout)
        checked[proxy.token] = replace(proxy, refused=refused, silent=http_silent(proxy.admin_addr, timeout,
                                                                                  HANG_EVIDENCE)
                                       if refused is False else None)
    return replace(topology, proxies=tuple(checked.get(p.token, p) for p in topology.proxies))


def http_silent(addr: str, connect_timeout: float, wait: float) -> Optional[bool]:
    """True when the port takes a connection and sends no byte of an answer to an HTTP request within `wait`
    seconds, False when it answers anything (even an error or a close), None when it cannot tell."""
    try:
        host, port = parse_addr(addr)
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except (OSError, ValueError):
        return None
    with sock:
        try:
            sock.settimeout(wait)
            sock.sendall(b"GET /api/proxy/model HTTP/1.0\r\nHost: codis-ha\r\n\r\n")
            sock.recv(1)
            return False
        except socket.timeout:
            return True
        except OSError:
            return None


def port_refuses(addr: str, timeout: float) -> Optional[bool]:
    """True when a TCP connect is refused (the host answers, nothing listens), False when it connects, None when
    it cannot tell (a timeout, a name that does not resolve)."""
    try:
        host, port = parse_addr(addr)
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return None


def server_identity(addr: str) -> str:
    """The server an address names: its host resolved, so that `localhost:6911`, `127.0.0.1:6911` and a host
    name of the same machine are one server. An address that does not resolve stays as it is spelled."""
    try:
        host, port = parse_addr(addr)
    except ValueError:
        return addr
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        resolved = sorted({str(info[4][0]).split("%", maxsplit=1)[0] for info in infos})
    except (OSError, UnicodeError, ValueError):
        resolved = []
    return (canonical_addr(format_addr(resolved[0], port)) if resolved else None) or format_addr(host, port)


def _run(client: DashboardClient, options: PassOptions, check_mode: bool, diff: bool,
         started: float, planner: Callable[..., Plan], deadline: Deadline,
         clock: Callable[[], float]) -> PassResult:
    try:
        topology, selected = read_topology(client, options)
    except DashboardError as exc:
        return _nothing_done("cannot read the server groups from the dashboard, nothing was changed: %s" % exc)
    state_path = options.state_path
    if not state_path:
        return _decide_and_act(client, options, topology, selected, {}, check_mode, diff, started,
                               planner, deadline, clock)
    lock = PassLock(state_path + ".lock", create=not check_mode)
    try:
        acquired = lock.acquire()
    except (OSError, StateError) as exc:
        return _nothing_done("cannot take the pass lock %s.lock, nothing was changed: %s" % (state_path, exc))
    if not acquired:
        reason = "another pass is running on this host (lock %s.lock held)" % state_path
        return _nothing_done(None, reason + "; nothing was done.",
                             [{"group": g.id, "reason": reason} for g in selected])
    try:
        try:
            history, warnings, created_at = load_state(state_path, clock(), move_aside=not check_mode)
        except StateError as exc:
            return _nothing_done("cannot use the state file, nothing was changed: %s" % exc)
        outcome = _decide_and_act(client, options, topology, selected, history, check_mode, diff,
                                  started, planner, deadline, clock)
        outcome.warnings.extend(warnings)
        if not check_mode and outcome.history is not None:
            try:
                save_state(state_path, outcome.history, created_at)
            except (OSError, StateError) as exc:
                outcome.warnings.append("could not write the state file %s: %s" % (state_path, exc))
        return outcome
    finally:
        lock.release()


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


def _nothing_done(failed_msg: Optional[str], msg: str = "",
                  skipped: Optional[list[dict[str, Any]]] = None) -> PassResult:
    """A pass that stopped before planning: the same keys as any other result, all empty."""
    result: dict[str, Any] = {"changed": False, "actions": [], "groups": [], "skipped_groups": skipped or []}
    if msg:
        result["msg"] = msg
    return PassResult(result, failed_msg)


def _decide_and_act(client: DashboardClient, options: PassOptions, topology: Topology,
                    selected: list[ServerGroup], history: dict[int, GroupHistory],
                    check_mode: bool, diff: bool, started: float, planner: Callable[..., Plan],
                    deadline: Deadline, clock: Callable[[], float]) -> PassResult:
    prober = Prober(options.probe)

    # The pass's first look: what the dashboard showed of the selected groups, and what the probes found.
    first_shown: list[tuple[int, dict[str, str]]] = []
    first: dict[str, ProbeResult] = {}

    def decide(topology: Topology, selected: list[ServerGroup]) -> tuple[dict[str, ProbeResult], Plan, float]:
        # The pass's time is when its probes start: a runner starts passes exactly an interval apart, so
        # down_after 1 with a 1 s interval confirms on the second pass, whatever the probes cost.
        now = clock()
        shown = [(g.id, g.snapshot()) for g in selected]
        if first and shown == first_shown:
            # A second look (under the lock) at what the dashboard showed then: only what answered is asked
            # again; the silence of the rest was measured moments ago, and asking a frozen master again would
            # cost a whole probe budget more.
            probes = prober.look_again(selected, first)
        else:
            first_shown[:] = shown
            first.clear()
            first.update(prober.probe_all([s.addr for g in selected for s in g.servers]))
            probes = prober.look_again_at_witnesses(selected, first)
        the_plan = stand_aside_for_sentinel(topology, planner(topology, probes, options.policy, history, now))
        return probes, the_plan, now

    probes, the_plan, now = decide(topology, selected)
    coordinator: Optional[Coordinator] = None
    coordination_failed: Optional[str] = None
    try:
        if options.coordinator is not None:
            try:
                coordinator = open_coordinator(options.coordinator)
                the_plan = _agree(coordinator, options.coordinator, topology, the_plan, check_mode)
                if the_plan.actions and not check_mode:
                    holder = coordinator.lock()
                    if holder is not None:
                        the_plan = another_is_acting(the_plan, holder)
                    else:
                        # Under the lock, from the start: another watcher may have acted since our first look.
                        topology, selected = read_topology(client, options)
                        probes, the_plan, now = decide(topology, selected)
                        the_plan = _agree(coordinator, options.coordinator, topology, the_plan, check_mode)
                        if not coordinator.holds_lock():
                            raise CoordinatorError("lost the cluster's lock before acting")
            except (CoordinatorError, DashboardError) as exc:
                coordination_failed = "%s; no failover and no change (the watchers cannot agree without it)" % exc
                the_plan = the_plan.withheld(REFUSED, coordination_failed)
        outcome = Executor(client, prober, verify_timeout=options.verify_timeout, deadline=deadline,
                           parallel_groups=options.parallel_groups).run(the_plan, topology, check_mode)
    finally:
        if coordinator is not None:
            coordinator.close()
    after: Optional[Topology] = None
    if diff:
        after = predict(topology, the_plan) if check_mode else _reread(client, topology, outcome)
    result = _report(topology, probes, the_plan, outcome, after, diff, started)
    remembered = next_history(history, selected, probes, the_plan.decisions,
                              {r.action.group: r.action.server for r in outcome.results
                               if r.action.action == PROMOTE and r.status == DONE}, now)
    problems = [coordination_failed] if coordination_failed else []
    if the_plan.errors:
        more = len(the_plan.errors) - 3
        problems.append("; ".join(the_plan.errors[:3]) + (
            "; and %d more server(s) like this" % more if more > 0 else ""))
    if outcome.failed:
        problems.append("%d action(s) failed: %s" % (len(outcome.failed), "; ".join(
            "%s %s in group %d: %s" % (r.action.action, r.action.server, r.action.group, r.detail)
            for r in outcome.failed)))
    # Writes gone for good are an incident whatever else the pass did: the task fails so that it is seen.
    problems += ["group %d: %s" % (d.group, d.data_loss) for d in the_plan.decisions if d.data_loss]
    masterless = without_working_master(selected, probes, the_plan, outcome)
    if masterless:
        problems.append("group(s) left without a working master: %s" % "; ".join(
            "group %d (%s)" % (gid, _clip(reason)) for gid, reason in masterless))
    flapping = ["group %d failed over again within min_failover_interval (%s s): %s" % (
        d.group, options.policy.min_failover_interval, _clip(d.reason)) for d in the_plan.decisions
        if d.flapping and d.actions]
    groups = {g.id: g for g in selected}
    migrating = ["group %d failed over during a slot migration (%s); the dashboard carries the migration on from "
                 "the new master" % (d.group, groups[d.group].migrating) for d in the_plan.decisions
                 if d.actions and d.group in groups and groups[d.group].migrating
                 and any(a.action == PROMOTE for a in d.actions)]
    empty = ["the dashboard lists no server group: %s, which it answers for an empty cluster and for a wrong "
             "product name or ZooKeeper path in its configuration alike; nothing is watched" % topology.empty_answer
             ] if topology.empty_answer and not topology.groups else []
    if empty:
        result["msg"] = ("%s %s%s" % (result.get("msg", ""), empty[0][0].upper(), empty[0][1:])).strip()
    return PassResult(result, "; ".join(problems) or None, warnings=flapping + migrating + empty,
                      history=remembered)


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


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _reread(client: DashboardClient, before: Topology, outcome: Outcome) -> Topology:
    if not outcome.results:
        return before
    try:
        return client.topology()
    except DashboardError:
        return before


def _report(topology: Topology, probes: dict[str, ProbeResult], the_plan: Plan, outcome: Outcome,
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
            "decision": decision.decision,
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
        "msg": _sentence(groups, outcome),
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
    out: dict[str, Any] = {"addr": addr, "type": server_type}
    if seen is None:
        out.update(alive=None, status="not probed")
        return out
    out.update(alive=seen.alive, status=seen.status, role=seen.role, offset=seen.offset,
               master=seen.master_addr, link_up=seen.link_up, priority=seen.priority, error=seen.error)
    return out


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
        named = ["group %d %s: %s" % (g["id"], g["decision"].replace("_", " "), _clip(g["reason"], 200))
                 for g in trouble]
        parts.append("not healthy: " + "; ".join(named))
    return "; ".join(parts) + "."
