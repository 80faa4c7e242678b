# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs codis.ha.codis_ha passes on a schedule, without an `ansible` process per pass.

Installed by the codis.ha.codis_ha role. It reads one JSON file (mode 0600: it holds the passwords) and
runs the module file directly as `__main__`, its arguments on stdin, so no secret reaches a command line or a
temporary file. It imports the module's dependencies once and forks a child per pass, so a pass in a loop costs
the pass, not an interpreter start and 0.1 s of imports (config "fork": false spawns a new interpreter instead).
It logs one line per pass that changed something or failed and stays quiet while all is healthy, writes an
optional node_exporter textfile and runs an optional command after a change.

    codis_ha_runner.py CONFIG              one pass (the systemd timer starts one per interval)
    codis_ha_runner.py CONFIG --loop-minute passes every interval until the minute ends (cron, under flock -n)
    codis_ha_runner.py CONFIG --loop-seconds N   passes every interval for N seconds (benchmarks)
    codis_ha_runner.py CONFIG --check      one pass in check mode, its message printed (the role's own check)
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
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
    """One pass of the module file: (result, seconds). A crash or timeout is a failed result, never raised."""
    args = dict(config["module_args"])
    # _ansible_no_log keeps AnsibleModule from sending an "Invoked with" line to syslog on every pass.
    args.update(_ansible_no_log=True, _ansible_check_mode=check)
    payload = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
    timeout = float(config.get("pass_timeout", 120))
    started = time.monotonic()
    if config.get("fork", True):
        try:
            status, out, err = forked_pass(config["collections_path"], payload, timeout)
        except (ImportError, OSError):
            # A dependency missing here, or no fork: a new interpreter runs the module, which then says in its
            # own words what is missing (missing_required_lib) instead of this runner dying on a traceback.
            status, out, err = spawned_pass(config["collections_path"], payload, timeout)
    else:
        status, out, err = spawned_pass(config["collections_path"], payload, timeout)
    seconds = time.monotonic() - started
    if status is None:
        return {"failed": True, "changed": False, "msg": "the pass did not finish within %ss" % timeout}, seconds
    try:
        result = json.loads(out)
        if not isinstance(result, dict):
            raise ValueError("not an object")
    except ValueError:
        tail = (err or out).decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        result = {"failed": True, "changed": False,
                  "msg": "the module exited %d without a result: %s" % (status, tail[0][:300])}
    return result, seconds


def spawned_pass(collections_path: str, payload: bytes, timeout: float) -> tuple[Optional[int], bytes, bytes]:
    """The module file in a new interpreter: every pass pays for Python and the imports (about 0.1 s of CPU)."""
    env = dict(os.environ, PYTHONPATH=collections_path, PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run([sys.executable, "-m", MODULE], input=payload, capture_output=True, env=env,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, b"", b""
    return done.returncode, done.stdout, done.stderr


# What the last forked pass cost (CPU seconds, peak RSS in MB), for the benchmarks.
LAST_USAGE: dict[str, float] = {}
_PRELOADED: list[str] = []


def forked_pass(collections_path: str, payload: bytes, timeout: float) -> tuple[Optional[int], bytes, bytes]:
    """The module file run as __main__ in a child forked from this process, which imported the module's
    dependencies once (Ansible's module_utils, redis-py, codis.ha's module_utils): a pass then costs what the
    pass does, not an interpreter start and 0.1 s of imports."""
    if not _PRELOADED:
        sys.path.insert(0, collections_path)
        importlib.import_module(MODULE)  # main() runs only as __main__
        _PRELOADED.append(collections_path)
    stdin_r, stdin_w = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _child(stdin_r, stdin_w, out.fileno(), err.fileno())
        os.close(stdin_r)
        reaped = False
        try:
            with os.fdopen(stdin_w, "wb") as pipe:
                pipe.write(payload)
            status = _wait(pid, timeout)
            reaped = True
        finally:
            if not reaped:  # stopped by SIGTERM while waiting: the pass goes with us
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        if status is None:
            return None, b"", b""
        out.seek(0)
        err.seek(0)
        return status, out.read(), err.read()


def _child(stdin_r: int, stdin_w: int, out: int, err: int) -> None:
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.dup2(stdin_r, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(stdin_r)
        os.close(stdin_w)
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "wb", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "wb", closefd=False), write_through=True)
        sys.argv = [MODULE]  # AnsibleModule reads a file named in argv[1] instead of stdin
        runpy.run_module(MODULE, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # pylint: disable=broad-exception-caught
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait(pid: int, timeout: float) -> Optional[int]:
    """The child's exit status, or None after killing it at the deadline."""
    deadline = time.monotonic() + timeout
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    try:
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                LAST_USAGE.update(cpu=usage.ru_utime + usage.ru_stime, maxrss_mb=usage.ru_maxrss / 1024.0)
                return os.waitstatus_to_exitcode(status)
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            if pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(left, 0.005))
    finally:
        if pidfd is not None:
            os.close(pidfd)


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
