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
from d4rl_lite.algorithms.base import (
    AlgorithmConfig,
    OfflineAlgorithm,
    adam,
    frozen,
    optimize,
)
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate, Rate
from d4rl_lite.nets import (
    ConditionalVAE,
    QEnsemble,
    batched_call,
    best_of_candidates,
    mlp,
    repeat_rows,
    soft_update,
)


@dataclass
class BCQConfig(AlgorithmConfig):
    vae_hidden: Layers = (750, 750)
    """Hidden layer sizes of the conditional VAE's encoder and decoder (the model of the data's actions)."""
    actor_hidden: Layers = (400, 300)
    """Hidden layer sizes of the perturbation network xi (the actor)."""
    critic_hidden: Layers = (400, 300)
    """Hidden layer sizes of each of the two critics."""
    vae_lr: LearningRate = 1e-3
    """Adam learning rate of the VAE."""
    actor_lr: LearningRate = 1e-3
    """Adam learning rate of the perturbation network."""
    critic_lr: LearningRate = 1e-3
    """Adam learning rate of the critics."""
    tau: Rate = 0.005
    """Soft target update rate: target actor and critics move this fraction towards the online ones per update."""
    batch_size: Count = 100
    """Transitions per update (the BCQ reference uses 100)."""
    phi: float = 0.05
    """Phi: max perturbation of a VAE action per dimension, as a fraction of the max action (actions span [-1, 1])."""
    lmbda: float = 0.75
    """lambda: target value = lmbda * min(Q'1, Q'2) + (1 - lmbda) * max(Q'1, Q'2) (soft clipped double Q)."""
    target_samples: Count = 10
    """Perturbed VAE actions per next state in the target; the target takes the best of them."""
    act_samples: Count = 100
    """Perturbed VAE actions per state when acting; the one with the highest Q1 is taken."""
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
    supports_population = True
    sweepable = ("lmbda",)

    def setup(self) -> None:
        cfg = self.config
        self.vae = self.network(lambda: ConditionalVAE(self.obs_dim, self.act_dim, cfg.vae_hidden))
        self.actor = self.network(lambda: Perturbation(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.phi))
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = self.network(lambda: QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.vae_opt = adam(self.vae.parameters(), lr=cfg.vae_lr)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]
        b = obs.shape[-2]

        vae_loss = self.vae.loss(obs, act, generator=self.noise)
        optimize(self.vae_opt, vae_loss)

        with torch.no_grad():  # every VAE sample of this update in one pass: the VAE does not change until the next
            nxt = repeat_rows(next_obs, cfg.target_samples)  # rows grouped by state
            z_next, z_now = self.vae.prior(nxt, self.noise), self.vae.prior(obs, self.noise)
            decoded_next, decoded_now = batched_call(self.vae.decode, [(nxt, z_next), (obs, z_now)])

        with torch.no_grad():  # soft clipped double Q over perturbed VAE samples, max per next state
            q_t = self.critic_target(nxt, self.actor_target(nxt, decoded_next))
            q_min, q_max = q_t.min(0).values, q_t.max(0).values
            lmbda = self.setting("lmbda", like=q_min)
            q_t = lmbda * q_min + (1.0 - lmbda) * q_max
            q_t = q_t.unflatten(-1, (b, cfg.target_samples)).max(-1).values
            target = rew + cfg.gamma * (1.0 - done) * q_t
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(-1).sum(0)  # summed over the two critics
        optimize(self.critic_opt, critic_loss)

        with frozen(self.critic):  # Q_1 alone: the only critic the actor's loss reads
            actor_loss = -self.critic.first(obs, self.actor(obs, decoded_now)).mean(-1)
        optimize(self.actor_opt, actor_loss)
        soft_update(self.critic_target, self.critic, cfg.tau)
        soft_update(self.actor_target, self.actor, cfg.tau)
        return {"train/vae_loss": vae_loss.detach(), "train/critic_loss": critic_loss.detach(),
                "train/actor_loss": actor_loss.detach(), "train/q_mean": q.detach().mean((0, -1)),
                "train/q_max": q.detach().amax((0, -1))}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Best of ``act_samples`` perturbed VAE samples under Q1."""
        n = self.config.act_samples
        rep = obs.repeat_interleave(n, -2)
        return best_of_candidates(self.critic, obs, self.actor(rep, self.vae.decode(rep, generator=self.eval_noise)), n)

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """Online exploration (fine-tuning): the acting rule itself, stochastic through its VAE samples."""
        return self.policy_action(obs)
