# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ask every Redis server what it is: all in parallel, each with its own deadline.

One hung server costs one probe budget (probe_timeout x probe_attempts plus the intervals), not one per
server. An authentication failure is reported as such and never retried: a wrong password is not a dead
master.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional

from ansible_collections.codis.ha.plugins.module_utils._batch import Asked, Batch, pack
from ansible_collections.codis.ha.plugins.module_utils._checks import (
    ca_file_problem,
    cert_pair_problem,
    number_problem,
)
from ansible_collections.codis.ha.plugins.module_utils._topology import (
    ALIVE,
    AUTH_ERROR,
    DOWN,
    ERROR,
    ProbeResult,
    ServerGroup,
    canonical_addr,
    format_addr,
    parse_addr,
)

REDIS_IMPORT_ERROR: Optional[str]
try:
    from redis.connection import Connection, SSLConnection
    from redis.exceptions import (
        AuthenticationError,
        BusyLoadingError,
        ConnectionError as RedisConnectionError,
        RedisError,
        ResponseError,
        TimeoutError as RedisTimeoutError,
    )
except ImportError:
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None

# The probe's one round trip. INFO only in the three sections the planner reads (replication; persistence for
# `loading`; keyspace for the key count): a fifth of the whole INFO (about 1 KB of Redis 7's 4.9 KB), which was most
# of a probe's CPU on a kept connection; one section a command, as Redis 2.8 and 3.2 (Codis) take no more. No
# client-side callbacks: INFO is parsed here (redis-py's parser crashes on a reply of the wrong type), CONFIG GET
# comes as the flat list. Redis 7 names the period repl-ping-replica-period, codis-server (Redis 3.2)
# repl-ping-slave-period; both have repl-diskless-sync-delay. One pattern, as Redis 3.2 takes no more: repl-ping-*
# and repl-disk* (12 items on Redis 7, where repl-* gave 20).
CONFIG_PATTERN = "repl-[pd]i[ns][gk]*"
INFO_SECTIONS = ("replication", "persistence", "keyspace")
PROBE_REQUEST = pack(*[("INFO", section) for section in INFO_SECTIONS], ("ROLE",), ("CONFIG", "GET", CONFIG_PATTERN))
PROBE_REPLIES = len(INFO_SECTIONS) + 2

AUTH_MARKERS = ("NOAUTH", "WRONGPASS", "invalid password", "invalid username-password",
                "without any password configured", "Authentication required",
                "HELLO must be called with the client already authenticated")


def redis_argument_spec() -> dict[str, Any]:
    """Every option that says how to reach and authenticate to Redis, named and documented once."""
    return dict(
        redis_username=dict(type="str"),
        redis_password=dict(type="str", no_log=True),
        redis_tls=dict(type="bool", default=ProbeSettings.tls),
        redis_tls_ca_path=dict(type="path"),
        redis_tls_cert_path=dict(type="path"),
        redis_tls_key_path=dict(type="path"),
        redis_tls_validate_certs=dict(type="bool", default=ProbeSettings.tls_validate_certs),
        probe_timeout=dict(type="float", default=ProbeSettings.timeout),
        probe_attempts=dict(type="int", default=ProbeSettings.attempts),
        probe_interval=dict(type="float", default=ProbeSettings.interval),
        probe_concurrency=dict(type="int", default=ProbeSettings.concurrency),
    )


@dataclass(frozen=True)
class ProbeSettings:
    username: Optional[str] = None
    password: Optional[str] = None
    tls: bool = False
    tls_ca_path: Optional[str] = None
    tls_cert_path: Optional[str] = None
    tls_key_path: Optional[str] = None
    tls_validate_certs: bool = True
    timeout: float = 1.0
    attempts: int = 2
    interval: float = 0.2
    concurrency: int = 1024

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "ProbeSettings":
        return cls(username=params.get("redis_username"), password=params.get("redis_password"),
                   tls=bool(params.get("redis_tls")), tls_ca_path=params.get("redis_tls_ca_path"),
                   tls_cert_path=params.get("redis_tls_cert_path"),
                   tls_key_path=params.get("redis_tls_key_path"),
                   tls_validate_certs=params.get("redis_tls_validate_certs", True),
                   timeout=params["probe_timeout"], attempts=params["probe_attempts"],
                   interval=params["probe_interval"], concurrency=params["probe_concurrency"])

    def problems(self) -> list[str]:
        out = [
            number_problem("probe_timeout", self.timeout, 0, 300, above_low=True),
            number_problem("probe_attempts", self.attempts, 1, 100),
            number_problem("probe_interval", self.interval, 0, 60),
            number_problem("probe_concurrency", self.concurrency, 1, 4096),
        ]
        if (self.tls_cert_path is None) != (self.tls_key_path is None):
            out.append("redis_tls_cert_path and redis_tls_key_path go together")
        elif self.tls:
            out.append(cert_pair_problem("redis_tls_cert_path", self.tls_cert_path,
                                         "redis_tls_key_path", self.tls_key_path))
        if self.tls:
            # A CA file that cannot be read would make every server look down.
            out.append(ca_file_problem("redis_tls_ca_path", self.tls_ca_path))
        return [p for p in out if p]

    @property
    def budget(self) -> float:
        """The most one server's probe may take."""
        return self.attempts * self.timeout + (self.attempts - 1) * self.interval


def connection_kwargs(settings: ProbeSettings) -> dict[str, Any]:
    """For one redis-py Connection: a probe needs one connection and three commands, and a whole client (a
    pool, its callbacks) cost a millisecond of CPU per server to build, most of a probe's cost."""
    kwargs: dict[str, Any] = dict(
        username=settings.username, password=settings.password,
        socket_timeout=settings.timeout, socket_connect_timeout=settings.timeout,
        # Attempts are counted here, not by redis-py: its default retries with backoff would turn one
        # dead server into seconds of waiting.
        retry=None, retry_on_timeout=False,
        # RESP2 and no CLIENT SETINFO (driver_info None): the Redis builds under Codis 2 predate HELLO.
        protocol=2, driver_info=None,
        decode_responses=True, health_check_interval=0,
    )
    if settings.tls:
        kwargs.update(ssl_ca_certs=settings.tls_ca_path, ssl_certfile=settings.tls_cert_path,
                      ssl_keyfile=settings.tls_key_path,
                      ssl_cert_reqs="required" if settings.tls_validate_certs else "none",
                      ssl_check_hostname=False)
    return kwargs


class KeptConnections:
    """Connections kept open between passes, one per server, for a process that runs pass after pass (the role's
    runner's worker): a probe on a kept connection is one round trip, without the connect, the socket's setup and
    teardown and AUTH, which were half of a probe's CPU. A connection is kept only after an exchange whose every
    reply was read (a timed-out one may still deliver a late reply, which the next probe would take for its own);
    one that fails with anything but a timeout is dropped and the probe tries a new one at once, within the same
    attempt (a restarted server closed it; that says nothing about the server now)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._idle: dict[tuple[ProbeSettings, str], Any] = {}
        self._lock = threading.Lock()

    def take(self, settings: ProbeSettings, addr: str) -> Any:
        with self._lock:
            return self._idle.pop((settings, addr), None)

    def keep(self, settings: ProbeSettings, addr: str, connection: Any) -> bool:
        with self._lock:
            if len(self._idle) >= self.limit or (settings, addr) in self._idle:
                return False
            self._idle[(settings, addr)] = connection
            return True

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connection in idle.values():
            _disconnect(connection)


# None: every probe opens its own connection (the module run by Ansible, one pass a process).
_KEPT: Optional[KeptConnections] = None


def keep_connections(limit: int) -> KeptConnections:
    """From now on, probes in this process keep up to `limit` connections between passes (the runner's worker)."""
    global _KEPT  # pylint: disable=global-statement
    if _KEPT is None:
        _KEPT = KeptConnections(limit)
    return _KEPT


class Prober:
    def __init__(self, settings: ProbeSettings, sleep: Callable[[float], None] = time.sleep,
                 kept: Optional[KeptConnections] = None, batch: bool = True) -> None:
        self.settings = settings
        self._kwargs = connection_kwargs(settings)
        self._connection_class = SSLConnection if settings.tls else Connection
        self._sleep = sleep
        self._kept = kept if kept is not None else _KEPT
        self._batch = batch  # False: the threads make every attempt (the benchmark's comparison)
        # How many servers the last probe_all's batch answered for (the rest went to the threads): for the tests
        # and the benchmarks.
        self.batched = 0

    def probe_all(self, addrs: list[str]) -> dict[str, ProbeResult]:
        addrs = sorted(set(addrs))
        if not addrs:
            return {}
        started = time.monotonic()
        asked = self._ask_kept(addrs)
        self.batched = len(asked.answered)
        rest = [a for a in addrs if a not in asked.answered]
        out = dict(asked.answered)
        if rest:
            workers = min(len(rest), self.settings.concurrency)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="codis-ha-probe") as pool:
                out.update(zip(rest, pool.map(lambda a: self.probe(a, asked.silent.get(a), started), rest)))
        return {a: out[a] for a in addrs}

    def _ask_kept(self, addrs: list[str]) -> Asked:
        """The first attempt of every server this process keeps a plain connection to, asked by one thread
        (`_batch`); what it leaves is probed by the threads."""
        if self._kept is None or self.settings.tls or not self._batch:
            return Asked()
        connections = {}
        for addr in addrs:
            connection = self._kept.take(self.settings, addr)
            if connection is not None:
                connections[addr] = connection
        if not connections:
            return Asked()
        batch = Batch(PROBE_REQUEST, PROBE_REPLIES, self.settings.timeout,
                      lambda addr, replies, at: _answered(addr, 1, replies, at))
        return batch.run(connections, self._give_back, _disconnect)

    def _give_back(self, addr: str, connection: Any) -> None:
        """A connection after a whole exchange: kept for the next pass, or closed when the pool is full."""
        if self._kept is None or not self._kept.keep(self.settings, addr, connection):
            _disconnect(connection)

    def probe(self, addr: str, first: Optional[ProbeResult] = None, started: Optional[float] = None) -> ProbeResult:
        """Every attempt at one server, or those after `first` (the batch's first attempt, timed out, begun at
        `started`): within one probe budget either way."""
        settings = self.settings
        started = time.monotonic() if started is None else started
        deadline = started + settings.budget
        last = first or ProbeResult(addr, DOWN, "not probed", 0)
        for attempt in range(last.attempts + 1, settings.attempts + 1):
            attempt_started = time.monotonic()
            last = self._probe_once(addr, attempt)
            if last.status != DOWN:
                return replace(last, answered_at=time.monotonic())
            # probe_interval runs from the start of one attempt to the start of the next: after a refusal the
            # pass pauses, after a timeout it has waited longer than that already (a frozen master is called
            # down 0.2 s sooner by default).
            now = time.monotonic()
            pause = attempt_started + settings.interval - now
            if attempt < settings.attempts and pause > 0 and now + pause < deadline:
                self._sleep(pause)
        return replace(last, down_for=time.monotonic() - started)

    def look_again_at_witnesses(self, groups: list[ServerGroup], probes: dict[str, ProbeResult]
                                ) -> dict[str, ProbeResult]:
        """The probes, with the slaves that still had a link up to an unreachable master looked at once more,
        now that the master's probe has run its course: whether their offsets moved in between tells a frozen
        master (it sends nothing, not even its pings) from one that only this host cannot reach, to well under
        a second, where the slaves' own last-I/O ages count whole seconds."""
        witnesses = self.witnesses(groups, probes)
        if not witnesses:
            return probes
        asked = time.monotonic()
        again = self.probe_all(list(witnesses))
        out = dict(probes)
        for addr, later in again.items():
            first = probes[addr]
            # Anything but the same link and the same offset leaves the first look as it was: it can only make
            # the slave a witness, which refuses the failover.
            if (_linked(later, first.master_addr or "") and later.offset == first.offset
                    and first.answered_at is not None and later.last_io_seconds is not None):
                out[addr] = replace(first, still_for=asked - first.answered_at, still_last_io=later.last_io_seconds)
        return out

    @staticmethod
    def witnesses(groups: list[ServerGroup], probes: dict[str, ProbeResult]) -> set[str]:
        """The slaves that still had a link up to a master that did not answer without refusing."""
        out: set[str] = set()
        for group in groups:
            master = probes.get(group.master.addr) if group.master is not None else None
            if master is None or master.status != DOWN or master.refused:
                continue  # refused: the process is dead, and its slaves' links dropped with it
            out.update(s.addr for s in group.of_type("slave") if s.addr in probes and _linked(probes[s.addr], master.addr))
        return out

    def look_again(self, groups: list[ServerGroup], earlier: dict[str, ProbeResult]) -> dict[str, ProbeResult]:
        """A second pair of looks within one pass (under the cluster's lock, the dashboard unchanged since the
        first): every server that answered is asked again; what did not answer moments ago is not, since a silent
        server would cost a whole probe budget more; the slaves of an unreachable master are compared with the
        pass's first look at them, so that their offsets' stillness counts from then."""
        addrs = sorted({s.addr for g in groups for s in g.servers})
        keep = self.witnesses(groups, earlier)
        keep.update(a for a in addrs if a in earlier and earlier[a].status == DOWN)
        first = {a: earlier[a] for a in addrs if a in keep}
        first.update(self.probe_all([a for a in addrs if a not in keep]))
        return self.look_again_at_witnesses(groups, first)

    def set_ping_period(self, addr: str, seconds: int) -> str:
        """CONFIG SET repl-ping-slave-period (the name Redis 3.2 and 7 both take) on one server: "" when it answered
        OK, else what went wrong, in a sentence. Never raises."""
        return self._command(addr, "CONFIG SET", "CONFIG", "SET", "repl-ping-slave-period", str(int(seconds)))

    def replicate_from(self, addr: str, master: str) -> str:
        """SLAVEOF `master` sent to `addr` (the command the dashboards' own addServer and sync action send): "" when
        it answered OK, else what went wrong, in a sentence. Never raises."""
        try:
            host, port = parse_addr(master)
        except ValueError as exc:
            return "the master %r is not a host:port address (%s)" % (master, exc)
        return self._command(addr, "SLAVEOF", "SLAVEOF", host, str(port))

    def _command(self, addr: str, name: str, *command: str) -> str:
        """One command (`name` in messages) on a connection of its own, expecting OK: "" or what went wrong."""
        try:
            host, port = parse_addr(addr)
        except ValueError as exc:
            return "not a host:port address (%s)" % exc
        try:
            with self._connected(host, port) as connection:
                connection.send_command(*command)
                reply = _reply(connection)
            if isinstance(reply, Exception):
                return "%s answered %s" % (name, _text(reply))
            # SLAVEOF to the master it already follows answers "OK Already connected to specified master".
            if reply is True or (isinstance(reply, str) and reply.startswith("OK")):
                return ""
            return "%s answered %s" % (name, _kind(reply))
        except (RedisError, OSError) as exc:
            return _text(exc)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return "unparsable reply: %s" % _text(exc)

    @contextlib.contextmanager
    def _connected(self, host: str, port: int) -> Iterator[Any]:
        """One connection of its own, closed quietly whatever happens (a CONFIG SET's, a SLAVEOF's)."""
        connection = self._connection_class(host=host, port=port, **self._kwargs)
        try:
            yield connection
        finally:
            _disconnect(connection)

    def _probe_once(self, addr: str, attempt: int) -> ProbeResult:
        try:
            host, port = parse_addr(addr)
        except ValueError as exc:
            return ProbeResult(addr, ERROR, "not a host:port address (%s)" % exc, attempt)
        kept = self._kept.take(self.settings, addr) if self._kept is not None else None
        if kept is not None:
            result, failure = self._ask(kept, addr, attempt)
            # A timeout is this attempt's answer (the server said nothing in time, as on a new connection); a
            # connection closed under us (a restart, a reset) says nothing of the server now: ask on a new one.
            if failure is None or result.status != DOWN or isinstance(failure, RedisTimeoutError):
                return self._done_with(kept, addr, result, failure is None)
            _disconnect(kept)
        connection = self._connection_class(host=host, port=port, **self._kwargs)
        result, failure = self._ask(connection, addr, attempt)
        return self._done_with(connection, addr, result, failure is None)

    def _done_with(self, connection: Any, addr: str, result: ProbeResult, clean: bool) -> ProbeResult:
        if clean:
            self._give_back(addr, connection)
        else:
            _disconnect(connection)
        return result

    @staticmethod
    def _ask(connection: Any, addr: str, attempt: int) -> tuple[ProbeResult, Optional[Exception]]:
        """The probe's one round trip, and what interrupted it (None: every reply was read, the connection may be
        kept)."""
        try:
            connection.send_packed_command([PROBE_REQUEST])
            replies = [_reply(connection) for _command in range(PROBE_REPLIES)]
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return _failed_probe(addr, exc, attempt), exc
        return _answered(addr, attempt, replies), None


def _failed_probe(addr: str, exc: Exception, attempt: int) -> ProbeResult:
    """What an exception during a probe says of the server."""
    # BusyLoadingError is a ConnectionError in redis-py, but a loading server is alive.
    if isinstance(exc, BusyLoadingError):
        return ProbeResult(addr, ALIVE, "loading", attempt, loading=True)
    if isinstance(exc, AuthenticationError):
        return ProbeResult(addr, AUTH_ERROR, _text(exc), attempt)
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
        return ProbeResult(addr, DOWN, _text(exc), attempt, refused=_refused(exc))
    if isinstance(exc, ResponseError):
        return _error_result(addr, exc, attempt)
    if isinstance(exc, RedisError):
        return ProbeResult(addr, ERROR, _text(exc), attempt)
    # A reply redis-py cannot even parse (not UTF-8, a number where INFO goes): this server's problem, never the
    # pass's.
    return ProbeResult(addr, ERROR, "unparsable reply: %s" % _text(exc), attempt)


def _answered(addr: str, attempt: int, replies: list[Any], answered_at: Optional[float] = None) -> ProbeResult:
    """What the probe's replies say (received at `answered_at`); an error reply of INFO is the server's answer."""
    info, role, config = _merged_info(replies[:len(INFO_SECTIONS)]), replies[-2], replies[-1]
    for reply in (info, role):
        if isinstance(reply, Exception) and not isinstance(reply, ResponseError):
            return _failed_probe(addr, reply, attempt)
    if isinstance(info, ResponseError):
        return _failed_probe(addr, info, attempt)
    try:
        # What a live server's result carries besides INFO, given to its one construction: a frozen dataclass is
        # costly to copy (a pass reads 2,000 of these).
        extra: dict[str, Any] = _replication_config(config)
        if answered_at is not None:
            extra["answered_at"] = answered_at
        result = parse_info(addr, info_fields(info) if isinstance(info, str) else info, role, attempt, extra)
        return result if result.alive or answered_at is None else replace(result, answered_at=answered_at)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        return _failed_probe(addr, exc, attempt)


def _merged_info(sections: list[Any]) -> Any:
    """The INFO sections' texts as one; else the first reply that is not a text (an error, a wrong type), which
    speaks for them all. Of persistence only its `loading` line: the rest (31 lines on Redis 7, the most of the
    three) is never read."""
    for reply in sections:
        if not isinstance(reply, str):  # None included: a null reply speaks too
            return reply
    replication, persistence, keyspace = sections
    loading = _LOADING_LINE.search(persistence)
    return "\r\n".join((replication, loading.group(0) if loading else "", keyspace))


_LOADING_LINE = re.compile(r"^loading:[^\r\n]*", re.M)


def _disconnect(connection: Any) -> None:
    try:
        connection.disconnect()
    except Exception:  # pylint: disable=broad-exception-caught
        pass


def _linked(seen: ProbeResult, master: str) -> bool:
    return seen.linked_to(master) and seen.offset is not None


def _reply(connection: Any) -> Any:
    """The next reply; an error reply is the value (as in a pipeline), anything else raises."""
    try:
        return connection.read_response()
    except ResponseError as exc:
        return exc


def _refused(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, ConnectionRefusedError) or "Connection refused" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _replication_config(config: Any) -> dict[str, Optional[int]]:
    """The ping period and the diskless sync delay from CONFIG GET's reply (a flat list or a dict), each None when
    absent or nonsense (no CONFIG for us: a renamed command answers an error)."""
    if isinstance(config, list):
        config = dict(zip(config[::2], config[1::2]))
    if not isinstance(config, dict):
        return {"ping_period": None, "sync_delay": None}
    period = next((_int(config[k]) for k in ("repl-ping-replica-period", "repl-ping-slave-period")
                   if k in config), None)
    delay = _int(config.get("repl-diskless-sync-delay"))
    return {"ping_period": period if period is not None and 1 <= period <= 3600 else None,
            "sync_delay": delay if delay is not None and 0 <= delay <= 3600 else None}


def info_fields(text: str) -> dict[str, Any]:
    """INFO's text as a dict: `key:value` lines; `dbN` and `slaveN` values are `a=b,c=d` lists."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep or key[:1] == "#":
            continue
        # "=" first: one look in C that rules out nearly every line (a pass reads 2,000 of these texts).
        if "=" in value and ((key[:2] == "db" and key[2:].isdigit()) or (key[:5] == "slave" and key[5:].isdigit())):
            out[key] = dict(item.partition("=")[::2] for item in value.split(","))
        else:
            out[key] = value
    return out


def _error_result(addr: str, exc: Exception, attempt: int) -> ProbeResult:
    text = _text(exc)
    status = AUTH_ERROR if any(m in text for m in AUTH_MARKERS) else ERROR
    return ProbeResult(addr, status, text, attempt)


def _text(exc: Exception) -> str:
    return ("%s: %s" % (type(exc).__name__, exc))[:300]


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _replid(value: Any) -> Optional[str]:
    """A replication ID as INFO gives it, or None: absent, not a string, or all zeros (Redis's "no such history")."""
    return value if isinstance(value, str) and value and value.strip("0") else None


def _kind(value: Any) -> str:
    text = repr(value)
    return "%s %s" % (type(value).__name__, text if len(text) <= 60 else text[:60] + "...")


_NUMBERS_IN_INFO = ("master_repl_offset", "slave_repl_offset", "master_port", "slave_priority", "replica_priority",
                    "master_last_io_seconds_ago", "master_link_down_since_seconds", "second_repl_offset")


def parse_info(addr: str, info: Any, role: Any, attempt: int, extra: Optional[dict[str, Any]] = None) -> ProbeResult:
    """INFO is the source; ROLE only fills in what an old Redis leaves out of INFO, and must not contradict it.
    `extra`: more fields of a live server's result."""
    if not isinstance(info, dict):
        return ProbeResult(addr, ERROR, "answered INFO with %s, not an INFO text" % _kind(info), attempt)
    role_says = None
    if isinstance(role, list) and role and isinstance(role[0], str):
        role_says = role[0]
    elif not isinstance(role, ResponseError):  # an old Redis without ROLE answers an error: fine
        return ProbeResult(addr, ERROR, "answered ROLE with %s, not a role" % _kind(role), attempt)
    kind = info.get("role", role_says)
    if kind not in ("master", "slave"):
        return ProbeResult(addr, ERROR, "unknown role %r in INFO" % (kind,), attempt)
    if role_says is not None and role_says != kind:
        return ProbeResult(addr, ERROR, "INFO says role %s but ROLE says %s" % (kind, role_says), attempt)
    number = {name: _int(info[name]) for name in _NUMBERS_IN_INFO if name in info}  # each read once
    wrong = next((name for name, value in number.items() if value is None), None)
    if wrong is not None:
        return ProbeResult(addr, ERROR, "INFO field %s is %r, not a number" % (wrong, info[wrong]), attempt)
    keys = sum(_int(v.get("keys")) or 0 for k, v in info.items() if k[:2] == "db" and isinstance(v, dict))
    common = dict(offset=number.get("master_repl_offset"), replid=_replid(info.get("master_replid")),
                  replid2=_replid(info.get("master_replid2")), second_offset=number.get("second_repl_offset"),
                  keys=keys, loading=bool(_int(info.get("loading"))), **(extra or {}))
    if kind == "master":
        return ProbeResult(addr, ALIVE, "", attempt, role="master", **common)
    common["offset"] = number.get("slave_repl_offset", common["offset"])
    link_up = info.get("master_link_status") == "up"
    priority = number.get("slave_priority", number.get("replica_priority"))
    # ROLE of a slave: ["slave", host, port, state, offset]; an old Redis without ROLE leaves it unknown.
    link_state = role[3] if isinstance(role, list) and len(role) >= 4 and isinstance(role[3], str) else None
    return ProbeResult(
        addr, ALIVE, "", attempt, role="slave",
        master_addr="%s:%s" % (info.get("master_host"), info.get("master_port")),
        link_up=link_up, last_io_seconds=number.get("master_last_io_seconds_ago"),
        link_down_seconds=number.get("master_link_down_since_seconds"),
        priority=100 if priority is None else priority,
        syncing=bool(_int(info.get("master_sync_in_progress"))), link_state=link_state, **common)


# -------------------------------------------------------------------------------------- other sockets
# The pass's own look at a proxy's admin port, and what an address resolves to.
def http_silent(addr: str, connect_timeout: float, wait: float) -> Optional[bool]:
    """True when the port takes a connection and sends no byte of an answer to an HTTP request within `wait`
    seconds, False when it answers anything (even an error or a close), None when it cannot tell."""
    try:
        host, port = parse_addr(addr)
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except (OSError, ValueError):
        return None
    with sock:
        try:
            sock.settimeout(wait)
            sock.sendall(b"GET /api/proxy/model HTTP/1.0\r\nHost: codis-ha\r\n\r\n")
            sock.recv(1)
            return False
        except socket.timeout:
            return True
        except OSError:
            return None


def port_refuses(addr: str, timeout: float) -> Optional[bool]:
    """True when a TCP connect is refused (the host answers, nothing listens), False when it connects, None when
    it cannot tell (a timeout, a name that does not resolve)."""
    try:
        host, port = parse_addr(addr)
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return None


def server_identity(addr: str) -> str:
    """The server an address names: its host resolved, so that `localhost:6911`, `127.0.0.1:6911` and a host
    name of the same machine are one server. An address that does not resolve stays as it is spelled."""
    try:
        host, port = parse_addr(addr)
    except ValueError:
        return addr
    resolved = [host] if _ipv4_literal(host) else _resolved(host, port)
    return (canonical_addr(format_addr(resolved[0], port)) if resolved else None) or format_addr(host, port)


def _resolved(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return sorted({str(info[4][0]).split("%", maxsplit=1)[0] for info in infos})
    except (OSError, UnicodeError, ValueError):
        return []


@functools.lru_cache(maxsize=16384)
def _ipv4_literal(host: str) -> bool:
    """Resolves to itself: 2,000 lookups of such addresses were a tenth of a large pass's CPU."""
    try:
        return str(ipaddress.IPv4Address(host)) == host
    except ValueError:
        return False
