"""Hostile topologies where data is at stake, with real redis-server processes behind the dashboard in real mode:
a server listed in two groups, one server under two spellings, a half-written group. The pass must refuse the
groups concerned without sending one SLAVEOF, and every key must stay where it was."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from simulator.real import RealCluster
from tests.e2e.test_real_redis import ARGS, QUICK_TIMEOUTS, written_and_synced
from tests.helpers import promotions, run_module


@pytest.fixture
def real3() -> Iterator[RealCluster]:
    with RealCluster.start(groups=3, slaves=1, extra=QUICK_TIMEOUTS) as cluster:
        yield cluster


def _pass(cluster: RealCluster) -> dict[str, Any]:
    return run_module(dict(ARGS, dashboard_url=cluster.dashboard_url))


def _mutations(cluster: RealCluster) -> list[str]:
    return [a.path for a in cluster.dashboard.audit if a.method != "GET"]


def test_a_master_also_listed_as_another_groups_slave_keeps_its_role_and_data(real3: RealCluster) -> None:
    shared, keys = written_and_synced(real3, 2, 300)
    old1, _keys1 = written_and_synced(real3, 1, 10)
    real3.dashboard.inject_server(1, shared, "slave")
    real3.kill(old1)  # group 1 needs a failover, and the pass must still not touch the shared server
    dead3, keys3 = written_and_synced(real3, 3, 50)
    real3.kill(dead3)

    result = _pass(real3)
    assert not result.get("exception")
    skipped = {s["group"]: s["reason"] for s in result["skipped_groups"]}
    assert set(skipped) == {1, 2} and "listed in groups 1" in skipped[2]
    assert real3.role(shared) == "master" and real3.missing(shared, keys) == []
    [new3] = promotions(result)
    assert real3.master_of(3) == new3 and real3.missing(new3, keys3) == []
    assert all("/server_group/3/" in p for p in _mutations(real3))


def test_one_master_under_two_spellings_is_not_made_a_replica_of_itself(real3: RealCluster) -> None:
    master, keys = written_and_synced(real3, 1, 300)
    real3.dashboard.inject_server(1, master.replace("127.0.0.1", "localhost"), "slave")
    result = _pass(real3)
    [reason] = [s["reason"] for s in result["skipped_groups"] if s["group"] == 1]
    assert "under two spellings" in reason
    assert real3.role(master) == "master" and real3.missing(master, keys) == []
    assert _mutations(real3) == []


def test_a_half_written_group_is_left_alone_with_its_data(real3: RealCluster) -> None:
    master, keys = written_and_synced(real3, 1, 300)
    [slave] = real3.slaves_of(1)
    # `codis-config server add` failed half way: the master's entry is gone, its slave stays listed.
    real3.dashboard.seed_group(1, [(slave, "slave")])
    real3.kill(master)
    result = _pass(real3)
    [reason] = [s["reason"] for s in result["skipped_groups"] if s["group"] == 1]
    assert "no server has type master" in reason
    assert real3.role(slave) == "slave" and real3.missing(slave, keys) == []
    assert _mutations(real3) == []
