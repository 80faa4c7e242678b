"""Benchmark 1: failover latency after `kill -9` of a real master, codis.ha against Redis Sentinel.

Every run starts fresh real redis-server processes (1 master, 2 slaves), writes some keys, waits for the
slaves to catch up, kills the master with SIGKILL, and measures until a NEW master is named (by the dashboard
for codis.ha, by SENTINEL get-master-addr-by-name for Sentinel) AND answers ROLE master.

- codis.ha: the role's runner (`codis_ha_runner.py --loop-seconds`) at a 1 s interval, module defaults.
- sentinel-1x1000: one redis-sentinel, quorum 1, down-after-milliseconds 1000.
- sentinel-3x5000: three sentinels, quorum 2, down-after-milliseconds 5000 (the common setup).

The kill happens at a random moment of the runner's interval, so the median covers the whole cycle.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import redis
from _common import COLLECTIONS, RUNNER, ensure_collection_path, plot_to, summary, wait_until, write_json

from simulator.real import RealCluster, free_port

SENTINEL_SETUPS = {"sentinel-1x1000": (1, 1, 1000), "sentinel-3x5000": (3, 2, 5000)}


def _new_master_named(name: Callable[[], Any], old: str, cluster: RealCluster) -> Callable[[], Any]:
    def check() -> Any:
        addr = name()
        return addr if addr and addr != old and addr in cluster.processes and cluster.role(addr) == "master" else None
    return check


def codis_ha_run(interval: float, rng: random.Random) -> float:
    with RealCluster.start(groups=1, slaves=2) as cluster, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "runner.json"
        config.write_text(json.dumps({
            "module_args": {"dashboard_url": cluster.dashboard_url, "state_path": str(Path(tmp) / "state.json")},
            "collections_path": str(COLLECTIONS), "interval": interval, "log": "stdout",
            "metrics_path": str(Path(tmp) / "m.prom")}))
        runner = subprocess.Popen([sys.executable, str(RUNNER), str(config), "--loop-seconds", "600"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until((Path(tmp) / "m.prom").exists, 30, "the runner's first pass")
            old = cluster.master_of(1)
            assert old is not None
            cluster.write(1, 1000)
            cluster.wait_in_sync(1)
            time.sleep(rng.uniform(0, interval))  # a random phase of the interval, not a synchronisation
            killed = time.monotonic()
            cluster.processes[old].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            wait_until(_new_master_named(lambda: cluster.master_of(1), old, cluster), 60, "codis.ha's failover")
            return time.monotonic() - killed
        finally:
            runner.terminate()
            runner.wait(timeout=10)


def _sentinel_conf(port: int, master_port: int, quorum: int, down_after: int) -> str:
    return "\n".join([
        "port %d" % port, "bind 127.0.0.1", "daemonize no", "sentinel resolve-hostnames no",
        "sentinel monitor bench 127.0.0.1 %d %d" % (master_port, quorum),
        "sentinel down-after-milliseconds bench %d" % down_after,
        "sentinel failover-timeout bench 60000", "sentinel parallel-syncs bench 1", ""])


@contextlib.contextmanager
def sentinels(workdir: str, master_port: int, count: int, quorum: int,
              down_after: int) -> Iterator[list["redis.Redis[Any]"]]:
    procs, clients = [], []
    try:
        for i in range(count):
            port = free_port()
            conf = Path(workdir) / ("sentinel-%d.conf" % i)
            conf.write_text(_sentinel_conf(port, master_port, quorum, down_after))
            procs.append(subprocess.Popen(["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            client = redis.Redis(port=port, decode_responses=True, retry=None, socket_timeout=2, protocol=2)
            clients.append(client)
        for client in clients:
            wait_until(lambda c=client: _answers(c), 10, "a sentinel to start")
        yield clients
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        for client in clients:
            client.close()


def _answers(client: "redis.Redis[Any]") -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _sentinel_master(client: "redis.Redis[Any]") -> Any:
    try:
        host, port = client.execute_command("SENTINEL", "get-master-addr-by-name", "bench")
        return "%s:%s" % (host, port)
    except (redis.RedisError, TypeError, ValueError):
        return None


def _knows_everyone(client: "redis.Redis[Any]", count: int) -> bool:
    try:
        return (len(client.execute_command("SENTINEL", "replicas", "bench")) == 2
                and len(client.execute_command("SENTINEL", "sentinels", "bench")) == count - 1)
    except redis.RedisError:
        return False


def sentinel_run(count: int, quorum: int, down_after: int) -> float:
    with RealCluster.start(groups=1, slaves=2) as cluster:
        old = cluster.master_of(1)
        assert old is not None
        with sentinels(cluster.workdir, cluster.processes[old].port, count, quorum, down_after) as clients:
            # Sentinels find the replicas and each other through the master (hello messages every 2 s).
            for client in clients:
                wait_until(lambda c=client: _knows_everyone(c, count), 60, "sentinels to discover everyone",
                           interval=0.05)
            cluster.write(1, 1000)
            cluster.wait_in_sync(1)
            killed = time.monotonic()
            cluster.processes[old].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            wait_until(_new_master_named(lambda: _sentinel_master(clients[0]), old, cluster), 120,
                       "Sentinel's failover")
            return time.monotonic() - killed


def run(runs: int = 20, interval: float = 1.0, seed: int = 1) -> dict[str, Any]:
    ensure_collection_path()
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {"codis.ha": [], **{name: [] for name in SENTINEL_SETUPS}}
    for _run in range(runs):
        # Interleaved, so that a slow moment of the machine hits every contender alike.
        samples["codis.ha"].append(codis_ha_run(interval, rng))
        for name, (count, quorum, down_after) in SENTINEL_SETUPS.items():
            samples[name].append(sentinel_run(count, quorum, down_after))
    results = {name: dict(summary(values), samples=[round(v, 3) for v in values])
               for name, values in samples.items()}
    ours = results["codis.ha"]["median"]
    ratios = {name: round(ours / results[name]["median"], 3) for name in SENTINEL_SETUPS}
    return {"interval": interval, "runs": runs, "results": results, "median_ratio_to_sentinel": ratios,
            "meets_target": ours <= results["sentinel-1x1000"]["median"]}


def plot(data: dict[str, Any], path: Path) -> None:
    names = list(data["results"])
    with plot_to(path) as ax:
        ax.boxplot([data["results"][n]["samples"] for n in names], showfliers=True)
        ax.set_xticks(range(1, len(names) + 1), names)
        for i, name in enumerate(names, start=1):
            ax.scatter([i] * len(data["results"][name]["samples"]), data["results"][name]["samples"], s=10,
                       alpha=0.5)
        ax.set_ylabel("s from kill -9 to a new master (ROLE master)")
        ax.set_title("Failover latency, %d runs each (codis.ha runner interval %gs)"
                     % (data["runs"], data["interval"]))
        ax.grid(axis="y", alpha=0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/failover_latency.json"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    data = run(args.runs, args.interval)
    write_json(args.out, data)
    if args.plot:
        plot(data, args.plot)
    print(json.dumps({k: v for k, v in data.items() if k != "results"}, indent=2))
    for name, r in data["results"].items():
        print("%-16s median %.3f s  p95 %.3f s  (min %.3f, max %.3f, n=%d)" % (
            name, r["median"], r["p95"], r["min"], r["max"], r["n"]))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
