"""Rebuild a trained algorithm from its run directory and evaluate it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from d4rl_lite.errors import D4RLLiteError, DatasetNotFoundError, ReferenceScoreUnavailable


def load_run(checkpoint: str | os.PathLike, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """(algorithm with its trained weights, the run's config record) from a run directory or its checkpoint.

    The checkpoint is verified (checksum) and must belong to the run its directory's config.json
    describes; either file damaged, edited or swapped is one ``D4RLLiteError`` naming the file.
    """
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import make_config
    from d4rl_lite.training.loop import non_finite_parts
    from d4rl_lite.training.run_files import CHECKPOINT, CONFIG, check_identity, checked_step, checkpoint_identity
    from d4rl_lite.files import CorruptFileError, load_state, read_record
    from d4rl_lite.tasks import get_task

    path = Path(checkpoint)
    run = path if path.is_dir() else path.parent
    ckpt = run / CHECKPOINT if path.is_dir() else path
    if (run / "checkpoint.pt").exists() and not ckpt.is_file():
        raise D4RLLiteError(f"{run / 'checkpoint.pt'}: a pickle checkpoint from an older d4rl-lite; it is not read "
                            "(a pickle can run code when loaded). Train the run again with this version.")
    if not ckpt.is_file() or not (run / CONFIG).is_file():
        raise DatasetNotFoundError(f"no run at {checkpoint}: expected a run directory with {CONFIG} and {CHECKPOINT} "
                                   "(written by `d4rl-lite train`)")
    record = read_record(run / CONFIG, "run config")
    identity = checkpoint_identity(record)
    record.pop("checksum", None)
    try:
        cls = get_algorithm(record["algorithm"])
        cfg = make_config(cls.Config, {k: tuple(v) if isinstance(v, list) else v for k, v in record["algo"].items()})
        task = get_task(record.get("task") or _task_of(record["dataset"]))
    except (KeyError, TypeError, AttributeError) as e:
        raise CorruptFileError(f"{run / CONFIG}: not a run configuration (missing or malformed {e})") from None
    state = load_state(ckpt, map_location=device)
    check_identity(state, identity, ckpt)
    algo = cls(task.observation_dim, task.action_dim, cfg, device=device)
    try:
        algo.load_state_dict(state["algo"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CorruptFileError(f"{ckpt}: weights do not fit {record['algorithm']} ({str(e).splitlines()[0][:120]})") from None
    if bad := non_finite_parts(algo.state_dict()):
        raise CorruptFileError(f"{ckpt}: holds non-finite values in {', '.join(bad)} (a diverged run's state, which "
                               "training never saves); it cannot act. Delete the run directory and train again.")
    return algo, {**record, "task": task.name, "step": checked_step(state.get("step"), ckpt)}


def _task_of(dataset: str) -> str:
    from d4rl_lite.datasets.catalogue import parse_dataset_name

    return parse_dataset_name(dataset).task


def evaluate_checkpoint(checkpoint: str | os.PathLike, episodes: int | None = None, root: Any = None) -> dict[str, Any]:
    from d4rl_lite.evaluation.evaluate import evaluate
    from d4rl_lite.tasks import get_task

    algo, record = load_run(checkpoint)
    task = get_task(record["task"])
    result = evaluate(task, algo, episodes=episodes)
    out: dict[str, Any] = {"algorithm": record["algorithm"], "dataset": record["dataset"], "step": record["step"],
                           **result.summary()}
    try:
        out["normalized_mean"] = float(task.normalized_score(result.returns.mean()))
    except ReferenceScoreUnavailable:
        out["normalized_mean"] = "n/a (ref_max not measured yet)"
    return out
