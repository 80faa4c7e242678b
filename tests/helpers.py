"""Shared fixtures: a simulated cluster, the module run in-process, and waiting on conditions."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19 (the version matrix): the arguments are a global of basic.py
    @contextlib.contextmanager
    def patch_module_args(args: dict[str, Any]) -> Iterator[None]:
        from ansible.module_utils import basic

        saved = basic._ANSIBLE_ARGS  # pylint: disable=protected-access
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()  # pylint: disable=protected-access
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved  # pylint: disable=protected-access

from simulator import Cluster
from simulator.waiting import wait_until


def run_module(args: dict[str, Any], check: bool = False, diff: bool = False) -> dict[str, Any]:
    """Run codis_ha's main() as Ansible would (args in, JSON on stdout out) and return the result."""
    from ansible.module_utils.common import warnings as ansible_warnings
    from ansible_collections.codis.ha.plugins.modules import codis_ha

    # Ansible keeps warnings in a process-wide list; one in-process run must not report another's.
    ansible_warnings._global_warnings.clear()  # pylint: disable=protected-access
    ansible_warnings._global_deprecations.clear()  # pylint: disable=protected-access
    full = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    out = io.StringIO()
    with patch_module_args(full), contextlib.redirect_stdout(out):
        try:
            codis_ha.main()
        except SystemExit:
            pass
    text = out.getvalue()
    start = text.index("{")
    return json.loads(text[start:])


def run_module_process(args: dict[str, Any], gid: Optional[int] = None) -> dict[str, Any]:
    """Run codis_ha in a process of its own, as Ansible runs a module file; with `gid`, its sockets carry that
    group id, so that netfaults.dropped(ports, gid) cuts this one pass off and nothing else."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "build", "collections"))
    done = subprocess.run([sys.executable, "-m", "ansible_collections.codis.ha.plugins.modules.codis_ha"],
                          input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True, env=env,
                          timeout=120, check=False, **(dict(group=gid, extra_groups=[]) if gid is not None else {}))
    return json.loads(done.stdout[done.stdout.index("{"):])


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
             what: str = "condition") -> Any:
    """wait_until that fails the test (AssertionError) when the deadline passes."""
    return wait_until(condition, timeout, what, interval, error=AssertionError)


def promotions(result: dict[str, Any]) -> list[str]:
    """The servers a pass promoted (and verified)."""
    return [a["server"] for a in result["actions"] if a["action"] == "promote" and a["status"] == "done"]


def process_running(pid: int) -> bool:
    """Alive and not a zombie (PID 1 here reaps slowly, so an exited process may linger as one)."""
    try:
        return Path("/proc/%d/stat" % pid).read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def pass_params(**args: Any) -> dict[str, Any]:
    """Module parameters with the argument spec's defaults filled in, for calling run_pass directly."""
    from ansible_collections.codis.ha.plugins.module_utils._options import argument_spec

    params = {k: v.get("default") for k, v in argument_spec().items()}
    params.update(args)
    return params


FAST = dict(probe_timeout=0.3, probe_attempts=2, probe_interval=0.05, verify_timeout=3.0,
            dashboard_timeout=2.0)


@pytest.fixture(params=[2, 3], ids=["codis2", "codis3"])
def codis(request: pytest.FixtureRequest) -> int:
    """Tests that take `cluster` run against both dashboards: the same facts must lead to the same decision."""
    return int(request.param)


@pytest.fixture
def cluster(codis: int) -> Iterator[Cluster]:
    with Cluster.start(groups=3, slaves=2, redis_timeout=0.5, codis=codis) as c:
        yield c


@pytest.fixture
def codis2_cluster() -> Iterator[Cluster]:
    """For what only Codis 2 has: server types (offline, unknown), the coordinator lock, 500 after commit."""
    with Cluster.start(groups=3, slaves=2, redis_timeout=0.5) as c:
        yield c


@pytest.fixture
def module_args(cluster: Cluster) -> dict[str, Any]:
    return dict(FAST, dashboard_url=cluster.dashboard_url)


@pytest.fixture
def codis2_args(codis2_cluster: Cluster) -> dict[str, Any]:
    return dict(FAST, dashboard_url=codis2_cluster.dashboard_url)


@pytest.fixture(scope="module", params=["zookeeper", "etcd"])
def coordinator(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A real ZooKeeper, then a real etcd, on loopback (simulator/coordinators.py), for a module's tests."""
    from simulator.coordinators import start

    server = start(request.param)
    yield server
    server.close()
