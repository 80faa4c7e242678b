"""scripts/mutants.py plants known defects by replacing exact lines of the code: this keeps its patches in step
with the code (the full mutant run is on demand; its results are in docs/testing.md)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_every_mutant_still_applies_to_the_code() -> None:
    done = subprocess.run([sys.executable, str(Path(ROOT) / "scripts" / "mutants.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "14 mutants apply", done.stdout + done.stderr
