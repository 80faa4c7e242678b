# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module's options: the argument spec, the checks Ansible's spec cannot make, and PassOptions, the parsed
form that everything below run_pass reads. PassOptions' defaults are the defaults: the spec takes them from it."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.codis.ha.plugins.module_utils._checks import ca_file_problem, number_problem
from ansible_collections.codis.ha.plugins.module_utils._coordinator import (
    CoordinatorSettings,
    coordinator_argument_spec,
    coordinator_problems,
)
from ansible_collections.codis.ha.plugins.module_utils._dashboard import DEFAULT_PROMOTE_TIMEOUT
from ansible_collections.codis.ha.plugins.module_utils._http import url_problem
from ansible_collections.codis.ha.plugins.module_utils._planner import Policy
from ansible_collections.codis.ha.plugins.module_utils._probe import ProbeSettings, redis_argument_spec
from ansible_collections.codis.ha.plugins.module_utils._state import not_regular


# Options that are given together or not at all (AnsibleModule and the runner's validator both take it).
REQUIRED_TOGETHER = [["redis_tls_cert_path", "redis_tls_key_path"]]


def argument_spec() -> dict[str, Any]:
    """Ansible's spec of every option; each default is read from the dataclass that holds the parsed option."""
    options, policy = PassOptions(dashboard_url=""), Policy()
    spec = dict(
        dashboard_url=dict(type="str", required=True),
        codis_version=dict(type="str", default=options.codis_version, choices=["auto", "2", "3"]),
        product_name=dict(type="str"),
        product_auth=dict(type="str", no_log=True),
        dashboard_timeout=dict(type="float", default=options.dashboard_timeout),
        promote_timeout=dict(type="float", default=options.promote_timeout),
        validate_certs=dict(type="bool", default=options.validate_certs),
        ca_path=dict(type="path"),
        repoint_slaves=dict(type="bool", default=policy.repoint_slaves),
        reuse_offline=dict(type="bool", default=policy.reuse_offline),
        groups=dict(type="list", elements="int"),
        verify_timeout=dict(type="float", default=options.verify_timeout),
        state_path=dict(type="path"),
        down_after=dict(type="float", default=policy.down_after),
        min_failover_interval=dict(type="float", default=policy.min_failover_interval),
        stale_margin=dict(type="float", default=policy.stale_margin),
        max_data_loss_bytes=dict(type="int"),
        max_failovers_per_pass=dict(type="int", no_log=False),
        force=dict(type="bool", default=policy.force),
        remove_dead_proxies=dict(type="bool", default=policy.remove_dead_proxies),
        max_ping_period=dict(type="int", default=policy.max_ping_period),
        pass_timeout=dict(type="float", default=options.pass_timeout, no_log=False),
        parallel_groups=dict(type="int", default=options.parallel_groups),
        stale_lock_after=dict(type="float", default=options.stale_lock_after),
    )
    spec.update(redis_argument_spec())
    spec.update(coordinator_argument_spec())
    return spec


def given(params: dict[str, Any], name: str, default: Any) -> Any:
    """The option as given, or its default when it is absent or None (run_pass is called without Ansible too)."""
    value = params.get(name)
    return default if value is None else value


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
    ("max_ping_period", 0, 3600, False),
    ("stale_lock_after", 0, 86400, False),
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
    promote_timeout: float = DEFAULT_PROMOTE_TIMEOUT
    pass_timeout: float = 60.0
    validate_certs: bool = True
    ca_path: Optional[str] = None
    verify_timeout: float = 10.0
    parallel_groups: int = 8
    # Codis 2: remove the dashboard's lock once it has refused every change a group needed for this long (0: never).
    stale_lock_after: float = 90.0
    state_path: Optional[str] = None
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    policy: Policy = field(default_factory=Policy)
    coordinator: Optional[CoordinatorSettings] = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "PassOptions":
        defaults, policy = cls(dashboard_url=""), Policy()
        # codis-server's requirepass is the cluster's product_auth.
        password = params.get("redis_password") or params.get("product_auth")
        groups = params.get("groups")
        dashboard_timeout = given(params, "dashboard_timeout", defaults.dashboard_timeout)
        return cls(
            dashboard_url=params["dashboard_url"], codis_version=given(params, "codis_version", defaults.codis_version),
            product_name=params.get("product_name"), dashboard_timeout=dashboard_timeout,
            promote_timeout=max(given(params, "promote_timeout", defaults.promote_timeout), dashboard_timeout),
            pass_timeout=given(params, "pass_timeout", defaults.pass_timeout),
            validate_certs=given(params, "validate_certs", defaults.validate_certs), ca_path=params.get("ca_path"),
            verify_timeout=given(params, "verify_timeout", defaults.verify_timeout),
            parallel_groups=given(params, "parallel_groups", defaults.parallel_groups),
            stale_lock_after=given(params, "stale_lock_after", defaults.stale_lock_after),
            state_path=params.get("state_path"),
            probe=ProbeSettings.from_params(dict(params, redis_password=password)),
            policy=Policy(**{name: given(params, name, getattr(policy, name)) for name in POLICY_OPTIONS},
                          groups=frozenset(groups) if groups is not None else None,
                          max_data_loss_bytes=params.get("max_data_loss_bytes"),
                          max_failovers_per_pass=params.get("max_failovers_per_pass")),
            coordinator=CoordinatorSettings.from_params(params, socket.gethostname()))


# The Policy fields that are module options of the same name, with a default.
POLICY_OPTIONS = ("repoint_slaves", "reuse_offline", "down_after", "min_failover_interval", "stale_margin", "force",
                  "remove_dead_proxies", "max_ping_period")
