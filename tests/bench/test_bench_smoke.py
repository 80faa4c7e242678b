"""CI runs every benchmark once at its smallest size: the code paths work; no timing is judged here."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_every_benchmark_runs_at_its_smallest_size(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(Path(ROOT) / "bench" / "run_all.py"), "--smoke", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    latency = json.loads((tmp_path / "failover_latency.json").read_text())
    assert set(latency["results"]) == {"codis.ha", "sentinel-1x1000", "sentinel-3x5000"}
    assert all(r["n"] == 1 and r["median"] > 0 for r in latency["results"].values())
    cost = json.loads((tmp_path / "pass_cost.json").read_text())
    assert cost["direct"]["runs"] == 1 and cost["direct"]["peak_rss_mb"] > 0 and cost["ansible"]["cpu_median_s"] > 0
    assert cost["runner_fork"]["runs"] == 1 and cost["runner_fork"]["cpu_median_s"] > 0
    rows = json.loads((tmp_path / "scale.json").read_text())["rows"]
    assert [r["servers"] for r in rows] == [10] and rows[0]["hung"] == 1
    for png in ("failover_latency.png", "scale.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
