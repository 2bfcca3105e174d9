"""``medium``, ``expert`` and ``medium-expert``: actions sampled from committed SAC behaviour policies (as D4RL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from d4rl_lite.datasets.behavior.policies import ActorPolicy, load_role
from d4rl_lite.datasets.collect import collect_episodes
from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.tasks import Task


def rollout_role(task: Task, role: str, *, size: int, seed: int, num_envs: int,
                 progress: Callable[[int], None] | None = None) -> tuple[EpisodeArrays, dict[str, Any]]:
    actor, entry = load_role(task.name, role)
    raw = collect_episodes(task, ActorPolicy(actor, seed), size, seed, num_envs, progress=progress)
    recipe = {
        "policy": f"committed {role} SAC actor, actions sampled (tanh-Gaussian)",
        "policy_file": entry["file"],
        "policy_step": entry["step"],
        "policy_return_100": entry.get("return_mean_100"),
        "noise_stream": "numpy default_rng([seed, episode_index, 2])",
        "reset_seed": "SeedSequence([seed, episode_index, 1])",
        "num_envs": num_envs,
        "description": f"{role} policy, sampled actions",
    }
    return raw, recipe


def build_medium(task: Task, **kw: Any) -> tuple[EpisodeArrays, dict[str, Any]]:
    return rollout_role(task, "medium", **kw)


def build_expert(task: Task, **kw: Any) -> tuple[EpisodeArrays, dict[str, Any]]:
    return rollout_role(task, "expert", **kw)


def build_medium_expert(task: Task, *, size: int, seed: int, num_envs: int,
                        progress: Callable[[int], None] | None = None) -> tuple[EpisodeArrays, dict[str, Any]]:
    """Half medium, half expert (D4RL: 1M + 1M), medium first; the two parts use seeds 2s and 2s + 1."""
    half = size // 2
    medium, r_med = rollout_role(task, "medium", size=half, seed=2 * seed, num_envs=num_envs, progress=progress)
    expert, r_exp = rollout_role(task, "expert", size=size - half, seed=2 * seed + 1, num_envs=num_envs, progress=progress)
    recipe = {"parts": [{"kind": "medium", "size": half, "seed": 2 * seed, **r_med},
                        {"kind": "expert", "size": size - half, "seed": 2 * seed + 1, **r_exp}],
              "num_envs": num_envs, "description": "medium episodes then expert episodes"}
    return EpisodeArrays.concatenate([medium, expert]), recipe
