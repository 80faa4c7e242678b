"""Probes on connections kept between passes (the runner's worker), on real redis-server processes: a kept
connection is used again, and every way it can go bad (a restart, a kill, a freeze) ends as a probe on a new
connection would, never as a reply read from an earlier exchange."""
from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Iterator

import pytest
import redis

from ansible_collections.codis.ha.plugins.module_utils._probe import KeptConnections, Prober, ProbeSettings
from ansible_collections.codis.ha.plugins.module_utils._topology import ALIVE, DOWN, ProbeResult
from simulator.real import RealCluster

SETTINGS = ProbeSettings(timeout=0.5, attempts=2, interval=0.05)


@pytest.fixture
def real() -> Iterator[RealCluster]:
    with RealCluster.start(groups=1, slaves=1) as cluster:
        yield cluster


@pytest.fixture
def kept() -> Iterator[KeptConnections]:
    """Closed at the end: an open socket left to the garbage collector warns in whatever test runs then."""
    connections = KeptConnections(limit=10)
    try:
        yield connections
    finally:
        connections.close()


def connections_received(client: "redis.Redis[str]") -> int:
    return int(client.info("stats")["total_connections_received"])


def test_a_kept_connection_is_used_again_and_only_once_it_answered_in_full(
        real: RealCluster, kept: KeptConnections) -> None:
    master = real.master_of(1) or ""
    prober = Prober(SETTINGS, kept=kept)
    with contextlib.closing(real.processes[master].client()) as watcher:
        before = connections_received(watcher)
        first = prober.probe(master)
        second = prober.probe(master)
        assert first.status == second.status == ALIVE and second.role == "master"
        assert connections_received(watcher) - before == 1  # the second probe asked on the first's connection
        assert second.ping_period == 10 and second.attempts == 1
    assert KeptConnections(limit=0).keep(SETTINGS, master, object()) is False  # a full cache keeps nothing


def test_a_server_restarted_under_a_kept_connection_is_asked_on_a_new_one_within_the_attempt(
        real: RealCluster, kept: KeptConnections) -> None:
    master = real.master_of(1) or ""
    prober = Prober(SETTINGS, kept=kept)
    before = prober.probe(master)
    real.restart(master)  # the same port, empty: the kept connection was closed by the old process
    after = prober.probe(master)
    assert after.status == ALIVE and after.attempts == 1, after
    assert after.replid != before.replid  # the new process answered, not anything left on the old connection


def test_a_killed_server_is_down_and_refused_as_on_a_new_connection(
        real: RealCluster, kept: KeptConnections) -> None:
    master = real.master_of(1) or ""
    prober = Prober(SETTINGS, kept=kept)
    assert prober.probe(master).status == ALIVE
    real.kill(master)
    gone = prober.probe(master)
    assert gone.status == DOWN and gone.refused is True and gone.attempts == SETTINGS.attempts, gone
    assert kept.take(SETTINGS, master) is None


def test_a_frozen_server_times_out_and_its_late_replies_never_reach_a_later_probe(
        real: RealCluster, kept: KeptConnections) -> None:
    master = real.master_of(1) or ""
    [slave] = real.slaves_of(1)
    prober = Prober(SETTINGS, kept=kept)
    assert prober.probe(master).role == "master" and prober.probe(slave).role == "slave"
    real.pause(master)
    try:
        frozen = prober.probe(master)
        assert frozen.status == DOWN and not frozen.refused and frozen.attempts == SETTINGS.attempts, frozen
        assert kept.take(SETTINGS, master) is None  # a timed-out exchange's connection is never kept
    finally:
        real.resume(master)
    with contextlib.closing(real.processes[master].client()) as watcher:
        before = connections_received(watcher)
        again = prober.probe(master)
        assert again.status == ALIVE and again.role == "master"
        assert connections_received(watcher) - before == 1  # a new connection: nothing late read off the old


# ------------------------------------------------------------------ the batch: every kept connection asked at once
def test_a_pass_on_kept_connections_is_answered_by_the_batch_exactly_as_by_the_threads(
        real: RealCluster, kept: KeptConnections) -> None:
    addrs = sorted(real.servers(1))
    threaded = Prober(SETTINGS, kept=kept).probe_all(addrs)  # nothing kept yet: every server asked by a thread
    prober = Prober(SETTINGS, kept=kept)
    with contextlib.closing(real.processes[addrs[0]].client()) as watcher:
        before = connections_received(watcher)
        batched = prober.probe_all(addrs)
        assert connections_received(watcher) == before  # asked on the connection the threads kept
    assert prober.batched == len(addrs)
    for addr in addrs:
        assert _comparable(batched[addr]) == _comparable(threaded[addr]), addr
        assert batched[addr].answered_at is not None and batched[addr].attempts == 1


def _comparable(seen: ProbeResult) -> ProbeResult:
    """What must not differ between two looks a moment apart at an idle group (a slave's last I/O may tick)."""
    return replace(seen, answered_at=None, last_io_seconds=None)


def test_the_batch_leaves_a_restarted_server_to_a_new_connection_within_the_first_attempt(
        real: RealCluster, kept: KeptConnections) -> None:
    master = real.master_of(1) or ""
    prober = Prober(SETTINGS, kept=kept)
    before = prober.probe_all(sorted(real.servers(1)))[master]
    real.restart(master)
    after = prober.probe_all(sorted(real.servers(1)))[master]
    assert after.status == ALIVE and after.attempts == 1 and after.replid != before.replid, after
    assert prober.batched == len(sorted(real.servers(1))) - 1


def test_the_batch_finds_a_killed_server_down_and_refused_after_every_attempt(
        real: RealCluster, kept: KeptConnections) -> None:
    master = real.master_of(1) or ""
    prober = Prober(SETTINGS, kept=kept)
    assert prober.probe_all([master])[master].status == ALIVE
    real.kill(master)
    gone = prober.probe_all([master])[master]
    assert gone.status == DOWN and gone.refused is True and gone.attempts == SETTINGS.attempts, gone


def test_a_server_frozen_under_the_batch_costs_one_probe_budget_and_nothing_late_is_read(
        real: RealCluster, kept: KeptConnections) -> None:
    master = real.master_of(1) or ""
    [slave] = real.slaves_of(1)
    prober = Prober(SETTINGS, kept=kept)
    assert prober.probe_all([master, slave])[master].role == "master"
    real.pause(master)
    try:
        started = time.monotonic()
        seen = prober.probe_all([master, slave])
        took = time.monotonic() - started
        frozen = seen[master]
        assert frozen.status == DOWN and not frozen.refused and frozen.attempts == SETTINGS.attempts, frozen
        assert seen[slave].status == ALIVE and prober.batched == 1
        # The batch's timeout was the first attempt: the threads went on from the second, not from the first.
        assert took < SETTINGS.budget + 0.4, took
        assert frozen.down_for >= SETTINGS.timeout * SETTINGS.attempts - 0.05, frozen
    finally:
        real.resume(master)
    again = prober.probe_all([master])[master]
    assert again.status == ALIVE and again.role == "master" and again.attempts == 1
