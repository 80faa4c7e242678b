"""The short soak CI runs (bench/soak.py, one seed, about two minutes): real redis-server at Redis's defaults, each
host in a network namespace of its own, the role's runner at 1 s, a writer counting every acknowledged write and a
seeded nemesis. The long runs are on demand (docs/benchmarks.md)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_a_short_soak_loses_no_acknowledged_write_it_could_keep_and_fails_over_no_live_master(
        tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, str(Path(ROOT) / "bench" / "soak.py"), "--seconds", "110",
                           "--groups", "2", "--every", "15", "--seed", "7", "--json", str(out),
                           # Masters keep Redis's ping period of 10: the hard case for an idle group cut off.
                           "--max-ping-period", "0",
                           "--plot", str(tmp_path / "soak.png")],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    summary = done.stdout[-4000:]
    assert data["acknowledged"] > 10000, summary
    assert len(data["faults"]) >= 6, summary
    assert data["lost_beyond_unavoidable"] == 0, summary
    assert data["false_failovers"] == [], summary
    assert data["healthy_at_end"] is True, summary
    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_write_the_real_proxy_acknowledged_before_it_switched_is_charged_to_the_master_before() -> None:
    """The real Codis 2 dashboard lists a promoted master before its proxy routes to it (the promote writes the
    master's node, then waits for the proxies' confirmation): a write the writer began once the dashboard listed
    the new master, and acknowledged before the proxy confirmed, was taken by the old one. Nothing else moves."""
    from bench.soak import Soak

    soak = Soak.__new__(Soak)
    soak.real = True
    soak.listed = {1: [(0.0, "a:6379"), (10.0, "b:6379"), (50.0, "a:6379")]}
    soak.routes = {1: [(10.3, "b:6379")]}  # no confirmation on record for the listing at 50.0
    soak.dashboard = type("Side", (), {"proxy_exits": []})()
    assert soak._routed_to(1, 10.1, "b:6379") == "a:6379"  # before the proxy's confirmation
    assert soak._routed_to(1, 10.4, "b:6379") == "b:6379"  # after it
    assert soak._routed_to(1, 5.0, "a:6379") == "a:6379"  # the group's first master
    assert soak._routed_to(1, 50.2, "a:6379") == "a:6379"  # unconfirmed: never guessed
    soak.dashboard.proxy_exits = [10.05]  # a proxy started again routes by the dashboard's nodes at once
    assert soak._routed_to(1, 10.1, "b:6379") == "b:6379"
    soak.real = False
    soak.dashboard.proxy_exits = []
    assert soak._routed_to(1, 10.1, "b:6379") == "b:6379"


def test_two_masters_after_a_pass_are_told_apart_by_what_the_watcher_could_not_see() -> None:
    from bench.soak import Fault, Soak

    soak = Soak.__new__(Soak)
    soak.faults = [Fault("dashboard_down", 2, 10.0, 20.0), Fault("cut_idle", 1, 30.0, 45.0),
                   Fault("freeze", 1, 50.0, 60.0)]
    assert soak._blind(15.0, 1) == soak._blind(21.5, 3) == "dashboard_down"  # every group, 2 s after it too
    assert soak._blind(40.0, 1) == "watcher_cut_from_master"
    assert soak._blind(40.0, 2) == soak._blind(22.5, 1) == soak._blind(55.0, 1) == "other"
