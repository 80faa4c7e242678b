"""The probe phase alone on kept connections: every server asked by the batch (`_batch.py`, one thread, poll) against
the threaded probes on the same kept connections, in this process, rounds after the first (which connects).

2,000 fake servers by default (the simulator in its own process, as in `bench/scale.py`). Session 12 measured the
floor of such a loop here with a prototype before the batch was built (docs/benchmarks.md 3b); this is the batch
itself, and `--threads` the probes it replaced.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

from _common import COLLECTIONS, ensure_collection_path
from scale import SimulatorProcess, _groups


def rounds(addrs: list[str], count: int, batch: bool) -> list[dict[str, float]]:
    from ansible_collections.codis.ha.plugins.module_utils._probe import (  # pylint: disable=import-outside-toplevel
        KeptConnections,
        ProbeSettings,
        Prober,
    )

    kept = KeptConnections(limit=len(addrs))
    prober = Prober(ProbeSettings(timeout=1.0, attempts=2), kept=kept, batch=batch)
    rows = []
    try:
        prober.probe_all(addrs)  # connects: every server asked by a thread, its connection kept
        for _round in range(count):
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            seen = prober.probe_all(addrs)
            after = resource.getrusage(resource.RUSAGE_SELF)
            rows.append({"alive": sum(1 for s in seen.values() if s.alive), "batched": prober.batched,
                         "wall_s": time.monotonic() - started, "user_s": after.ru_utime - before.ru_utime,
                         "sys_s": after.ru_stime - before.ru_stime})
    finally:
        kept.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    ensure_collection_path()
    sys.path.insert(0, str(COLLECTIONS))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * options.servers + 1024)), hard))
    sim = SimulatorProcess(options.servers)
    try:
        addrs = sorted(a for g in _groups(sim).values() for a in g)
        summary = {}
        for name, batch in (("batch", True), ("threads", False)):
            rows = rounds(addrs, options.rounds, batch)
            medians = {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "user_s", "sys_s")}
            summary[name] = {"rounds": rows, "median": medians}
    finally:
        sim.close()
    print(json.dumps({"servers": options.servers, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
