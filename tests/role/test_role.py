"""The role applied to this host with ansible-playbook: a real cron daemon runs the passes against the simulator.

These tests need root (they create a system user, write /etc/cron.d and /etc/systemd/system), as CI runs.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from simulator import Cluster
from simulator.coordinators import start as start_coordinator
from simulator.watchers import runner_metrics
from tests.helpers import process_running, wait_for

ROOT = Path(__file__).resolve().parents[2]
# One worker for everything that installs on this host and shares its cron daemon (pytest -n: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("host")
PASSWORD = "role-test-s3cret"
INTERVAL = 1.0
PROBE = dict(probe_timeout=0.5, probe_attempts=2)


class SyslogReceiver:
    """A syslog socket of the test's own, so that the runner's `logger` lines can be read back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        os.chmod(path, 0o666)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.lines.append(self._sock.recv(65536).decode("utf-8", "replace"))
            except socket.timeout:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: it lives under a 0700 directory that the service user cannot enter.
    path = Path(tempfile.mkdtemp(prefix="codis-ha-role-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cron_daemon() -> Iterator[None]:
    running = subprocess.run(["pgrep", "-x", "cron"], capture_output=True, check=False).returncode == 0
    if running:
        yield
        return
    subprocess.run(["/usr/sbin/cron"], check=True)
    # cron forks into the background; its pid file may be a stale one, so ask for the process itself.
    pid = int(wait_for(lambda: subprocess.run(["pgrep", "-x", "cron"], capture_output=True, text=True,
                                              check=False).stdout.split()[:1], 5, what="cron to start")[0])
    yield
    os.kill(pid, 15)
    wait_for(lambda: not process_running(pid), 10, what="cron to stop")


def _promoted(cluster: Cluster, group: int, old: str) -> Any:
    master = cluster.master_of(group)
    return master if master not in (None, old) and cluster.role(master)["role"] == "master" else None


def role_vars(work: Path, name: str, **extra: Any) -> dict[str, Any]:
    return dict(codis_ha_user=name, codis_ha_group=name, codis_ha_service_name=name,
                codis_ha_install_dir=str(work / "opt"), codis_ha_config_dir=str(work / "etc"),
                codis_ha_interval=INTERVAL, **extra)


def apply_role(work: Path, variables: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """ansible-playbook with the role on localhost; returns the stats of localhost and the whole output."""
    playbook = work / "play.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "roles": [{"role": "codis.ha.codis_ha", "vars": variables}],
    }]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_NOCOLOR="1")
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                           str(playbook), "-e", "ansible_python_interpreter=%s" % sys.executable],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    recap = re.search(r"^localhost\s*:\s*(.*)$", done.stdout, re.M)
    assert recap, output[-4000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}, output


def test_cron_runner_fails_a_killed_master_over_and_the_role_is_idempotent_and_removable(
        workdir: Path, cron_daemon: None) -> None:
    name = "codis-ha-t%s" % uuid.uuid4().hex[:6]
    syslog = SyslogReceiver(workdir / "log.sock")
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir()
    metrics_dir.chmod(0o1777)
    metrics = metrics_dir / "codis_ha.prom"
    hook_out = metrics_dir / "failover.json"
    try:
        with Cluster.start(groups=2, slaves=2, password=PASSWORD, redis_timeout=0.5) as cluster:
            variables = role_vars(
                workdir, name, codis_ha_scheduler="cron", codis_ha_state_dir=str(workdir / "state"),
                codis_ha_syslog_socket=str(syslog.path), codis_ha_metrics_path=str(metrics),
                codis_ha_on_failover_command="cat > %s" % hook_out,
                codis_ha_module_args=dict(PROBE, dashboard_url=cluster.dashboard_url, redis_password=PASSWORD))
            stats, output = apply_role(workdir, variables)
            assert stats["changed"] > 0
            assert PASSWORD not in output
            config = workdir / "etc" / (name + ".json")
            info = config.stat()
            assert stat.S_IMODE(info.st_mode) == 0o600 and pwd.getpwuid(info.st_uid).pw_name == name
            assert Path("/etc/cron.d", name).exists()

            again = apply_role(workdir, variables)[0]
            assert again["changed"] == 0, "second run of the role changed something"

            # cron starts the first runner at the next minute.
            wait_for(metrics.exists, 75, interval=0.1, what="the first pass of the cron runner")
            assert "codis_ha_last_pass_success 1" in metrics.read_text()
            # The first pass brings each master's ping period down to the role's 1 s (codis_ha_max_ping_period):
            # a change, logged once; the passes after it find everything healthy and log nothing.
            [capped] = wait_for(lambda: [m for m in syslog.lines if "set_ping_period" in m], 5,
                                what="the first pass's line")
            assert "2 set_ping_period done" in capped and "2 healthy" in capped, capped
            assert all(cluster.role(cluster.master_of(g) or "")["ping_period"] == 1 for g in cluster.group_ids())
            quiet_since = _last_pass(metrics)
            wait_for(lambda: _last_pass(metrics) > quiet_since + 1.5, 10, what="two more passes")
            assert syslog.lines == [capped], "healthy passes must not log"

            group = cluster.group_ids()[0]
            old = cluster.master_of(group)
            cluster.write(group, count=50)
            killed_at = time.monotonic()
            cluster.kill(old)
            new = wait_for(lambda: _promoted(cluster, group, old), 10, interval=0.01,
                           what="the runner to promote a slave")
            took = time.monotonic() - killed_at
            budget = 2 * INTERVAL + PROBE["probe_timeout"] * PROBE["probe_attempts"]
            print("failover after kill: %.2f s (budget %.2f s)" % (took, budget))
            assert took <= budget, "failover took %.2f s, more than two intervals plus a probe budget" % took
            assert cluster.lost_writes(group) == []

            line = wait_for(lambda: [m for m in syslog.lines if "promote %s" % new in m], 5,
                            what="the log line of the failover")[0]
            assert "codis-ha" in line and "changed the cluster" in line and PASSWORD not in line
            assert "has the highest replication offset" in line, "the promotion's reason: %s" % line
            wait_for(lambda: "codis_ha_failovers_total 1" in metrics.read_text(), 5, what="the failover metric")
            hook = json.loads(wait_for(lambda: hook_out.exists() and hook_out.read_text(), 5,
                                       what="on_failover_command's output"))
            assert [a["server"] for a in hook["actions"] if a["action"] == "promote"] == [new]

            absent = dict(variables, codis_ha_state="absent")
            removed = apply_role(workdir, absent)[0]
            assert removed["changed"] > 0
            assert not Path("/etc/cron.d", name).exists()
            for leftover in ("opt", "etc", "state"):
                assert not (workdir / leftover).exists(), leftover
            with pytest.raises(KeyError):
                pwd.getpwnam(name)
            again = apply_role(workdir, absent)[0]
            assert again["changed"] == 0
    finally:
        syslog.close()
        subprocess.run(["pkill", "-u", name], capture_output=True, check=False)


def test_systemd_units_pass_systemd_analyze_verify_and_absent_removes_them(workdir: Path) -> None:
    name = "codis-ha-t%s" % uuid.uuid4().hex[:6]
    state_dir = "/var/lib/" + name
    with Cluster.start(groups=1, slaves=1) as cluster, start_coordinator("zookeeper") as zookeeper:
        # One of several watchers: the role's own check pass reads the real ZooKeeper's observations.
        variables = role_vars(workdir, name, codis_ha_scheduler="systemd", codis_ha_start=False,
                              codis_ha_state_dir=state_dir, codis_ha_metrics_path=str(workdir / "m" / "x.prom"),
                              codis_ha_coordinator=zookeeper.url("/role-test"), codis_ha_observer_id="watcher-a",
                              codis_ha_module_args=dict(PROBE, dashboard_url=cluster.dashboard_url))
        (workdir / "m").mkdir()
        try:
            apply_role(workdir, variables)
            units = ["/etc/systemd/system/%s.%s" % (name, kind) for kind in ("service", "timer")]
            verify = subprocess.run(["systemd-analyze", "verify"] + units, capture_output=True, text=True,
                                    check=False)
            assert verify.returncode == 0 and name not in verify.stdout + verify.stderr, verify.stderr
            service = Path(units[0]).read_text()
            assert "%s --loop-seconds 600\n" % (workdir / "etc" / ("%s.json" % name)) in service
            for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                              "StateDirectory=%s" % name, "User=%s" % name, "StartLimitIntervalSec=0",
                              "ReadWritePaths=%s" % (workdir / "m")):
                assert hardening in service
            config = json.loads(Path(workdir / "etc" / ("%s.json" % name)).read_text())["module_args"]
            assert (config["coordinator"], config["quorum"], config["observer_id"], config["observation_ttl"]) == (
                zookeeper.url("/role-test"), 2, "watcher-a", 5.0)
            installed = subprocess.run([str(workdir / "opt" / "venv" / "bin" / "python"), "-c", "import kazoo"],
                                       capture_output=True, check=False)
            assert installed.returncode == 0, installed.stderr
            timer = Path(units[1]).read_text()
            assert "OnUnitInactiveSec=1000ms" in timer and "AccuracySec=100ms" in timer
            assert not Path("/etc/cron.d", name).exists()
            again = apply_role(workdir, variables)[0]
            assert again["changed"] == 0
        finally:
            apply_role(workdir, dict(variables, codis_ha_state="absent"))
        assert not any(Path(u).exists() for u in units) and not Path(state_dir).exists()


def _last_pass(metrics: Path) -> float:
    """When the runner's last pass ended, from its node_exporter textfile (0 while it has none)."""
    return runner_metrics(metrics).get("codis_ha_last_pass_timestamp_seconds", 0.0)
