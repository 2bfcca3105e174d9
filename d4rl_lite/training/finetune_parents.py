"""The finished offline runs a fine-tuning run starts from, verified before anything is opened or written.

A parent's records carry checksums anyone can recompute, so what ``finetune`` relies on is checked
field by field (``PARENT_CONFIG_SPEC``, ``run_files.RESULT_SPEC``): a record edited into another
shape is one line naming the field, never a traceback or a half-made run directory. Its dataset
must be a catalogue name, read under --root: a path there would make a record choose what is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from d4rl_lite.errors import UserInputError
from d4rl_lite.files import CorruptFileError, load_state, read_record, regular_file_exists
from d4rl_lite.schema import Range, mismatch
from d4rl_lite.training.run_files import (
    CHECKPOINT,
    CONFIG,
    DIVERGED,
    RESULT,
    RESULT_SPEC,
    check_identity,
    checked_step,
    checkpoint_identity,
)

# torch's generators take seeds below 2**64; a bigger one overflows where a member is seeded.
MAX_SEED = 2**63 - 1
# What fine-tuning reads of a parent's config.json (``train`` writes all of it).
PARENT_CONFIG_SPEC = {"algorithm": str, "dataset": str, "task?": str, "algo": dict,
                      "train": {"seed": Range(int, 0, MAX_SEED)}, "sweep?": dict}
SCORES = ("eval/normalized_score", "eval/return_mean")


@dataclass
class Parent:
    """A finished offline run, verified: its config record, result, checkpoint state and identity."""

    run: Path
    config: dict[str, Any]
    result: dict[str, Any]
    state: dict[str, Any]
    identity: str

    @property
    def step(self) -> int:
        return self.state["step"]


def read_parent(path: str | Path) -> Parent:
    """The finished offline run at ``path``, verified, or one line saying why it cannot be fine-tuned."""
    run = Path(path)
    has_config = regular_file_exists(run / CONFIG, "run config")
    if not has_config or not regular_file_exists(run / CHECKPOINT, "checkpoint"):
        raise UserInputError(f"{run} is not an offline run (no {CONFIG} and {CHECKPOINT}); give the run directory "
                             "`d4rl-lite train` wrote")
    if not regular_file_exists(run / RESULT, "result"):
        why = "it diverged (diverged.json)" if (run / DIVERGED).is_file() else "it has no result.json yet"
        raise UserInputError(f"{run} is not a finished run: {why}. Fine-tune a run that trained to its end "
                             "(re-run its train command to finish it)")
    config = read_record(run / CONFIG, "run config")
    check_parent_config(config, run)
    result = read_record(run / RESULT, "result")
    check_parent_result(result, config, run)
    state = load_state(run / CHECKPOINT)
    identity = checkpoint_identity(config)
    check_identity(state, identity, run / CHECKPOINT)
    step = checked_step(state.get("step"), run / CHECKPOINT)
    if step != result["steps"]:
        raise UserInputError(f"{run}: its checkpoint is at step {step:,} but its result at step {result['steps']:,}: "
                             "it was continued after its result; finish its train command first")
    return Parent(run, config, result, state, identity)


def check_parent_config(config: dict[str, Any], run: Path) -> None:
    """A parent's config record as ``train`` writes it; one line naming the field otherwise."""
    from d4rl_lite.datasets.catalogue import recorded_dataset

    if "finetune" in config:
        parent = config["finetune"].get("parent") if isinstance(config["finetune"], dict) else None
        raise UserInputError(f"{run} is a fine-tuning run; fine-tune its offline parent"
                             + (f" ({parent})" if isinstance(parent, str) else ""))
    if problem := mismatch(config, PARENT_CONFIG_SPEC):
        raise CorruptFileError(f"{run / CONFIG}: not a run configuration ({problem}); it was edited or damaged. "
                               "Fine-tune a run `d4rl-lite train` wrote")
    dataset = recorded_dataset(config["dataset"])
    if dataset is None:
        raise CorruptFileError(f"{run / CONFIG}: its dataset {config['dataset'][:80]!r} is not a catalogue name (`train` "
                               "records one, e.g. hopper-medium-v0), so it is not read; the record was edited. "
                               "Fine-tune a run `d4rl-lite train` wrote")
    if "task" in config and config["task"] != dataset.task:
        raise CorruptFileError(f"{run / CONFIG}: its task {config['task'][:80]!r} is not its dataset's "
                               f"({dataset.task}); the record was edited. Fine-tune a run `d4rl-lite train` wrote")


def check_parent_result(result: dict[str, Any], config: dict[str, Any], run: Path) -> None:
    """A parent's result as ``train`` writes it, with a finite final score to start the curve from."""
    problem = mismatch(result, RESULT_SPEC)
    final = result.get("final") if isinstance(result.get("final"), dict) else {}
    scores = [key for key in SCORES if key in final]
    if not problem and not scores:
        problem = "final holds no score"
    if not problem:
        problem = next((f"final.{key} must be a finite number, found {final[key]!r}" for key in scores
                        if isinstance(final[key], bool) or not isinstance(final[key], (int, float))
                        or not math.isfinite(final[key])), None)
    if not problem and result["dataset"] != config["dataset"]:
        problem = f"its dataset {result['dataset'][:80]!r} is not its config's ({config['dataset']})"
    if problem:
        raise CorruptFileError(f"{run / RESULT}: not a finished run's result ({problem}); it was edited or damaged. "
                               "Re-run its train command, or fine-tune another run")


def check_directories(parents: list[Path], runs: list[Path]) -> None:
    """Each parent named once and each fine-tuning run in a directory of its own, whatever the spelling
    (``q1`` and ``/abs/q1``, a symlink): compared by their resolved paths."""
    seen: dict[Path, Path] = {}
    for p in parents:
        where = p.resolve()
        if where in seen:
            raise UserInputError(f"{p} given twice (as {seen[where]} and {p}, the same run directory); name each "
                                 "run once")
        seen[where] = p
    mine: dict[Path, Path] = {}
    for d in runs:
        where = d.resolve()
        if where in seen:
            raise UserInputError(f"--run-dir {d} is the offline run {seen[where]} itself; a fine-tuning run writes to a "
                                 "directory of its own (default RUN_DIR__finetune)")
        if where in mine:
            raise UserInputError(f"--run-dir {d} given twice (as {mine[where]} and {d}); every fine-tuning run needs "
                                 "its own run directory")
        mine[where] = d
