"""Reference scores (ref_min, ref_max) of the tasks: the shipped ones, a user's re-measured ones on
top, each checked where it is read (a pair that cannot normalize a score is refused naming its file)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

REFERENCE_SCORES_FILE = "reference_scores.json"


@dataclass(frozen=True)
class ReferenceScore:
    """One reference return (ref_min or ref_max) and how it was obtained.

    ``value`` is None while the score is provisional, i.e. not yet measured: the policy or
    controller it comes from does not exist yet. We never store an invented number.
    """

    value: float | None
    provisional: bool
    how: str
    details: dict[str, Any] = field(default_factory=dict)


_reference_cache: dict[str, dict[str, Any]] | None = None


def user_reference_file() -> Path:
    """Where re-measured reference scores go: $D4RL_LITE_REFERENCE_SCORES, else
    ~/.config/d4rl_lite/reference_scores.json. Its entries override the shipped ones (which change
    only by a commit: the package is never written to)."""
    env = os.environ.get("D4RL_LITE_REFERENCE_SCORES")
    return Path(env) if env else Path.home() / ".config" / "d4rl_lite" / REFERENCE_SCORES_FILE


def _load_reference_file() -> dict[str, dict[str, Any]]:
    global _reference_cache
    if _reference_cache is None:
        from d4rl_lite.files import CorruptFileError
        from d4rl_lite.schema import reference_pair_problem

        shipped = Path(str(resources.files("d4rl_lite").joinpath(REFERENCE_SCORES_FILE)))
        merged = _read_reference_file(shipped)
        user = user_reference_file()
        if user.exists():  # a FIFO or a directory there is refused, not skipped
            for task, entry in _read_reference_file(user).items():
                merged[task] = {**merged.get(task, {}), **{k: {**v, "source": str(user)} for k, v in entry.items()}}
        for task, entry in merged.items():  # checked merged: a user's ref_min may clash with a shipped ref_max
            refs = [entry.get(k) or {} for k in ("ref_min", "ref_max")]
            problem = reference_pair_problem(*(r.get("value") for r in refs))
            if problem:
                files = " and ".join(sorted({str(r.get("source", shipped)) for r in refs}))
                raise CorruptFileError(f"{files}: reference scores of {task!r}: {problem}. {_REFERENCE_ADVICE}")
        _reference_cache = merged
    return _reference_cache


_REFERENCE_ADVICE = "Fix or delete it (`d4rl-lite refs --help`: how reference scores are measured)."


def _read_reference_file(path: Path) -> dict[str, dict[str, Any]]:
    from d4rl_lite.files import CorruptFileError, read_json
    from d4rl_lite.schema import TASK_REFERENCES, mismatch

    data = read_json(path, "reference-score file", _REFERENCE_ADVICE)
    problem = mismatch(data, dict) or next((p for task, entry in data.items() if (p := mismatch(entry, TASK_REFERENCES, task))),
                                           None)
    if problem:
        raise CorruptFileError(f"{path}: not a reference-score file ({problem}). {_REFERENCE_ADVICE}")
    return data


def reference_scores(task_name: str) -> dict[str, ReferenceScore]:
    """``{"ref_min": ReferenceScore, "ref_max": ReferenceScore}`` for a task."""
    entry = _load_reference_file().get(task_name, {})
    out = {}
    for key in ("ref_min", "ref_max"):
        raw = dict(entry.get(key) or {})
        value = raw.pop("value", None)
        how = raw.pop("how", "not measured yet")
        raw.pop("provisional", None)
        out[key] = ReferenceScore(value=value, provisional=value is None, how=how, details=raw)
    return out


def store_reference_score(task_name: str, key: str, value: float, how: str, **details: Any) -> Path:
    """Record a measured reference score in the user's reference file (see ``user_reference_file``);
    returns that file. To ship it, copy the entry into the package's reference_scores.json and commit."""
    path = user_reference_file()
    data = _read_reference_file(path) if path.exists() else {}
    data.setdefault(task_name, {})[key] = {"value": value, "how": how, **details}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    global _reference_cache
    _reference_cache = None
    return path
