"""Every ansible-core the collection claims (meta/runtime.yml), each in its own virtualenv (scripts/setup_matrix.sh):
`ansible-test units` and the integration target on the older cores; the main virtualenv's newest core runs them and
sanity in test_packaging.py. ansible-core 2.20 and newer need Python 3.12, which this machine's CI does not have."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.collection.test_packaging import _run, copy_tree
from tests.conftest import ROOT

OLDER_CORES = ("2.16", "2.17", "2.18")


def test_requires_ansible_names_the_oldest_core_tested() -> None:
    runtime = (Path(ROOT) / "meta" / "runtime.yml").read_text()
    assert 'requires_ansible: ">=%s.0"' % OLDER_CORES[0] in runtime, runtime


@pytest.mark.parametrize("core", OLDER_CORES)
def test_units_and_the_integration_target_on_an_older_core(core: str, tmp_path: Path) -> None:
    venv = Path(ROOT) / ".venv-core" / core
    assert (venv / "bin" / "ansible-test").exists(), "no %s: run scripts/setup_matrix.sh (setup.sh does)" % venv
    version = _run([str(venv / "bin" / "python"), "-c", "import ansible; print(ansible.__version__)"], tmp_path)
    assert version.startswith(core + "."), version
    tree = copy_tree(tmp_path)
    env = {"PATH": "%s:%s" % (venv / "bin", os.environ.get("PATH", ""))}
    units = _run([str(venv / "bin" / "ansible-test"), "units", "--local", "--python", "3.11"], tree, env=env)
    assert units.count(" passed") >= 2 and " failed" not in units, units[-3000:]
    out = _run([str(venv / "bin" / "ansible-test"), "integration", "--local", "--python", "3.11", "codis_ha_module"],
               tree, env=env)
    recap = [line for line in out.splitlines() if line.startswith("testhost")]
    assert recap and "failed=0" in recap[-1] and "ok=20" in recap[-1], out[-3000:]
