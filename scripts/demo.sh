#!/usr/bin/env bash
# The main job, end to end: start the simulated Codis cluster, write to group 1, kill its master, and
# run the playbook examples/failover.yml with `ansible-playbook`, which fails the group over.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

state=$(mktemp -d)
trap 'kill "$sim" 2>/dev/null; wait "$sim" 2>/dev/null; rm -rf "$state"' EXIT
.venv/bin/python -m simulator up --groups 3 --slaves 2 --port 0 --control-port 0 \
  --state-file "$state/urls.json" > "$state/sim.log" 2>&1 &
sim=$!
for _ in $(seq 100); do [ -s "$state/urls.json" ] && break; sleep 0.1; done
cat "$state/sim.log"
dashboard=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["dashboard"])' "$state/urls.json")
CODIS_SIM_CONTROL=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["control"])' "$state/urls.json")
export CODIS_SIM_CONTROL

master=$(grep "^group 1:" "$state/sim.log" | grep -o "[0-9.]*:[0-9]*(master)" | cut -d"(" -f1)
echo "== writing 100 keys to group 1, then killing its master $master"
.venv/bin/python -m simulator write 1 --count 100
.venv/bin/python -m simulator kill "$master"

export ANSIBLE_COLLECTIONS_PATH="$PWD/build/collections" ANSIBLE_STDOUT_CALLBACK=default
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
echo "== ansible-playbook examples/failover.yml"
.venv/bin/ansible-playbook examples/failover.yml --diff \
  -e "codis_dashboard_url=$dashboard" -e "ansible_python_interpreter=$PWD/.venv/bin/python"
echo "== the cluster as the simulator sees it now"
.venv/bin/python -m simulator status --brief
