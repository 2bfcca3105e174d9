"""The data as a run trains on it: tensors on the device, states and rewards normalized as the
algorithm's config asks, and the facts a result compares itself with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from d4rl_lite.algorithms.base import training_settings
from d4rl_lite.datasets.offline import OfflineDataset


@dataclass(frozen=True)
class RewardTransform:
    """The rewards the critics learn: ``multiplier * r + bias`` of the data's (and the env's) rewards."""

    multiplier: float = 1.0
    bias: float = 0.0

    def discounted(self, raw_discounted: np.ndarray, lengths: np.ndarray, gamma: float) -> np.ndarray:
        """sum_t gamma^t (multiplier r_t + bias) over episodes of ``lengths`` steps, from their
        raw ``sum_t gamma^t r_t``: what a critic's value at an episode's first state estimates."""
        return self.multiplier * raw_discounted + self.bias * (1.0 - gamma ** lengths) / (1.0 - gamma)


def prepare_data(dataset: OfflineDataset, algo: Any) -> tuple[Any, float, RewardTransform]:
    """Tensors on the algorithm's device, normalized as its config asks; returns (data, max
    |reward| as trained, the reward transform applied)."""
    cfg = training_settings(algo.config)
    data = dataset.to_torch(algo.device)
    t = data.tensors
    if cfg.normalize_states:
        stats = dataset.observation_stats()
        mean = torch.as_tensor(stats.mean, device=algo.device)
        std = torch.as_tensor(stats.std, device=algo.device)
        algo.obs_mean.copy_(mean)  # every member of a population gets the same statistics
        algo.obs_std.copy_(std)
        for key in ("observations", "next_observations"):
            t[key] = (t[key] - mean) / std
    multiplier = dataset.return_range_scale(1000.0) if cfg.normalize_reward else 1.0  # IQL on locomotion: returns spread over 1000
    if multiplier != 1.0:
        t["rewards"] = t["rewards"] * multiplier
    scale, bias = cfg.reward_scale, cfg.reward_bias
    if scale != 1.0 or bias != 0.0:
        t["rewards"] = t["rewards"] * scale + bias
    return data, float(t["rewards"].abs().max()), RewardTransform(float(multiplier * scale), float(bias))


def data_facts(dataset: OfflineDataset, task: Any, trained_rewards: torch.Tensor, gamma: float) -> dict[str, Any]:
    """What a result compares itself with (the benchmark's data column and validity checks): the
    normalized score of the data's own protocol episodes (None where it means nothing, see the
    data card), and the mean Monte-Carlo return-to-go of the data's transitions in the rewards
    the critics learn (rescaled as trained) with the run's discount, the yardstick of Q-values; and,
    for a full replay (or a subsample of one), the normalized score of the online agent that
    collected it (its recipe's ``online_agent``), the line offline agents are compared with."""
    from d4rl_lite.datasets.card import compute_card

    normalized = compute_card(dataset, task).get("normalized_return")
    returns, complete = dataset.discounted_returns(gamma, trained_rewards.detach().cpu().numpy())
    agent = ((dataset.metadata.get("recipe") or {}).get("online_agent") or {}).get("normalized_score")
    return {"normalized_return": normalized["mean"] if normalized else None,
            "mc_return": float(returns[complete].mean()) if complete.any() else None,
            **({"online_agent": float(agent)} if agent is not None else {})}
