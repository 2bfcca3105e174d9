"""BEAR (Kumar et al. 2019): policy kept within an MMD ball of the data's actions, by Lagrange multiplier.

The MMD is measured between policy samples and samples of a VAE fitted to the data; the first
``warmup_steps`` steps train the policy on the MMD constraint alone.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import AlgorithmConfig, OfflineAlgorithm, frozen, optimize
from d4rl_lite.nets import (
    ConditionalVAE,
    QEnsemble,
    TanhGaussianPolicy,
    best_of_candidates,
    soft_update,
)


@dataclass
class BEARConfig(AlgorithmConfig):
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    vae_hidden: tuple[int, ...] = (750, 750)
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    vae_lr: float = 3e-4
    lagrange_lr: float = 1e-3
    tau: float = 0.005
    mmd_threshold: float = 0.05  # epsilon
    mmd_samples: int = 4
    kernel: str = "laplacian"  # hopper, walker2d; the reference uses "gaussian" on halfcheetah
    kernel_sigma: float = 20.0
    log_alpha_min: float = -5.0
    log_alpha_max: float = 10.0
    lmbda: float = 0.75  # target mixing of min and max over the critics
    target_samples: int = 10
    act_samples: int = 100
    warmup_steps: int = 40_000
    """First updates: the actor only keeps the MMD to the behaviour samples under the threshold, without Q."""
    # "hidden" meant the actor's and critics' layers here (the VAE has its own): kept so for --set.
    renamed = {"hidden": ("actor_hidden", "critic_hidden")}

    def validate(self) -> None:
        if self.kernel not in ("laplacian", "gaussian"):
            raise ValueError(f"kernel must be 'laplacian' or 'gaussian', got {self.kernel!r}")


def mmd(x: torch.Tensor, y: torch.Tensor, kernel: str, sigma: float) -> torch.Tensor:
    """Per-state MMD between sample sets x (B, n, A) and y (B, m, A)."""

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = a.unsqueeze(2) - b.unsqueeze(1)
        dist = d.abs().sum(-1) if kernel == "laplacian" else d.pow(2).sum(-1)
        return torch.exp(-dist / (2.0 * sigma)).mean((1, 2))

    return (k(x, x) + k(y, y) - 2 * k(x, y) + 1e-6).sqrt()


@register("bear")
class BEAR(OfflineAlgorithm):
    name = "bear"
    Config = BEARConfig

    def setup(self) -> None:
        cfg = self.config
        self.actor = TanhGaussianPolicy(self.obs_dim, self.act_dim, cfg.actor_hidden).to(self.device)
        self.critic = QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.vae = ConditionalVAE(self.obs_dim, self.act_dim, cfg.vae_hidden).to(self.device)
        self.log_alpha = torch.tensor(math.log(1.0), device=self.device, requires_grad=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.vae_opt = torch.optim.Adam(self.vae.parameters(), lr=cfg.vae_lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lagrange_lr, fused=True)

    def mmd_to_data(self, obs: torch.Tensor, policy_actions: torch.Tensor | None = None) -> torch.Tensor:
        """MMD between ``mmd_samples`` policy actions and as many VAE (behaviour) actions, per state."""
        cfg, b = self.config, obs.shape[0]
        rep = obs.repeat_interleave(cfg.mmd_samples, 0)
        with torch.no_grad():
            data_like = self.vae.decode(rep).view(b, cfg.mmd_samples, -1)
        if policy_actions is None:
            policy_actions = self.actor(rep)[0]
        return mmd(policy_actions.view(b, cfg.mmd_samples, -1), data_like, cfg.kernel, cfg.kernel_sigma)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]
        b = obs.shape[0]

        vae_loss = self.vae.loss(obs, act)
        optimize(self.vae_opt, vae_loss)

        with torch.no_grad():
            nxt = next_obs.repeat_interleave(cfg.target_samples, 0)
            q_t = self.critic_target(nxt, self.actor(nxt)[0])
            q_t = cfg.lmbda * q_t.min(0).values + (1.0 - cfg.lmbda) * q_t.max(0).values
            target = rew + cfg.gamma * (1.0 - done) * q_t.view(b, cfg.target_samples).max(1).values
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(1).sum()
        optimize(self.critic_opt, critic_loss)

        rep = obs.repeat_interleave(cfg.mmd_samples, 0)
        pi_actions = self.actor(rep)[0]
        divergence = self.mmd_to_data(obs, pi_actions)
        alpha = self.log_alpha.exp().detach()
        constraint = alpha * (divergence - cfg.mmd_threshold)
        if self.step < cfg.warmup_steps:
            actor_loss = constraint.mean()
        else:
            with frozen(self.critic):
                q_pi = self.critic(rep, pi_actions).min(0).values.view(b, cfg.mmd_samples).mean(1)
            actor_loss = (-q_pi + constraint).mean()
        optimize(self.actor_opt, actor_loss)

        # Dual ascent on alpha: grows while the MMD exceeds its threshold.
        alpha_loss = -(self.log_alpha.exp() * (divergence.detach() - cfg.mmd_threshold)).mean()
        optimize(self.alpha_opt, alpha_loss)
        with torch.no_grad():
            self.log_alpha.clamp_(cfg.log_alpha_min, cfg.log_alpha_max)
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {"train/vae_loss": vae_loss.detach(), "train/critic_loss": critic_loss.detach(),
                "train/actor_loss": actor_loss.detach(), "train/mmd": divergence.detach().mean(), "train/alpha": alpha,
                "train/q_mean": q.detach().mean(), "train/q_max": q.detach().max()}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Best of ``act_samples`` policy samples under Q1 (as the reference)."""
        n = self.config.act_samples
        return best_of_candidates(self.critic, obs, self.actor(obs.repeat_interleave(n, 0))[0], n)
