"""The state file: what a pass remembers of each group, checked field by field when read back."""
from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.codis.ha.plugins.module_utils._state import load_state, next_history, save_state
from ansible_collections.codis.ha.plugins.module_utils._topology import GroupHistory


def test_the_lineage_survives_a_save_and_a_malformed_one_is_dropped_with_a_note(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    lineage = {"a" * 40: 600, "b" * 40: 900}
    save_state(path, {1: GroupHistory(master="10.0.0.1:6379", master_replid="b" * 40, lineage=lineage)}, 50.0)
    history, warnings, _created = load_state(path, now=100.0)
    assert history[1].lineage == lineage and warnings == []
    data = json.loads(Path(path).read_text())
    for bad in ({"a" * 40: -1}, {"a" * 40: True}, ["a"], {"x" * 65: 1}, {str(i): i for i in range(17)}):
        data["groups"]["1"]["lineage"] = bad
        Path(path).write_text(json.dumps(data))
        history, warnings, _created = load_state(path, now=100.0)
        assert history[1].lineage is None and "lineage=" in warnings[0], (bad, warnings)
        assert history[1].master_replid == "b" * 40  # the rest of the record is kept


def test_times_before_the_file_was_created_or_a_down_clock_before_the_last_sighting_are_dropped(
        tmp_path: Path) -> None:
    # A down_since of 0 (1970) was trusted: down_after 3600 was bypassed on the first pass.
    path = tmp_path / "state.json"
    record = {"master": "10.0.0.1:6379", "down_since": 0, "seen_alive_at": 500.0, "last_failover_at": 400.0}
    path.write_text(json.dumps({"version": 1, "created_at": 450.0, "groups": {"1": record}}))
    history, warnings, created = load_state(str(path), now=1000.0)
    assert created == 450.0 and history[1].seen_alive_at == 500.0
    assert history[1].down_since is None and history[1].last_failover_at is None
    assert "down_since=0 ignored" in warnings[0] and "last_failover_at=400.0 ignored" in warnings[0]
    # A down clock that starts before the master's last sighting contradicts it.
    record = dict(record, down_since=480.0)
    path.write_text(json.dumps({"version": 1, "created_at": 450.0, "groups": {"1": record}}))
    history, warnings, _created = load_state(str(path), now=1000.0)
    assert history[1].down_since is None and "before seen_alive_at" in warnings[0]
    # A file that does not say when it was created (written by hand, or by an earlier version): times dropped once.
    path.write_text(json.dumps({"version": 1, "groups": {"1": dict(record, down_since=600.0)}}))
    history, warnings, created = load_state(str(path), now=1000.0)
    assert history[1].down_since is None and history[1].seen_alive_at is None and created == 1000.0
    assert history[1].master == "10.0.0.1:6379" and "created_at=None is not a time" in warnings[0]
    # What a pass records after loading is kept by the next one.
    save_state(str(path), {1: GroupHistory(master="10.0.0.1:6379", seen_alive_at=1000.5, down_since=1001.0)},
               created)
    history, warnings, _created = load_state(str(path), now=1002.0)
    assert (history[1].seen_alive_at, history[1].down_since, warnings) == (1000.5, 1001.0, [])


def test_the_lock_clock_starts_at_the_first_refusal_runs_across_passes_and_stops_at_any_other_pass() -> None:
    first = next_history({}, [], {}, [], {}, 100.0, lock_refused=[1])
    assert first[1].lock_refused_since == 100.0
    later = next_history(first, [], {}, [], {}, 160.0, lock_refused=[1, 2])
    assert later[1].lock_refused_since == 100.0 and later[2].lock_refused_since == 160.0
    after = next_history(later, [], {}, [], {}, 170.0, lock_refused=[2])
    assert after[1].lock_refused_since is None and after[2].lock_refused_since == 160.0


def test_a_lock_clock_in_the_future_is_dropped_from_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(str(path), {1: GroupHistory(lock_refused_since=150.0)}, created_at=100.0)
    history, _warnings, _created = load_state(str(path), now=200.0)
    assert history[1].lock_refused_since == 150.0
    data = json.loads(path.read_text())
    data["groups"]["1"]["lock_refused_since"] = 10 ** 12
    path.write_text(json.dumps(data))
    history, warnings, _created = load_state(str(path), now=200.0)
    assert history[1].lock_refused_since is None and "lock_refused_since" in " ".join(warnings)
