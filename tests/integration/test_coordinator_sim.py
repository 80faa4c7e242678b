"""Several watchers against the simulator and a real coordinator (Debian's ZooKeeper, etcd 3.4) on loopback: the
quorum, the lock, a coordinator that is down, an observation that is no longer fresh, check mode."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from ansible_collections.codis.ha.plugins.module_utils._coordinator import (
    Coordinator,
    CoordinatorSettings,
    open_coordinator,
)
from simulator.cluster import Cluster
from simulator.coordinators import CoordinatorProcess
from tests.helpers import FAST, pass_params, promotions, run_module, wait_for


@pytest.fixture
def sim() -> Iterator[Cluster]:
    with Cluster.start(groups=2, slaves=2, redis_timeout=0.5) as cluster:
        yield cluster


def watcher(sim: Cluster, coordinator: CoordinatorProcess, root: str, observer: str, **extra: Any) -> dict[str, Any]:
    return pass_params(**dict(FAST, dashboard_url=sim.dashboard_url, coordinator=coordinator.url(root), quorum=2,
                              observer_id=observer, **extra))


def connect(coordinator: CoordinatorProcess, root: str, observer: str, **extra: Any) -> Coordinator:
    """A watcher's own connection, outside any pass: to hold the lock, or to publish, as a test needs."""
    return open_coordinator(CoordinatorSettings.from_params(
        dict({"coordinator": coordinator.url(root), "observer_id": observer, "quorum": 2}, **extra), "-"))


def promote_calls(sim: Cluster) -> list[dict[str, Any]]:
    return [a for a in sim.audit if "promote" in a["path"].lower()]


def root_for(request: pytest.FixtureRequest) -> str:
    """Each test its own path in the coordinator, so that no observation of another test counts."""
    return "/t-" + request.node.name.replace("[", "-").replace("]", "")


def test_a_failover_waits_for_the_quorum_and_happens_once(
        sim: Cluster, coordinator: CoordinatorProcess, request: pytest.FixtureRequest) -> None:
    root = root_for(request)
    master = sim.master_of(1)
    sim.kill(master)
    first = run_module(watcher(sim, coordinator, root, "w1"))
    group = next(g for g in first["groups"] if g["id"] == 1)
    assert promotions(first) == [] and group["decision"] == "refused"
    assert "only 1 watcher(s) see the master down (w1)" in group["reason"] and "quorum is 2" in group["reason"]
    second = run_module(watcher(sim, coordinator, root, "w2"))
    [promoted] = promotions(second)
    assert "2 of 2 watcher(s) see the master down (w1, w2), quorum 2" in second["actions"][0]["reason"]
    assert sim.master_of(1) == promoted
    third = run_module(watcher(sim, coordinator, root, "w1"))
    assert promotions(third) == [] and sim.master_of(1) == promoted
    assert len(promote_calls(sim)) == 1, sim.audit


def test_a_watcher_that_cannot_get_the_lock_names_the_one_acting(
        sim: Cluster, coordinator: CoordinatorProcess, request: pytest.FixtureRequest) -> None:
    root = root_for(request)
    sim.kill(sim.master_of(1))
    run_module(watcher(sim, coordinator, root, "w1"))
    other = connect(coordinator, root, "w9")
    try:
        assert other.lock() is None
        blocked = run_module(watcher(sim, coordinator, root, "w2"))
        group = next(g for g in blocked["groups"] if g["id"] == 1)
        assert promotions(blocked) == [] and group["decision"] == "skipped"
        assert "another watcher (w9) holds the cluster's lock and is acting" in group["reason"]
    finally:
        other.close()
    assert promotions(run_module(watcher(sim, coordinator, root, "w2")))


def test_a_dead_coordinator_means_no_failover_and_a_failed_task(sim: Cluster) -> None:
    from simulator.real import free_port
    sim.kill(sim.master_of(1))
    for kind in ("zookeeper", "etcd"):
        url = "%s://127.0.0.1:%d/codis-ha" % (kind, free_port())  # nothing listens there
        result = run_module(pass_params(**dict(FAST, dashboard_url=sim.dashboard_url, coordinator=url, quorum=1,
                                               observer_id="w1", coordinator_timeout=2)))
        assert result["failed"] is True and promotions(result) == []
        assert "cannot connect to the coordinator %s" % url in result["msg"]
        assert "no failover and no change" in result["msg"]
        assert not promote_calls(sim)


def test_an_observation_counts_only_while_fresh(
        sim: Cluster, coordinator: CoordinatorProcess, request: pytest.FixtureRequest) -> None:
    root = root_for(request)
    sim.kill(sim.master_of(1))
    run_module(watcher(sim, coordinator, root, "w1", observation_ttl=1))

    def w1_expired() -> bool:
        # ZooKeeper: ages by the ensemble's clock need a newer write to compare with; etcd: the lease expires.
        c = connect(coordinator, root, "probe", observation_ttl=1)
        try:
            c.publish({"observer": "probe", "groups": {}})
            return "w1" not in c.fresh()
        finally:
            c.close()

    wait_for(w1_expired, 10, interval=0.2, what="w1's observation to expire")
    late = run_module(watcher(sim, coordinator, root, "w2", observation_ttl=1))
    group = next(g for g in late["groups"] if g["id"] == 1)
    assert promotions(late) == [] and "only 1 watcher(s) see the master down (w2)" in group["reason"]


def test_check_mode_counts_what_it_would_publish_and_publishes_nothing(
        sim: Cluster, coordinator: CoordinatorProcess, request: pytest.FixtureRequest) -> None:
    root = root_for(request)
    sim.kill(sim.master_of(1))
    run_module(watcher(sim, coordinator, root, "w1"))
    planned = run_module(watcher(sim, coordinator, root, "w2"), check=True)
    assert planned["changed"] is True and [a["status"] for a in planned["actions"]][:1] == ["planned"]
    assert not promote_calls(sim)
    # w2 published nothing: w3 alone with w1 is the quorum, and w2 never appears among the voters.
    third = run_module(watcher(sim, coordinator, root, "w3"))
    assert promotions(third) and "(w1, w3)" in third["actions"][0]["reason"], json.dumps(third)[:2000]


def test_under_the_lock_a_master_that_did_not_answer_moments_ago_is_not_asked_again(
        sim: Cluster, coordinator: CoordinatorProcess, request: pytest.FixtureRequest) -> None:
    """The watcher that takes the lock reads the dashboard again; unchanged, it asks again only what answered: a
    frozen master would cost a whole probe budget more (the three-watcher freeze row of the benchmark)."""
    root = root_for(request)
    master = sim.master_of(1)
    for addr in sim.slaves_of(1):
        sim.cut_link(addr)  # no slave vouches for the master: only its silence counts
    sim.hang(master)
    run_module(watcher(sim, coordinator, root, "w1"))
    hung = sim.nodes[master]
    before = hung.connections
    second = run_module(watcher(sim, coordinator, root, "w2"))
    [promoted] = promotions(second)
    assert sim.master_of(1) == promoted
    assert hung.connections - before == FAST["probe_attempts"]
