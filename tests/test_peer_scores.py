"""benchmarks/peer_scores.py's --peer-from: d3rlpy's earlier scores are reused only where they were made
the way this run would make them (d3rlpy itself is not needed: its runs here are a file)."""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import peer_scores  # from benchmarks/, put on the path above

SPEC = {"config_class": "CQLConfig", "settings": {"conservative_weight": 10.0}, "actor_hidden": [8, 8],
        "critic_hidden": [8, 8], "actor_cosine_steps": None}
SETTINGS = {"hidden": (8, 8), "normalize_states": True, "target_action": "sampled"}
STEPS = [100, 200]


def earlier_file(tmp_path) -> Path:
    entry = peer_scores.algo_entry(STEPS, SETTINGS, SPEC, {0: {100: 1.0, 200: 2.0}}, {0: {100: 3.0, 200: 4.0}}, [],
                                   {"ours": 5.0, "d3rlpy_train": 6.0, "d3rlpy_eval": 1.0})
    record = {"dataset": peer_scores.DATASET, "updates": 200, "eval_every": 100, "episodes": 2,
              "dataset_checksum": "sha256:aa", "d3rlpy_version": "2.8.1", "algorithms": {"cql": entry}}
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps(record))
    return path


def reuse(path, settings=SETTINGS, spec=SPEC, seeds=(0,), checksum="sha256:aa", **changed):
    args = Namespace(peer_from=str(path), **{"updates": 200, "eval_every": 100, "episodes": 2, **changed})
    return peer_scores.earlier_peer_scores(args, "cql", spec, settings, STEPS, list(seeds), checksum)


def test_the_same_d3rlpy_runs_are_reused_for_another_target_action_of_ours(tmp_path):
    reused = reuse(earlier_file(tmp_path), settings={**SETTINGS, "target_action": "mean"})
    assert reused["scores"] == {0: {100: 3.0, 200: 4.0}}
    assert reused["seconds"] == {"d3rlpy_train": 6.0, "d3rlpy_eval": 1.0}


@pytest.mark.parametrize("change, why", [
    ({"episodes": 3}, "episodes differ"),
    ({"seeds": (0, 1)}, "no seed 1"),
    ({"checksum": "sha256:bb"}, "dataset checksum differ"),
    ({"settings": {**SETTINGS, "normalize_states": False}}, "our shared settings differ"),
    ({"spec": {**SPEC, "settings": {"conservative_weight": 5.0}}}, "d3rlpy settings differ"),
])
def test_runs_made_otherwise_are_refused_with_the_reason(tmp_path, change, why):
    with pytest.raises(SystemExit, match=why):
        reuse(earlier_file(tmp_path), **change)
