"""Benchmark 2: the cost of one pass on a healthy 3 groups x 3 servers cluster.

CPU time and peak RSS of: the role's default path (the systemd service's runner, `--loop-seconds` the role's period at a 1 s
interval: its whole CPU, interpreter start and imports included, divided by its passes), a pass in the runner's
worker (forked once after the runner imported the dependencies, passes run one after another in it), a pass in a
child forked for it alone (`passes_per_worker` 1, the runner before session 6), the direct invocation (`python -m ...codis_ha`, a new
interpreter), and `ansible localhost -m codis.ha.codis_ha`. Every pass has a `state_path`, as the role sets
(lock, read, write, fsync). Targets for one pass: <= 60 ms CPU, <= 60 MB.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from _common import (COLLECTIONS, ROOT, direct_pass, ensure_collection_path, measured, module_env, worker_passes,
                     write_json)

from simulator import Cluster
from simulator.watchers import runner_command, runner_env

TARGET_CPU_S = 0.060
TARGET_RSS_MB = 60.0
# The role's period, read where the role sets it, so the benchmark follows the role.
ROLE_PERIOD_S = float(yaml.safe_load((ROOT / "roles" / "codis_ha" / "defaults" / "main.yml").read_text())
                      ["codis_ha_runner_period"])


def default_path(args: dict[str, Any], period: float, interval: float, workdir: str) -> dict[str, Any]:
    """The runner as the role's systemd service starts it: CPU and peak RSS of the whole runner (its forked passes
    included) over one period, per pass."""
    config = os.path.join(workdir, "runner.json")
    with open(config, "w", encoding="utf-8") as out:
        json.dump({"module_args": args, "collections_path": str(COLLECTIONS), "interval": interval, "log": "stdout"},
                  out)
    usage = measured(runner_command(Path(config), "--loop-seconds", str(period)), env=runner_env())
    assert usage["rc"] == 0, usage["stdout"][-2000:] + usage["stderr"][-2000:]
    passes = math.ceil(period / interval)
    return {"cpu_per_pass_s": usage["cpu"] / passes, "cpu_total_s": usage["cpu"], "passes": passes,
            "period_s": period, "interval_s": interval, "peak_rss_mb": usage["maxrss_mb"]}


def run(repeat: int = 20, ansible_repeat: int = 5, period: float = ROLE_PERIOD_S) -> dict[str, Any]:
    ensure_collection_path()
    with Cluster.start(groups=3, slaves=2) as cluster, tempfile.TemporaryDirectory() as workdir:
        # The role always sets a state file: every pass takes its lock, reads it, writes it with fsync.
        args = {"dashboard_url": cluster.dashboard_url, "state_path": os.path.join(workdir, "state.json")}
        systemd_default = default_path(args, period, 1.0, workdir)
        direct = []
        for _run in range(repeat):
            result, usage = direct_pass(args)
            assert not result.get("failed") and not result["changed"], result.get("msg")
            direct.append(usage)

        forked = worker_passes(args, repeat, repeat + 1)
        forked_each = worker_passes(args, repeat, 1)
        env = dict(module_env(), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_LOCALHOST_WARNING="false",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
        ansible_bin = str(Path(sys.executable).parent / "ansible")
        through_ansible = []
        for _run in range(ansible_repeat):
            usage = measured([ansible_bin, "localhost", "-m", "codis.ha.codis_ha", "-a", json.dumps(args),
                              "-e", "ansible_python_interpreter=%s" % sys.executable], env=env)
            assert usage["rc"] == 0 and "SUCCESS" in usage["stdout"], usage["stdout"][-2000:] + usage["stderr"]
            through_ansible.append(usage)

    def stats(rows: list[dict[str, Any]]) -> dict[str, float]:
        return {"cpu_median_s": statistics.median(r["cpu"] for r in rows),
                "cpu_max_s": max(r["cpu"] for r in rows),
                "wall_median_s": statistics.median(r["wall"] for r in rows),
                "peak_rss_mb": max(r["maxrss_mb"] for r in rows), "runs": len(rows)}

    out = {"direct": stats(direct), "runner_fork": stats(forked), "runner_fork_each_pass": stats(forked_each),
           "ansible": stats(through_ansible),
           "systemd_default": systemd_default, "targets": {"cpu_s": TARGET_CPU_S, "rss_mb": TARGET_RSS_MB},
           "systemd_default_meets_targets": (systemd_default["cpu_per_pass_s"] <= TARGET_CPU_S
                                             and systemd_default["peak_rss_mb"] <= TARGET_RSS_MB)}
    for name in ("direct", "runner_fork"):
        out[name + "_meets_targets"] = (out[name]["cpu_median_s"] <= TARGET_CPU_S
                                        and out[name]["peak_rss_mb"] <= TARGET_RSS_MB)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--ansible-repeat", type=int, default=5)
    parser.add_argument("--period", type=float, default=ROLE_PERIOD_S,
                        help="the systemd runner's period (default: the role's)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pass_cost.json"))
    args = parser.parse_args()
    out = run(args.repeat, args.ansible_repeat, args.period)
    write_json(args.out, out)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
