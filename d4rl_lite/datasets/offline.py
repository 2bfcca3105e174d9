"""OfflineDataset: the flat transition arrays of a dataset, its episodes, statistics and device copy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from d4rl_lite.errors import UserInputError

FLAT_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


@dataclass
class Episode:
    """A view (no copy) of one episode's transitions."""

    index: int
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum(dtype=np.float64))

    @property
    def terminated(self) -> bool:
        """True when the episode ended in a real termination (not a time limit)."""
        return bool(self.terminals[-1])


@dataclass
class ObservationStats:
    mean: np.ndarray
    std: np.ndarray

    def normalize(self, observations: np.ndarray) -> np.ndarray:
        return (observations - self.mean) / self.std


@dataclass
class OfflineDataset:
    """Flat transitions ``t = 0..N-1`` in episode order, as D4RL's ``qlearning_dataset`` lays them out.

    ``terminals[t]`` is True only for a real termination (bootstrap with ``1 - terminal``);
    ``timeouts[t]`` marks an episode cut by the time limit (or by the dataset's size budget).
    Every episode's last transition has exactly one of the two; no other transition has either.
    ``next_observations[t]`` is the true successor, also at episode ends.
    """

    observations: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32
    rewards: np.ndarray  # (N,) float32
    next_observations: np.ndarray  # (N, obs_dim) float32
    terminals: np.ndarray  # (N,) bool
    timeouts: np.ndarray  # (N,) bool
    episode_lengths: np.ndarray  # (E,) int64, sums to N
    metadata: dict[str, Any] = field(default_factory=dict)

    # -- sizes and episodes ---------------------------------------------------------------
    @property
    def num_transitions(self) -> int:
        return len(self.rewards)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    def __len__(self) -> int:
        return self.num_transitions

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]]).astype(np.int64)

    def episode(self, i: int) -> Episode:
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range: the dataset has {self.num_episodes} episodes")
        i %= self.num_episodes
        start = int(self.episode_starts[i])
        sl = slice(start, start + int(self.episode_lengths[i]))
        return Episode(i, *(getattr(self, name)[sl] for name in FLAT_FIELDS))

    def episodes(self) -> Iterator[Episode]:
        for i in range(self.num_episodes):
            yield self.episode(i)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, float64."""
        if self.num_episodes == 0:
            return np.zeros(0)
        return np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts)

    def discounted_returns(self, gamma: float, rewards: np.ndarray | None = None,
                           tail: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
        """Monte-Carlo return-to-go of every transition, G_t = r_t + gamma G_(t+1) within its episode
        (``rewards``: as trained, e.g. rescaled; default the dataset's), float64; and which
        transitions it is the value of: those of an episode that ended in a terminal state, and of
        an episode cut by a timeout (or a size budget) only those at least k steps before the cut,
        gamma^k <= ``tail``, since a critic bootstraps through a timeout and G_t leaves that out."""
        r = (self.rewards if rewards is None else np.asarray(rewards)).astype(np.float64)
        starts, lengths = self.episode_starts, self.episode_lengths
        if not len(lengths):
            return np.zeros(0), np.zeros(0, bool)
        # Swept from every episode's last step back, all episodes at once: one vector op per step.
        last = starts + lengths - 1
        returns = r.copy()
        for back in range(1, int(lengths.max())):
            live = lengths > back
            idx = last[live] - back
            returns[idx] += gamma * returns[idx + 1]
        episode = np.repeat(np.arange(len(lengths)), lengths)
        step = np.arange(len(r)) - starts[episode]
        ended = self.terminals[starts + lengths - 1].astype(bool)
        horizon = int(np.ceil(np.log(tail) / np.log(gamma))) if 0 < gamma < 1 else 0
        complete = ended[episode] | (lengths[episode] - step >= horizon)
        return returns, complete

    # -- statistics -----------------------------------------------------------------------
    def observation_stats(self, eps: float = 1e-3) -> ObservationStats:
        """Mean and std of observations (std floored at ``eps``), for state normalization."""
        mean = self.observations.mean(axis=0, dtype=np.float64)
        std = self.observations.std(axis=0, dtype=np.float64)
        return ObservationStats(mean.astype(np.float32), np.maximum(std, eps).astype(np.float32))

    def reward_stats(self) -> dict[str, float]:
        r = self.rewards.astype(np.float64)
        returns = self.episode_returns()
        return {
            "mean": float(r.mean()),
            "std": float(r.std()),
            "min": float(r.min()),
            "max": float(r.max()),
            "return_min": float(returns.min()),
            "return_max": float(returns.max()),
        }

    def return_range_scale(self, target_range: float = 1000.0) -> float:
        """Reward scale that maps the spread of episode returns to ``target_range`` (IQL on gym)."""
        returns = self.episode_returns()
        spread = float(returns.max() - returns.min()) if len(returns) else 0.0
        if spread <= 0:
            raise UserInputError("all episode returns are equal: cannot scale rewards by their range")
        return target_range / spread

    # -- views ----------------------------------------------------------------------------
    def select_episodes(self, indices: np.ndarray | list[int]) -> OfflineDataset:
        """A new dataset holding the given episodes (copies), in the given order."""
        indices = np.asarray(indices, dtype=np.int64)
        starts, lengths = self.episode_starts[indices], self.episode_lengths[indices]
        rows = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)]) if len(indices) else np.zeros(0, np.int64)
        arrays = {name: getattr(self, name)[rows] for name in FLAT_FIELDS}
        return OfflineDataset(**arrays, episode_lengths=lengths.copy(), metadata=dict(self.metadata))

    def to_torch(self, device: str = "auto") -> TorchTransitions:
        """The transitions as tensors on ``device`` ("auto" = CUDA when present), for training."""
        return TorchTransitions.from_dataset(self, device)

    def __repr__(self) -> str:
        name = self.metadata.get("name") or self.metadata.get("dataset_id") or "unnamed"
        return (
            f"OfflineDataset({name!r}, transitions={self.num_transitions}, episodes={self.num_episodes}, "
            f"obs_dim={self.observations.shape[1]}, act_dim={self.actions.shape[1]})"
        )


class TorchTransitions:
    """Transition tensors living on one device; minibatches are sampled there without host sync."""

    def __init__(self, tensors: dict[str, Any], device: Any):
        self.tensors = tensors
        self.device = device
        self.size = int(tensors["rewards"].shape[0])

    @classmethod
    def from_dataset(cls, dataset: OfflineDataset, device: str = "auto") -> TorchTransitions:
        import torch

        from d4rl_lite.device import resolve_device

        dev = resolve_device(device)
        tensors = {
            name: torch.as_tensor(np.asarray(getattr(dataset, name), dtype=np.float32), device=dev)
            for name in FLAT_FIELDS
        }
        return cls(tensors, dev)

    def sample(self, batch_size: int, generator: Any = None) -> dict[str, Any]:
        """A uniform minibatch (with replacement) of every field, indices drawn on the device."""
        import torch

        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return {name: t[idx] for name, t in self.tensors.items()}

    def sample_members(self, batch_size: int, generators: list[Any]) -> dict[str, Any]:
        """A population's minibatch (M, batch_size, ...): member m's rows are the ones ``sample``
        draws with ``generators[m]``, as its solo run does."""
        import torch

        idx = torch.stack([torch.randint(0, self.size, (batch_size,), device=self.device, generator=g)
                           for g in generators])
        return {name: t[idx] for name, t in self.tensors.items()}
