# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a pass remembers between runs, and the lock that keeps two passes on one host apart.

The state file holds, per group, the last master seen alive with its offset and time, since when the
current master is seen down, and the last failover time. It is written atomically (temp file, fsync,
rename) with mode 0600. A state file that cannot be read is moved aside with a warning: losing the memory
only makes the next pass more careful (down_after restarts, no offset bound), never less.

Only a regular file (or none) is ever used as the state file or the lock: a device would be renamed aside and
replaced (with /dev/null as root that breaks the host), a FIFO would block the pass. Anything else fails the
pass before it acts, and nothing is renamed. Check mode writes nothing: no lock file, no file moved aside.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from dataclasses import asdict, replace
from typing import Iterable, Optional

from ansible_collections.codis.ha.plugins.module_utils._planner import GroupDecision
from ansible_collections.codis.ha.plugins.module_utils._topology import (
    GroupHistory,
    ProbeResult,
    ServerGroup,
    clip,
    extend_lineage,
    is_time,
)

VERSION = 1


class StateError(Exception):
    pass


def not_regular(path: str) -> Optional[str]:
    """Why an existing `path` must not be used as a state or lock file, or None (absent or a regular file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return "%s cannot be examined: %s" % (path, exc.strerror or exc)
    if stat.S_ISREG(st.st_mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(st.st_mode)), "not a regular file")
    return "%s is %s, not a regular file" % (path, kind)


def _open_regular(path: str, flags: int) -> int:
    """os.open that never blocks on a FIFO and refuses anything but a regular file (checked on the open fd,
    so a file swapped after an earlier check is caught too)."""
    fd = os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StateError(not_regular(path) or "%s is not a regular file" % path)
    return fd


class PassLock:
    """A non-blocking flock beside the state file; the loser of a race is told, never made to wait.

    create=False (check mode) takes the lock only if its file exists already, and otherwise writes nothing."""

    def __init__(self, path: str, create: bool = True) -> None:
        self.path = path
        self.create = create
        self._fd: Optional[int] = None

    def acquire(self) -> bool:
        try:
            fd = _open_regular(self.path, os.O_RDWR | os.O_CREAT if self.create else os.O_RDONLY)
        except FileNotFoundError:
            if self.create:
                raise
            return True
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


def load_state(path: str, now: Optional[float] = None,
               move_aside: bool = True) -> tuple[dict[int, GroupHistory], list[str], float]:
    """The per-group history, any warnings, and the file's creation time to save it with (`now` for a file that is
    new or does not say: every time the pass records is later than that); a missing file is an empty history.
    StateError when `path` is not a regular file (nothing is read, moved or written then). Times before the
    file's creation are dropped: a file that does not say when it was created (an earlier version's, or one
    written by hand) has its times dropped once."""
    now = time.time() if now is None else now
    try:
        fd = _open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return {}, [], now
    except OSError as exc:
        raise StateError("state file %s cannot be opened: %s" % (path, exc.strerror or exc)) from None
    try:
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(16 * 1024 * 1024 + 1).decode("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
            raise ValueError("not a codis.ha state file")
    except (OSError, ValueError, RecursionError) as exc:
        if not move_aside:
            return {}, ["state file %s could not be read (%s); starting with no history (check mode: left as "
                        "it is)" % (path, exc)], now
        aside = "%s.corrupt-%d" % (path, int(now))
        try:
            os.replace(path, aside)
            where = "moved aside to %s" % aside
        except OSError as move_exc:
            where = "and could not be moved aside (%s)" % move_exc
        return {}, ["state file %s could not be read (%s); %s, starting with no history"
                    % (path, exc, where)], now
    created = data.get("created_at")
    notes = []
    if not (is_time(created, now) and created > 0):
        if data["groups"]:
            notes.append("created_at=%s is not a time: every time in the file is dropped"
                         % clip(repr(created), 60))
        created = None
    history: dict[int, GroupHistory] = {}
    for key, value in data["groups"].items():
        if not key.isdigit() or len(key) > 9:
            notes.append("group %r ignored (not a group id)" % key[:40])
            continue
        history[int(key)], problems = GroupHistory.from_dict(value, now, created)
        notes.extend("group %s: %s" % (key, p) for p in problems)
    warnings = ["state file %s holds values that were ignored: %s" % (path, "; ".join(notes[:10]) + (
        "; and %d more" % (len(notes) - 10) if len(notes) > 10 else ""))] if notes else []
    return history, warnings, now if created is None else created


def save_state(path: str, history: dict[int, GroupHistory], created_at: Optional[float] = None) -> None:
    """Written atomically; `created_at` is the file's creation time as load_state read it (None: now)."""
    payload = json.dumps({"version": VERSION, "created_at": time.time() if created_at is None else created_at,
                          "groups": {str(g): asdict(h) for g, h in sorted(history.items())}},
                         indent=2, sort_keys=True)
    write_atomically(path, payload, 0o600)


def write_atomically(path: str, text: str, mode: int, durable: bool = True) -> None:
    """A reader (the next pass, node_exporter) sees the old file or the new one, never half of one. `durable`:
    flushed to disk with its directory entry before this returns, so a crash or power cut right after keeps it
    (a file rewritten every pass, such as a metrics gauge, may skip that)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".codis-ha.", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def next_history(history: dict[int, GroupHistory], groups: Iterable[ServerGroup], probes: dict[str, ProbeResult],
                 decisions: Iterable[GroupDecision], promoted: dict[int, str], now: float,
                 lock_refused: Iterable[int] = ()) -> dict[int, GroupHistory]:
    """The history the next pass starts from. Per group: the master's record (last seen alive, its offset,
    replication id and ping period), since when the pass has judged it down, and the last failover. The down
    clock runs only while the pass judges the master down after the second opinion: a pass that refused because
    a slave still sees the master does not start it (that would let down_after be bypassed later)."""
    decisions = list(decisions)
    judged_down = {d.group: d.master_down for d in decisions}
    keep_record = {d.group for d in decisions if d.keep_record}
    out = {gid: replace(h) for gid, h in history.items()}
    for group in groups:
        master = group.master
        seen = probes.get(master.addr) if master else None
        if master is None or seen is None:
            continue
        h = out.get(group.id) or GroupHistory()
        if h.master != master.addr:
            h = GroupHistory(master=master.addr, last_failover_at=h.last_failover_at, lineage=h.lineage)
        if seen.alive and seen.role == "master" and not seen.loading and group.id not in keep_record:
            # (A master that lost the history a slave still holds keeps its record: that is the evidence.)
            h = replace(h, master_offset=seen.offset, master_keys=seen.keys, seen_alive_at=now, down_since=None,
                        master_replid=seen.replid or h.master_replid, ping_period=seen.ping_period or h.ping_period,
                        sync_delay=seen.sync_delay if seen.sync_delay is not None else h.sync_delay,
                        lineage=extend_lineage(h.lineage, seen))
        elif judged_down.get(group.id):
            h = replace(h, down_since=h.down_since if h.down_since is not None else now)
        else:
            h = replace(h, down_since=None)
        out[group.id] = h
    for gid, server in promoted.items():
        seen = probes.get(server)
        before = out.get(gid)
        out[gid] = GroupHistory(master=server, master_offset=seen.offset if seen else None, seen_alive_at=now,
                                last_failover_at=now, master_replid=None, ping_period=None, sync_delay=None,
                                lineage=before.lineage if before else None)
    return _lock_clocks(out, set(lock_refused), now)


def _lock_clocks(history: dict[int, GroupHistory], refused: set[int], now: float) -> dict[int, GroupHistory]:
    """A group whose change the dashboard's lock refused keeps (or starts) its clock; any other group's stops: a
    pass that changed it, or needed no change, says nothing of a lock held since."""
    for gid in refused - set(history):
        history[gid] = GroupHistory()
    for gid, h in history.items():
        since = (now if h.lock_refused_since is None else h.lock_refused_since) if gid in refused else None
        if since != h.lock_refused_since:  # a copy only where it changes: a thousand groups a pass
            history[gid] = replace(h, lock_refused_since=since)
    return history
