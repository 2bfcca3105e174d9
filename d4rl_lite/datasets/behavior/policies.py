"""Committed behaviour policies: each task's ladder of SAC actors, its card, and loading them as policies.

Layout, inside the package (``d4rl_lite/datasets/behavior/zoo/<task>/``)::

    card.json                 expert and medium choices with 100-episode returns, training facts
    ladder.json               every ladder entry: step, file, evaluated returns
    ladder/step_*.safetensors actor weights (TanhGaussianPolicy, hidden sizes in card.json)
    curve.csv, curve.png      the training curve
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4rl_lite.algorithms.nets import TanhGaussianPolicy
from d4rl_lite.errors import D4RLLiteError
from d4rl_lite.tasks import Task, get_task


def zoo_dir(task_name: str) -> Path:
    """Where a task's committed policies are: the package's zoo, or $D4RL_LITE_ZOO/<task> when set."""
    root = os.environ.get("D4RL_LITE_ZOO")
    base = Path(root) if root else Path(str(resources.files("d4rl_lite").joinpath("datasets", "behavior", "zoo")))
    return base / task_name


def read_card(task_name: str) -> dict[str, Any]:
    path = zoo_dir(task_name) / "card.json"
    if not path.is_file():
        raise D4RLLiteError(
            f"no committed behaviour policies for {task_name!r} yet (expected {path}). Train them with "
            f"`d4rl-lite train-behavior {task_name}` and export with `d4rl-lite export-behavior {task_name}`."
        )
    return json.loads(path.read_text())


def load_actor(task: Task, weights: str | Path, hidden: tuple[int, ...]) -> TanhGaussianPolicy:
    from safetensors.torch import load_file

    actor = TanhGaussianPolicy(task.observation_dim, task.action_dim, hidden)
    actor.load_state_dict(load_file(str(weights)))
    return actor.eval().requires_grad_(False)


def load_role(task_name: str, role: str) -> tuple[TanhGaussianPolicy, dict[str, Any]]:
    """The committed ``expert`` or ``medium`` actor of a task, with its card entry."""
    card = read_card(task_name)
    if role not in card:
        raise D4RLLiteError(f"card of {task_name!r} has no {role!r} policy; re-run `d4rl-lite export-behavior {task_name}`")
    entry = card[role]
    actor = load_actor(get_task(task_name), zoo_dir(task_name) / entry["file"], tuple(card["hidden"]))
    return actor, entry


class ActorPolicy:
    """A SAC actor as a data-collection policy (the Policy protocol of evaluate/collect_episodes).

    Stochastic mode samples a = tanh(mu + sigma * eps) as D4RL did, with eps drawn from a stream
    per episode (``default_rng([seed, episode, 2])``), so an episode's noise does not depend on
    which vector-env copy runs it.
    """

    def __init__(self, actor: TanhGaussianPolicy, seed: int = 0, deterministic: bool = False):
        self.actor, self.seed, self.deterministic = actor, seed, deterministic
        self._streams: dict[int, np.random.Generator] = {}

    def start_episode(self, slot: int, episode_index: int) -> None:
        self._streams[slot] = np.random.default_rng([self.seed, episode_index, 2])

    @torch.no_grad()
    def __call__(self, observations: np.ndarray) -> np.ndarray:
        mean, log_std = self.actor.distribution_params(torch.from_numpy(observations))
        if self.deterministic:
            return torch.tanh(mean).numpy()
        eps = np.stack([self._streams[slot].standard_normal(mean.shape[1], dtype=np.float32)
                        for slot in range(len(observations))])
        return torch.tanh(mean + log_std.exp() * torch.from_numpy(eps)).numpy()
