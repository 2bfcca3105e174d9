"""Batch-Constrained Q-learning (Fujimoto et al. 2019), continuous BCQ.

    VAE:     L = E_D || D(s, z) - a ||^2 + 1/2 KL(N(mu, sigma) || N(0, 1)),  (mu, sigma) = E(s, a)
    critics: y = r + gamma (1 - d) max_{k} [lmbda min_j Q'_j(s', a_k) + (1 - lmbda) max_j Q'_j(s', a_k)],
             a_k = xi'(s', D(s', z_k)) for target_samples decoder samples
    actor:   L(xi) = -E_D Q_1(s, xi(s, D(s, z))),  xi(s, a) = clip(a + phi * tanh(...), -1, 1)

A conditional VAE models the data's actions; a perturbation network nudges VAE samples by at
most Phi; the policy picks the best perturbed sample under Q1. Actions thus stay in the data's
support.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import AlgorithmConfig, OfflineAlgorithm, frozen, optimize
from d4rl_lite.nets import (
    ConditionalVAE,
    QEnsemble,
    best_of_candidates,
    mlp,
    soft_update,
)


@dataclass
class BCQConfig(AlgorithmConfig):
    vae_hidden: tuple[int, ...] = (750, 750)
    actor_hidden: tuple[int, ...] = (400, 300)
    critic_hidden: tuple[int, ...] = (400, 300)
    vae_lr: float = 1e-3
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    tau: float = 0.005
    batch_size: int = 100
    phi: float = 0.05  # max perturbation, in units of the action range
    lmbda: float = 0.75  # target: lmbda * min(Q1, Q2) + (1 - lmbda) * max(Q1, Q2)
    target_samples: int = 10  # VAE actions per next state
    act_samples: int = 100  # VAE actions per state when acting
    renamed = {"lr": ("vae_lr", "actor_lr", "critic_lr")}


class Perturbation(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], phi: float):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, act_dim, hidden)
        self.phi = phi

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return (actions + self.phi * torch.tanh(self.net(torch.cat([obs, actions], -1)))).clamp(-1.0, 1.0)


@register("bcq")
class BCQ(OfflineAlgorithm):
    name = "bcq"
    Config = BCQConfig

    def setup(self) -> None:
        cfg = self.config
        self.vae = ConditionalVAE(self.obs_dim, self.act_dim, cfg.vae_hidden).to(self.device)
        self.actor = Perturbation(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.phi).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.vae_opt = torch.optim.Adam(self.vae.parameters(), lr=cfg.vae_lr, fused=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]
        b = obs.shape[0]

        vae_loss = self.vae.loss(obs, act)
        optimize(self.vae_opt, vae_loss)

        with torch.no_grad():  # soft clipped double Q over perturbed VAE samples, max per next state
            nxt = next_obs.repeat_interleave(cfg.target_samples, 0)
            q_t = self.critic_target(nxt, self.actor_target(nxt, self.vae.decode(nxt)))
            q_t = cfg.lmbda * q_t.min(0).values + (1.0 - cfg.lmbda) * q_t.max(0).values
            q_t = q_t.view(b, cfg.target_samples).max(1).values
            target = rew + cfg.gamma * (1.0 - done) * q_t
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(1).sum()
        optimize(self.critic_opt, critic_loss)

        with torch.no_grad():
            sampled = self.vae.decode(obs)
        with frozen(self.critic):
            actor_loss = -self.critic(obs, self.actor(obs, sampled))[0].mean()
        optimize(self.actor_opt, actor_loss)
        soft_update(self.critic_target, self.critic, cfg.tau)
        soft_update(self.actor_target, self.actor, cfg.tau)
        return {"train/vae_loss": vae_loss.detach(), "train/critic_loss": critic_loss.detach(),
                "train/actor_loss": actor_loss.detach(), "train/q_mean": q.detach().mean(), "train/q_max": q.detach().max()}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Best of ``act_samples`` perturbed VAE samples under Q1."""
        n = self.config.act_samples
        rep = obs.repeat_interleave(n, 0)
        return best_of_candidates(self.critic, obs, self.actor(rep, self.vae.decode(rep)), n)
