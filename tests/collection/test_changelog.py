"""The changelog as antsibull-changelog keeps it: fragments that lint, a CHANGELOG.rst that is what the tool
generates, and a fragment for every change to what users get since the last release."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
SHIPPED = ["plugins", "roles", "meta", "galaxy.yml"]  # what a user of the collection gets


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_fragments_lint() -> None:
    done = subprocess.run([str(BIN / "antsibull-changelog"), "lint"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_every_change_since_the_release_has_a_fragment() -> None:
    # The release is the last commit that wrote changelogs/changelog.yaml.
    release = _git("log", "-1", "--format=%H", "--", "changelogs/changelog.yaml").strip()
    assert release, "changelogs/changelog.yaml is not committed"
    changed = [f for f in _git("diff", "--name-only", release, "--", *SHIPPED).split() if f]
    changed += [f for f in _git("status", "--porcelain", "--", *SHIPPED).split("\n") if f.strip()]
    fragments = [p.name for p in (Path(ROOT) / "changelogs" / "fragments").glob("*.y*ml")]
    assert not changed or fragments, (
        "%d shipped file(s) changed since the release %s (%s) but changelogs/fragments/ is empty: add a fragment"
        % (len(changed), release[:10], ", ".join(changed[:5])))


def test_changelog_rst_is_generated_from_changelog_yaml() -> None:
    text = (Path(ROOT) / "CHANGELOG.rst").read_text()
    assert text.startswith("=") and "codis.ha Release Notes" in text and "v0.1.0" in text
    assert "New Modules" in text and "codis.ha.codis_ha" in text
