"""Behaviour cloning: regress the dataset's actions (CORL's BC: deterministic actor, MSE, states normalized).

    L(pi) = E_{(s, a) ~ D} || pi(s) - a ||^2"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import (
    AlgorithmConfig,
    OfflineAlgorithm,
    adam,
    mse,
    optimize,
)
from d4rl_lite.algorithms.settings import Layers, LearningRate
from d4rl_lite.nets import DeterministicActor


@dataclass
class BCConfig(AlgorithmConfig):
    actor_hidden: Layers = (256, 256)
    """Hidden layer sizes of the actor."""
    actor_lr: LearningRate = 3e-4
    """Adam learning rate of the actor."""
    normalize_states: bool = True
    """Standardize observations with the dataset's mean and std (on, as in CORL's BC)."""
    renamed = {"lr": ("actor_lr",)}


@register("bc")
class BC(OfflineAlgorithm):
    name = "bc"
    Config = BCConfig
    supports_population = True
    compile_refusal = None  # measured: docs/how-to/compile.md

    def setup(self) -> None:
        self.actor = self.network(lambda: DeterministicActor(self.obs_dim, self.act_dim, self.config.actor_hidden))
        self.actor_opt = adam(self.actor.parameters(), lr=self.config.actor_lr)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = mse(self.actor(batch["observations"]), batch["actions"])
        optimize(self.actor_opt, loss)
        return {"train/actor_loss": loss.detach()}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)
