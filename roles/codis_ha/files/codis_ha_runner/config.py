# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The runner's configuration: one JSON object, checked once, then a frozen RunnerConfig."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Optional

# name -> (lowest, highest): the runner's numbers, each finite and in range. An interval of 0 or 1e-7 would spin a
# core and hold cron's lock for ever. The defaults are RunnerConfig's.
RANGES = {
    "interval": (0.1, 3600.0),
    "pass_timeout": (1.0, 86400.0),
    "on_failover_timeout": (1.0, 3600.0),
    "unhealthy_log_interval": (1.0, 86400.0),
    "passes_per_worker": (1, 100000),
}
TEXTS = ("syslog_socket", "tag", "metrics_path", "counter_path", "on_failover_command", "group_states_path")


@dataclass(frozen=True)
class RunnerConfig:
    module_args: dict[str, Any]
    collections_path: str
    interval: float = 1.0
    pass_timeout: float = 120.0
    on_failover_timeout: float = 60.0
    unhealthy_log_interval: float = 300.0
    passes_per_worker: int = 100
    # False: a new interpreter per pass instead of the forked worker.
    fork: bool = True
    # Start a pass as soon as a master's connection drops, not only on the timer (codis_ha_runner.drops).
    wake_on_drop: bool = True
    log: str = "syslog"  # or stdout (systemd's journal)
    syslog_socket: str = "/dev/log"
    tag: str = "codis-ha"
    metrics_path: Optional[str] = None
    counter_path: Optional[str] = None
    on_failover_command: Optional[str] = None
    group_states_path: Optional[str] = None
    path: str = field(default="", compare=False)  # the file it was read from

    @property
    def module_path(self) -> str:
        return os.path.join(self.collection, "plugins", "modules", "codis_ha.py")

    @property
    def collection(self) -> str:
        return os.path.join(self.collections_path, "ansible_collections", "codis", "ha")


def load_config(path: str) -> RunnerConfig:
    """The config, checked; ValueError naming every culprit otherwise."""
    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle, parse_constant=_no_constant)
        except RecursionError:
            raise ValueError("nested too deep to be a runner config") from None
    if not isinstance(data, dict) or not isinstance(data.get("module_args"), dict):
        raise ValueError("expected a JSON object with a module_args object")
    # Keys that start with "_" are comments (the role writes `_comment`); any other unknown key is a typo.
    known = {f.name for f in fields(RunnerConfig)} - {"path"}
    problems = ["unknown setting %r" % name for name in sorted(data) if name not in known and not name[:1] == "_"]
    collections = data.get("collections_path")
    if not isinstance(collections, str) or not collections:
        problems.append("collections_path must name the directory that holds ansible_collections, got %r"
                        % (collections,))
        raise ValueError("; ".join(problems))
    if not os.path.isdir(collections):
        raise ValueError("; ".join(problems + ["collections_path %s is not a directory" % collections]))
    number_problem = _collection_checks(collections)
    for name, (low, high) in RANGES.items():
        problem = number_problem(name, data.get(name), low, high)
        if problem:
            problems.append(problem)
        elif name == "passes_per_worker" and data.get(name) is not None and data[name] != int(data[name]):
            problems.append("passes_per_worker must be a whole number, got %r" % data[name])
    for name in ("fork", "wake_on_drop"):
        if not isinstance(data.get(name, True), bool):
            problems.append("%s must be true or false, got %r" % (name, data[name]))
    for name in TEXTS:
        if data.get(name) is not None and not isinstance(data[name], str):
            problems.append("%s must be a string, got %r" % (name, data[name]))
    if data.get("log", "syslog") not in ("syslog", "stdout"):
        problems.append("log must be syslog or stdout, got %r" % (data["log"],))
    if problems:
        raise ValueError("; ".join(problems))
    values = {name: data[name] for name in known if data.get(name) is not None}
    for name in TEXTS:  # the role writes "" for a setting left unset
        if values.get(name) == "" and name not in ("syslog_socket", "tag"):
            values.pop(name)
    for name in RANGES:
        if name in values:
            values[name] = int(values[name]) if name == "passes_per_worker" else float(values[name])
    return RunnerConfig(path=os.path.abspath(path), **values)


def _no_constant(name: str) -> Any:
    raise ValueError("%s is not a number JSON allows" % name)


def _collection_checks(collections_path: str) -> Any:
    """The collection's own number check (one definition of "a finite number in range"), imported from the
    collection the runner runs."""
    if collections_path not in sys.path:
        sys.path.insert(0, collections_path)
    from ansible_collections.codis.ha.plugins.module_utils._checks import number_problem  # pylint: disable=import-outside-toplevel
    return number_problem
