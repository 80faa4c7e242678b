"""Watchers as separate processes: the role's runner (`python -m codis_ha_runner --loop-seconds`), each with its own
config, state file, log and group id (so that iptables can cut one off). Shared by the end-to-end tests and the
benchmarks."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from .netfaults import group_id

ROOT = Path(__file__).resolve().parents[1]
RUNNER_HOME = ROOT / "roles" / "codis_ha" / "files"  # holds the runner's package, codis_ha_runner/
COLLECTIONS = ROOT / "build" / "collections"


def runner_command(config: Path, *args: str) -> list[str]:
    """The role's runner as the role starts it: `python -m codis_ha_runner CONFIG ...`, with runner_env()."""
    return [sys.executable, "-m", "codis_ha_runner", str(config)] + list(args)


def runner_metrics(path: Path) -> dict[str, float]:
    """A runner's node_exporter textfile as {metric: value}; {} while it has none or is half written."""
    try:
        pairs = [line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")]
        return {name: float(value) for name, value in pairs}
    except (OSError, ValueError):
        return {}


def runner_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(RUNNER_HOME))


class Watcher:
    def __init__(self, name: str, workdir: Path, module_args: dict[str, Any], interval: float = 1.0,
                 **config: Any) -> None:
        self.name = name
        self.gid = group_id("codisha-" + name)
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "runner.log"
        self.config = self.dir / "runner.json"
        self.config.write_text(json.dumps(dict({
            "module_args": dict({"state_path": str(self.dir / "state.json")}, **module_args),
            "collections_path": str(COLLECTIONS), "log": "stdout", "interval": interval}, **config)))
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, seconds: float = 600) -> "Watcher":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(runner_command(self.config, "--loop-seconds", str(seconds)), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True, group=self.gid,
                                         extra_groups=[], cwd=str(self.dir), env=runner_env())
        return self

    def kill(self) -> None:
        """SIGKILL to the runner and the pass it forked: no clean-up, a lock it holds stays until its session
        ends."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
