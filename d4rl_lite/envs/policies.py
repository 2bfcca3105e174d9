"""What drives env copies: the Policy protocol, and the uniform random policy the random datasets and
the ref_min measurements use."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from d4rl_lite.tasks import Task


class Policy(Protocol):
    """What ``evaluate`` drives: flat float32 observations (batch, obs_dim) -> actions.

    A policy may also define ``start_episode(slot, episode_index)``, called when the vector
    env's copy ``slot`` starts evaluation episode ``episode_index`` (used to give stochastic
    policies a per-episode random stream, so results do not depend on the number of copies).
    """

    def __call__(self, observations: np.ndarray) -> np.ndarray: ...


class UniformRandomPolicy:
    """Uniform random actions; episode ``i`` draws from its own stream seeded by (seed, i)."""

    def __init__(self, task: Task, seed: int = 0):
        self.low = task.action_space.low.astype(np.float32)
        self.high = task.action_space.high.astype(np.float32)
        self.seed = seed
        self._streams: dict[int, np.random.Generator] = {}

    def start_episode(self, slot: int, episode_index: int) -> None:
        self._streams[slot] = np.random.default_rng([self.seed, episode_index])

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return np.stack(
            [self._streams[slot].uniform(self.low, self.high) for slot in range(len(observations))]
        ).astype(np.float32)
