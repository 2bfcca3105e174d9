"""Checks every dataset passes on write and on load; each failure names the file, field and first bad index."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.errors import ChecksumMismatchError, DatasetError
from d4rl_lite.schema import REFERENCE, Range, mismatch, reference_pair_problem
from d4rl_lite.tasks import Task

# Actions may sit on the bound up to float32 rounding.
ACTION_BOUND_TOLERANCE = 1e-5


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over named arrays (name, dtype, shape and little-endian bytes, names sorted)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B"))
    return "sha256:" + h.hexdigest()


def verify_checksum(actual: str, expected: str | None, path: str | Path | None, advice: str) -> None:
    """Compare a computed ``checksum(...)`` with the one recorded in the metadata."""
    if expected is not None and not isinstance(expected, str):
        raise DatasetError(f"metadata checksum is a {type(expected).__name__}, not a 'sha256:...' string", path=path,
                           field="d4rl_lite.checksum", advice=advice)
    if expected is None:
        raise DatasetError(
            "metadata has no array checksum, so its integrity cannot be verified",
            path=path,
            field="d4rl_lite.checksum",
            advice=advice,
        )
    if actual != expected:
        raise ChecksumMismatchError(
            f"stored arrays hash to {actual[:23]}..., but the metadata records {expected[:23]}...: "
            "the data changed after it was written (disk corruption or an edit)",
            path=path,
            field="arrays",
            advice=advice,
        )


def _first(mask: np.ndarray) -> int | None:
    """Index of the first True row of ``mask`` (rows reduced over trailing axes), or None."""
    if mask.ndim > 1:
        mask = mask.reshape(len(mask), -1).any(axis=1)
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


class _Flaw(NamedTuple):
    """The first inconsistency a check found: what is wrong, in which array, at which row."""

    problem: str
    field: str | None = None
    index: int | None = None


def validate_dataset(
    ds: OfflineDataset,
    task: Task,
    *,
    path: str | Path | None = None,
    advice: str = "",
    max_episode_steps: int | None = None,
    check_successors: bool = True,
) -> None:
    """Raise DatasetError at the first inconsistency between ``ds`` and ``task``; return None if sound.

    ``check_successors=False`` skips comparing ``next_observations[t]`` with ``observations[t + 1]``
    inside episodes: for data derived from stored episodes (``EpisodeArrays.to_offline``) that
    holds by construction, and the comparison is the costliest check.
    """
    # The episode lengths say how many transitions there are: an array of another length is the
    # one at fault (not whichever array the count was taken from).
    lengths = np.asarray(ds.episode_lengths)
    n = int(lengths.sum()) if lengths.ndim == 1 and len(lengths) else ds.num_transitions
    limit = task.horizon if max_episode_steps is None else max_episode_steps
    flaw = (_shape_flaw(ds, task, n) or _length_flaw(ds.episode_lengths, n, limit) or _value_flaw(ds, task)
            or _episode_end_flaw(ds, task, n, check_successors))
    if flaw:
        raise DatasetError(flaw.problem, path=path, field=flaw.field, index=flaw.index, advice=advice)


def _shape_flaw(ds: OfflineDataset, task: Task, n: int) -> _Flaw | None:
    """An array whose shape is not ``n`` rows of the task's sizes, or no transitions at all."""
    expected_shapes = {
        "observations": (n, task.observation_dim),
        "next_observations": (n, task.observation_dim),
        "actions": (n, task.action_dim),
        "rewards": (n,),
        "terminals": (n,),
        "timeouts": (n,),
    }
    for name, shape in expected_shapes.items():
        actual = getattr(ds, name).shape
        if actual != shape:
            what = "observation size" if "observations" in name else "shape"
            return _Flaw(f"{what} mismatch for task {task.name!r}: expected shape {shape}, found {actual}", name)
    if n == 0:
        return _Flaw("the dataset holds no transitions", "rewards")
    return None


def _length_flaw(lengths: np.ndarray, n: int, limit: int) -> _Flaw | None:
    """Episode lengths that are empty, do not add up to ``n``, or exceed ``limit`` steps."""
    if lengths.ndim != 1 or (lengths < 1).any():
        return _Flaw("every episode must hold at least one transition", "episode_lengths", _first(lengths < 1))
    if int(lengths.sum()) != n:
        return _Flaw(f"episode lengths sum to {int(lengths.sum())}, but there are {n} transitions", "episode_lengths")
    if (lengths > limit).any():
        i = _first(lengths > limit)
        return _Flaw(f"episode {i} has {int(lengths[i])} steps, more than the limit of {limit}", "episode_lengths", i)
    return None


def _value_flaw(ds: OfflineDataset, task: Task) -> _Flaw | None:
    """A wrong dtype, a non-finite value, or an action outside the action space."""
    for name in ("observations", "next_observations", "actions", "rewards"):
        arr = getattr(ds, name)
        if arr.dtype != np.float32:
            return _Flaw(f"dtype must be float32, found {arr.dtype}", name)
        if np.isfinite(arr).all():  # the common case, without building an index
            continue
        bad = _first(~np.isfinite(arr))
        if bad is not None:
            return _Flaw(f"non-finite value ({arr[bad].ravel()[~np.isfinite(arr[bad].ravel())][0]})", name, bad)
    for name in ("terminals", "timeouts"):
        if getattr(ds, name).dtype != np.bool_:
            return _Flaw(f"dtype must be bool, found {getattr(ds, name).dtype}", name)
    low = task.action_space.low - ACTION_BOUND_TOLERANCE
    high = task.action_space.high + ACTION_BOUND_TOLERANCE
    bad = _first((ds.actions < low) | (ds.actions > high))
    if bad is not None:
        return _Flaw(f"action {np.round(ds.actions[bad], 4).tolist()} outside the action space "
                     f"[{task.action_space.low.min()}, {task.action_space.high.max()}]", "actions", bad)
    return None


def _episode_end_flaw(ds: OfflineDataset, task: Task, n: int, check_successors: bool) -> _Flaw | None:
    """Episode ends: exactly one of terminal / timeout, only at an episode's last step (terminal only
    where the task can terminate); with ``check_successors``, each successor inside an episode is
    the next step's observation."""
    last = np.zeros(n, dtype=bool)
    last[np.cumsum(ds.episode_lengths) - 1] = True
    term, tout = ds.terminals, ds.timeouts
    checks = [
        (term & tout, "transition is marked both terminal and timeout; a real termination is terminal only", "timeouts"),
        (term & ~last, "terminal flag inside an episode (not at its last step): episode boundaries are inconsistent",
         "terminals"),
        (tout & ~last, "timeout flag inside an episode (not at its last step): episode boundaries are inconsistent",
         "timeouts"),
        (last & ~(term | tout), "episode ends with neither a terminal nor a timeout flag", "terminals"),
    ]
    if not task.can_terminate:
        checks.append((term, f"terminal flag, but task {task.name!r} never terminates (time limits are timeouts)",
                       "terminals"))
    for mask, problem, field in checks:
        bad = _first(mask)
        if bad is not None:
            return _Flaw(problem, field, bad)
    # Inside an episode the successor of step t is the observation of step t + 1.
    inner = np.flatnonzero(~last) if check_successors else []
    if len(inner):
        bad = _first(ds.next_observations[inner] != ds.observations[inner + 1])
        if bad is not None:
            return _Flaw("next_observations[t] differs from observations[t + 1] inside an episode", "next_observations",
                         int(inner[bad]))
    return None


# -- metadata.json: the fields d4rl_lite reads, with their types -----------------------------------
_CELL = [int]
_CERTIFICATE = {"coverage": float, "free_cells": int, "single_episode_solutions": int, "episodes_reaching_eval_goal": int,
                "tasks": [{"start": _CELL, "goal": _CELL, "shortest_path_cells": int, "single_episode": bool,
                           "min_segments": (int, None)}]}
METADATA_SPEC = {
    "total_episodes": Range(int, 1),
    "total_steps": Range(int, 1),
    "dataset_id?": str,
    "ref_min_score?": float,
    "ref_max_score?": float,
    "d4rl_lite": {
        "format_version?": Range(int, 1),
        "task": str,
        **{f"{key}?": str for key in ("name", "kind", "dataset_id", "created", "description", "checksum",
                                      "metadata_checksum")},
        "max_episode_steps?": (Range(int, 1), None),
        "flat_observation?": ([str], None),
        "recipe?": dict,
        "versions?": dict,
        "card?": {"stitching_certificate?": (_CERTIFICATE, None)},
        "reference?": {"ref_min?": REFERENCE, "ref_max?": REFERENCE},
    },
}


def check_metadata(meta: dict[str, Any], path: Path, advice: str) -> None:
    """Refuse metadata whose fields have the wrong type or range, or whose reference scores cannot
    normalize a score: one ``DatasetError`` naming the field (a checksum, anyone can recompute)."""
    ours = meta["d4rl_lite"]
    reference = ours.get("reference") if isinstance(ours.get("reference"), dict) else {}
    problem = (mismatch(meta, METADATA_SPEC)
               or reference_pair_problem(meta.get("ref_min_score"), meta.get("ref_max_score"))
               or reference_pair_problem(*((reference.get(k) or {}).get("value") for k in ("ref_min", "ref_max"))))
    if problem:
        raise DatasetError(f"metadata: {problem}", path=path, advice=advice)
