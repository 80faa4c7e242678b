"""The state file: what a pass remembers of each group, checked field by field when read back."""
from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.codis.ha.plugins.module_utils._state import load_state, save_state
from ansible_collections.codis.ha.plugins.module_utils._topology import GroupHistory


def test_the_lineage_survives_a_save_and_a_malformed_one_is_dropped_with_a_note(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    lineage = {"a" * 40: 600, "b" * 40: 900}
    save_state(path, {1: GroupHistory(master="10.0.0.1:6379", master_replid="b" * 40, lineage=lineage)})
    history, warnings = load_state(path, now=100.0)
    assert history[1].lineage == lineage and warnings == []
    data = json.loads(Path(path).read_text())
    for bad in ({"a" * 40: -1}, {"a" * 40: True}, ["a"], {"x" * 65: 1}, {str(i): i for i in range(17)}):
        data["groups"]["1"]["lineage"] = bad
        Path(path).write_text(json.dumps(data))
        history, warnings = load_state(path, now=100.0)
        assert history[1].lineage is None and "lineage=" in warnings[0], (bad, warnings)
        assert history[1].master_replid == "b" * 40  # the rest of the record is kept
