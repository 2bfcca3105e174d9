"""The D4RL-compatible surface: ``make`` (env with ``get_dataset``), ``qlearning_dataset``, scores."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np

from d4rl_lite.datasets.catalogue import NAMESPACE, DatasetName, locate, looks_like_path, parse_dataset_name
from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.datasets.storage import load_from_dir
from d4rl_lite.errors import ReferenceScoreUnavailable
from d4rl_lite.tasks import Task, get_task


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    task: str | None = None,
    verify: bool = True,
) -> OfflineDataset:
    """Load a dataset by catalogue name (``hopper-medium-v0``), Minari id or path.

    ``task`` asserts which task the data must belong to (TaskMismatchError otherwise).
    ``verify`` (default) validates every array and the checksum.
    """
    data_dir, name = locate(name_or_path, root)
    expected = task if task is not None else (name.task if name else None)
    return load_from_dir(data_dir, expected_task=expected, verify=verify)


class OfflineEnv(gym.Wrapper):
    """A task's Gymnasium env that also knows its dataset, like D4RL's ``OfflineEnv``."""

    def __init__(self, env: gym.Env, task: Task, dataset_name: DatasetName, root: str | os.PathLike | None = None,
                 source: str | os.PathLike | None = None):
        super().__init__(env)
        self.task = task
        self.dataset_name = dataset_name
        self._root = root
        self._source = source if source is not None else dataset_name.alias  # a name, or the path make() was given

    @property
    def ref_min_score(self) -> float | None:
        return self.task.ref_min.value

    @property
    def ref_max_score(self) -> float | None:
        return self.task.ref_max.value

    def get_dataset(self) -> dict[str, np.ndarray]:
        """D4RL's keys: observations, actions, rewards, terminals, timeouts (plus next_observations)."""
        ds = load_dataset(self._source, root=self._root, task=self.task.name)
        return _d4rl_dict(ds)

    def get_normalized_score(self, score: Any) -> Any:
        """As D4RL: a fraction, (score - ref_min) / (ref_max - ref_min); multiply by 100 for tables."""
        return get_normalized_score(self.task.name, score)


def make(name: str, root: str | os.PathLike | None = None, **env_kwargs: Any) -> OfflineEnv:
    """``d4rl_lite.make("hopper-medium-v0")``: the task's env with ``get_dataset()``.

    As in D4RL, the env is created even if the dataset is not built yet; ``get_dataset``
    then says how to build it.
    """
    # A dataset directory (not a Minari id): its own metadata names the task (all verified on get_dataset).
    if isinstance(name, os.PathLike) or (looks_like_path(name) and not str(name).startswith(NAMESPACE + "/")):
        from d4rl_lite.datasets.locations import find_data_dir
        from d4rl_lite.datasets.storage import OUR_KEY, read_metadata

        ours = read_metadata(find_data_dir(name))[OUR_KEY]
        dname = parse_dataset_name(str(ours.get("name")))
        task = get_task(str(ours.get("task")))
        return OfflineEnv(task.make_env(**env_kwargs), task, dname, root, source=name)
    dname = parse_dataset_name(name)
    task = get_task(dname.task)
    return OfflineEnv(task.make_env(**env_kwargs), task, dname, root)


def get_normalized_score(task_or_dataset: str, score: Any) -> Any:
    """D4RL's ``get_normalized_score``: a fraction (not percent), for a task or dataset name."""
    try:
        task = get_task(task_or_dataset)
    except LookupError:
        task = get_task(parse_dataset_name(task_or_dataset).task)
    scores = np.asarray(task.normalized_score(score)) / 100.0
    return float(scores) if scores.ndim == 0 else scores


def _d4rl_dict(ds: OfflineDataset) -> dict[str, np.ndarray]:
    return {
        "observations": ds.observations,
        "actions": ds.actions,
        "rewards": ds.rewards,
        "next_observations": ds.next_observations,
        "terminals": ds.terminals,
        "timeouts": ds.timeouts,
    }


def qlearning_dataset(
    env_or_dataset: Any = None,
    dataset: OfflineDataset | dict[str, np.ndarray] | None = None,
    terminate_on_end: bool = False,
    *,
    root: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """Transitions for Q-learning with D4RL's semantics.

    Accepts an ``OfflineEnv`` (from ``make``), a catalogue name, a Minari id, a path, or an
    ``OfflineDataset`` / D4RL-style dict passed as ``dataset``. Transitions that end in a timeout
    are dropped unless ``terminate_on_end`` (their successor is real but the episode was cut,
    as D4RL); terminal transitions are kept with ``terminals = 1``. Unlike D4RL, which takes
    ``observations[t + 1]`` as successor and so pairs an episode's last step with the next
    episode's start, ``next_observations`` here is the true successor everywhere.
    Returns float32 ``terminals`` as D4RL, plus ``timeouts``.
    """
    if dataset is None:
        if isinstance(env_or_dataset, OfflineEnv):
            dataset = load_dataset(env_or_dataset.dataset_name.alias, root=env_or_dataset._root, task=env_or_dataset.task.name)
        elif isinstance(env_or_dataset, OfflineDataset):
            dataset = env_or_dataset
        elif isinstance(env_or_dataset, (str, os.PathLike)):
            dataset = load_dataset(env_or_dataset, root=root)
        else:
            raise TypeError(
                "qlearning_dataset needs an env from d4rl_lite.make, a dataset name or path, or dataset=...; "
                f"got {type(env_or_dataset).__name__}"
            )
    d = _d4rl_dict(dataset) if isinstance(dataset, OfflineDataset) else dataset
    missing = [k for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts") if k not in d]
    if missing:
        raise KeyError(f"dataset dict lacks {missing}; it needs D4RL's keys plus next_observations")
    terminals = np.asarray(d["terminals"], dtype=bool)
    timeouts = np.asarray(d["timeouts"], dtype=bool)
    keep = np.ones(len(terminals), dtype=bool) if terminate_on_end else ~(timeouts & ~terminals)
    return {
        "observations": np.asarray(d["observations"])[keep],
        "actions": np.asarray(d["actions"])[keep],
        "next_observations": np.asarray(d["next_observations"])[keep],
        "rewards": np.asarray(d["rewards"])[keep],
        "terminals": terminals[keep].astype(np.float32),
        "timeouts": timeouts[keep].astype(np.float32),
    }


__all__ = ["OfflineEnv", "ReferenceScoreUnavailable", "get_normalized_score", "load_dataset", "make", "qlearning_dataset"]
