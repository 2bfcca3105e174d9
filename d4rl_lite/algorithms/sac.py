"""Soft Actor-Critic (Haarnoja et al. 2018, automatic entropy tuning version).

Used online to train the behaviour policies of the locomotion datasets, and offline as the
naive off-policy baseline ("sac"): trained on fixed data, its Q-values overestimate, because
nothing keeps the policy near the data.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import (
    AlgorithmConfig,
    OfflineAlgorithm,
    adam,
    frozen,
    optimize,
)
from d4rl_lite.algorithms.settings import Layers, LearningRate, Positive, Rate
from d4rl_lite.nets import QEnsemble, TanhGaussianPolicy, soft_update


@dataclass
class SACConfig(AlgorithmConfig):
    actor_hidden: Layers = (256, 256)
    """Hidden layer sizes of the tanh-Gaussian actor."""
    critic_hidden: Layers = (256, 256)
    """Hidden layer sizes of each of the two critics."""
    actor_lr: LearningRate = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: LearningRate = 3e-4
    """Adam learning rate of the critics."""
    temperature_lr: LearningRate = 3e-4
    """Adam learning rate of the entropy temperature (auto-tuned towards target_entropy)."""
    tau: Rate = 0.005
    """Soft target update rate: the target critics move this fraction towards the online ones per update."""
    init_temperature: Positive = 1.0
    """The entropy temperature (SAC's alpha) at the start."""
    target_entropy: float | None = None
    """Target entropy of the temperature tuning; None: -|A| (minus the action dimension)."""
    renamed = {"alpha_lr": ("temperature_lr",), "init_alpha": ("init_temperature",)}


@register("sac")
class SAC(OfflineAlgorithm):
    name = "sac"
    naive_baseline = True
    Config = SACConfig
    supports_population = True

    def setup(self) -> None:
        cfg = self.config
        self.build(lambda: TanhGaussianPolicy(self.obs_dim, self.act_dim, cfg.actor_hidden),
                   lambda: QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2))

    def build(self, actor: Callable[[], nn.Module], critic: Callable[[], nn.Module]) -> None:
        """SAC's parts from these network factories (in this order: the members' random streams
        depend on it): actor, critics and their targets, the temperature, the three optimizers."""
        cfg = self.config
        self.actor = self.network(actor)
        self.critic = self.network(critic)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = self.member_tensor(math.log(cfg.init_temperature), requires_grad=True)
        self.target_entropy = -float(self.act_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.alpha_opt = adam([self.log_alpha], lr=cfg.temperature_lr)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step on critic, actor and temperature; metrics stay on the device."""
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]
        alpha = self.log_alpha.exp().detach()

        # Critic: soft Bellman backup; bootstrap with 1 - terminal (time-limit ends still bootstrap).
        with torch.no_grad():
            next_act, next_logp = self.actor(next_obs, generator=self.noise)
            q_next = self.critic_target(next_obs, next_act).min(0).values - alpha * next_logp
            target = rew + cfg.gamma * (1.0 - done) * q_next
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(-1).sum(0)  # summed over the two critics
        optimize(self.critic_opt, critic_loss)

        # Actor: maximise min-Q plus entropy; the critic is frozen for this backward pass.
        with frozen(self.critic):
            new_act, logp = self.actor(obs, generator=self.noise)
            q_pi = self.critic(obs, new_act).min(0).values
            actor_loss = (alpha * logp - q_pi).mean(-1)
            optimize(self.actor_opt, actor_loss)

        # Temperature: keep the policy's entropy near the target.
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean(-1)
        optimize(self.alpha_opt, alpha_loss)

        soft_update(self.critic_target, self.critic, cfg.tau)
        return {
            "train/critic_loss": critic_loss.detach(),
            "train/actor_loss": actor_loss.detach(),
            "train/alpha": alpha,
            "train/entropy": -logp.detach().mean(-1),
            "train/q_mean": q.detach().mean((0, -1)),
            "train/q_max": q.detach().amax((0, -1)),
        }

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs, deterministic=True)[0]

    @torch.no_grad()
    def sample_action(self, obs: torch.Tensor, deterministic: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions for online data collection (stochastic unless ``deterministic``)."""
        return self.actor(obs, deterministic=deterministic, generator=generator)[0]
