#!/usr/bin/env bash
# The docs site: antsibull-docs renders the module's documentation and the role's argument specs to rst, the user
# guide and the safety argument come in as Markdown, and Sphinx builds HTML with warnings as errors, offline.
# Output: build/docsite/html (index.html). Needs the main .venv (antsibull-docs, sphinx, sphinx-ansible-theme,
# myst-parser: requirements-dev.txt) and build/collections (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/docsite
rm -rf "$out"
mkdir -p "$out/rst/guide"
cp -r docs/site/rst/. "$out/rst/"
cp docs/user-guide.md docs/safety.md "$out/rst/guide/"
chmod og-w "$out/rst"  # antsibull-docs wants its directory writable by itself only
bin=.venv/bin
PATH="$PWD/$bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$PWD/build/collections" "$bin/antsibull-docs" --config-file docs/site/antsibull-docs.cfg \
  collection --use-current --dest-dir "$out/rst" codis.ha
"$bin/sphinx-build" -q -b html -c docs/site -W --keep-going "$out/rst" "$out/html"
