"""AWAC (Nair et al. 2020): actor-critic whose actor is advantage-weighted regression on dataset actions.

    critics: L(Q_i) = E_D (Q_i(s, a) - r - gamma (1 - d) min_j Q'_j(s', a')),  a' ~ pi(s')
    actor:   L(pi) = -E_D w(s, a) log pi(a | s),  A(s, a) = min_j Q_j(s, a) - min_j Q_j(s, a~pi(s)),
             w = B softmax_batch(A / beta) ("softmax", the official) or min(exp(A / beta), max_weight) ("exp")"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import AlgorithmConfig, OfflineAlgorithm, adam, optimize
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate, Rate, WeightClip
from d4rl_lite.errors import UserInputError
from d4rl_lite.nets import GaussianPolicy, QEnsemble, randn, soft_update


@dataclass
class AWACConfig(AlgorithmConfig):
    # Official defaults; CORL's variant: weighting="exp", beta=1/3, actor_hidden (256,)*3, batch 256.
    actor_hidden: Layers = (256, 256, 256, 256)
    """Hidden layer sizes of the Gaussian actor (the official AWAC uses 4 x 256; CORL 3 x 256)."""
    critic_hidden: Layers = (256, 256)
    """Hidden layer sizes of each of the two critics."""
    actor_lr: LearningRate = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: LearningRate = 3e-4
    """Adam learning rate of the critics."""
    actor_weight_decay: float = 1e-4
    """L2 weight decay (Adam's weight_decay) on the actor's parameters, as in the official AWAC."""
    tau: Rate = 0.005
    """Soft target update rate: the target critics move this fraction towards the online ones per update."""
    batch_size: Count = 1024
    """Transitions per update (the official AWAC uses 1024; CORL 256)."""
    beta: float = 2.0
    """Temperature beta (the paper's lambda) of the advantage weights softmax(A / beta) or exp(A / beta); CORL: 1/3."""
    weighting: str = "softmax"
    """Advantage weights: "softmax" = batch size x softmax of A / beta over the batch (official); "exp" = exp(A / beta)
    clipped at max_weight (CORL)."""
    max_weight: WeightClip = 100.0
    """Upper clip of the "exp" advantage weights (unused with weighting="softmax")."""
    renamed = {"lr": ("actor_lr", "critic_lr")}

    def validate(self) -> None:
        if self.weighting not in ("softmax", "exp"):
            raise UserInputError(f"weighting must be 'softmax' or 'exp', got {self.weighting!r}")
        if self.beta <= 0:
            raise UserInputError(f"beta must be > 0, got {self.beta}")


@register("awac")
class AWAC(OfflineAlgorithm):
    name = "awac"
    Config = AWACConfig
    supports_population = True
    sweepable = ("beta",)
    compile_refusal = None  # measured: docs/how-to/compile.md

    def setup(self) -> None:
        cfg = self.config
        self.actor = self.network(lambda: GaussianPolicy(self.obs_dim, self.act_dim, cfg.actor_hidden,
                                                          log_std_min=-6.0, log_std_max=0.0))
        self.critic = self.network(lambda: QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr, weight_decay=cfg.actor_weight_decay)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)

    def _sample(self, obs: torch.Tensor) -> torch.Tensor:
        dist = self.actor.distribution(obs)  # reparameterised sample: mean + std * eps
        return (dist.loc + randn(dist.loc.shape, like=dist.loc, generator=self.noise) * dist.scale).clamp(-1.0, 1.0)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]

        with torch.no_grad():  # no entropy term in AWAC's backup
            target = rew + cfg.gamma * (1.0 - done) * self.critic_target(next_obs, self._sample(next_obs)).min(0).values
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(-1).sum(0)  # summed over the two critics
        optimize(self.critic_opt, critic_loss)

        with torch.no_grad():  # A(s, a) = min Q(s, a) - V(s), V from one policy sample
            adv = self.critic(obs, act).min(0).values - self.critic(obs, self._sample(obs)).min(0).values
            if cfg.weighting == "softmax":
                weights = torch.softmax(adv / self.setting("beta", like=adv), dim=-1) * adv.shape[-1]  # over each run's batch
            else:
                weights = torch.exp(adv / self.setting("beta", like=adv)).clamp(max=cfg.max_weight)
        actor_loss = -(weights * self.actor.log_prob(obs, act)).mean(-1)
        optimize(self.actor_opt, actor_loss)
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {"train/critic_loss": critic_loss.detach(), "train/actor_loss": actor_loss.detach(),
                "train/q_mean": q.detach().mean((0, -1)), "train/q_max": q.detach().amax((0, -1)),
                "train/adv_mean": adv.mean(-1)}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.deterministic(obs)
