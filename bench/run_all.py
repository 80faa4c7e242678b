"""Runs every benchmark and draws the plots: `python bench/run_all.py` (full, minutes) or `--smoke` (each once
at its smallest size, what CI runs; no timing is judged). Results go to --out as JSON and PNG."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import failover_latency
import pass_cost
import scale
from _common import machine, write_json

PAIRED_SMOKE = ("codis.ha down_after 0", "sentinel 1 q1 200ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    out: Path = args.out
    write_json(out / "machine.json", machine())
    if args.smoke:
        smoke = tuple(c for c in failover_latency.CONTENDERS if c.name in PAIRED_SMOKE)
        latency = failover_latency.run(runs=1, failures=("kill", "cutoff"), contenders=smoke)
        cost = pass_cost.run(repeat=1, ansible_repeat=1, period=2.0)
        sizes = scale.run([10], repeat=1, rack_sizes=(20,), pool_case=(20, 4))
    else:
        latency = failover_latency.run(runs=6)
        cost = pass_cost.run(repeat=20, ansible_repeat=5)
        sizes = scale.run(scale.DEFAULT_SIZES, repeat=3)
    write_json(out / "failover_latency.json", latency)
    write_json(out / "pass_cost.json", cost)
    write_json(out / "scale.json", sizes)
    failover_latency.plot(latency, out / "failover_latency.png")
    scale.plot(sizes, out / "scale.png")
    print(failover_latency.table(latency))
    print(json.dumps({"pass_cost": cost, "scale": sizes["rows"], "lost_rack": sizes["lost_rack"],
                      "hung_beyond_pool": sizes["hung_beyond_pool"]}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
