"""The role's runner on its own, against the simulator: quiet while healthy, one line when a pass fails."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from simulator import Cluster
from tests.helpers import process_running, wait_for
from tests.conftest import ROOT

RUNNER = Path(ROOT) / "roles" / "codis_ha" / "files" / "codis_ha_runner.py"


def _config(tmp_path: Path, dashboard_url: str) -> Path:
    config = tmp_path / "runner.json"
    config.write_text(json.dumps({
        "module_args": {"dashboard_url": dashboard_url, "dashboard_timeout": 1, "probe_timeout": 0.3,
                        "probe_attempts": 2, "state_path": str(tmp_path / "state.json")},
        "collections_path": str(Path(ROOT) / "build" / "collections"), "log": "stdout",
        "metrics_path": str(tmp_path / "codis_ha.prom"), "counter_path": str(tmp_path / "failovers_total"),
    }))
    return config


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUNNER)] + list(args), capture_output=True, text=True, timeout=60,
                          check=False)


def test_healthy_pass_logs_nothing_and_a_failed_pass_logs_one_line(tmp_path: Path) -> None:
    with Cluster.start(groups=2, slaves=1) as cluster:
        config = _config(tmp_path, cluster.dashboard_url)
        healthy = _run(str(config))
        assert (healthy.returncode, healthy.stdout, healthy.stderr) == (0, "", "")
        metrics = (tmp_path / "codis_ha.prom").read_text()
        assert "codis_ha_last_pass_success 1" in metrics and "codis_ha_groups_degraded 0" in metrics

        cluster.dashboard_fault("garbage")
        broken = _run(str(config))
        assert broken.returncode == 1
        [line] = broken.stdout.splitlines()
        assert line.startswith("pass failed after") and "dashboard" in line
        assert "codis_ha_last_pass_success 0" in (tmp_path / "codis_ha.prom").read_text()
        assert cluster.masters() == {1: [cluster.master_of(1)], 2: [cluster.master_of(2)]}

        check = _run(str(config), "--check")
        assert check.returncode == 1 and check.stdout.startswith("check pass failed")


def test_a_spawned_pass_gives_the_same_result_as_a_forked_one(tmp_path: Path) -> None:
    with Cluster.start(groups=2, slaves=1) as cluster:
        config = _config(tmp_path, cluster.dashboard_url)
        data = json.loads(config.read_text())
        cluster.kill(cluster.master_of(2))
        for fork in (False, True):
            config.write_text(json.dumps(dict(data, fork=fork)))
            check = _run(str(config), "--check")
            assert check.returncode == 0 and check.stdout.startswith("check pass ok")
            assert "1 promote planned" in check.stdout
        assert cluster.audit == []


def test_a_module_that_cannot_be_imported_is_a_failed_pass_not_a_crash(tmp_path: Path) -> None:
    config = tmp_path / "runner.json"
    config.write_text(json.dumps({"module_args": {"dashboard_url": "http://127.0.0.1:1"}, "log": "stdout",
                                  "collections_path": str(tmp_path / "nothing-installed-here")}))
    done = _run(str(config))
    assert done.returncode == 1 and done.stderr == ""
    [line] = done.stdout.splitlines()
    assert line.startswith("pass failed after") and "without a result" in line and "ansible_collections" in line


def test_unreadable_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"module_args": [}')
    done = _run(str(bad))
    assert done.returncode == 2 and "cannot read %s" % bad in done.stderr


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path("/proc/%d/task" % pid).iterdir():
        out.extend(int(c) for c in (task / "children").read_text().split())
    return out


def test_a_stopped_runner_takes_its_pass_with_it(tmp_path: Path) -> None:
    with Cluster.start(groups=1, slaves=1) as cluster:
        cluster.dashboard_fault("slow", 2000)  # the pass is still waiting for the dashboard when we stop
        runner = subprocess.Popen([sys.executable, str(RUNNER), str(_config(tmp_path, cluster.dashboard_url)),
                                   "--loop-seconds", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        [child] = wait_for(lambda: _children(runner.pid), 10, what="the runner to start a pass")
        runner.terminate()
        assert runner.wait(timeout=10) == 143
        wait_for(lambda: not process_running(child), 10, what="the pass to be killed with its runner")
