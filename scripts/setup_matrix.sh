#!/usr/bin/env bash
# The older ansible-cores the collection supports (meta/runtime.yml), each in a virtualenv of its own
# (.venv-core/<version>), for `ansible-test units` and the integration target (tests/collection/test_matrix.py);
# and galaxy-importer in .venv-galaxy (it pins attrs and ansible-lint apart from the main .venv). The newest core
# is the main .venv's. Installed side by side, in parallel: about a minute on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

CORES="2.16 2.17 2.18"
pip_quiet() { "$@" -q --disable-pip-version-check 2>&1 | grep -v "^WARNING: Location" || true; }

install_core() {
  local version=$1 venv=.venv-core/$1
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c "import ansible, sys; sys.exit(not ansible.__version__.startswith('$version.'))" \
    2>/dev/null && return 0
  pip_quiet "$venv/bin/python" -m pip install "ansible-core==$version.*" -r requirements.txt \
    pytest pytest-mock pytest-xdist hypothesis
  "$venv/bin/python" -c "import ansible; assert ansible.__version__.startswith('$version.'), ansible.__version__"
}

install_galaxy_importer() {
  [ -x .venv-galaxy/bin/python ] || python3 -m venv .venv-galaxy
  .venv-galaxy/bin/python -c "import galaxy_importer" 2>/dev/null && return 0
  pip_quiet .venv-galaxy/bin/python -m pip install galaxy-importer
  .venv-galaxy/bin/python -c "import galaxy_importer"
}

pids=()
for version in $CORES; do
  install_core "$version" & pids+=($!)
done
install_galaxy_importer & pids+=($!)
for pid in "${pids[@]}"; do
  wait "$pid"
done
