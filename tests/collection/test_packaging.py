"""The collection as users get it: galaxy build and install, ansible-doc, and ansible-test sanity."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, "%s failed:\n%s\n%s" % (args, result.stdout[-4000:], result.stderr[-4000:])
    return result.stdout


def copy_tree(base: Path) -> Path:
    """The tracked files at a real path base/ansible_collections/codis/ha (ansible-test refuses links)."""
    dest = base / "ansible_collections" / "codis" / "ha"
    files = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], Path(ROOT)).split()
    for name in files:
        src = Path(ROOT) / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_tree(tmp_path_factory.mktemp("collection"))


def test_build_install_and_ansible_doc(tree: Path, tmp_path: Path) -> None:
    _run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)], tree)
    [artifact] = tmp_path.glob("codis-ha-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "plugins/modules/codis_ha.py" in names and "meta/runtime.yml" in names
    assert "roles/codis_ha/files/codis_ha_runner/__main__.py" in names
    assert "roles/codis_ha/meta/argument_specs.yml" in names
    assert not any(n.startswith(("tests/", "simulator/", ".venv")) for n in names)
    install = tmp_path / "installed"
    _run([str(BIN / "ansible-galaxy"), "collection", "install", "--force", str(artifact), "-p", str(install)], tmp_path)
    doc = _run([str(BIN / "ansible-doc"), "codis.ha.codis_ha"], tmp_path,
               env={"ANSIBLE_COLLECTIONS_PATH": str(install)})
    for needle in ("dashboard_url", "redis_password", "EXAMPLES", "RETURN VALUES", "skipped_groups"):
        assert needle in doc
    role_doc = _run([str(BIN / "ansible-doc"), "-t", "role", "codis.ha.codis_ha"], tmp_path,
                    env={"ANSIBLE_COLLECTIONS_PATH": str(install)})
    for needle in ("codis_ha_scheduler", "codis_ha_interval", "codis_ha_on_failover_command", "absent"):
        assert needle in role_doc
    # An execution environment: ansible-builder finds the installed collection's Python dependencies through
    # meta/execution-environment.yml, and the example definition renders a build context.
    found = _run([str(BIN / "ansible-builder"), "introspect", str(install)], tmp_path)
    for library in ("redis", "requests", "kazoo", "etcd3gw"):
        assert "'%s>=" % library in found and "from collection codis.ha" in found, found
    _run([str(BIN / "ansible-builder"), "create", "-f", str(tree / "examples" / "execution-environment.yml"),
          "-c", str(tmp_path / "ee")], tmp_path)
    [containerfile] = [p for p in (tmp_path / "ee").iterdir() if p.name in ("Containerfile", "Dockerfile")]
    assert "ansible-galaxy collection install" in containerfile.read_text()


def test_ansible_lint_production_profile(tree: Path) -> None:
    lint = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--nocolor", "--profile", "production",
                           "roles/codis_ha", "examples"], cwd=tree, capture_output=True, text=True, timeout=600,
                          check=False, env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(tree.parents[2])})
    out = lint.stdout + lint.stderr
    assert lint.returncode == 0 and "Profile 'production' was required, and it passed" in out, out[-4000:]


def test_ansible_test_sanity_with_empty_ignores(tree: Path) -> None:
    for ignore in (tree / "tests" / "sanity").glob("ignore-*.txt"):
        assert ignore.read_text().strip() == "", "%s must stay empty" % ignore.name
    _run(["git", "init", "-q"], tree)
    _run(["git", "add", "-A"], tree)
    out = _run([str(BIN / "ansible-test"), "sanity", "--python", "%d.%d" % sys.version_info[:2], "--local"],
               tree, timeout=1200)
    assert "FATAL" not in out


def test_antsibull_docs_lint_collection_docs_is_clean(tree: Path) -> None:
    out = _run([str(BIN / "antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."], tree,
               env={"PATH": "%s:%s" % (BIN, os.environ.get("PATH", ""))})
    assert out.strip() == ""


def test_ansible_test_units(tree: Path) -> None:
    """The pure unit tests (tests/unit/plugins/...) as ansible-test runs them, on this interpreter."""
    out = _run([str(BIN / "ansible-test"), "units", "--local", "--python", "%d.%d" % sys.version_info[:2]], tree,
               env={"PATH": "%s:%s" % (BIN, os.environ.get("PATH", ""))})
    assert " passed" in out and " failed" not in out


def test_ansible_test_integration_target(tree: Path) -> None:
    """tests/integration/targets/codis_ha_module: the module through tasks against the simulator."""
    out = _run([str(BIN / "ansible-test"), "integration", "--local", "--python", "%d.%d" % sys.version_info[:2],
                "codis_ha_module"], tree, env={"PATH": "%s:%s" % (BIN, os.environ.get("PATH", ""))})
    recap = [line for line in out.splitlines() if line.startswith("testhost")]
    assert recap and "failed=0" in recap[-1] and "ok=20" in recap[-1], out[-3000:]


def test_galaxy_importer_accepts_the_built_tarball_without_a_warning(tree: Path, tmp_path: Path) -> None:
    """Galaxy's own import checks (galaxy-importer in .venv-galaxy, scripts/setup_matrix.sh): the content found, the
    docs ansible-doc reads, ansible-lint over everything. Its ansible-test step runs in a container, which CI does
    not have: sanity runs above instead."""
    venv = Path(ROOT) / ".venv-galaxy"
    assert (venv / "bin" / "python").exists(), "no %s: run scripts/setup_matrix.sh (setup.sh does)" % venv
    _run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)], tree)
    [artifact] = tmp_path.glob("codis-ha-*.tar.gz")
    config = tmp_path / "galaxy-importer.cfg"
    config.write_text("[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\nRUN_ANSIBLE_DOC = True\n")
    out = _run([str(venv / "bin" / "python"), "-m", "galaxy_importer.main", str(artifact)], tmp_path, timeout=900,
               env={"GALAXY_IMPORTER_CONFIG": str(config), "PATH": "%s:%s" % (venv / "bin", os.environ["PATH"])})
    assert "Importer processing completed successfully" in out, out[-3000:]
    assert "Loading role codis_ha" in out and "Loading module codis_ha" in out, out[-3000:]
    complaints = [line for line in out.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert complaints == [], complaints


def test_the_docs_site_builds_offline_with_warnings_as_errors() -> None:
    """docs/site/build.sh: the module's page, the role's argument specs and the guides, as HTML."""
    _run(["bash", str(Path(ROOT) / "docs" / "site" / "build.sh")], Path(ROOT), timeout=600)
    html = Path(ROOT) / "build" / "docsite" / "html"
    pages = {"collections/codis/ha/codis_ha_module.html": ("dashboard_url", "skipped_groups"),
             "collections/codis/ha/codis_ha_role.html": ("codis_ha_interval", "codis_ha_scheduler"),
             "guide/user-guide.html": ("codis_ha",), "guide/safety.html": ("Second opinion",),
             "index.html": ("guide/user-guide.html", "collections/index.html")}
    for page, needles in pages.items():
        text = (html / page).read_text()
        assert all(n in text for n in needles), (page, [n for n in needles if n not in text])
