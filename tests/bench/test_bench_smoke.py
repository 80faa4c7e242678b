"""CI runs every benchmark once at its smallest size: the code paths work; no timing is judged here."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_every_benchmark_runs_at_its_smallest_size(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(Path(ROOT) / "bench" / "run_all.py"), "--smoke", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    latency = json.loads((tmp_path / "failover_latency.json").read_text())
    rows = {(r["failure"], r["contender"]): r for r in latency["rows"]}
    assert set(rows) == {(f, c) for f in ("kill", "cutoff") for c in ("codis.ha down_after 0", "sentinel 1 q1 200ms")}
    kill = rows[("kill", "codis.ha down_after 0")]
    assert kill["n"] == 1 and kill["median"] > 0 and kill["vs"] == "sentinel 1 q1 200ms" and kill["ratio"] > 0
    # A watcher cut off from a live master never fails it over; Sentinel at quorum 1 is counted, not judged.
    assert rows[("cutoff", "codis.ha down_after 0")]["false_failovers"] == 0
    assert rows[("cutoff", "sentinel 1 q1 200ms")]["n"] == 1
    cost = json.loads((tmp_path / "pass_cost.json").read_text())
    assert cost["direct"]["runs"] == 1 and cost["direct"]["peak_rss_mb"] > 0 and cost["ansible"]["cpu_median_s"] > 0
    assert cost["runner_fork"]["runs"] == 1 and cost["runner_fork"]["cpu_median_s"] > 0
    assert cost["systemd_default"]["passes"] == 2 and cost["systemd_default"]["cpu_per_pass_s"] > 0
    rows = json.loads((tmp_path / "scale.json").read_text())["rows"]
    assert [r["servers"] for r in rows] == [10] and rows[0]["hung"] == 1
    scale = json.loads((tmp_path / "scale.json").read_text())
    assert [(r["parallel_groups"], r["not_failed_over"]) for r in scale["lost_rack"]] == [(8, 0), (1, 0)]
    assert all(r["promoted"] == r["killed_masters"] == 1 for r in scale["lost_rack"])
    assert [r["probe_concurrency"] for r in scale["hung_beyond_pool"]] == [256, 1024]
    for png in ("failover_latency.png", "scale.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.xdist_group("codis-binaries")
def test_the_real_codis_latency_benchmark_runs_one_row_on_each_version(tmp_path: Path) -> None:
    out = tmp_path / "real.json"
    done = subprocess.run([sys.executable, str(Path(ROOT) / "bench" / "real_codis_latency.py"), "--runs", "1",
                           "--contenders", "codis.ha / Codis 2,Codis 3 codis-ha --interval=1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {r["contender"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"codis.ha / Codis 2", "Codis 3 codis-ha --interval=1"}
    assert all(r["n"] == 1 and r["median"] > 0 and r["failed"] == [] for r in rows.values()), rows
