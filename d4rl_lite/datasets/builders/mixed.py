"""``mixed``: a weighted mixture of other kinds, e.g. ``random:0.5,medium:0.3,expert:0.2``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.errors import UserInputError
from d4rl_lite.tasks import Task


def parse_mix(spec: str) -> list[tuple[str, float]]:
    """``"random:0.5,medium:0.3"`` -> [("random", 0.5), ("medium", 0.3)], weights normalised to sum 1."""
    parts = []
    for item in filter(None, (p.strip() for p in spec.split(","))):
        kind, sep, weight = item.rpartition(":")
        try:
            w = float(weight)
        except ValueError:
            w = float("nan")
        if not sep or not kind or not np.isfinite(w) or w <= 0:
            raise UserInputError(f"bad mixture item {item!r} in {spec!r}: write KIND:WEIGHT with a positive weight, "
                             "e.g. random:0.5,medium:0.3,expert:0.2")
        parts.append((kind.strip(), w))
    if not parts:
        raise UserInputError(f"empty mixture {spec!r}: write KIND:WEIGHT,..., e.g. random:0.5,expert:0.5")
    kinds = [k for k, _ in parts]
    if len(set(kinds)) != len(kinds):
        raise UserInputError(f"mixture {spec!r} names a kind twice")
    total = sum(w for _, w in parts)
    return [(k, w / total) for k, w in parts]


def split_sizes(size: int, weights: list[float]) -> list[int]:
    """Integer sizes summing to ``size``, in proportion to ``weights`` (largest remainders get the
    leftover transitions)."""
    w = np.asarray(weights, dtype=float)
    exact = w / w.sum() * size
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: size - sizes.sum()]:
        sizes[i] += 1
    return sizes.tolist()


def component_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index, 3]).generate_state(1)[0] % 2**31)


def build_mixed(task: Task, *, size: int, seed: int, num_envs: int, mix: str | None = None,
                progress: Callable[[int], None] | None = None,
                components: dict[str, Any]) -> tuple[EpisodeArrays, dict[str, Any]]:
    """A mixture of the kinds ``components`` (the task domain's builders, by kind) can build."""
    if not mix:
        raise UserInputError("a mixed dataset needs its mixture: --mix KIND:WEIGHT,... (e.g. random:0.5,medium:0.3,expert:0.2)")
    parts = parse_mix(mix)
    usable = {k: b for k, b in components.items() if k != "mixed"}
    for kind, _ in parts:
        if kind not in usable:
            raise UserInputError(f"mixture kind {kind!r} cannot be built for {task.name}; usable kinds: {', '.join(sorted(usable))}")
    sizes = split_sizes(size, [w for _, w in parts])
    arrays, recipes = [], []
    for i, ((kind, weight), n) in enumerate(zip(parts, sizes)):
        if n == 0:
            continue
        s = component_seed(seed, i)
        raw, recipe = usable[kind].build(task, size=n, seed=s, num_envs=num_envs, progress=progress)
        recipe.pop("card", None)  # per-part card facts; the mixture's card is computed on the whole
        arrays.append(raw)
        recipes.append({"kind": kind, "weight": weight, "size": n, "seed": s, **recipe})
    raw = EpisodeArrays.concatenate(arrays)
    recipe = {"mix": ",".join(f"{k}:{w:g}" for k, w in parts), "parts": recipes, "num_envs": num_envs,
              "description": "mixture of " + ", ".join(f"{k} {w:.0%}" for k, w in parts)}
    if task.domain == "maze":
        from d4rl_lite.datasets.maze.certificate import stitching_certificate

        recipe["card"] = {"stitching_certificate": stitching_certificate(raw, task)}
    return raw, recipe
