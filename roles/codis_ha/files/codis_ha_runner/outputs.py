# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a pass leaves behind: one log line when it changed something or failed (quiet while all is healthy), a line
per group whose state changed (and again every unhealthy_log_interval while it stays unhealthy), the failover
counter, and the node_exporter textfile. Files are written with the collection's atomic write and the result is read
in the collection's words: this module is imported once load_config has put the collection on the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Optional

from ansible_collections.codis.ha.plugins.module_utils._executor import DONE, FAILED
from ansible_collections.codis.ha.plugins.module_utils._planner import FAILOVER, HEALTHY, PROMOTE, REPAIR, SKIPPED
from ansible_collections.codis.ha.plugins.module_utils._state import write_atomically
from codis_ha_runner.config import RunnerConfig


def log_line(result: dict[str, Any], seconds: float) -> Optional[str]:
    """The one line a pass leaves in the log, or None when there is nothing an operator needs to read."""
    if result.get("failed"):
        return "pass failed after %.2fs: %s%s" % (seconds, result.get("msg", "no message"), _warnings(result))
    if not result.get("changed"):
        return None
    actions = "; ".join("%s %s in group %s: %s%s" % (a.get("action"), a.get("server"), a.get("group"),
                                                     a.get("status"), _why(a)) for a in result.get("actions", []))
    return "pass changed the cluster in %.2fs: %s %s%s" % (seconds, result.get("msg", ""), actions,
                                                           _warnings(result))


def _why(action: dict[str, Any]) -> str:
    """A promotion's whole reason: the evidence a failover was made on is what an operator (or a soak that counted
    a false failover) needs afterwards; the repairs that follow it speak for themselves."""
    return " (%s)" % action["reason"] if action.get("action") == PROMOTE and action.get("reason") else ""


def _warnings(result: dict[str, Any]) -> str:
    """The pass's warnings (a failover that flaps, say), as text."""
    texts = [str(warning) for warning in result.get("warnings") or []]
    return "; warnings: %s" % "; ".join(texts) if texts else ""


def emit(config: RunnerConfig, line: str, failed: bool) -> None:
    if config.log == "stdout":
        # Under systemd stdout goes to the journal.
        print(line, flush=True)
        return
    priority = "daemon.err" if failed else "daemon.notice"
    try:
        # logger cuts a message at 1 KiB by default: a promotion's reason is often longer. 8 KiB is rsyslog's
        # own default limit.
        subprocess.run(["logger", "--socket-errors=on", "-u", config.syslog_socket, "-t", config.tag,
                        "--size", "8192", "-p", priority, "--", line], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        print("%s (logger failed: %s)" % (line, exc), file=sys.stderr, flush=True)


def failovers(result: dict[str, Any]) -> int:
    return sum(1 for a in result.get("actions", []) if a.get("action") == PROMOTE and a.get("status") == DONE)


def count_failovers(config: RunnerConfig, new: int) -> tuple[int, Optional[str]]:
    """The running total in `counter_path` (beside the state file, so it survives runner restarts and reboots).
    (total, a problem to log): a counter that cannot be read is said so, never silently reset."""
    path = str(config.counter_path)
    problem = None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(64).strip()
        total = int(text or 0)
        if total < 0:
            raise ValueError("negative")
    except FileNotFoundError:
        total = 0
    except (OSError, ValueError) as exc:
        aside = "%s.corrupt-%d" % (path, int(time.time()))
        try:
            os.replace(path, aside)
            where = "moved aside to %s" % aside
        except OSError as move_exc:
            where = "not moved aside (%s)" % move_exc
        problem = ("failover counter %s could not be read (%s); %s, counting again from 0"
                   % (path, getattr(exc, "strerror", None) or exc, where))
        total = 0
    if new or problem:
        try:
            write_atomically(path, "%d\n" % (total + new), 0o600)
        except OSError as exc:
            problem = (problem + "; " if problem else "") + "cannot write failover counter %s: %s" % (path, exc)
    return total + new, problem


def unhealthy_groups(result: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """group id -> (state, reason) for every group that is not healthy; a group is counted once, whether it
    shows up as a decision, a skipped group or both."""
    out: dict[str, tuple[str, str]] = {}
    for g in result.get("groups", []):
        if isinstance(g, dict) and g.get("decision") != HEALTHY:
            out[str(g.get("id"))] = (str(g.get("decision")), str(g.get("reason", "")))
    for s in result.get("skipped_groups", []):
        if isinstance(s, dict):
            out.setdefault(str(s.get("group")), (SKIPPED, str(s.get("reason", ""))))
    failed = {str(a.get("group")) for a in result.get("actions", []) if a.get("status") == FAILED}
    for gid in failed:
        state, reason = out.get(gid, (FAILED, ""))
        out[gid] = (FAILED if state in (FAILOVER, REPAIR) else state, reason)
    return {gid: v for gid, v in out.items() if v[0] not in (FAILOVER, REPAIR)}


class GroupStates:
    """Each group's last logged state. Kept in a small file beside the counter (`group_states_path`), so a runner
    started per pass (systemd timer) remembers them too; in memory when there is no file."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.memory: dict[str, Any] = {}

    def _known(self) -> dict[str, Any]:
        if not self.config.group_states_path:
            return self.memory
        try:
            with open(self.config.group_states_path, encoding="utf-8") as handle:
                known = json.load(handle)
            return known if isinstance(known, dict) else {}
        except (OSError, ValueError):
            return {}

    def log_lines(self, result: dict[str, Any], now: float) -> list[tuple[str, bool]]:
        """(line, is_error) for groups whose state changed since the last pass, and for groups that stay
        unhealthy, again every unhealthy_log_interval seconds."""
        if result.get("failed") and not result.get("groups"):
            return []  # the pass saw no groups (dashboard down): its own failure line says so
        known = self._known()
        current = unhealthy_groups(result)
        seen_ids = {str(g.get("id")) for g in result.get("groups", []) if isinstance(g, dict)}
        lines = []
        states: dict[str, Any] = {}
        for gid, (state, reason) in sorted(current.items()):
            before = known.get(gid) if isinstance(known.get(gid), dict) else None
            if before is None or before.get("state") != state:
                lines.append(("group %s is now %s: %s" % (gid, state.replace("_", " "), reason), True))
                states[gid] = {"state": state, "since": now, "logged": now}
            elif now - float(before.get("logged", 0)) >= self.config.unhealthy_log_interval:
                lines.append(("group %s still %s after %.0fs: %s" % (
                    gid, state.replace("_", " "), now - float(before.get("since", now)), reason), True))
                states[gid] = dict(before, logged=now)
            else:
                states[gid] = before
        for gid in sorted(set(known) - set(current)):
            if gid in seen_ids:
                lines.append(("group %s is healthy again" % gid, False))
            elif not result.get("groups"):
                states[gid] = known[gid]
            # else: no longer listed: forgotten quietly
        self.memory = states
        if self.config.group_states_path:
            try:
                write_atomically(self.config.group_states_path, json.dumps(states), 0o600)
            except OSError as exc:
                lines.append(("cannot write group states to %s: %s" % (self.config.group_states_path, exc), True))
        return lines


def metrics_text(result: dict[str, Any], seconds: float, total_failovers: int, now: float) -> str:
    degraded = len(unhealthy_groups(result))
    rows = [
        ("codis_ha_last_pass_timestamp_seconds", "gauge", "When the last pass ended (Unix time).", "%.3f" % now),
        ("codis_ha_last_pass_duration_seconds", "gauge", "How long the last pass took.", "%.3f" % seconds),
        ("codis_ha_last_pass_success", "gauge", "1 if the last pass did not fail.",
         "0" if result.get("failed") else "1"),
        ("codis_ha_failovers_total", "counter", "Promotions done by this host.", "%d" % total_failovers),
        ("codis_ha_groups_degraded", "gauge", "Groups the last pass found not healthy or had to skip.",
         "%d" % degraded),
    ]
    return "".join("# HELP %s %s\n# TYPE %s %s\n%s %s\n" % (name, text, name, kind, name, value)
                   for name, kind, text, value in rows)


def write_metrics(config: RunnerConfig, text: str) -> Optional[str]:
    """node_exporter may read at any moment; a gauge rewritten every pass need not reach the disk first."""
    if not config.metrics_path:
        return None
    try:
        write_atomically(config.metrics_path, text, 0o644, durable=False)
    except OSError as exc:
        return "cannot write metrics to %s: %s" % (config.metrics_path, exc)
    return None
