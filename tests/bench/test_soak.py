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
