"""The role's runner on its own, against the simulator: quiet while healthy, one line when a pass fails."""
from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from codis_ha_runner import hooks, outputs
from codis_ha_runner.config import RunnerConfig, load_config
from simulator import Cluster
from simulator.watchers import runner_command, runner_env
from tests.helpers import process_running, wait_for
from tests.conftest import COLLECTIONS, ROOT


def _config(tmp_path: Path, dashboard_url: str, dashboard_timeout: float = 1) -> Path:
    config = tmp_path / "runner.json"
    config.write_text(json.dumps({
        "module_args": {"dashboard_url": dashboard_url, "dashboard_timeout": dashboard_timeout, "probe_timeout": 0.3,
                        "probe_attempts": 2, "state_path": str(tmp_path / "state.json")},
        "collections_path": str(Path(ROOT) / "build" / "collections"), "log": "stdout",
        "metrics_path": str(tmp_path / "codis_ha.prom"), "counter_path": str(tmp_path / "failovers_total"),
    }))
    return config


@contextlib.contextmanager
def _silent_dashboard(tmp_path: Path) -> Iterator[Path]:
    """A runner config whose dashboard takes the connection and never answers: a pass waits (up to 30 s) for as
    long as a test needs it in the middle, however long the test takes to find it (with a dashboard 2 s slow and
    a 1 s timeout, a loaded CI machine once found the worker only after its pass had failed on its own)."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        yield _config(tmp_path, "http://127.0.0.1:%d" % silent.getsockname()[1], dashboard_timeout=30)


def _run(config: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(runner_command(Path(config), *args), capture_output=True, text=True, timeout=60,
                          check=False, env=runner_env())


def _start(config: Path, *args: str, **popen: Any) -> subprocess.Popen:
    return subprocess.Popen(runner_command(config, *args), env=runner_env(), **popen)


def _settings(**values: Any) -> RunnerConfig:
    return RunnerConfig(module_args={}, collections_path=COLLECTIONS, **values)


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


def test_a_collections_path_without_the_collection_is_refused_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "runner.json"
    (tmp_path / "nothing-installed-here").mkdir()
    config.write_text(json.dumps({"module_args": {"dashboard_url": "http://127.0.0.1:1"}, "log": "stdout",
                                  "collections_path": str(tmp_path / "nothing-installed-here")}))
    done = _run(str(config))
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert "cannot use %s" % config in done.stderr and "ansible_collections" in done.stderr, done.stderr


def test_unreadable_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"module_args": [}')
    done = _run(str(bad))
    assert done.returncode == 2 and "cannot use %s" % bad in done.stderr


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path("/proc/%d/task" % pid).iterdir():
        out.extend(int(c) for c in (task / "children").read_text().split())
    return out


def test_a_stopped_runner_takes_its_pass_with_it(tmp_path: Path) -> None:
    with _silent_dashboard(tmp_path) as config:  # the pass is still waiting for the dashboard when we stop
        runner = _start(config, "--loop-seconds", "60", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        [child] = wait_for(lambda: _children(runner.pid), 10, what="the runner to start a pass")
        runner.terminate()
        assert runner.wait(timeout=10) == 143
        wait_for(lambda: not process_running(child), 10, what="the pass to be killed with its runner")


@pytest.mark.parametrize("change", ["config", "code"])
def test_a_runner_whose_configuration_or_code_changed_stops_between_passes(tmp_path: Path, change: str) -> None:
    with Cluster.start(groups=1, slaves=1) as cluster:
        config = _config(tmp_path, cluster.dashboard_url)
        collection = tmp_path / "collections"
        if change == "code":  # a copy of the collection's module_utils that this test may touch
            shutil.copytree(Path(ROOT) / "plugins", collection / "ansible_collections" / "codis" / "ha" / "plugins",
                            ignore=shutil.ignore_patterns("__pycache__"))
            data = json.loads(config.read_text())
            data["collections_path"] = str(collection)
            config.write_text(json.dumps(data))
        runner = _start(config, "--loop-seconds", "600", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            state = tmp_path / "state.json"
            passes: set[int] = set()

            def three_passes() -> bool:
                if state.exists():
                    passes.add(state.stat().st_mtime_ns)
                return len(passes) >= 3

            wait_for(three_passes, 30, interval=0.05, what="three passes of the runner")
            assert runner.poll() is None  # nothing changed: it goes on looping
            if change == "config":
                config.write_text(config.read_text().replace('"probe_timeout": 0.3', '"probe_timeout": 0.4'))
            else:  # an install replaces a file by renaming a new one over it
                utils = collection / "ansible_collections" / "codis" / "ha" / "plugins" / "module_utils"
                (utils / "_new.py").write_text((utils / "_topology.py").read_text())
                os.replace(utils / "_new.py", utils / "_topology.py")
            assert runner.wait(timeout=30) == 0, runner.stderr.read() if runner.stderr else ""
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()


# ------------------------------------------------------------------ hostile configurations and hooks
@pytest.mark.parametrize("change, culprit", [
    ({"interval": 0}, "interval must be at least 0.1"),
    ({"interval": 1e-7}, "interval must be at least 0.1"),
    ({"interval": "1"}, "interval must be a number, got '1'"),
    ({"interval": True}, "interval must be a number"),
    ({"pass_timeout": 1e308 * 10}, "Infinity is not a number JSON allows"),
    ({"pass_timeout": 0.5}, "pass_timeout must be at least 1"),
    ({"on_failover_timeout": -1}, "on_failover_timeout must be at least"),
    ({"passes_per_worker": 2.5}, "passes_per_worker must be a whole number"),
    ({"intreval": 1}, "unknown setting 'intreval'"),
    ({"collections_path": None}, "collections_path must name the directory"),
    ({"collections_path": "/nonexistent/codis-ha"}, "collections_path /nonexistent/codis-ha is not a directory"),
    ({"fork": "yes"}, "fork must be true or false"),
    ({"log": "journal"}, "log must be syslog or stdout"),
])
def test_a_hostile_config_is_refused_naming_the_culprit(tmp_path: Path, change: dict, culprit: str) -> None:
    config = _config(tmp_path, "http://127.0.0.1:1")
    data = dict(json.loads(config.read_text()), **change)
    text = json.dumps(data)  # 1e308 * 10 is inf: json writes Infinity, which the runner must refuse too
    config.write_text(text)
    done = _run(str(config))
    assert done.returncode == 2 and culprit in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "state.json.lock").exists()  # nothing ran


def test_nan_in_the_config_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, "http://127.0.0.1:1")
    config.write_text(config.read_text()[:-1] + ', "interval": NaN}')
    done = _run(str(config))
    assert done.returncode == 2 and "NaN" in done.stderr and "Traceback" not in done.stderr


def test_a_hook_that_leaves_a_background_child_does_not_block_the_runner(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    problem = hooks.on_failover(_settings(on_failover_command="sleep 60 >/dev/null 2>&1 & echo $! > %s" % pidfile),
                                {"changed": True})
    child = int(pidfile.read_text())
    try:
        assert problem is None
        assert process_running(child)  # the hook returned while its background child still runs
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_timed_out_hook_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    problem = hooks.on_failover(_settings(on_failover_command="sleep 60 & echo $! > %s; wait" % pidfile,
                                          on_failover_timeout=1.0), {"changed": True})
    assert problem is not None and "did not finish within 1.0s" in problem
    child = int(pidfile.read_text())
    wait_for(lambda: not process_running(child), 10, what="the hook's child to be killed")


def test_a_chatty_hook_costs_the_runner_no_memory(tmp_path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    problem = hooks.on_failover(_settings(on_failover_command="head -c 100000000 /dev/zero; echo; "
                                          "echo the last line; exit 3"), {"changed": True})
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert problem == "on_failover_command exited 3: the last line"
    assert grown_mb < 50, "the hook's 100 MB of output was held in memory (%.0f MB)" % grown_mb


def test_an_unreadable_failover_counter_is_reported_and_moved_aside(tmp_path: Path) -> None:
    counter = tmp_path / "failovers_total"
    counter.write_text("not a number\n")
    total, problem = outputs.count_failovers(_settings(counter_path=str(counter)), 1)
    assert total == 1 and problem is not None and "could not be read" in problem and "moved aside" in problem
    assert counter.read_text() == "1\n"
    [aside] = list(tmp_path.glob("failovers_total.corrupt-*"))
    assert aside.read_text() == "not a number\n"
    assert outputs.count_failovers(_settings(counter_path=str(counter)), 2) == (3, None)


def _result(*groups: tuple[int, str], skipped: tuple[int, ...] = ()) -> dict:
    return {"groups": [{"id": gid, "decision": decision, "reason": "because %s" % decision} for gid, decision in groups],
            "skipped_groups": [{"group": gid, "reason": "skipped %d" % gid} for gid in skipped], "actions": []}


def test_group_states_are_logged_on_change_and_again_while_unhealthy(tmp_path: Path) -> None:
    config = _settings(group_states_path=str(tmp_path / "groups.json"), unhealthy_log_interval=300.0)
    first = outputs.GroupStates(config)
    assert first.log_lines(_result((1, "healthy"), (2, "healthy")), 1000.0) == []
    assert first.log_lines(_result((1, "healthy"), (2, "degraded")), 1001.0) == [
        ("group 2 is now degraded: because degraded", True)]
    # A new runner process (the systemd timer starts one per period) remembers through the file.
    again = outputs.GroupStates(config)
    assert again.log_lines(_result((1, "healthy"), (2, "degraded")), 1100.0) == []
    assert again.log_lines(_result((1, "healthy"), (2, "degraded")), 1301.0) == [
        ("group 2 still degraded after 300s: because degraded", True)]
    assert again.log_lines(_result((1, "healthy"), (2, "no_candidate")), 1302.0) == [
        ("group 2 is now no candidate: because no_candidate", True)]
    assert again.log_lines(_result((1, "healthy"), (2, "healthy")), 1303.0) == [
        ("group 2 is healthy again", False)]


def test_group_states_without_a_file_are_remembered_in_memory() -> None:
    states = outputs.GroupStates(_settings())
    assert states.log_lines(_result((1, "degraded")), 1000.0) == [("group 1 is now degraded: because degraded", True)]
    assert states.log_lines(_result((1, "degraded")), 1001.0) == []
    assert states.log_lines(_result((1, "healthy")), 1002.0) == [("group 1 is healthy again", False)]


def test_a_group_skipped_and_listed_counts_once_in_the_metrics() -> None:
    result = _result((1, "skipped"), (2, "healthy"), (3, "refused"), skipped=(1, 3))
    assert "codis_ha_groups_degraded 2\n" in outputs.metrics_text(result, 0.1, 0, 1.0)


_PASSES = """
import json, sys
from codis_ha_runner.config import load_config
from codis_ha_runner.worker import Passes
passes = Passes(load_config(sys.argv[1]))
out = []
for step in json.loads(sys.argv[2]):
    if step.get("write"):
        open(step["write"], "w").write(step["text"])
    result, seconds = passes.run()
    out.append({"pid": passes.last_usage.get("pid"), "failed": bool(result.get("failed")),
                "msg": result.get("msg", ""), "warnings": result.get("warnings", [])})
passes.stop()
print(json.dumps(out))
"""


def _passes(config: Path, steps: list[dict]) -> list[dict]:
    """Passes of one runner process, each after its step (a file written), with the worker that ran it."""
    done = subprocess.run([sys.executable, "-c", _PASSES, str(config), json.dumps(steps)], env=runner_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_passes_share_a_worker_each_a_fresh_invocation_until_it_is_replaced(tmp_path: Path) -> None:
    with Cluster.start(groups=1, slaves=1) as cluster:
        config = _config(tmp_path, cluster.dashboard_url)
        config.write_text(json.dumps(dict(json.loads(config.read_text()), passes_per_worker=3)))
        state = tmp_path / "state.json"
        # The first pass finds a state file it cannot read and warns; it writes a good one, so the second has
        # nothing to warn about: a worker that kept what AnsibleModule collected would repeat the warning.
        passes = _passes(config, [{"write": str(state), "text": "not json"}] + [{}] * 3)
    assert [p["failed"] for p in passes] == [False] * 4, passes
    assert "could not be read" in json.dumps(passes[0]["warnings"]) and passes[1]["warnings"] == []
    pids = [p["pid"] for p in passes]
    assert pids[0] == pids[1] == pids[2] != pids[3], pids  # three passes a worker, then a fresh one


def test_a_failed_or_overrunning_pass_takes_its_worker_with_it(tmp_path: Path) -> None:
    with Cluster.start(groups=1, slaves=1) as cluster:
        config = _config(tmp_path, cluster.dashboard_url)
        data = json.loads(config.read_text())
        # The pass's own deadline beyond the runner's: the runner has to kill it.
        data["module_args"].update(pass_timeout=30, dashboard_timeout=10)
        config.write_text(json.dumps(dict(data, pass_timeout=1)))
        cluster.dashboard_fault("slow", 3000)
        overran = _passes(config, [{}])
        cluster.clear_dashboard_faults()
        cluster.dashboard_fault("garbage")
        broken = _passes(config, [{}, {}])
        cluster.clear_dashboard_faults()
        healthy = _passes(config, [{}, {}])
    assert overran[0]["failed"] and "did not finish within 1.0s" in overran[0]["msg"]
    assert [p["failed"] for p in broken] == [True, True] and broken[0]["pid"] != broken[1]["pid"]
    assert [p["failed"] for p in healthy] == [False, False] and healthy[0]["pid"] == healthy[1]["pid"]


def test_a_worker_killed_in_the_middle_of_a_pass_is_a_failed_pass_and_the_next_has_a_new_one(tmp_path: Path) -> None:
    with _silent_dashboard(tmp_path) as config:
        runner = _start(config, "--loop-seconds", "60", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            [worker] = wait_for(lambda: _children(runner.pid), 10, what="the runner to start its worker")
            os.kill(worker, signal.SIGKILL)
            assert runner.stdout is not None
            line = runner.stdout.readline()
            assert line.startswith("pass failed after") and "worker died (exit -9)" in line, line
            wait_for(lambda: [c for c in _children(runner.pid) if c != worker], 10, what="a new worker")
            assert runner.poll() is None
        finally:
            runner.terminate()  # stopping the runner stops the new worker, still waiting for the dashboard
            runner.wait(timeout=10)


def test_a_pass_that_changed_the_cluster_logs_its_warnings_too() -> None:
    """A failover inside min_failover_interval is made and warned about: the runner's line must carry the warning."""
    result = dict(_result((1, "failover")), changed=True, msg="1 promote done",
                  actions=[{"action": "promote", "server": "10.0.0.2:6379", "group": 1, "status": "done"}])
    flapping = "group 1 failed over again within min_failover_interval (300.0 s): flapping"
    line = outputs.log_line(dict(result, warnings=[flapping]), 0.5)
    assert line is not None and line.endswith("; warnings: " + flapping), line
    # A pass that promoted and then failed a repoint still says what its promotion did (a proxy taken offline).
    gone = "proxy proxy_1 was online before this pass's promotion and the dashboard now lists it as mark_offline"
    line = outputs.log_line(dict(result, failed=True, msg="1 action(s) failed", warnings=[gone]), 38.0)
    assert line == "pass failed after 38.00s: 1 action(s) failed; warnings: " + gone, line
    assert "warnings" not in (outputs.log_line(result, 0.5) or "")


def test_a_promotion_is_logged_with_its_whole_reason() -> None:
    """The evidence a failover was made on, unclipped: a soak's false failover could not be explained from a line
    that named only the promotion."""
    why = ("master 10.0.0.1:6379 is down (2 failed probe(s): TimeoutError: Timeout connecting to server); "
           "10.0.0.2:6379 has the highest replication offset (7597350) among eligible slaves; " + "x" * 600)
    result = dict(_result((1, "failover")), changed=True, msg="1 promote done, 1 repoint done", actions=[
        {"action": "promote", "server": "10.0.0.2:6379", "group": 1, "status": "done", "reason": why},
        {"action": "repoint", "server": "10.0.0.3:6379", "group": 1, "status": "done", "reason": "follow it"}])
    line = outputs.log_line(result, 0.8) or ""
    assert "promote 10.0.0.2:6379 in group 1: done (%s); repoint 10.0.0.3:6379 in group 1: done" % why in line, line
    assert "follow it" not in line


def test_the_roles_configuration_loads_as_frozen_settings(tmp_path: Path) -> None:
    """What the role writes (an `_comment`, empty strings for settings left unset) reads as RunnerConfig, with
    the numbers converted and the defaults of the dataclass for the rest."""
    import dataclasses

    config = tmp_path / "runner.json"
    config.write_text(json.dumps({"_comment": "Ansible managed", "module_args": {"dashboard_url": "http://x:1"},
                                  "collections_path": COLLECTIONS, "interval": 2, "metrics_path": "",
                                  "on_failover_command": "", "passes_per_worker": 5, "tag": "codis-ha-a"}))
    loaded = load_config(str(config))
    assert (loaded.interval, loaded.passes_per_worker, loaded.tag) == (2.0, 5, "codis-ha-a")
    assert loaded.metrics_path is None and loaded.on_failover_command is None and loaded.fork is True
    assert loaded.pass_timeout == RunnerConfig(module_args={}, collections_path="").pass_timeout
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.interval = 3.0  # type: ignore[misc]


def test_without_a_counter_file_the_metrics_count_the_runners_own_promotions(tmp_path: Path) -> None:
    """The failovers counter kept in memory across one runner's passes, not reset to each pass's own count."""
    from codis_ha_runner.cli import Runner

    runner = Runner(_settings(metrics_path=str(tmp_path / "codis_ha.prom"), log="stdout"))
    promoted = dict(_result((1, "failover")), changed=True,
                    actions=[{"action": "promote", "server": "10.0.0.2:6379", "group": 1, "status": "done"}])
    results = iter([promoted, _result((1, "healthy")), promoted])
    runner.passes.run = lambda check=False: (next(results), 0.01)  # type: ignore[method-assign]
    totals = []
    for _pass in range(3):
        runner.one_pass()
        totals.append([line for line in (tmp_path / "codis_ha.prom").read_text().splitlines()
                       if line.startswith("codis_ha_failovers_total ")])
    assert totals == [["codis_ha_failovers_total 1"], ["codis_ha_failovers_total 1"], ["codis_ha_failovers_total 2"]]
