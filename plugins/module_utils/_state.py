# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a pass remembers between runs, and the lock that keeps two passes on one host apart.

The state file holds, per group, the last master seen alive with its offset and time, since when the
current master is seen down, and the last failover time. It is written atomically (temp file, fsync,
rename) with mode 0600. A state file that cannot be read is moved aside with a warning: losing the memory
only makes the next pass more careful (down_after restarts, no offset bound), never less.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import time
from dataclasses import asdict
from typing import Optional

from ansible_collections.codis.ha.plugins.module_utils._topology import GroupHistory

VERSION = 1


class StateError(Exception):
    pass


class PassLock:
    """A non-blocking flock beside the state file; the loser of a race is told, never made to wait."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: Optional[int] = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def load_state(path: str) -> tuple[dict[int, GroupHistory], list[str]]:
    """The per-group history and any warnings; a missing file is an empty history."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
            raise ValueError("not a codis.ha state file")
        return {int(gid): GroupHistory.from_dict(h) for gid, h in data["groups"].items()}, []
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        aside = "%s.corrupt-%d" % (path, int(time.time()))
        try:
            os.replace(path, aside)
            where = "moved aside to %s" % aside
        except OSError as move_exc:
            where = "and could not be moved aside (%s)" % move_exc
        return {}, ["state file %s could not be read (%s); %s, starting with no history"
                    % (path, exc, where)]


def save_state(path: str, history: dict[int, GroupHistory]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    payload = json.dumps({"version": VERSION, "groups": {str(g): asdict(h) for g, h in sorted(history.items())}},
                         indent=2, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=".codis-ha-state-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
