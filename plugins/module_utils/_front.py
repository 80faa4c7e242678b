# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What both front-ends do around a pass: the module (AnsibleModule checks the arguments) and the role's runner
(Ansible's ArgumentSpecValidator checks them, with the same spec). After that check: the libraries the pass needs,
the checks the spec cannot express, the pass itself, and an error of ours turned into one failed sentence. Nothing
here raises, and nothing here prints: each front-end reports the PassResult its own way.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.codis.ha.plugins.module_utils._coordinator import CoordinatorSettings, missing_library
from ansible_collections.codis.ha.plugins.module_utils._http import HAS_REQUESTS, REQUESTS_IMPORT_ERROR, url_password
from ansible_collections.codis.ha.plugins.module_utils._options import (
    REQUIRED_TOGETHER,
    argument_spec,
    parameter_problems,
)
from ansible_collections.codis.ha.plugins.module_utils import _pass
from ansible_collections.codis.ha.plugins.module_utils._probe import HAS_REDIS, REDIS_IMPORT_ERROR
from ansible_collections.codis.ha.plugins.module_utils._report import PassResult, nothing_done

# A pass that ends on an exception of its own says so in one sentence; the fuzz tests fail on this prefix.
INTERNAL_ERROR = "codis_ha stopped on an unexpected error (a bug in codis.ha)"
INVALID = "invalid arguments, nothing was done: "


def checked_pass(params: dict[str, Any], check_mode: bool = False, diff: bool = False) -> PassResult:
    """The pass, for arguments already checked against argument_spec()."""
    for present, library, error in (HAS_REDIS, "redis", REDIS_IMPORT_ERROR), (
            HAS_REQUESTS, "requests", REQUESTS_IMPORT_ERROR):
        if not present:
            return _missing(library, error)
    try:
        problems = parameter_problems(params)
        if problems:
            return nothing_done(INVALID + "; ".join(problems))
        coordinator = CoordinatorSettings.from_params(params, "-")
        missing = missing_library(coordinator) if coordinator else None
        if missing:
            return _missing(*missing)
        return _pass.run_pass(params, check_mode=check_mode, diff=diff)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # Never a traceback in front of an operator; the message says the dashboard must be looked at, since
        # the pass may have acted before it stopped.
        return nothing_done("%s: %s: %s; look at the dashboard, the pass may have acted before it stopped"
                            % (INTERNAL_ERROR, type(exc).__name__, str(exc)[:300]))


def _missing(library: str, error: Any) -> PassResult:
    outcome = nothing_done(missing_required_lib(library))
    outcome.result["exception"] = error
    return outcome


def secrets_of(params: dict[str, Any]) -> set[str]:
    """The values no output may show: every no_log option given, and a password inside the dashboard URL."""
    spec = argument_spec()
    secrets = {str(value) for name, value in params.items()
               if value not in (None, "") and (spec.get(name) or {}).get("no_log")}
    password = url_password(params.get("dashboard_url") or "")
    if password:
        secrets.add(password)
    return secrets


def pass_without_ansible(module_args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """One pass as the module would return it (`failed`, `msg`, `warnings` among the keys), for a front-end that
    is not an Ansible task: the arguments are checked by Ansible's own validator against the module's spec, and no
    secret appears in the result."""
    checked = ArgumentSpecValidator(argument_spec(), required_together=REQUIRED_TOGETHER).validate(module_args)
    if checked.error_messages:
        outcome = nothing_done(INVALID + "; ".join(checked.error_messages))
    else:
        outcome = checked_pass(checked.validated_parameters, check_mode=check_mode)
    result = dict(outcome.result, failed=outcome.failed_msg is not None, warnings=list(outcome.warnings))
    if outcome.failed_msg is not None:
        result["msg"] = outcome.failed_msg
    secrets = secrets_of(dict(module_args, **checked.validated_parameters))
    return remove_values(result, secrets) if secrets else result
