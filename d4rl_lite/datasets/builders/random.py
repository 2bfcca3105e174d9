"""``random`` datasets: uniform random actions, the ``ref_min`` behaviour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from d4rl_lite.datasets.collect import collect_episodes
from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.envs.policies import UniformRandomPolicy
from d4rl_lite.tasks import Task


def build_random(
    task: Task, *, size: int, seed: int, num_envs: int = 8, progress: Callable[[int], None] | None = None
) -> tuple[EpisodeArrays, dict[str, Any]]:
    # Mazes: the evaluation goal, so rewards score the task the dataset is benchmarked on.
    raw = collect_episodes(task, UniformRandomPolicy(task, seed), size, seed, num_envs,
                           reset_options=task.eval_reset_options(), progress=progress)
    recipe = {
        "policy": "uniform random actions over the action space",
        "action_stream": "numpy default_rng([seed, episode_index])",
        "reset_seed": "SeedSequence([seed, episode_index, 1])",
        "goal_cell": list(task.eval_goal_cell) if task.eval_goal_cell else None,
        "num_envs": num_envs,
        "description": "uniform random actions",
    }
    return raw, recipe
