"""The simulator's CLI, as a subprocess: start, status, kill, stop."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT
from tests.helpers import wait_for


def _cli(control: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulator", *args, "--control", control],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)


def test_cli_up_status_kill_stop(tmp_path) -> None:
    state = tmp_path / "sim.json"
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "up", "--groups", "2", "--slaves", "1",
                             "--port", "0", "--control-port", "0", "--state-file", str(state)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: state.exists() and state.stat().st_size > 0, timeout=20, what="the state file")
        urls = json.loads(state.read_text())
        status = json.loads(_cli(urls["control"], "status").stdout)
        assert status["dashboard"] == urls["dashboard"] and set(status["groups"]) == {"1", "2"}
        master = next(a for a, s in status["groups"]["1"].items() if s["type"] == "master")
        assert _cli(urls["control"], "write", "1", "--count", "3").returncode == 0
        assert _cli(urls["control"], "kill", master).returncode == 0
        status = json.loads(_cli(urls["control"], "status").stdout)
        assert status["groups"]["1"][master]["alive"] is False
        assert status["groups"]["1"][master]["keys"] == 3
        bad = _cli(urls["control"], "fault", "no_such_fault")
        assert bad.returncode == 1 and "unknown dashboard fault" in bad.stderr
        assert _cli(urls["control"], "stop").returncode == 0
        out = proc.communicate(timeout=20)[0]
        assert proc.returncode == 0
        assert "dashboard: " + urls["dashboard"] in out and "group 1:" in out and "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_reports_unreachable_simulator() -> None:
    result = _cli("http://127.0.0.1:9", "status")
    assert result.returncode == 2 and "cannot reach the simulator" in result.stderr
