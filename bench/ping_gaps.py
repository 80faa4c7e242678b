"""How far apart an idle live master's pings really arrive at its slaves, at a given repl-ping-replica-period, on an
idle machine and under CPU load: the evidence the witness rule's slack stands on (docs/safety.md).

A master pings its slaves from replicationCron, every `period` runs of a cron that serverCron starts every tenth
tick, and each tick is scheduled 100 ms after the last one ran: a tick that runs late delays every later one. So
the gap between two pings is `period` seconds plus the lateness of a hundred ticks per second of period, which is
what CPU starvation adds. A slave's offset moves by each ping (the master's replication stream), so the gaps are
read off one slave's offset, polled every few milliseconds, and checked against its master_last_io_seconds_ago.

    python bench/ping_gaps.py --period 10 --seconds 120 --hogs 8
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simulator.ports import free_port  # noqa: E402
from simulator.real import RedisProcess  # noqa: E402
from simulator.waiting import wait_until  # noqa: E402


def measure(period: int, seconds: float, hogs: int, poll: float) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="codis-ha-pings-")
    extra = ["--repl-ping-replica-period", str(period)]
    master = RedisProcess(free_port(), os.path.join(workdir, "m"), extra)
    slave = RedisProcess(free_port(), os.path.join(workdir, "s"), extra)
    burners: list[subprocess.Popen[bytes]] = []
    try:
        master.start()
        slave.start()
        with contextlib.closing(slave.client()) as c:
            c.execute_command("REPLICAOF", "127.0.0.1", master.port)
        wait_until(lambda: slave.replication().get("master_link_status") == "up", 20, "the slave's link")
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _index in range(hogs)]
        gaps: list[float] = []
        last_ios: list[int] = []
        with contextlib.closing(slave.client(socket_timeout=5)) as c:
            offset, moved_at = None, None
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                info = c.info("replication")
                now = time.monotonic()
                last_ios.append(int(info.get("master_last_io_seconds_ago", -1)))
                current = info.get("slave_repl_offset")
                if offset is not None and current != offset:
                    if moved_at is not None:
                        gaps.append(now - moved_at)
                    moved_at = now
                offset = current
                time.sleep(poll)
        return {"period": period, "hogs": hogs, "cpus": os.cpu_count(), "seconds": seconds, "pings": len(gaps) + 1,
                "gap_median_s": round(statistics.median(gaps), 3) if gaps else None,
                "gap_max_s": round(max(gaps), 3) if gaps else None,
                "gap_max_over_period": round(max(gaps) / period, 3) if gaps else None,
                "last_io_max_s": max(last_ios) if last_ios else None}
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
        for server in (slave, master):
            with contextlib.suppress(Exception):
                server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--period", type=int, action="append", help="repl-ping-replica-period (repeatable)")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--hogs", type=int, action="append", help="CPU-bound processes beside (repeatable)")
    parser.add_argument("--poll", type=float, default=0.01, help="seconds between two looks at the slave")
    args = parser.parse_args()
    for period in args.period or [10]:
        for hogs in args.hogs or [0]:
            print(json.dumps(measure(period, args.seconds, hogs, args.poll)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
