# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs codis.ha.codis_ha passes on a schedule, without an `ansible` process per pass.

Installed by the codis.ha.codis_ha role. It reads one JSON file (mode 0600: it holds the passwords) and
runs the module file directly as `__main__`, its arguments on stdin, so no secret reaches a command line or a
temporary file. It imports the module's dependencies once and forks a worker that runs passes one after another
(`passes_per_worker`, 100 by default, then a fresh one; at once after a pass that failed or left a thread behind),
so a pass in a loop costs the pass, not an interpreter start, 0.1 s of imports, or the copy-on-write faults of a
fork per pass (config "fork": false spawns a new interpreter per pass instead).
It logs one line per pass that changed something or failed and stays quiet while all is healthy, writes an
optional node_exporter textfile and runs an optional command after a change.

    codis_ha_runner.py CONFIG              one pass
    codis_ha_runner.py CONFIG --loop-minute passes every interval until the minute ends (cron, under flock -n)
    codis_ha_runner.py CONFIG --loop-seconds N   passes every interval for N seconds (the systemd service)
    codis_ha_runner.py CONFIG --check      one pass in check mode, its message printed (the role's own check)
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import math
import os
import runpy
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Optional

MODULE = "ansible_collections.codis.ha.plugins.modules.codis_ha"
# The next cron-started runner must find the lock free, so a loop stops this long before the minute ends.
MINUTE_MARGIN = 0.5


# Most of a hook's output that is kept (its last line is logged when it fails); the rest is discarded.
HOOK_OUTPUT_LIMIT = 64 * 1024

# name -> (default, lowest, highest): the runner's numbers, each finite and in range. An interval of 0 or 1e-7
# would spin a core and hold cron's lock for ever.
NUMBERS = {
    "interval": (1.0, 0.1, 3600.0),
    "pass_timeout": (120.0, 1.0, 86400.0),
    "on_failover_timeout": (60.0, 1.0, 3600.0),
    "unhealthy_log_interval": (300.0, 1.0, 86400.0),
    "passes_per_worker": (100.0, 1.0, 100000.0),
}


def _setting(config: dict[str, Any], name: str) -> float:
    """A number of the config, or its default (a config that did not come through load_config may omit it)."""
    return config.get(name, NUMBERS[name][0])


def load_config(path: str) -> dict[str, Any]:
    """The config, checked; ValueError naming the culprit otherwise."""
    with open(path, encoding="utf-8") as handle:
        try:
            config = json.load(handle, parse_constant=_no_constant)
        except RecursionError:
            raise ValueError("nested too deep to be a runner config") from None
    if not isinstance(config, dict) or not isinstance(config.get("module_args"), dict):
        raise ValueError("expected a JSON object with a module_args object")
    problems = []
    for name, (default, low, high) in NUMBERS.items():
        value = config.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append("%s must be a number, got %r" % (name, value))
        elif not math.isfinite(value) or not low <= value <= high:
            problems.append("%s must be from %s to %s, got %r" % (name, low, high, value))
        else:
            config[name] = float(value)
    collections = config.get("collections_path")
    if not isinstance(collections, str) or not collections:
        problems.append("collections_path must name the directory that holds ansible_collections, got %r"
                        % (collections,))
    elif not os.path.isdir(collections):
        problems.append("collections_path %s is not a directory" % collections)
    for name in ("fork",):
        if not isinstance(config.get(name, True), bool):
            problems.append("%s must be true or false, got %r" % (name, config[name]))
    for name in ("log", "syslog_socket", "tag", "metrics_path", "counter_path", "on_failover_command",
                 "group_states_path"):
        if config.get(name) is not None and not isinstance(config[name], str):
            problems.append("%s must be a string, got %r" % (name, config[name]))
    if config.get("log", "syslog") not in ("syslog", "stdout"):
        problems.append("log must be syslog or stdout, got %r" % (config["log"],))
    if problems:
        raise ValueError("; ".join(problems))
    return config


def _no_constant(name: str) -> Any:
    raise ValueError("%s is not a number JSON allows" % name)


def run_module(config: dict[str, Any], check: bool = False) -> tuple[dict[str, Any], float]:
    """One pass of the module file: (result, seconds). A crash or timeout is a failed result, never raised."""
    args = dict(config["module_args"])
    # _ansible_no_log keeps AnsibleModule from sending an "Invoked with" line to syslog on every pass.
    args.update(_ansible_no_log=True, _ansible_check_mode=check)
    timeout = _setting(config, "pass_timeout")
    # The pass ends itself (and reports what it did) before the runner has to kill it.
    args.setdefault("pass_timeout", max(timeout * 0.9, timeout - 5.0))
    payload = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
    started = time.monotonic()
    if config.get("fork", True):
        try:
            status, out, err = forked_pass(config["collections_path"], payload, timeout,
                                           int(_setting(config, "passes_per_worker")))
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


# What the last forked pass cost (CPU seconds, peak RSS in MB, the worker's pid), for the benchmarks and tests.
LAST_USAGE: dict[str, float] = {}
_PRELOADED: list[str] = []
# A worker's answer: exit status, lengths of its stdout and stderr, CPU seconds, peak RSS in MB, whether it stays.
_REPLY = struct.Struct("!iQQdd?")


class _Worker:
    """A child forked from this runner that runs passes one after another, each as a fresh `__main__` of the
    module file. A child forked per pass paid for its copy-on-write faults every time (48 ms of CPU a pass
    against 19 ms for the same pass in a warm process); a worker pays them once. It leaves after its last pass,
    after a pass that did not exit 0, or after one that left a thread running; the runner kills it when a pass
    overruns its timeout and when it stops itself."""

    def __init__(self, payload: bytes, passes: int) -> None:
        self.payload = payload
        self.status: Optional[int] = None
        self.cpu_reported = 0.0
        go_r, self.go = os.pipe()
        self.replies, reply_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.go)
            os.close(self.replies)
            _serve(go_r, reply_w, payload, passes)
        os.close(go_r)
        os.close(reply_w)

    def run(self, timeout: float) -> tuple[Optional[tuple[int, bytes, bytes]], bool]:
        """((status, stdout, stderr) or None when the pass overran, whether the worker stays for another)."""
        os.write(self.go, b"p")
        deadline = time.monotonic() + timeout
        try:
            status, out_len, err_len, cpu, rss, stays = _REPLY.unpack(self._read(_REPLY.size, deadline))
            body = self._read(out_len + err_len, deadline)
        except TimeoutError:
            return None, False
        except EOFError:  # the worker died on the way: a failed pass
            return (self.stop() or 1, b"", b""), False
        self.cpu_reported += cpu
        LAST_USAGE.update(cpu=cpu, maxrss_mb=rss, pid=self.pid)
        return (status, body[:out_len], body[out_len:]), stays

    def _read(self, size: int, deadline: float) -> bytes:
        """`size` bytes of the worker's answer; EOFError if it ends first, TimeoutError at the deadline."""
        data = b""
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.replies], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self.replies, min(size - len(data), 1 << 20))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def stop(self) -> int:
        """Kill and reap the worker (once); its exit status."""
        if self.status is None:
            os.close(self.go)
            os.close(self.replies)
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status, usage = os.wait4(self.pid, 0)[1:]
            self.status = os.waitstatus_to_exitcode(status)
            # What the worker's passes did not report (its start and its exit) goes to its last pass.
            LAST_USAGE["cpu"] = LAST_USAGE.get("cpu", 0.0) + max(
                usage.ru_utime + usage.ru_stime - self.cpu_reported, 0.0)
        return self.status


_WORKERS: list[_Worker] = []


def stop_worker() -> None:
    while _WORKERS:
        _WORKERS.pop().stop()


def forked_pass(collections_path: str, payload: bytes, timeout: float,
                passes_per_worker: int) -> tuple[Optional[int], bytes, bytes]:
    """The module file run as __main__ in the worker (a child forked from this process, which imported the
    module's dependencies once: Ansible's module_utils, redis-py, codis.ha's module_utils)."""
    if not _PRELOADED:
        sys.path.insert(0, collections_path)
        importlib.import_module(MODULE)  # main() runs only as __main__
        _PRELOADED.append(collections_path)
    if _WORKERS and _WORKERS[-1].payload != payload:
        stop_worker()
    if not _WORKERS:
        # SIGTERM waits while we fork: its handler's SystemExit, raised inside fork's at-fork callbacks, was
        # swallowed there ("Exception ignored"), and a stopped runner went on looping (found under load). The
        # worker is on record before the signal can land, so that stopping the runner stops it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            _WORKERS.append(_Worker(payload, passes_per_worker))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    worker = _WORKERS[-1]
    try:
        answer, stays = worker.run(timeout)
    except BaseException:
        stop_worker()  # stopped by SIGTERM while waiting: the pass goes with us
        raise
    if not stays:
        stop_worker()
    if answer is None:
        return None, b"", b""
    return answer


def _serve(go: int, replies: int, payload: bytes, passes: int) -> None:
    """The worker: a pass each time the runner asks, until its last one or the runner's end (end of file)."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # nothing of a pass reads the runner's stdin or writes into its log
        os.dup2(null, 1)
        for left in range(passes - 1, -1, -1):
            if not os.read(go, 1):
                break
            before = resource.getrusage(resource.RUSAGE_SELF)
            status, out, err = _pass_in_process(payload)
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            stays = left > 0 and status == 0 and threading.active_count() == 1
            reply = _REPLY.pack(status, len(out), len(err), cpu, after.ru_maxrss / 1024.0, stays) + out + err
            view = memoryview(reply)
            while view:
                view = view[os.write(replies, view):]
            if not stays:
                break
    finally:
        os._exit(0)


def _pass_in_process(payload: bytes) -> tuple[int, bytes, bytes]:
    _fresh_ansible_state()
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr, sys.argv
    sys.stdin = io.TextIOWrapper(io.BytesIO(payload))
    sys.stdout = io.TextIOWrapper(out, write_through=True)
    sys.stderr = io.TextIOWrapper(err, write_through=True)
    sys.argv = [MODULE]  # AnsibleModule reads a file named in argv[1] instead of stdin
    code = 1
    try:
        runpy.run_module(MODULE, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # pylint: disable=broad-exception-caught
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        texts = out.getvalue(), err.getvalue()
        sys.stdin, sys.stdout, sys.stderr, sys.argv = saved
    return code, texts[0], texts[1]


def _fresh_ansible_state() -> None:
    """What AnsibleModule keeps for the life of a process, reset, so that each pass is a fresh invocation: the
    arguments it read (read again from this pass's stdin) and the warnings and deprecations it collected."""
    # pylint: disable=protected-access
    from ansible.module_utils import basic
    from ansible.module_utils.common import warnings as ansible_warnings
    basic._ANSIBLE_ARGS = None
    for name in ("_global_warnings", "_global_deprecations"):
        kept = getattr(ansible_warnings, name, None)
        if kept is not None:
            kept.clear()


def log_line(result: dict[str, Any], seconds: float) -> Optional[str]:
    """The one line a pass leaves in the log, or None when there is nothing an operator needs to read."""
    if result.get("failed"):
        return "pass failed after %.2fs: %s" % (seconds, result.get("msg", "no message"))
    if not result.get("changed"):
        return None
    actions = "; ".join("%s %s in group %s: %s" % (a.get("action"), a.get("server"), a.get("group"),
                                                   a.get("status")) for a in result.get("actions", []))
    return "pass changed the cluster in %.2fs: %s %s%s" % (seconds, result.get("msg", ""), actions,
                                                           _warnings(result))


def _warnings(result: dict[str, Any]) -> str:
    """The pass's warnings (a failover that flaps, say), as text: plain strings, or Ansible 2.19's summaries."""
    texts = []
    for warning in result.get("warnings") or []:
        if isinstance(warning, dict):
            warning = (warning.get("event") or {}).get("msg") or warning.get("msg") or json.dumps(warning)
        texts.append(str(warning))
    return "; warnings: %s" % "; ".join(texts) if texts else ""


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


def count_failovers(config: dict[str, Any], new: int) -> tuple[int, Optional[str]]:
    """The running total lives beside the state file, so it survives runner restarts and reboots.
    (total, a problem to log): a counter that cannot be read is said so, never silently reset."""
    path = config.get("counter_path")
    if not path:
        return new, None
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
        if isinstance(g, dict) and g.get("decision") != "healthy":
            out[str(g.get("id"))] = (str(g.get("decision")), str(g.get("reason", "")))
    for s in result.get("skipped_groups", []):
        if isinstance(s, dict):
            out.setdefault(str(s.get("group")), ("skipped", str(s.get("reason", ""))))
    failed = {str(a.get("group")) for a in result.get("actions", []) if a.get("status") == "failed"}
    for gid in failed:
        state, reason = out.get(gid, ("failed", ""))
        out[gid] = ("failed" if state in ("failover", "repair") else state, reason)
    return {gid: v for gid, v in out.items() if v[0] not in ("failover", "repair")}


def group_log_lines(config: dict[str, Any], result: dict[str, Any], now: float) -> list[tuple[str, bool]]:
    """(line, is_error) for groups whose state changed since the last pass, and for groups that stay unhealthy,
    again every unhealthy_log_interval seconds. The states live in a small file beside the counter, so a runner
    started per pass (systemd timer) remembers them too."""
    if result.get("failed") and not result.get("groups"):
        return []  # the pass saw no groups (dashboard down): its own failure line says so
    path = config.get("group_states_path")
    every = _setting(config, "unhealthy_log_interval")
    try:
        with open(path, encoding="utf-8") as handle:  # type: ignore[arg-type]
            known = json.load(handle)
        if not isinstance(known, dict):
            known = {}
    except (OSError, TypeError, ValueError):
        known = _MEMORY.get("groups", {}) if not path else {}
    current = unhealthy_groups(result)
    seen_ids = {str(g.get("id")) for g in result.get("groups", []) if isinstance(g, dict)}
    lines = []
    states: dict[str, Any] = {}
    for gid, (state, reason) in sorted(current.items()):
        before = known.get(gid) if isinstance(known.get(gid), dict) else None
        if before is None or before.get("state") != state:
            lines.append(("group %s is now %s: %s" % (gid, state.replace("_", " "), reason), True))
            states[gid] = {"state": state, "since": now, "logged": now}
        elif now - float(before.get("logged", 0)) >= every:
            lines.append(("group %s still %s after %.0fs: %s" % (gid, state.replace("_", " "),
                                                                 now - float(before.get("since", now)), reason), True))
            states[gid] = dict(before, logged=now)
        else:
            states[gid] = before
    for gid in sorted(set(known) - set(current)):
        if gid in seen_ids:
            lines.append(("group %s is healthy again" % gid, False))
        elif result.get("groups"):
            continue  # no longer listed: forget it quietly
        else:
            states[gid] = known[gid]
    _MEMORY["groups"] = states
    if path:
        try:
            write_atomically(path, json.dumps(states), 0o600)
        except OSError as exc:
            lines.append(("cannot write group states to %s: %s" % (path, exc), True))
    return lines


_MEMORY: dict[str, Any] = {}


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
    """Runs the hook with the result on stdin, in a session of its own. Its output goes to a file, not a pipe:
    a background child that keeps the pipe open would block the runner, and a chatty hook would fill its
    memory. On timeout the hook's whole process group is killed, not just its shell."""
    command = config.get("on_failover_command")
    if not command:
        return None
    timeout = _setting(config, "on_failover_timeout")
    try:
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as output:
            stdin.write(json.dumps(result).encode())
            stdin.seek(0)
            hook = subprocess.Popen(["/bin/sh", "-c", command], stdin=stdin, stdout=output, stderr=output,
                                    start_new_session=True)
            try:
                code = hook.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(hook.pid)
                hook.wait()
                return "on_failover_command did not finish within %ss; it and its children were killed" % timeout
            except BaseException:
                _kill_group(hook.pid)
                hook.wait()
                raise
            size = output.seek(0, os.SEEK_END)
            output.seek(max(size - HOOK_OUTPUT_LIMIT, 0))
            tail = output.read(HOOK_OUTPUT_LIMIT).decode(errors="replace")
    except OSError as exc:
        return "on_failover_command did not run: %s" % exc
    if code != 0:
        last = tail.strip().splitlines()[-1:] or ["no output"]
        return "on_failover_command exited %d: %s" % (code, last[0][:300])
    return None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def one_pass(config: dict[str, Any]) -> bool:
    """Runs, logs, records. True when the pass did not fail."""
    result, seconds = run_module(config)
    line = log_line(result, seconds)
    if line:
        emit(config, line, bool(result.get("failed")))
    for group_line, is_error in group_log_lines(config, result, time.time()):
        emit(config, group_line, is_error)
    total, problem = count_failovers(config, failovers(result))
    if problem:
        emit(config, problem, True)
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


def what_was_loaded(config_path: str, config: dict[str, Any]) -> list[Optional[tuple[int, int, int]]]:
    """The files a runner took in at its start: its configuration, this runner, the module file and the
    module_utils directory (an install replaces files by renaming, which changes the directory)."""
    collection = os.path.join(config["collections_path"], "ansible_collections", "codis", "ha")
    out: list[Optional[tuple[int, int, int]]] = []
    for path in (config_path, os.path.abspath(__file__), os.path.join(collection, "plugins", "modules", "codis_ha.py"),
                 os.path.join(collection, "plugins", "module_utils")):
        try:
            seen = os.stat(path)
            out.append((seen.st_ino, seen.st_mtime_ns, seen.st_size))
        except OSError:
            out.append(None)
    return out


def loop_until(config: dict[str, Any], ends: float, unchanged: Callable[[], bool]) -> bool:
    """Passes every interval (wall clock) until `ends`, or until what the runner loaded has changed (it then
    stops between two passes, and the next runner, started by cron's next minute or systemd's timer, loads the
    new configuration and code: a long period never keeps an old one); True when none failed."""
    interval = _setting(config, "interval")
    ok = True
    next_start = time.time()
    while next_start < ends and unchanged():
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
        print("codis-ha runner: cannot use %s: %s" % (options.config, exc), file=sys.stderr)
        return 2
    try:
        return _run(options, config)
    finally:
        stop_worker()


def _run(options: argparse.Namespace, config: dict[str, Any]) -> int:
    if options.check:
        result, seconds = run_module(config, check=True)
        print("check pass %s in %.2fs: %s" % ("failed" if result.get("failed") else "ok", seconds,
                                              result.get("msg", "no message")))
        return 1 if result.get("failed") else 0
    loaded = what_was_loaded(options.config, config)

    def unchanged() -> bool:
        return what_was_loaded(options.config, config) == loaded

    if options.loop_minute:
        ok = loop_until(config, (int(time.time()) // 60 + 1) * 60 - MINUTE_MARGIN, unchanged)
    elif options.loop_seconds is not None:
        ok = loop_until(config, time.time() + options.loop_seconds, unchanged)
    else:
        ok = one_pass(config)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
