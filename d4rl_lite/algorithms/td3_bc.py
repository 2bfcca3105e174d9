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
from torch.nn import functional as F

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import AlgorithmConfig, OfflineAlgorithm, frozen, optimize
from d4rl_lite.nets import DeterministicActor, QEnsemble, soft_update


@dataclass
class TD3BCConfig(AlgorithmConfig):
    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of each of the two critics."""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    tau: float = 0.005
    """Target networks move this fraction towards the online ones per update."""
    rl_weight: float = 2.5
    """The paper's alpha: the Q term's weight relative to behaviour cloning, lambda = rl_weight / mean|Q|."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise."""
    noise_clip: float = 0.5
    policy_freq: int = 2
    """Actor and target updates once every this many critic updates."""
    normalize_states: bool = True
    renamed = {"alpha": ("rl_weight",)}


@register("td3_bc")
class TD3BC(OfflineAlgorithm):
    name = "td3_bc"
    Config = TD3BCConfig

    def setup(self) -> None:
        cfg = self.config
        self.actor = DeterministicActor(self.obs_dim, self.act_dim, cfg.actor_hidden).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.last_actor_loss = torch.zeros((), device=self.device)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]
        with torch.no_grad():
            noise = (torch.randn_like(act) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_act = (self.actor_target(next_obs) + noise).clamp(-1.0, 1.0)
            target = rew + cfg.gamma * (1.0 - done) * self.critic_target(next_obs, next_act).min(0).values
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(1).sum()
        optimize(self.critic_opt, critic_loss)

        # self.step counts completed updates; the actor moves every policy_freq-th one.
        if (self.step + 1) % cfg.policy_freq == 0:
            pi = self.actor(obs)
            with frozen(self.critic):
                q_pi = self.critic(obs, pi)[0]
            lam = cfg.rl_weight / q_pi.abs().mean().detach()
            actor_loss = -lam * q_pi.mean() + F.mse_loss(pi, act)
            optimize(self.actor_opt, actor_loss)
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            self.last_actor_loss = actor_loss.detach()
        return {"train/critic_loss": critic_loss.detach(), "train/actor_loss": self.last_actor_loss,
                "train/q_mean": q.detach().mean(), "train/q_max": q.detach().max()}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)
