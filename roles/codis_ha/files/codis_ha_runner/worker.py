# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a pass runs. The runner imports the collection once and forks a worker that runs passes one after another
(`passes_per_worker`, 100 by default, then a fresh one; at once after a pass that failed or left a thread behind):
a pass in a loop costs the pass, not an interpreter start, 0.1 s of imports, or the copy-on-write faults of a fork
per pass. With `fork: false` (or where fork fails) each pass runs in a new interpreter:
`python -m codis_ha_runner.worker`, its request on stdin and its result on stdout.

Either way the pass is `_front.pass_without_ansible`: the module's argument spec checked by Ansible's validator,
then the module's pass. A pass never raises into the runner: a crash, a timeout or a worker that died is a failed
result that says so.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional

from codis_ha_runner.config import RunnerConfig

# A worker's answer: length of the result's JSON, CPU seconds, peak RSS in MB, whether it stays for another pass.
_REPLY = struct.Struct("!Qdd?")
PassFunction = Callable[[dict[str, Any], bool], dict[str, Any]]


def module_args(config: RunnerConfig) -> dict[str, Any]:
    args = dict(config.module_args)
    # The pass ends itself (and reports what it did) before the runner has to kill it.
    args.setdefault("pass_timeout", max(config.pass_timeout * 0.9, config.pass_timeout - 5.0))
    return args


def failed(msg: str) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg, "actions": [], "groups": [], "skipped_groups": []}


def import_pass(collections_path: str) -> PassFunction:
    if collections_path not in sys.path:
        sys.path.insert(0, collections_path)
    from ansible_collections.codis.ha.plugins.module_utils._front import (  # pylint: disable=import-outside-toplevel
        pass_without_ansible,
    )
    from ansible_collections.codis.ha.plugins.module_utils._probe import (  # pylint: disable=import-outside-toplevel
        keep_connections,
    )
    # A worker runs pass after pass: its probes keep one connection per server between them.
    keep_connections(_connections_allowed())
    return pass_without_ansible


# File descriptors the worker leaves for everything but kept connections: a pass's new probe connections (up to
# probe_concurrency), the dashboard's, the state file's, a coordinator's.
_RESERVED_FDS = 2048
_WANTED_FDS = 65536


def _connections_allowed() -> int:
    """How many connections the worker may keep: its open-file limit raised toward the hard limit (systemd's
    default soft limit of 1024 would not hold one per server of a large cluster), less what a pass needs besides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _WANTED_FDS if hard == resource.RLIM_INFINITY else min(hard, _WANTED_FDS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return max(0, (_WANTED_FDS if soft == resource.RLIM_INFINITY else soft) - _RESERVED_FDS)


def _guarded(one_pass: PassFunction, args: dict[str, Any], check: bool) -> dict[str, Any]:
    try:
        return one_pass(args, check)
    except BaseException as exc:  # pylint: disable=broad-exception-caught
        # pass_without_ansible catches every error of the pass; what is left (MemoryError, a SystemExit from a
        # library) still ends as one failed line, not a traceback in the log.
        return failed("the pass stopped on %s: %s" % (type(exc).__name__, str(exc)[:300]))


class Passes:
    """The passes of one runner: run() one at a time; stop() at the end."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.worker: Optional[_Worker] = None
        self.one_pass: Optional[PassFunction] = None
        # What the last forked pass cost (CPU seconds, peak RSS in MB, the worker's pid), for benchmarks and tests.
        self.last_usage: dict[str, float] = {}

    def run(self, check: bool = False) -> tuple[dict[str, Any], float]:
        """(result, seconds). A crash or timeout is a failed result, never raised."""
        started = time.monotonic()
        args = module_args(self.config)
        if self.config.fork:
            try:
                result = self._forked(args, check)
            except ImportError as exc:
                result = failed("cannot import codis.ha from %s: %s" % (self.config.collections_path, exc))
            except OSError:  # no fork here: a new interpreter per pass
                result = self._spawned(args, check)
        else:
            result = self._spawned(args, check)
        return result, time.monotonic() - started

    def _spawned(self, args: dict[str, Any], check: bool) -> dict[str, Any]:
        """The pass in a new interpreter: every pass pays for Python and the imports (about 0.1 s of CPU)."""
        home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([home, self.config.collections_path]),
                   PYTHONDONTWRITEBYTECODE="1")
        request = json.dumps({"module_args": args, "check": check, "collections_path": self.config.collections_path})
        try:
            done = subprocess.run([sys.executable, "-m", "codis_ha_runner.worker"], input=request.encode(),
                                  capture_output=True, env=env, timeout=self.config.pass_timeout, check=False)
        except subprocess.TimeoutExpired:
            return self._overran()
        return _decoded(done.stdout, done.returncode, done.stderr)

    def _overran(self) -> dict[str, Any]:
        return failed("the pass did not finish within %ss" % self.config.pass_timeout)

    def _forked(self, args: dict[str, Any], check: bool) -> dict[str, Any]:
        if self.one_pass is None:
            self.one_pass = import_pass(self.config.collections_path)
        if self.worker is not None and self.worker.request != (args, check):
            self.stop()
        if self.worker is None:
            # SIGTERM waits while we fork: its handler's SystemExit, raised inside fork's at-fork callbacks, was
            # swallowed there ("Exception ignored"), and a stopped runner went on looping (found under load). The
            # worker is on record before the signal can land, so that stopping the runner stops it.
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                self.worker = _Worker(self.one_pass, args, check, self.config.passes_per_worker)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        worker = self.worker
        try:
            answer, stays = worker.run(self.config.pass_timeout)
        except BaseException:
            self.stop()  # stopped by SIGTERM while waiting: the pass goes with us
            raise
        self.last_usage = dict(worker.usage)
        if not stays:
            # What the worker's passes did not report (its start and its exit) goes to its last pass.
            self.last_usage["cpu"] = self.last_usage.get("cpu", 0.0) + self.stop()
        return self._overran() if answer is None else answer

    def stop(self) -> float:
        """Kill and reap the worker, if there is one; the CPU seconds its passes did not report."""
        rest = 0.0
        if self.worker is not None:
            rest = self.worker.stop()
            self.worker = None
        return rest


class _Worker:
    """A child forked from the runner that runs passes one after another. A child forked per pass paid for its
    copy-on-write faults every time (48 ms of CPU a pass against 19 ms for the same pass in a warm process); a
    worker pays them once. It leaves after its last pass, after a pass that failed, or after one that left a thread
    running; the runner kills it when a pass overruns its timeout and when it stops itself."""

    def __init__(self, one_pass: PassFunction, args: dict[str, Any], check: bool, passes: int) -> None:
        self.request = (args, check)
        self.status: Optional[int] = None
        self.cpu_reported = 0.0
        self.usage: dict[str, float] = {}
        go_r, self.go = os.pipe()
        self.replies, reply_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.go)
            os.close(self.replies)
            _serve(go_r, reply_w, one_pass, args, check, passes)
        os.close(go_r)
        os.close(reply_w)

    def run(self, timeout: float) -> tuple[Optional[dict[str, Any]], bool]:
        """(the result, or None when the pass overran; whether the worker stays for another)."""
        os.write(self.go, b"p")
        deadline = time.monotonic() + timeout
        try:
            length, cpu, rss, stays = _REPLY.unpack(self._read(_REPLY.size, deadline))
            body = self._read(length, deadline)
        except TimeoutError:
            return None, False
        except EOFError:  # the worker died on the way: a failed pass
            self.stop()
            return failed("the pass's worker died (exit %s)" % self.status), False
        self.cpu_reported += cpu
        self.usage = {"cpu": cpu, "maxrss_mb": rss, "pid": self.pid}
        return _decoded(body, 0, b""), stays

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

    def stop(self) -> float:
        """Kill and reap the worker (once); the CPU seconds its passes did not report (its start and exit)."""
        if self.status is not None:
            return 0.0
        os.close(self.go)
        os.close(self.replies)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        status, usage = os.wait4(self.pid, 0)[1:]
        self.status = os.waitstatus_to_exitcode(status)
        return max(usage.ru_utime + usage.ru_stime - self.cpu_reported, 0.0)


def _serve(go: int, replies: int, one_pass: PassFunction, args: dict[str, Any], check: bool, passes: int) -> None:
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
            result = _guarded(one_pass, args, check)
            after = resource.getrusage(resource.RUSAGE_SELF)
            body = _encoded(result)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            stays = left > 0 and not result.get("failed") and threading.active_count() == 1
            view = memoryview(_REPLY.pack(len(body), cpu, after.ru_maxrss / 1024.0, stays) + body)
            while view:
                view = view[os.write(replies, view):]
            if not stays:
                break
    finally:
        os._exit(0)


def _encoded(result: dict[str, Any]) -> bytes:
    """The result crosses a process boundary as JSON (what a module's result is); a value JSON cannot carry is
    written as its text."""
    return json.dumps(result, default=str).encode()


def _decoded(body: bytes, status: int, err: bytes) -> dict[str, Any]:
    try:
        result = json.loads(body)
        if isinstance(result, dict):
            return result
    except ValueError:
        pass
    tail = (err or body).decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return failed("the pass exited %d without a result: %s" % (status, tail[0][:300]))


def main() -> int:
    """A pass in this new interpreter: the request on stdin, the result on stdout."""
    request = json.load(sys.stdin)
    try:
        one_pass = import_pass(request["collections_path"])
    except ImportError as exc:
        result = failed("cannot import codis.ha from %s: %s" % (request["collections_path"], exc))
    else:
        result = _guarded(one_pass, request["module_args"], bool(request.get("check")))
    sys.stdout.write(_encoded(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
