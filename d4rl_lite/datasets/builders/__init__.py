"""Dataset builders by kind, and ``build_dataset``: name -> generated, validated dataset on disk."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from d4rl_lite.datasets.builders import antmaze, maze
from d4rl_lite.datasets.builders.human import DEFAULT_HUMAN_SIZE, build_human
from d4rl_lite.datasets.builders.mixed import build_mixed
from d4rl_lite.datasets.builders.policy import build_expert, build_medium, build_medium_expert
from d4rl_lite.datasets.builders.random import build_random
from d4rl_lite.datasets.builders.full_replay import build_full_replay, full_replay_missing
from d4rl_lite.datasets.builders.replay import build_medium_replay
from d4rl_lite.datasets.catalogue import DatasetName, parse_dataset_name
from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.datasets.storage import write_dataset
from d4rl_lite.errors import D4RLLiteError, UserInputError
from d4rl_lite.tasks import Task, get_task

DEFAULT_SIZE = 1_000_000  # transitions, as D4RL

# A builder turns (task, size, seed, num_envs, progress, **options) into episodes plus its recipe;
# a recipe's "card" entry holds measured facts for the data card.
BuilderFn = Callable[..., tuple[EpisodeArrays, dict[str, Any]]]


@dataclass(frozen=True)
class Builder:
    """How one kind is built in one domain."""

    kind: str
    build: BuilderFn
    default_size: int | None = DEFAULT_SIZE  # None: the source decides (medium-replay: the whole replay)
    options: tuple[str, ...] = ()  # keyword options it accepts (--mix, --set knob=value)
    # Whether its source is here for a task (None: always): a full replay exists only where one was exported.
    source_for: Callable[[Task], str | None] | None = None

    def missing_source(self, task: Task) -> str | None:
        """Why this kind cannot be built for ``task`` on this machine, or None when it can."""
        return self.source_for(task) if self.source_for else None


HUMAN_KNOBS = ("reaction_delay", "smoothing", "noise_sigma", "noise_correlation", "pause_prob", "pause_length",
               "mistake_prob", "mistake_length", "skill_spread")

# BUILDERS[domain][kind]
BUILDERS: dict[str, dict[str, Builder]] = {
    "locomotion": {
        "random": Builder("random", build_random),
        "medium": Builder("medium", build_medium),
        "expert": Builder("expert", build_expert),
        "medium-expert": Builder("medium-expert", build_medium_expert, default_size=2 * DEFAULT_SIZE),
        "medium-replay": Builder("medium-replay", build_medium_replay, default_size=None),
        "full-replay": Builder("full-replay", build_full_replay, default_size=None, source_for=full_replay_missing),
        "human": Builder("human", build_human, default_size=DEFAULT_HUMAN_SIZE, options=HUMAN_KNOBS),
        "mixed": Builder("mixed", lambda task, **kw: _build_mixed(task, **kw), options=("mix",)),
    },
    "maze": {
        "random": Builder("random", build_random),
        "medium": Builder("medium", maze.build_medium),
        "expert": Builder("expert", maze.build_expert),
        "navigate": Builder("navigate", maze.build_navigate),
        "stitch": Builder("stitch", maze.build_stitch, options=("distance", "episode_steps")),
        "human": Builder("human", maze.build_human, default_size=50_000),
        "explore": Builder("explore", maze.build_explore),
        "mixed": Builder("mixed", lambda task, **kw: _build_mixed(task, **kw), options=("mix",)),
    },
    "antmaze": {
        "random": Builder("random", build_random),
        "medium": Builder("medium", antmaze.build_medium),
        "play": Builder("play", antmaze.build_play),
        "diverse": Builder("diverse", antmaze.build_diverse),
        "navigate": Builder("navigate", antmaze.build_navigate),
        "stitch": Builder("stitch", antmaze.build_stitch, options=("distance", "episode_steps")),
        "explore": Builder("explore", antmaze.build_explore),
        "mixed": Builder("mixed", lambda task, **kw: _build_mixed(task, **kw), options=("mix",)),
    },
}


def _build_mixed(task: Task, **kwargs: Any) -> tuple[EpisodeArrays, dict[str, Any]]:
    """A mixture of its domain's other kinds (the registry is handed over: mixed.py imports no registry)."""
    return build_mixed(task, components=BUILDERS[task.domain], **kwargs)


def builder_for(name: DatasetName) -> Builder | None:
    return BUILDERS[get_task(name.task).domain].get(name.base_kind)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("d4rl-lite", "numpy", "gymnasium", "gymnasium-robotics", "mujoco", "minari", "h5py", "torch"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def build_dataset(
    name: str,
    *,
    size: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    overwrite: bool = False,
    num_envs: int = 8,
    progress: Callable[[int], None] | None = None,
    subsample: str | None = None,
    **options: Any,
) -> Path:
    """Generate catalogue dataset ``name`` (alias or Minari id) and write it; return its directory.

    ``size`` defaults to the kind's default (1M transitions as D4RL; medium-expert 2M; human 25k,
    maze human 50k; medium-replay the whole replay). ``options`` go to the builder: ``mix="random:0.5,expert:0.5"``
    for mixed datasets, human-profile knobs (``reaction_delay=5``, ...) for human ones.
    """
    dname = subsample_name(name, subsample) if subsample else parse_dataset_name(name)
    builder = builder_for(dname)
    task: Task = get_task(dname.task)
    if builder is None:
        available = sorted(BUILDERS[task.domain])
        raise D4RLLiteError(
            f"no builder for kind {dname.kind!r} yet: {dname.alias} is in the catalogue but cannot be "
            f"built in this version. Kinds buildable for {dname.task}: {', '.join(available)}."
        )
    unknown = set(options) - set(builder.options)
    if unknown:
        raise UserInputError(f"{dname.kind} datasets take no option(s) {sorted(unknown)}"
                         + (f"; they take: {', '.join(builder.options)}" if builder.options else ""))
    size = builder.default_size if size is None else size
    if size is not None and size < 1:
        raise UserInputError(f"--size must be at least 1 transition, got {size}")
    if seed < 0:
        raise UserInputError(f"--seed must be >= 0, got {seed}")
    from d4rl_lite.datasets.locations import dataset_dir_for_id, datasets_root
    from d4rl_lite.datasets.workspace import check_room_for, remove_stale_temporaries
    from d4rl_lite.locking import RunDirLock

    final = dataset_dir_for_id(dname.dataset_id, root)
    if final.exists() and not overwrite:
        if built_as_asked(dname, size, seed, options, root):
            return final  # the same build again: nothing to do (its files were just verified)
        raise FileExistsError(f"dataset {dname.alias} already exists at {final} with another "
                              f"{_what_differs(dname, size, seed, options, root)}; pass --force (overwrite=True) to "
                              "replace it")
    if size is not None:
        check_room_for(task, size, datasets_root(root))
    # One build of a name at a time: a second concurrent build fails at once instead of racing the first.
    lock = RunDirLock(datasets_root(root) / ".locks" / dname.dataset_id.replace("/", "__"), what="dataset",
                      advice="it is being built right now; wait for that build to finish")
    lock.acquire()
    try:
        remove_stale_temporaries(datasets_root(root))
        return _build_locked(dname, builder, task, size, seed, root, overwrite, num_envs, progress, options)
    finally:
        lock.release()


def _requested_recipe(size: int | None, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """What identifies a build: size, seed and the options given (recorded only when there are some)."""
    return {"size": size, "seed": seed, **({"options": dict(sorted(options.items()))} if options else {})}


def built_recipe(dname: DatasetName, root: str | os.PathLike | None) -> dict[str, Any] | None:
    """The identifying part of a built dataset's recipe, from its verified metadata (None: none built)."""
    from d4rl_lite.datasets.catalogue import is_built
    from d4rl_lite.datasets.locations import dataset_dir_for_id
    from d4rl_lite.datasets.storage import OUR_KEY, read_verified_metadata

    if not is_built(dname, root):
        return None
    recipe = read_verified_metadata(dataset_dir_for_id(dname.dataset_id, root) / "data")[OUR_KEY].get("recipe") or {}
    return {k: recipe[k] for k in ("size", "seed", "options") if k in recipe}


def built_as_asked(name: str | DatasetName, size: int | None, seed: int, options: dict[str, Any] | None = None,
                   root: str | os.PathLike | None = None) -> bool:
    """True when ``name`` is built (and verified) with this size (None: the kind's default), seed and options."""
    from d4rl_lite.datasets.locations import dataset_dir_for_id
    from d4rl_lite.datasets.storage import load_from_dir

    dname = parse_dataset_name(name) if isinstance(name, str) else name
    builder = builder_for(dname)
    if builder is None:
        return False
    size = builder.default_size if size is None else size
    if built_recipe(dname, root) != _requested_recipe(size, seed, options or {}):
        return False  # told from the metadata alone: a dataset of another recipe is not read whole
    # Every array is checked: "already built" is only said of a dataset that reads back intact.
    load_from_dir(dataset_dir_for_id(dname.dataset_id, root) / "data")
    return True


def _what_differs(dname: DatasetName, size: int | None, seed: int, options: dict[str, Any],
                  root: str | os.PathLike | None) -> str:
    built = built_recipe(dname, root) or {}
    asked = _requested_recipe(size, seed, options)
    return ", ".join(f"{k} ({built.get(k)!r}; asked {asked.get(k)!r})" for k in ("size", "seed", "options")
                     if built.get(k) != asked.get(k)) or "recipe"


def subsample_name(name: str, spec: str) -> DatasetName:
    """The catalogue name of ``name``'s subsample ``spec`` (``first:0.1`` -> ``...-first10pct-v0``)."""
    from d4rl_lite.datasets.subsample import Subsample

    base = parse_dataset_name(name)
    if base.subsample is not None:
        raise UserInputError(f"{name} is a subsample already; subsample {base.task}-{base.base_kind}-v{base.version} instead")
    return DatasetName(base.task, f"{base.kind}-{Subsample.parse(spec).label}", base.version)


def _build_locked(dname, builder, task, size, seed, root, overwrite, num_envs, progress, options) -> Path:
    raw, recipe = builder.build(task, size=size, seed=seed, num_envs=num_envs, progress=progress, **options)
    if dname.subsample is not None:  # whole episodes by collection order or at random, seeded by the build's seed
        raw, recipe["subsample"] = dname.subsample.apply(raw, seed)
        recipe["description"] = f"{recipe.get('description', dname.base_kind)}; subsample {dname.subsample.spec}"
        recipe.setdefault("card", {})["subsample"] = (
            f"{dname.subsample.spec}: {recipe['subsample']['kept_episodes']:,} of {recipe['subsample']['of_episodes']:,} "
            f"episodes ({recipe['subsample']['kept_transitions']:,} of {recipe['subsample']['of_transitions']:,} transitions)")
    card_extras = recipe.pop("card", {})
    ours = {
        "name": dname.alias,
        "kind": dname.kind,
        "version": dname.version,
        "max_episode_steps": recipe.get("episode_steps", task.horizon),  # stitch segments are shorter
        "recipe": {"builder": builder.kind, **_requested_recipe(size, seed, options), **recipe},
        "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "description": f"{dname.alias}: {task.description}; {recipe.get('description', dname.kind)}",
        "card_extras": card_extras,
    }
    return write_dataset(dname.dataset_id, task, raw, ours, root=root, overwrite=overwrite)
