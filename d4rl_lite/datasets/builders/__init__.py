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

from d4rl_lite.datasets.builders.random import build_random
from d4rl_lite.datasets.catalogue import DatasetName, parse_dataset_name
from d4rl_lite.datasets.storage import EpisodeArrays, write_dataset
from d4rl_lite.errors import D4RLLiteError
from d4rl_lite.tasks import Task, get_task

DEFAULT_SIZE = 1_000_000  # transitions, as D4RL

# A builder turns (task, size, seed, num_envs, progress) into episodes plus its recipe.
BuilderFn = Callable[..., tuple[EpisodeArrays, dict[str, Any]]]


@dataclass(frozen=True)
class Builder:
    kind: str
    domains: tuple[str, ...]
    build: BuilderFn


BUILDERS: dict[str, Builder] = {
    "random": Builder("random", ("locomotion", "maze"), build_random),
}


def builder_for(name: DatasetName) -> Builder | None:
    b = BUILDERS.get(name.kind)
    return b if b is not None and get_task(name.task).domain in b.domains else None


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
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    overwrite: bool = False,
    num_envs: int = 8,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Generate catalogue dataset ``name`` (alias or Minari id) and write it; return its directory."""
    dname = parse_dataset_name(name)
    builder = builder_for(dname)
    if builder is None:
        available = sorted(k for k, b in BUILDERS.items() if get_task(dname.task).domain in b.domains)
        raise D4RLLiteError(
            f"no builder for kind {dname.kind!r} yet: {dname.alias} is in the catalogue but cannot be "
            f"built in this version. Kinds buildable for {dname.task}: {', '.join(available)}."
        )
    if size < 1:
        raise ValueError(f"--size must be at least 1 transition, got {size}")
    task: Task = get_task(dname.task)
    raw, recipe = builder.build(task, size=size, seed=seed, num_envs=num_envs, progress=progress)
    ours = {
        "name": dname.alias,
        "kind": dname.kind,
        "version": dname.version,
        "max_episode_steps": task.horizon,
        "recipe": {"builder": builder.kind, "size": size, "seed": seed, **recipe},
        "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "description": f"{dname.alias}: {task.description}; {recipe.get('description', dname.kind)}",
    }
    return write_dataset(dname.dataset_id, task, raw, ours, root=root, overwrite=overwrite)
