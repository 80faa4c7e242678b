"""Benchmark 1b: failover latency on the real Codis binaries, the way operators run each tool.

Each run starts a fresh real cluster (`simulator/real_codis.py`: 2 groups of a master and 2 slaves, one real
`codis-proxy`), a client writing through the proxy to a key of group 1, SIGKILLs group 1's master at a random
moment of the tool's interval, and measures the seconds from the kill to the first write the PROXY acknowledges
again (the finish line a Codis client sees; the proxy re-routes when the dashboard promotes).

Contenders:
- `codis.ha / Codis 2` and `codis.ha / Codis 3`: the role's runner at 1 s, state file on, every other option at its
  default, against the real Codis 2.0 (ZooKeeper) or 3.2 dashboard;
- `original codis-ha / Codis 2`: the Go tool this project replaces (ngaut/codis-ha, a pass every 3 s);
- `Codis 3 codis-ha`: Codis 3.2's own `codis-ha --interval=N` (default 5 s; `--interval=1` as well);
- `Codis 3 + Sentinel`: three Debian redis-sentinels registered in the dashboard (`--sentinel-add`, quorum 2,
  `sentinel_down_after` 1 s: Codis's default is 30 s), the dashboard following Sentinel.

    .venv/bin/python bench/real_codis_latency.py --runs 5            # every row
"""
from __future__ import annotations

import argparse
import contextlib
import random
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Optional

from _common import ensure_collection_path, summary, write_json

from simulator.real_codis import RealCodis2, RealCodis3
from simulator.waiting import wait_until
from simulator.watchers import Watcher

CONTENDERS = ("codis.ha / Codis 2", "original codis-ha / Codis 2", "codis.ha / Codis 3",
              "Codis 3 codis-ha --interval=5", "Codis 3 codis-ha --interval=1", "Codis 3 + Sentinel (down-after 1 s)")
INTERVALS = {"codis.ha / Codis 2": 1.0, "original codis-ha / Codis 2": 3.0, "codis.ha / Codis 3": 1.0,
             "Codis 3 codis-ha --interval=5": 5.0, "Codis 3 codis-ha --interval=1": 1.0,
             "Codis 3 + Sentinel (down-after 1 s)": 1.0}


def group1_key() -> str:
    """A key of the slots 0-511 (group 1 of two): Codis maps a key to crc32(key) % 1024."""
    n = 0
    while zlib.crc32(b"bench:%d" % n) % 1024 >= 512:
        n += 1
    return "bench:%d" % n


class ProxyClock:
    """A client that writes one key of group 1 through the proxy every 2 ms and keeps when each write was
    acknowledged."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.key = group1_key()
        self.acked: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        client = None
        while not self.stop.is_set():
            if client is None:
                client = self.cluster.proxy_client(0, 0.3)
            try:
                client.set(self.key, "1")
                self.acked.append(time.monotonic())
            except Exception:  # noqa: BLE001 - a failed write is the outage being measured
                with contextlib.suppress(Exception):
                    client.close()
                client = None
            self.stop.wait(0.002)

    def first_after(self, moment: float) -> Optional[float]:
        return next((t for t in self.acked if t > moment), None)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def start_tool(name: str, cluster: Any, workdir: Path) -> list[subprocess.Popen[bytes]]:
    bin_dir = cluster.bin
    if name.startswith("codis.ha"):
        args: dict[str, Any] = {"dashboard_url": cluster.dashboard_url}
        if isinstance(cluster, RealCodis3):
            args["product_name"] = cluster.product
        watcher = Watcher("w1", workdir, args, 1.0, metrics_path=str(workdir / "w1.prom")).start(seconds=3600)
        wait_until((workdir / "w1.prom").exists, 30, "the runner's first pass", interval=0.02)
        return [watcher.proc] if watcher.proc else []
    if name.startswith("original"):
        log = open(workdir / "codis-ha.log", "ab")  # noqa: SIM115 - closed with the process's end
        return [subprocess.Popen([str(bin_dir / "codis-ha"), "--codis-config=127.0.0.1:%d" % cluster.dashboard_port,
                                  "--productName=%s" % cluster.product], stdout=log, stderr=subprocess.STDOUT)]
    if name.startswith("Codis 3 codis-ha"):
        interval = name.rsplit("=", 1)[1]
        log = open(workdir / "codis-ha.log", "ab")  # noqa: SIM115
        return [subprocess.Popen([str(bin_dir / "codis-ha"), "--dashboard=127.0.0.1:%d" % cluster.dashboard_port,
                                  "--interval=%s" % interval], stdout=log, stderr=subprocess.STDOUT)]
    cluster.add_sentinels(3)
    return []


def one_run(name: str, rng: random.Random) -> dict[str, Any]:
    cls = RealCodis2 if name.endswith("Codis 2") else RealCodis3
    workdir = Path(tempfile.mkdtemp(prefix="codis-ha-realbench-"))
    with cls.start(groups=2, slaves=2, proxies=1) as cluster:
        clock = ProxyClock(cluster)
        tools: list[subprocess.Popen[bytes]] = []
        try:
            wait_until(lambda: len(clock.acked) > 200, 30, "writes through the proxy")
            if isinstance(cluster, RealCodis3):
                # Codis 3's codis-ha removes a proxy the dashboard has no stats of yet: start it on a polled cluster.
                cluster.wait_stats_fresh()
                wait_until(lambda: all(isinstance(v, dict) and v.get("stats") for v in (
                    cluster.dashboard.stats().get("proxy") or {}).get("stats", {}).values()) and (
                    cluster.dashboard.stats().get("proxy") or {}).get("stats"), 30, "the dashboard's proxy polls")
            tools = start_tool(name, cluster, workdir)
            acked = len(clock.acked)
            wait_until(lambda: len(clock.acked) > acked + 200, 30, "writes through the proxy with the tool on")
            time.sleep(rng.uniform(0, INTERVALS[name]))  # a random phase of the tool's interval
            old = cluster.master_of(1)
            killed = time.monotonic()
            cluster.kill(old)
            back = wait_until(lambda: clock.first_after(killed + 0.05), 120, "a write through the proxy again",
                              interval=0.01)
            return {"seconds": round(back - killed, 3), "new_master": cluster.master_of(1), "old": old}
        finally:
            clock.close()
            for proc in tools:
                proc.kill()
                proc.wait(10)


def run(runs: int, contenders: tuple[str, ...], seed: int = 1) -> dict[str, Any]:
    ensure_collection_path()
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {c: [] for c in contenders}
    errors: dict[str, list[str]] = {c: [] for c in contenders}
    for _run in range(runs):
        for name in contenders:  # interleaved: a slow moment of the machine hits every contender alike
            try:
                samples[name].append(one_run(name, rng)["seconds"])
            except TimeoutError as exc:
                errors[name].append(str(exc).splitlines()[0])
                print("%s: %s" % (name, errors[name][-1]), file=sys.stderr)
    rows = [dict(summary(samples[c]) if samples[c] else {}, contender=c, samples=samples[c], failed=errors[c])
            for c in contenders]
    return {"runs": runs, "rows": rows}


def table(data: dict[str, Any]) -> str:
    lines = ["| contender | median | min | max | runs without a failover within 120 s |",
             "| --- | --- | --- | --- | --- |"]
    for r in data["rows"]:
        if r.get("samples"):
            lines.append("| %s | %.2f s | %.2f s | %.2f s | %d of %d |" % (
                r["contender"], r["median"], r["min"], r["max"], len(r["failed"]), data["runs"]))
        else:
            lines.append("| %s | - | - | - | %d of %d |" % (r["contender"], len(r["failed"]), data["runs"]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--out", type=Path, default=Path("docs/bench-results/real_codis_latency.json"))
    args = parser.parse_args()
    chosen = tuple(c for c in CONTENDERS if c in args.contenders.split(","))
    data = run(args.runs, chosen)
    write_json(args.out, data)
    print(table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
