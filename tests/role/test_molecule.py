"""The role's molecule scenarios (extensions/molecule), delegated to this host: cron (converge, idempotence, a
killed master failed over by the runner that cron starts, destroy through codis_ha_state absent) and systemd (units
rendered and verified with systemd-analyze, as far as a host without systemd as PID 1 allows)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import COLLECTIONS, ROOT

BIN = Path(sys.executable).parent
# One worker for everything that installs on this host and shares its cron daemon (pytest -n: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("host")


@pytest.mark.parametrize("scenario", ["cron", "systemd"])
def test_molecule_scenario(scenario: str) -> None:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")),
               ANSIBLE_NOCOLOR="1", NO_COLOR="1")
    done = subprocess.run([str(BIN / "molecule"), "test", "-s", scenario], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    # A failed step's own lines (fatal: ...) come before the cleanup's long output: show them, then the end.
    failures = [line for line in output.splitlines() if line.startswith(("fatal:", "failed:"))]
    assert done.returncode == 0, "\n".join(failures[-5:] + [output[-3000:]])
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert re.search(r"%s\W+%s: Executed: Successful" % (scenario, step), output), (step, output[-3000:])
