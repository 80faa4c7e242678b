# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The runner's loop: a pass every interval, its log lines, counter, metrics and hook; it stops when its time is
up or when what it loaded changed on disk (the next runner, started by cron or systemd, loads the new)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Callable, Optional

from codis_ha_runner.config import RunnerConfig, load_config
from codis_ha_runner.drops import DropWatch, masters_of
from codis_ha_runner.hooks import on_failover
from codis_ha_runner.worker import Passes

# The next cron-started runner must find the lock free, so a loop stops this long before the minute ends.
MINUTE_MARGIN = 0.5


class Runner:
    """One runner process: its configuration, where its passes run, and what it remembers between them."""

    def __init__(self, config: RunnerConfig) -> None:
        # The outputs read the result with the collection's words: imported once load_config put it on the path.
        from codis_ha_runner import outputs  # pylint: disable=import-outside-toplevel

        self.config = config
        self.passes = Passes(config)
        self.outputs = outputs
        self.group_states = outputs.GroupStates(config)
        self.drops = DropWatch(config.wake_on_drop)
        self.woken = 0  # passes started early by a master's dropped connection
        self.promoted = 0  # promotions by this process: the total without a counter file

    def one_pass(self) -> bool:
        """Runs, logs, records. True when the pass did not fail."""
        out, config = self.outputs, self.config
        result, seconds = self.passes.run()
        if result.get("groups"):  # a pass that saw no groups (dashboard down) leaves the watch as it was
            self.drops.watch(masters_of(result))
        problems = []
        line = out.log_line(result, seconds)
        if line:
            out.emit(config, line, bool(result.get("failed")))
        for group_line, is_error in self.group_states.log_lines(result, time.time()):
            out.emit(config, group_line, is_error)
        new = out.failovers(result)
        self.promoted += new
        # Without a counter file the total is this runner's own: nothing keeps it across runners.
        total, problem = out.count_failovers(config, new) if config.counter_path else (self.promoted, None)
        problems.append(problem)
        problems.append(out.write_metrics(config, out.metrics_text(result, seconds, total, time.time())))
        if result.get("changed"):
            problems.append(on_failover(config, result))
        for problem in problems:
            if problem:
                out.emit(config, problem, True)
        return not result.get("failed")

    def check(self) -> int:
        result, seconds = self.passes.run(check=True)
        print("check pass %s in %.2fs: %s" % ("failed" if result.get("failed") else "ok", seconds,
                                              result.get("msg", "no message")))
        return 1 if result.get("failed") else 0

    def loop_until(self, ends: float, unchanged: Callable[[], bool]) -> bool:
        """Passes every interval (wall clock) until `ends`, or until what the runner loaded has changed (it then
        stops between two passes: a long period never keeps an old configuration or code); True when none
        failed."""
        interval = self.config.interval
        ok = True
        next_start = time.time()
        while next_start < ends and unchanged():
            ok = self.one_pass() and ok
            next_start += interval
            while next_start < time.time():
                # A pass that overran its slot moves the schedule on instead of starting a burst of passes.
                next_start += interval
            pause = min(next_start, ends) - time.time()
            if pause > 0 and self.drops.wait(pause) and time.time() < ends:
                # A master's connection dropped: the pass starts now, and the timer counts from it.
                self.woken += 1
                next_start = time.time()
        return ok


def what_was_loaded(config: RunnerConfig) -> list[Optional[tuple[int, int, int]]]:
    """The files a runner took in at its start: its configuration, this package, the module file and the
    module_utils directory (an install replaces files by renaming, which changes the directory)."""
    out: list[Optional[tuple[int, int, int]]] = []
    for path in (config.path, os.path.dirname(os.path.abspath(__file__)), config.module_path,
                 os.path.join(config.collection, "plugins", "module_utils")):
        try:
            seen = os.stat(path)
            out.append((seen.st_ino, seen.st_mtime_ns, seen.st_size))
        except OSError:
            out.append(None)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codis_ha_runner", description="Runs codis.ha.codis_ha passes.")
    parser.add_argument("config")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--loop-minute", action="store_true",
                      help="run a pass every interval until the current minute ends (for cron)")
    mode.add_argument("--loop-seconds", type=float, metavar="SECONDS",
                      help="run a pass every interval for this long (the systemd service, benchmarks)")
    mode.add_argument("--check", action="store_true", help="run one pass in check mode and print the result")
    options = parser.parse_args(argv)
    # Stopped (systemd, pkill from the role's absent, a benchmark): SystemExit unwinds the wait for the pass,
    # whose worker is then killed instead of being left orphaned.
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(143))
    try:
        config = load_config(options.config)
    except (OSError, ValueError, ImportError) as exc:
        print("codis-ha runner: cannot use %s: %s" % (options.config, exc), file=sys.stderr)
        return 2
    runner = Runner(config)
    try:
        return _run(options, runner)
    finally:
        runner.passes.stop()
        runner.drops.close()


def _run(options: argparse.Namespace, runner: Runner) -> int:
    if options.check:
        return runner.check()
    loaded = what_was_loaded(runner.config)

    def unchanged() -> bool:
        return what_was_loaded(runner.config) == loaded

    if options.loop_minute:
        ok = runner.loop_until((int(time.time()) // 60 + 1) * 60 - MINUTE_MARGIN, unchanged)
    elif options.loop_seconds is not None:
        ok = runner.loop_until(time.time() + options.loop_seconds, unchanged)
    else:
        ok = runner.one_pass()
    return 0 if ok else 1
