"""Shared pieces of the benchmarks: paths, the module invoked the way the role's runner does, statistics."""
from __future__ import annotations

import compileall
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / "build" / "collections"
MODULE = "ansible_collections.codis.ha.plugins.modules.codis_ha"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simulator.waiting import wait_until  # noqa: E402  (after the path is set; re-exported for the benchmarks)

__all__ = ["wait_until"]


def ensure_collection_path() -> None:
    """build/collections/ansible_collections/codis/ha -> the checkout, as scripts/setup.sh makes it, with the
    module and its module_utils compiled, as the role installs them (an interpreter that must compile them first
    pays for it on every start: the benchmarks measured that before session 6)."""
    link = COLLECTIONS / "ansible_collections" / "codis" / "ha"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    compileall.compile_dir(str(ROOT / "plugins"), quiet=1)


def module_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(COLLECTIONS), PYTHONDONTWRITEBYTECODE="1")


def direct_pass(args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One pass of the module file in a new interpreter, as Ansible runs a module (`python -m <module>`,
    arguments on stdin): result and usage."""
    usage = measured([sys.executable, "-m", MODULE], json.dumps(
        {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_no_log=True)}).encode(), module_env())
    return parse_result(usage["stdout"], usage["stderr"]), usage


def measured(command: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command and read its own rusage (with its reaped descendants') from wait4."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as err_file:
        # stderr goes to a file so that reading stdout to its end cannot deadlock on a full stderr pipe.
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_file, env=env)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        out = proc.stdout.read()
        proc.stdout.close()
        status, usage = os.wait4(proc.pid, 0)[1:]
        proc.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read()
    return {"wall": time.monotonic() - started, "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": usage.ru_maxrss / 1024.0, "stdout": out.decode(errors="replace"),
            "stderr": err.decode(errors="replace"), "rc": proc.returncode}


def parse_result(out: str, err: str) -> dict[str, Any]:
    try:
        return dict(json.loads(out[out.index("{"):]))
    except ValueError as exc:
        raise RuntimeError("the module printed no result: %s %s" % (out[-500:], err[-500:])) from exc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median": statistics.median(values), "p95": percentile(values, 0.95),
            "min": min(values), "max": max(values)}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                                   check=False).stdout.strip()
    return {"python": platform.python_version(), "kernel": platform.release(), "cpu": cpu,
            "cores": os.cpu_count(), "redis": redis_version}


@contextlib.contextmanager
def plot_to(path: Path) -> Iterator[Any]:
    """A matplotlib Axes (no display needed) whose figure is saved as a PNG at `path` when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        yield ax
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def worker_passes(args: dict[str, Any], repeat: int, passes_per_worker: int) -> list[dict[str, Any]]:
    """`repeat` healthy passes in the role's runner's worker (forked once, passes one after another): each one's
    usage (CPU seconds, peak RSS) and wall time. One pass more runs first and is left out: it also paid for the
    runner's one-time imports, its worker's start and the probes' first connections."""
    from simulator.watchers import RUNNER_HOME  # pylint: disable=import-outside-toplevel

    if str(RUNNER_HOME) not in sys.path:
        sys.path.insert(0, str(RUNNER_HOME))
    from codis_ha_runner.config import RunnerConfig  # pylint: disable=import-outside-toplevel
    from codis_ha_runner.worker import Passes  # pylint: disable=import-outside-toplevel

    passes = Passes(RunnerConfig(module_args=args, collections_path=str(COLLECTIONS),
                                 passes_per_worker=passes_per_worker))
    rows = []
    try:
        for _run in range(repeat + 1):
            result, seconds = passes.run()
            assert not result.get("failed") and not result["changed"], result.get("msg")
            rows.append(dict(passes.last_usage, wall=seconds))
    finally:
        passes.stop()
    return rows[1:]
