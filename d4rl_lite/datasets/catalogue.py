"""Dataset names: the catalogue of task x kind, alias <-> Minari id, and name-or-path resolution."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from d4rl_lite.datasets.subsample import Subsample, split_kind
from d4rl_lite.errors import DatasetNotFoundError, UnknownNameError
from d4rl_lite.tasks import TASKS, get_task

NAMESPACE = "d4rl_lite"
DEFAULT_VERSION = 0

# What each kind of dataset holds; which of them can be built today is the builders' registry.
KINDS: dict[str, dict[str, str]] = {
    "locomotion": {
        "random": "uniform random actions",
        "medium": "stochastic behaviour policy at about 1/3 of expert return",
        "expert": "stochastic expert behaviour policy",
        "medium-replay": "experience collected while the behaviour policy trained up to medium",
        "full-replay": "the whole experience of one behaviour-training run, from its first step to its expert-level step",
        "medium-expert": "medium and expert together",
        "human": "human-like: reaction delay, smoothing, correlated noise, pauses, corrected mistakes",
        "mixed": "weighted mixture of other kinds (--mix random:0.5,medium:0.3,expert:0.2)",
    },
    "maze": {
        "random": "uniform random actions",
        "medium": "degraded controller at about 1/3 of expert return",
        "expert": "planner + PD controller with small noise, driving to the evaluation goal",
        "navigate": "D4RL maze2d: one continuing run, a new random goal on arrival",
        "stitch": "OGBench stitch: short episodes between nearby cells; no episode solves an evaluation task",
        "human": "human-like teleoperation: wandering, overshoot, pauses, corrected wrong turns",
        "explore": "random-direction wandering with high noise",
        "mixed": "weighted mixture of other kinds (--mix stitch:0.7,random:0.3)",
    },
    "antmaze": {
        "random": "uniform random actions",
        "medium": "degraded controller (medium walking skill, detours) to the evaluation goal",
        "play": "D4RL antmaze play: hand-picked start and goal cells, a new goal on arrival",
        "diverse": "D4RL antmaze diverse: random start and goal cells, a new goal on arrival",
        "navigate": "OGBench navigate: random far goal cells, a new one on arrival",
        "stitch": "OGBench stitch: short episodes between nearby cells; no episode solves an evaluation task",
        "explore": "OGBench explore: random headings with heavy action noise",
        "mixed": "weighted mixture of other kinds (--mix diverse:0.7,random:0.3)",
    },
}


@dataclass(frozen=True)
class DatasetName:
    task: str
    kind: str
    version: int = DEFAULT_VERSION

    @property
    def base_kind(self) -> str:
        """The kind whose builder makes it: ``mixed-<label>`` datasets the ``mixed`` builder, a subsample
        (``full-replay-first10pct``) its dataset's kind."""
        kind = split_kind(self.kind)[0]
        return "mixed" if kind.startswith("mixed-") else kind

    @property
    def subsample(self) -> Subsample | None:
        """The part of its kind's dataset this one keeps (``datasets/subsample.py``), or None."""
        return split_kind(self.kind)[1]

    @property
    def alias(self) -> str:
        """D4RL-style short name, e.g. ``hopper-medium-v0``."""
        return f"{self.task}-{self.kind}-v{self.version}"

    @property
    def dataset_id(self) -> str:
        """Minari id, e.g. ``d4rl_lite/hopper/medium-v0``."""
        return f"{NAMESPACE}/{self.task}/{self.kind}-v{self.version}"

    def __str__(self) -> str:
        return self.alias


def catalogue() -> list[DatasetName]:
    """Every standard dataset: each task with each kind of its domain."""
    return [DatasetName(t.name, kind) for t in TASKS.values() for kind in KINDS.get(t.domain, {})]


def _all_names() -> list[str]:
    names = []
    for d in catalogue():
        names += [d.alias, d.dataset_id]
    return names


_VERSIONED = re.compile(r"^(?P<body>.+)-v(?P<version>\d+)$")


def parse_dataset_name(name: str) -> DatasetName:
    """``hopper-medium-v0`` or ``d4rl_lite/hopper/medium-v0`` -> DatasetName (with "did you mean")."""
    unknown = UnknownNameError("dataset", name, _all_names(), "See `d4rl-lite list` for the catalogue.")
    if name.startswith(NAMESPACE + "/"):
        parts = name.split("/")
        if len(parts) != 3:
            raise unknown
        m = _VERSIONED.match(parts[2])
        task_name, kind = parts[1], m["body"] if m else None
    else:
        m = _VERSIONED.match(name)
        task_name = kind = None
        if m:
            # Task names contain hyphens (pointmaze-umaze-dense): take the longest matching prefix.
            for t in sorted(TASKS, key=len, reverse=True):
                if m["body"].startswith(t + "-"):
                    task_name, kind = t, m["body"][len(t) + 1 :]
                    break
    if not m or task_name not in TASKS or not _known_kind(kind, get_task(task_name).domain):
        raise unknown
    return DatasetName(task_name, kind, int(m["version"]))


_MIXED_LABEL = re.compile(r"^mixed-[a-z0-9_]+$")


def _known_kind(kind: str | None, domain: str) -> bool:
    """A kind of the domain, or ``mixed-<label>`` (several named mixtures of one task)."""
    if kind is None:
        return False
    base, sub = split_kind(kind)
    if sub is not None:  # a subsample of a kind: full-replay-first10pct
        return _known_kind(base, domain)
    return kind in KINDS.get(domain, {}) or bool(_MIXED_LABEL.match(kind))


def looks_like_path(name: str | os.PathLike) -> bool:
    s = str(name)
    return isinstance(name, os.PathLike) or os.sep in s.replace(NAMESPACE + "/", "", 1) or Path(s).exists()


def recorded_dataset(name: object) -> DatasetName | None:
    """The catalogue dataset a run's record names (``train`` records the catalogue name, never a path),
    or None when the field is anything else: a path in a record would make a command read whatever
    file the record points at, wherever --root is."""
    if not isinstance(name, str) or looks_like_path(name):
        return None
    try:
        return parse_dataset_name(name)
    except UnknownNameError:
        return None


def locate(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[Path, DatasetName | None]:
    """Where a dataset's ``data`` directory is: from a catalogue name (alias or Minari id) or a path."""
    from d4rl_lite.datasets.locations import dataset_dir_for_id, datasets_root, find_data_dir

    if isinstance(name_or_path, os.PathLike) or (looks_like_path(name_or_path) and not str(name_or_path).startswith(NAMESPACE + "/")):
        return find_data_dir(name_or_path), None
    name = parse_dataset_name(str(name_or_path))
    directory = dataset_dir_for_id(name.dataset_id, root)
    try:
        return find_data_dir(directory), name
    except DatasetNotFoundError:
        raise DatasetNotFoundError(
            f"dataset {name.alias} is not built under {datasets_root(root)}. "
            f"Build it with `d4rl-lite build {name.alias}`, or point to where it was built: --root DIR on the "
            "command line, root=DIR in Python, or MINARI_DATASETS_PATH=DIR."
        ) from None


def is_built(name: DatasetName, root: str | os.PathLike | None = None) -> bool:
    from d4rl_lite.datasets.locations import DATA_DIR, dataset_dir_for_id, METADATA_FILE

    return (dataset_dir_for_id(name.dataset_id, root) / DATA_DIR / METADATA_FILE).is_file()
