"""Failover safety against the simulator: refusals with reasons, state across passes, concurrency."""
from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

from ansible_collections.codis.ha.plugins.module_utils._pass import run_pass
from ansible_collections.codis.ha.plugins.module_utils._state import PassLock
from simulator import Cluster
from tests.helpers import pass_params, run_module


def _state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())["groups"]


def test_state_file_is_written_atomically_with_mode_0600(cluster: Cluster, module_args: dict[str, Any],
                                                         tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    run_module(dict(module_args, state_path=str(state)))
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    groups = _state(state)
    assert groups["1"]["master"] == cluster.master_of(1) and groups["1"]["down_since"] is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".codis-ha.")]


def test_stale_slave_is_not_promoted_unless_forced(cluster: Cluster, module_args: dict[str, Any]) -> None:
    stale, fresh = cluster.slaves_of(1)
    cluster.write(1, 5)
    cluster.cut_link(stale)
    cluster.write(1, 5)
    cluster.clock.advance(120)  # the stale slave's link has been down for two minutes
    cluster.set_priority(fresh, 0)
    master = cluster.master_of(1)
    cluster.kill(master)
    result = run_module(module_args)
    group = result["groups"][0]
    assert group["decision"] == "no_candidate" and "stale: link down for 120 s" in group["reason"]
    forced = run_module(dict(module_args, force=True))
    assert forced["actions"][0]["server"] == stale and cluster.master_of(1) == stale


def test_a_second_failover_within_min_failover_interval_is_made_and_warned_about(
        cluster: Cluster, module_args: dict[str, Any], tmp_path: Path) -> None:
    args = dict(module_args, state_path=str(tmp_path / "state.json"))
    cluster.kill(cluster.master_of(1))
    assert run_module(args)["actions"][0]["status"] == "done"
    second = cluster.master_of(1)
    cluster.kill(second)
    again = run_module(args)
    assert again["actions"][0]["action"] == "promote" and again["actions"][0]["status"] == "done"
    assert cluster.master_of(1) not in (second, None)
    assert "flapping" in again["groups"][0]["reason"]
    assert "min_failover_interval" in str(again.get("warnings")), again.get("warnings")


def test_down_after_waits_for_confirmation_across_passes(cluster: Cluster, module_args: dict[str, Any],
                                                         tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    args = dict(module_args, state_path=str(state), down_after=5)
    master = cluster.master_of(2)
    cluster.kill(master)
    first = run_module(args)
    assert first["changed"] is False and "down_after" in first["skipped_groups"][0]["reason"]
    data = json.loads(state.read_text())
    assert data["groups"]["2"]["down_since"] is not None
    data["groups"]["2"]["down_since"] -= 6  # as if the first pass had run six seconds ago
    data["created_at"] -= 6  # (and had created the file then: earlier times are dropped)
    state.write_text(json.dumps(data))
    second = run_module(args)
    assert second["actions"][0]["action"] == "promote" and cluster.master_of(2) != master


def test_down_after_without_state_path_is_a_bad_argument(module_args: dict[str, Any]) -> None:
    result = run_module(dict(module_args, down_after=5))
    assert result["failed"] is True and "down_after needs state_path" in result["msg"]


def test_data_loss_bound_refuses_a_lagging_candidate(cluster: Cluster, module_args: dict[str, Any],
                                                     tmp_path: Path) -> None:
    args = dict(module_args, state_path=str(tmp_path / "state.json"))
    for slave in cluster.slaves_of(1):
        cluster.cut_link(slave)
    cluster.write(1, 10)
    assert run_module(args)["changed"] is False  # remembers the master's offset
    cluster.kill(cluster.master_of(1))
    refused = run_module(dict(args, max_data_loss_bytes=100))
    assert refused["groups"][0]["decision"] == "no_candidate"
    assert "above max_data_loss_bytes=100" in refused["groups"][0]["reason"]
    allowed = run_module(dict(args, max_data_loss_bytes=1_000_000))
    assert "bytes behind the master's last known offset" in allowed["actions"][0]["reason"]


def test_mass_failure_refuses_every_failover(cluster: Cluster, module_args: dict[str, Any]) -> None:
    for gid in (1, 2, 3):
        cluster.kill(cluster.master_of(gid))
    result = run_module(dict(module_args, max_failovers_per_pass=2))
    assert result["changed"] is False and cluster.audit == []
    assert len(result["skipped_groups"]) == 3
    assert all("max_failovers_per_pass=2" in s["reason"] for s in result["skipped_groups"])


def test_lock_held_means_another_pass_is_running(cluster: Cluster, module_args: dict[str, Any],
                                                 tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    cluster.kill(cluster.master_of(1))
    lock = PassLock(str(state) + ".lock")
    assert lock.acquire()
    try:
        result = run_module(dict(module_args, state_path=str(state)))
    finally:
        lock.release()
    assert result["changed"] is False and "another pass is running" in result["msg"]
    assert {s["group"] for s in result["skipped_groups"]} == {1, 2, 3}
    assert cluster.audit == []


def _race(cluster: Cluster, module_args: dict[str, Any], state_paths: list[str]) -> list[Any]:
    results: list[Any] = [None] * len(state_paths)
    barrier = threading.Barrier(len(state_paths))

    def one(i: int) -> None:
        barrier.wait()
        results[i] = run_pass(pass_params(**dict(module_args, state_path=state_paths[i])))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(state_paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_passes_on_one_host_promote_once(cluster: Cluster, module_args: dict[str, Any],
                                                    tmp_path: Path) -> None:
    cluster.kill(cluster.master_of(1))
    results = _race(cluster, module_args, [str(tmp_path / "state.json")] * 2)
    promotes = [a for r in results for a in r.result["actions"] if a["action"] == "promote"]
    assert len(promotes) == 1 and promotes[0]["status"] == "done"
    assert len(cluster.masters()[1]) == 1


def test_concurrent_passes_on_two_hosts_never_promote_two_servers(module_args: dict[str, Any],
                                                                  tmp_path: Path, codis: int) -> None:
    for attempt in range(5):
        with Cluster.start(groups=2, slaves=2, codis=codis) as c:
            c.kill(c.master_of(1))
            args = dict(module_args, dashboard_url=c.dashboard_url)
            results = _race(c, args, [str(tmp_path / ("a%d" % attempt)), str(tmp_path / ("b%d" % attempt))])
            promoted = {a["server"] for r in results for a in r.result["actions"]
                        if a["action"] == "promote" and a["status"] == "done"}
            assert len(promoted) == 1, results
            assert len(c.masters()[1]) == 1 and c.master_of(1) in promoted


def test_corrupt_state_file_is_moved_aside_and_the_pass_goes_on(
        cluster: Cluster, module_args: dict[str, Any], tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")
    cluster.kill(cluster.master_of(1))
    result = run_module(dict(module_args, state_path=str(state)))
    assert result["actions"][0]["status"] == "done"
    assert any("could not be read" in str(w) for w in result["warnings"])
    assert [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert _state(state)["1"]["last_failover_at"] is not None


def test_check_mode_does_not_write_state(cluster: Cluster, module_args: dict[str, Any], tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    run_module(dict(module_args, state_path=str(state)), check=True)
    assert not os.path.exists(state)
