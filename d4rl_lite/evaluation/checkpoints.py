"""Rebuild a trained algorithm from its run directory and evaluate it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from d4rl_lite.errors import DatasetNotFoundError, ReferenceScoreUnavailable


def load_run(checkpoint: str | os.PathLike, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """(algorithm with its trained weights, the run's config record) from a run dir or checkpoint.pt."""
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.base import make_config
    from d4rl_lite.tasks import get_task

    path = Path(checkpoint)
    run = path if path.is_dir() else path.parent
    ckpt = run / "checkpoint.pt" if path.is_dir() else path
    if not ckpt.is_file() or not (run / "config.json").is_file():
        raise DatasetNotFoundError(f"no run at {checkpoint}: expected a run directory with config.json and checkpoint.pt "
                                   "(written by `d4rl-lite train`)")
    record = json.loads((run / "config.json").read_text())
    cls = get_algorithm(record["algorithm"])
    cfg = make_config(cls.Config, {k: tuple(v) if isinstance(v, list) else v for k, v in record["algo"].items()})
    task = get_task(record.get("task") or _task_of(record["dataset"]))
    algo = cls(task.observation_dim, task.action_dim, cfg, device=device)
    algo.load_state_dict(torch.load(ckpt, weights_only=False, map_location=algo.device)["algo"])
    return algo, {**record, "task": task.name, "step": algo.step}


def _task_of(dataset: str) -> str:
    from d4rl_lite.datasets.catalogue import parse_dataset_name

    return parse_dataset_name(dataset).task


def evaluate_checkpoint(checkpoint: str | os.PathLike, episodes: int | None = None, root: Any = None) -> dict[str, Any]:
    from d4rl_lite.evaluation.rollout import evaluate
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
