"""BRAC (Wu et al. 2019): actor-critic regularized by a divergence to a behaviour-cloning policy.

BRAC-p puts the divergence penalty alpha * D(pi, pi_b)(s) in the actor's objective only; BRAC-v
also subtracts it from the critic's target value. D is KL, estimated from policy samples:
D(s) = E_{a ~ pi(s)} [log pi(a | s) - log pi_b(a | s)]. pi_b is trained first by maximum
likelihood on the data (the first ``behavior_pretrain_steps`` updates), then the actor warms up
without the Q term for ``warmup_steps``. (alpha is ``divergence_weight``.)

    critics: y = r + gamma (1 - d) [min_j Q'_j(s', a') - alpha D(s') (BRAC-v only)],  a' ~ pi(s')
    actor:   L(pi) = E_D [alpha_ent log pi(a~ | s) + alpha D(s) - min_j Q_j(s, a~)],  a~ ~ pi(s)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import (
    AlgorithmConfig,
    OfflineAlgorithm,
    adam,
    frozen,
    optimize,
)
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate, Rate, Steps
from d4rl_lite.errors import UserInputError
from d4rl_lite.nets import QEnsemble, TanhGaussianPolicy, soft_update


@dataclass
class BRACConfig(AlgorithmConfig):
    variant: str = "p"
    """BRAC variant: "p" puts the divergence penalty in the actor's objective only; "v" also in the critic's target."""
    actor_hidden: Layers = (200, 200)
    """Hidden layer sizes of the tanh-Gaussian actor."""
    critic_hidden: Layers = (300, 300)
    """Hidden layer sizes of each of the two critics."""
    behavior_hidden: Layers = (200, 200)
    """Hidden layer sizes of the behaviour-cloning policy pi_b (tanh-Gaussian)."""
    actor_lr: LearningRate = 3e-5
    """Adam learning rate of the actor (the D4RL script's value; 3e-4 is also used)."""
    critic_lr: LearningRate = 1e-3
    """Adam learning rate of the critics."""
    behavior_lr: LearningRate = 5e-4
    """Adam learning rate of pi_b (maximum likelihood on the data's actions)."""
    temperature_lr: LearningRate = 3e-4
    """Adam learning rate of the entropy temperature (SAC-style, auto-tuned)."""
    tau: Rate = 0.005
    """Soft target update rate: the target critics move this fraction towards the online ones per update."""
    divergence_weight: float = 1.0
    """The paper's alpha: weight of the divergence to the behaviour policy (D4RL default; 0.1 in the primal example)."""
    div_samples: Count = 4
    """Policy samples per state in the estimate of D(s) = KL(pi || pi_b)(s)."""
    behavior_pretrain_steps: Steps = 100_000
    """First updates: only pi_b is fitted (our choice: the reference pre-trains pi_b in a separate run)."""
    warmup_steps: Steps = 20_000
    """Updates after behavior_pretrain_steps in which the actor learns without Q (divergence and entropy only)."""
    refit_behavior: bool = False
    """Keep fitting pi_b by maximum likelihood on every batch after behavior_pretrain_steps (on in fine-tuning:
    the behaviour model follows the growing buffer, as Nair et al. 2020 study it; offline: off, as the reference)."""
    renamed = {"policy_hidden": ("actor_hidden",), "policy_lr": ("actor_lr",), "alpha_lr": ("temperature_lr",),
               "alpha": ("divergence_weight",), "warm_start_steps": ("warmup_steps",)}

    def validate(self) -> None:
        if self.variant not in ("p", "v"):
            raise UserInputError(f"variant must be 'p' or 'v', got {self.variant!r}")


class BRAC(OfflineAlgorithm):
    Config = BRACConfig
    supports_population = True
    sweepable = ("divergence_weight",)

    def setup(self) -> None:
        cfg = self.config
        self.behavior = self.network(lambda: TanhGaussianPolicy(self.obs_dim, self.act_dim, cfg.behavior_hidden))
        self.actor = self.network(lambda: TanhGaussianPolicy(self.obs_dim, self.act_dim, cfg.actor_hidden))
        self.critic = self.network(lambda: QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha_ent = self.member_tensor(math.log(1.0), requires_grad=True)
        self.target_entropy = -float(self.act_dim)
        self.behavior_opt = adam(self.behavior.parameters(), lr=cfg.behavior_lr)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.alpha_opt = adam([self.log_alpha_ent], lr=cfg.temperature_lr)

    def divergence(self, obs: torch.Tensor) -> torch.Tensor:
        """KL(pi || pi_b)(s) estimated with ``div_samples`` reparameterised policy samples, per state."""
        n, b = self.config.div_samples, obs.shape[-2]
        rep = obs.repeat_interleave(n, -2)  # each state n times, rows grouped by state
        a, logp = self.actor(rep, generator=self.noise)
        return (logp - self.behavior.log_prob(rep, a)).unflatten(-1, (b, n)).mean(-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]

        if self.step < cfg.behavior_pretrain_steps:  # phase 1: fit pi_b by maximum likelihood
            behavior_loss = -self.behavior.log_prob(obs, act).mean(-1)
            optimize(self.behavior_opt, behavior_loss)
            return {"train/behavior_loss": behavior_loss.detach()}
        refit = {}
        if cfg.refit_behavior:
            behavior_loss = -self.behavior.log_prob(obs, act).mean(-1)
            optimize(self.behavior_opt, behavior_loss)
            refit = {"train/behavior_loss": behavior_loss.detach()}

        alpha_ent = self.log_alpha_ent.exp().detach()
        with torch.no_grad():
            next_act, next_logp = self.actor(next_obs, generator=self.noise)
            v_next = self.critic_target(next_obs, next_act).min(0).values - alpha_ent * next_logp
            if cfg.variant == "v":
                next_div = self.divergence(next_obs)
                v_next = v_next - self.setting("divergence_weight", like=next_div) * next_div
            target = rew + cfg.gamma * (1.0 - done) * v_next
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(-1).sum(0)  # summed over the two critics
        optimize(self.critic_opt, critic_loss)

        with frozen(self.behavior):
            new_act, logp = self.actor(obs, generator=self.noise)
            div = self.divergence(obs)
            actor_loss = alpha_ent * logp + self.setting("divergence_weight", like=div) * div
            if self.step >= cfg.behavior_pretrain_steps + cfg.warmup_steps:
                with frozen(self.critic):
                    actor_loss = actor_loss - self.critic(obs, new_act).min(0).values
            actor_loss = actor_loss.mean(-1)
            optimize(self.actor_opt, actor_loss)

        alpha_loss = -(self.log_alpha_ent * (logp.detach() + self.target_entropy)).mean(-1)
        optimize(self.alpha_opt, alpha_loss)
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {"train/critic_loss": critic_loss.detach(), "train/actor_loss": actor_loss.detach(),
                "train/divergence": div.detach().mean(-1), "train/alpha_entropy": alpha_ent,
                "train/q_mean": q.detach().mean((0, -1)), "train/q_max": q.detach().amax((0, -1)), **refit}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs, deterministic=True)[0]

    @torch.no_grad()
    def behavior_log_likelihood(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi_b(a | s) of the fitted behaviour policy, per state ([M,] B); fine-tuning logs it."""
        return self.behavior.log_prob(obs, act)


@register("brac_p")
class BRACP(BRAC):
    name = "brac_p"


@dataclass
class BRACVConfig(BRACConfig):
    variant: str = "v"
    """BRAC-v: the divergence penalty is also subtracted from the critic's target value."""


@register("brac_v")
class BRACV(BRAC):
    name = "brac_v"
    Config = BRACVConfig
