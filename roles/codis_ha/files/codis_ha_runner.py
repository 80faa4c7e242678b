# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs codis.ha.codis_ha passes on a schedule, without an `ansible` process per pass.

Installed by the codis.ha.codis_ha role. It reads one JSON file (mode 0600: it holds the passwords) and
runs the module file directly, its arguments on stdin, so no secret reaches a command line or a temporary
file. It logs one line per pass that changed something or failed and stays quiet while all is healthy,
writes an optional node_exporter textfile and runs an optional command after a change.

    codis_ha_runner.py CONFIG              one pass (the systemd timer starts one per interval)
    codis_ha_runner.py CONFIG --loop-minute passes every interval until the minute ends (cron, under flock -n)
    codis_ha_runner.py CONFIG --loop-seconds N   passes every interval for N seconds (benchmarks)
    codis_ha_runner.py CONFIG --check      one pass in check mode, its message printed (the role's own check)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

MODULE = "ansible_collections.codis.ha.plugins.modules.codis_ha"
# The next cron-started runner must find the lock free, so a loop stops this long before the minute ends.
MINUTE_MARGIN = 0.5


def load_config(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    if not isinstance(config, dict) or not isinstance(config.get("module_args"), dict):
        raise ValueError("%s: expected a JSON object with a module_args object" % path)
    return config


def run_module(config: dict[str, Any], check: bool = False) -> tuple[dict[str, Any], float]:
    """One pass in a child process: (result, seconds). A crash or timeout is a failed result, never raised."""
    args = dict(config["module_args"])
    # _ansible_no_log keeps AnsibleModule from sending an "Invoked with" line to syslog on every pass.
    args.update(_ansible_no_log=True, _ansible_check_mode=check)
    env = dict(os.environ, PYTHONPATH=config["collections_path"], PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", MODULE], input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
                              capture_output=True, text=True, env=env, timeout=config.get("pass_timeout", 120),
                              check=False)
    except subprocess.TimeoutExpired:
        return {"failed": True, "changed": False, "msg": "the pass did not finish within %ss" %
                config.get("pass_timeout", 120)}, time.monotonic() - started
    seconds = time.monotonic() - started
    try:
        result = json.loads(done.stdout)
        if not isinstance(result, dict):
            raise ValueError("not an object")
    except ValueError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        result = {"failed": True, "changed": False,
                  "msg": "the module exited %d without a result: %s" % (done.returncode, tail[0][:300])}
    return result, seconds


def log_line(result: dict[str, Any], seconds: float) -> Optional[str]:
    """The one line a pass leaves in the log, or None when there is nothing an operator needs to read."""
    if result.get("failed"):
        return "pass failed after %.2fs: %s" % (seconds, result.get("msg", "no message"))
    if not result.get("changed"):
        return None
    actions = "; ".join("%s %s in group %s: %s" % (a.get("action"), a.get("server"), a.get("group"),
                                                   a.get("status")) for a in result.get("actions", []))
    return "pass changed the cluster in %.2fs: %s %s" % (seconds, result.get("msg", ""), actions)


def emit(config: dict[str, Any], line: str, failed: bool) -> None:
    if config.get("log", "syslog") == "stdout":
        # Under systemd stdout goes to the journal.
        print(line, flush=True)
        return
    priority = "daemon.err" if failed else "daemon.notice"
    try:
        subprocess.run(["logger", "--socket-errors=on", "-u", config.get("syslog_socket", "/dev/log"),
                        "-t", config.get("tag", "codis-ha"), "-p", priority, "--", line],
                       check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        print("%s (logger failed: %s)" % (line, exc), file=sys.stderr, flush=True)


def failovers(result: dict[str, Any]) -> int:
    return sum(1 for a in result.get("actions", []) if a.get("action") == "promote" and a.get("status") == "done")


def count_failovers(config: dict[str, Any], new: int) -> int:
    """The running total lives beside the state file, so it survives runner restarts and reboots."""
    path = config.get("counter_path")
    if not path:
        return new
    try:
        with open(path, encoding="utf-8") as handle:
            total = int(handle.read().strip() or 0)
    except (OSError, ValueError):
        total = 0
    if new:
        total += new
        write_atomically(path, "%d\n" % total, 0o600)
    return total


def metrics_text(result: dict[str, Any], seconds: float, total_failovers: int, now: float) -> str:
    degraded = sum(1 for g in result.get("groups", []) if g.get("decision") != "healthy")
    degraded += len(result.get("skipped_groups", []))
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


def write_atomically(path: str, text: str, mode: int) -> None:
    """node_exporter may read at any moment: it sees the old file or the new one, never half of one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".codis-ha.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def on_failover(config: dict[str, Any], result: dict[str, Any]) -> Optional[str]:
    command = config.get("on_failover_command")
    if not command:
        return None
    try:
        done = subprocess.run(["/bin/sh", "-c", command], input=json.dumps(result), capture_output=True,
                              text=True, timeout=config.get("on_failover_timeout", 60), check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return "on_failover_command did not run: %s" % exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return "on_failover_command exited %d: %s" % (done.returncode, tail[0][:300])
    return None


def one_pass(config: dict[str, Any]) -> bool:
    """Runs, logs, records. True when the pass did not fail."""
    result, seconds = run_module(config)
    line = log_line(result, seconds)
    if line:
        emit(config, line, bool(result.get("failed")))
    total = count_failovers(config, failovers(result))
    if config.get("metrics_path"):
        try:
            write_atomically(config["metrics_path"], metrics_text(result, seconds, total, time.time()), 0o644)
        except OSError as exc:
            emit(config, "cannot write metrics to %s: %s" % (config["metrics_path"], exc), True)
    if result.get("changed"):
        problem = on_failover(config, result)
        if problem:
            emit(config, problem, True)
    return not result.get("failed")


def loop_until(config: dict[str, Any], ends: float) -> bool:
    """Passes every interval (wall clock) until `ends`; True when none failed."""
    interval = float(config.get("interval", 1))
    ok = True
    next_start = time.time()
    while next_start < ends:
        ok = one_pass(config) and ok
        next_start += interval
        while next_start < time.time():
            # A pass that overran its slot moves the schedule on instead of starting a burst of passes.
            next_start += interval
        pause = min(next_start, ends) - time.time()
        if pause > 0:
            time.sleep(pause)
    return ok


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Runs codis.ha.codis_ha passes.")
    parser.add_argument("config")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--loop-minute", action="store_true",
                      help="run a pass every interval until the current minute ends (for cron)")
    mode.add_argument("--loop-seconds", type=float, metavar="SECONDS",
                      help="run a pass every interval for this long (benchmarks, foreground use)")
    mode.add_argument("--check", action="store_true", help="run one pass in check mode and print the result")
    options = parser.parse_args(argv)
    # Stopped (systemd, pkill from the role's absent, a benchmark): SystemExit unwinds subprocess.run, which
    # kills the pass it is waiting for instead of leaving it orphaned.
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(143))
    try:
        config = load_config(options.config)
    except (OSError, ValueError) as exc:
        print("codis-ha runner: cannot read %s: %s" % (options.config, exc), file=sys.stderr)
        return 2
    if options.check:
        result, seconds = run_module(config, check=True)
        print("check pass %s in %.2fs: %s" % ("failed" if result.get("failed") else "ok", seconds,
                                              result.get("msg", "no message")))
        return 1 if result.get("failed") else 0
    if options.loop_minute:
        ok = loop_until(config, (int(time.time()) // 60 + 1) * 60 - MINUTE_MARGIN)
    elif options.loop_seconds is not None:
        ok = loop_until(config, time.time() + options.loop_seconds)
    else:
        ok = one_pass(config)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
