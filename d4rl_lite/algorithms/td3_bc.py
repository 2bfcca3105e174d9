"""TD3+BC (Fujimoto & Gu 2021): TD3 with a behaviour-cloning term.

    critics:  L(Q_i) = E_D (Q_i(s, a) - y)^2,
              y = r + gamma (1 - d) min_j Q'_j(s', clip(pi'(s') + clip(eps, -c, c), -1, 1)),  eps ~ N(0, sigma^2)
    actor (every policy_freq updates):
              L(pi) = -lambda E_D Q_1(s, pi(s)) + E_D || pi(s) - a ||^2,  lambda = rl_weight / E_D |Q_1(s, pi(s))|
    (rl_weight is the paper's alpha; c = noise_clip, sigma = policy_noise.)"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import (
    AlgorithmConfig,
    OfflineAlgorithm,
    adam,
    frozen,
    mse,
    optimize,
)
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate, Rate
from d4rl_lite.nets import DeterministicActor, QEnsemble, randn, soft_update


@dataclass
class TD3BCConfig(AlgorithmConfig):
    actor_hidden: Layers = (256, 256)
    """Hidden layer sizes of the actor."""
    critic_hidden: Layers = (256, 256)
    """Hidden layer sizes of each of the two critics."""
    actor_lr: LearningRate = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: LearningRate = 3e-4
    """Adam learning rate of the critics."""
    tau: Rate = 0.005
    """Soft target update rate: target networks move this fraction towards the online ones at each actor update."""
    rl_weight: float = 2.5
    """The paper's alpha: the Q term's weight relative to behaviour cloning, lambda = rl_weight / mean|Q|."""
    policy_noise: float = 0.2
    """sigma: std of the target policy smoothing noise, in action units (actions span [-1, 1])."""
    noise_clip: float = 0.5
    """c: the target policy smoothing noise is clipped to [-c, c]."""
    policy_freq: Count = 2
    """Actor and target updates once every this many critic updates."""
    normalize_states: bool = True
    """Standardize observations with the dataset's mean and std, as the TD3+BC paper does."""
    renamed = {"alpha": ("rl_weight",)}


@register("td3_bc")
class TD3BC(OfflineAlgorithm):
    name = "td3_bc"
    Config = TD3BCConfig
    supports_population = True
    sweepable = ("rl_weight",)
    compile_refusal = None  # measured: docs/how-to/compile.md

    def setup(self) -> None:
        cfg = self.config
        self.actor = self.network(lambda: DeterministicActor(self.obs_dim, self.act_dim, cfg.actor_hidden))
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = self.network(lambda: QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.last_actor_loss = self.member_tensor(0.0)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]
        with torch.no_grad():
            noise = (randn(act.shape, like=act, generator=self.noise) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_act = (self.actor_target(next_obs) + noise).clamp(-1.0, 1.0)
            target = rew + cfg.gamma * (1.0 - done) * self.critic_target(next_obs, next_act).min(0).values
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(-1).sum(0)  # summed over the two critics
        optimize(self.critic_opt, critic_loss)

        # self.step counts completed updates; the actor moves every policy_freq-th one.
        if (self.step + 1) % cfg.policy_freq == 0:
            pi = self.actor(obs)
            with frozen(self.critic):
                q_pi = self.critic(obs, pi)[0]
            scale = q_pi.abs().mean(-1).detach()
            lam = self.setting("rl_weight", like=scale) / scale
            actor_loss = -lam * q_pi.mean(-1) + mse(pi, act)
            optimize(self.actor_opt, actor_loss)
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            self.last_actor_loss = actor_loss.detach().reshape_as(self.last_actor_loss)
        q = q.detach()
        return {"train/critic_loss": critic_loss.detach(), "train/actor_loss": self.last_actor_loss,
                "train/q_mean": q.mean((0, -1)), "train/q_max": q.amax((0, -1))}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)
