#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The real Codis binaries (tests/e2e/test_real_codis.py): built from ../shared/codis with Debian's golang-go,
# cached in build/codis (about a minute the first time).
bash scripts/build_codis.sh
# Two workers (pytest-xdist): most tests wait on processes, sockets and timeouts. Tests that install on this host
# and share its cron daemon carry xdist_group("host") and run in one worker (--dist loadgroup).
exec .venv/bin/python -m pytest -q -ra -n 2 --dist loadgroup "$@"
