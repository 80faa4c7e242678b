# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The operator's command after a pass that changed the cluster (`on_failover_command`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from typing import Any, Optional

from codis_ha_runner.config import RunnerConfig

# Most of a hook's output that is kept (its last line is logged when it fails); the rest is discarded.
HOOK_OUTPUT_LIMIT = 64 * 1024


def on_failover(config: RunnerConfig, result: dict[str, Any]) -> Optional[str]:
    """Runs the hook with the result on stdin, in a session of its own; a problem to log, or None. Its output goes
    to a file, not a pipe: a background child that keeps the pipe open would block the runner, and a chatty hook
    would fill its memory. On timeout the hook's whole process group is killed, not just its shell."""
    command = config.on_failover_command
    if not command:
        return None
    timeout = config.on_failover_timeout
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
