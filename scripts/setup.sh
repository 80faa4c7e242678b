#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian machine (run as root): Debian's
# redis-server, redis-sentinel and cron, what the role and its tests use (python3-venv, procps, util-linux,
# bsdutils, openssl, systemd for systemd-analyze), the coordinators of the several-watchers tests (Debian's
# zookeeper on a headless JRE, etcd-server), and a virtualenv in .venv with the Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in redis-server redis-sentinel cron python3-venv procps util-linux bsdutils openssl systemd iptables \
    zookeeper default-jre-headless etcd-server; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

# The collection must be importable as ansible_collections.codis.ha.
mkdir -p build/collections/ansible_collections/codis
ln -sfn "$PWD" build/collections/ansible_collections/codis/ha

# ansible-test sanity downloads a pip bootstrap script unless it finds one in its cache; this stand-in
# bootstraps pip with ensurepip instead, so sanity runs on a machine that reaches only package registries.
mkdir -p "$HOME/.ansible/test/cache"
cp scripts/get_pip_standin.py "$HOME/.ansible/test/cache/get_pip_24_2.py"
if ! command -v shellcheck >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends shellcheck >/dev/null 2>&1 || true
fi

# The older ansible-cores of the version matrix and galaxy-importer, each in a virtualenv of its own.
bash scripts/setup_matrix.sh
