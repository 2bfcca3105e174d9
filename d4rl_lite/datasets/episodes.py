"""Episodes as stored (each episode's observations hold its final one too) and their flat training view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.errors import DatasetError
from d4rl_lite.tasks import Task


@dataclass
class EpisodeArrays:
    """Episodes as stored: observations per episode hold T + 1 rows (the final observation too).

    ``observations`` is an array, or a dict of arrays for dict observation spaces (mazes).
    The other arrays hold one row per transition, episodes concatenated in order.
    """

    observations: np.ndarray | dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    episode_lengths: np.ndarray

    def __post_init__(self) -> None:
        cast = lambda a, dt: np.ascontiguousarray(a, dtype=dt)  # noqa: E731
        if isinstance(self.observations, dict):
            self.observations = {k: cast(v, np.float32) for k, v in self.observations.items()}
        else:
            self.observations = cast(self.observations, np.float32)
        self.actions = cast(self.actions, np.float32)
        self.rewards = cast(self.rewards, np.float32)
        self.terminations = cast(self.terminations, np.bool_)
        self.truncations = cast(self.truncations, np.bool_)
        self.episode_lengths = cast(self.episode_lengths, np.int64)

    @classmethod
    def concatenate(cls, parts: list[EpisodeArrays]) -> EpisodeArrays:
        """Episodes of ``parts`` one after the other (e.g. medium then expert)."""
        first = parts[0].observations
        if isinstance(first, dict):
            observations: Any = {k: np.concatenate([p.observations[k] for p in parts]) for k in first}
        else:
            observations = np.concatenate([p.observations for p in parts])
        return cls(
            observations=observations,
            actions=np.concatenate([p.actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            terminations=np.concatenate([p.terminations for p in parts]),
            truncations=np.concatenate([p.truncations for p in parts]),
            episode_lengths=np.concatenate([p.episode_lengths for p in parts]),
        )

    def leaves(self) -> dict[str, np.ndarray]:
        """Every stored array by its HDF5 name (episodes concatenated): what the checksum covers."""
        out = {"actions": self.actions, "rewards": self.rewards, "terminations": self.terminations,
               "truncations": self.truncations, "episode_lengths": self.episode_lengths}
        if isinstance(self.observations, dict):
            out.update({f"observations/{k}": v for k, v in self.observations.items()})
        else:
            out["observations"] = self.observations
        return out

    def to_offline(self, task: Task, metadata: dict[str, Any] | None = None) -> OfflineDataset:
        """The flat training view (observation, successor) per transition."""
        lengths = self.episode_lengths
        n = int(lengths.sum())
        flat_obs = task.flatten_observation(self.observations)
        if len(flat_obs) != n + len(lengths):
            raise DatasetError(
                f"observations hold {len(flat_obs)} rows, but {len(lengths)} episodes of {n} transitions "
                f"need {n + len(lengths)} (each episode stores its final observation too)",
                field="observations",
            )
        # Each episode stores T + 1 observation rows: drop its last row for the observations of
        # its transitions, its first row for their successors.
        ends = np.cumsum(lengths + 1)
        is_last = np.zeros(len(flat_obs), dtype=bool)
        is_last[ends - 1] = True
        is_first = np.zeros(len(flat_obs), dtype=bool)
        is_first[ends - lengths - 1] = True
        return OfflineDataset(
            observations=flat_obs[~is_last],
            actions=self.actions,
            rewards=self.rewards,
            next_observations=flat_obs[~is_first],
            terminals=self.terminations,
            timeouts=self.truncations,
            episode_lengths=lengths,
            metadata=dict(metadata or {}),
        )
