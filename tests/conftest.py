"""Make the repository importable as ansible_collections.codis.ha (and the role's runner as codis_ha_runner) and
share the test helpers."""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "codis", "ha")
RUNNER_HOME = os.path.join(ROOT, "roles", "codis_ha", "files")  # holds the runner's package, codis_ha_runner/

if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    try:
        os.symlink(ROOT, LINK)
    except FileExistsError:
        pass
for path in (RUNNER_HOME, COLLECTIONS, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

pytest_plugins = ["tests.helpers"]

from hypothesis import HealthCheck, settings  # noqa: E402

# Profiles: "ci" (default) is what CI runs; "chaos" is the long run recorded in docs/testing.md.
settings.register_profile("ci", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("chaos", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
