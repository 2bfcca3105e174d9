"""Implicit Q-Learning (Kostrikov et al. 2021): expectile V, SARSA-style Q, advantage-weighted policy.

    value:   L(V) = E_D L2_tau(min_j Q'_j(s, a) - V(s)),  L2_tau(u) = |tau - 1(u < 0)| u^2  (tau = expectile)
    critics: L(Q_i) = E_D (Q_i(s, a) - r - gamma (1 - d) V(s'))^2
    actor:   L(pi) = -E_D min(exp(beta (min_j Q'_j(s, a) - V(s))), max_weight) log pi(a | s)"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import AlgorithmConfig, OfflineAlgorithm, adam, optimize
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate, Rate, WeightClip
from d4rl_lite.errors import UserInputError
from d4rl_lite.nets import GaussianPolicy, QEnsemble, ValueNet, soft_update


@dataclass
class IQLConfig(AlgorithmConfig):
    actor_hidden: Layers = (256, 256)
    """Hidden layer sizes of the actor."""
    critic_hidden: Layers = (256, 256)
    """Hidden layer sizes of the two critics and of the value network."""
    actor_lr: LearningRate = 3e-4
    """Adam learning rate of the actor, at the start of its cosine decay (actor_lr_schedule_steps)."""
    critic_lr: LearningRate = 3e-4
    """Adam learning rate of the critics and the value network."""
    tau: Rate = 0.005
    """Soft target update rate: the target critics move this fraction towards the online ones per update."""
    expectile: float = 0.7
    """Expectile tau of the value loss (0.5 = mean); the IQL paper uses 0.7 on locomotion (gym), 0.9 on antmaze."""
    beta: float = 3.0
    """Inverse temperature beta of the advantage weights exp(beta * A); 3 on locomotion (gym), 10 on antmaze."""
    max_weight: WeightClip = 100.0
    """Upper clip of the advantage weights exp(beta * A)."""
    actor_lr_schedule_steps: Count = 1_000_000
    """Length, in updates, of the cosine decay of the actor's learning rate to 0 (as the reference)."""
    actor_lr_decay: bool = True
    """Decay the actor's learning rate (cosine, actor_lr_schedule_steps); off: the actor learns at actor_lr
    throughout (IQL's fine-tuning: no decay online, so a parent at the end of its decay learns again)."""
    normalize_states: bool = True
    """Standardize observations with the dataset's mean and std (on, as in CORL's IQL)."""
    normalize_reward: bool = True
    """Rescale rewards so that dataset episode returns span 1000, as IQL does on locomotion."""
    renamed = {"lr": ("actor_lr", "critic_lr")}

    def validate(self) -> None:
        if not 0.0 < self.expectile < 1.0:
            raise UserInputError(f"expectile must be in (0, 1), got {self.expectile}")


@register("iql")
class IQL(OfflineAlgorithm):
    name = "iql"
    Config = IQLConfig
    supports_population = True
    sweepable = ("expectile", "beta")
    compile_refusal = None  # measured: docs/how-to/compile.md

    def setup(self) -> None:
        cfg = self.config
        self.value = self.network(lambda: ValueNet(self.obs_dim, cfg.critic_hidden))
        self.critic = self.network(lambda: QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor = self.network(lambda: GaussianPolicy(self.obs_dim, self.act_dim, cfg.actor_hidden,
                                                          log_std_min=-5.0, log_std_max=2.0))
        self.value_opt = adam(self.value.parameters(), lr=cfg.critic_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.actor_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_opt, cfg.actor_lr_schedule_steps)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]

        # V: expectile regression towards the target critics' min Q at dataset actions.
        with torch.no_grad():
            q_target = self.critic_target(obs, act).min(0).values
        v = self.value(obs)
        diff = q_target - v
        expectile = self.setting("expectile", like=diff)
        weight = torch.where(diff > 0, expectile, 1.0 - expectile)
        value_loss = (weight * diff.pow(2)).mean(-1)
        optimize(self.value_opt, value_loss)

        # Q: one-step backup through V(s'), never through an action outside the data.
        with torch.no_grad():
            target = rew + cfg.gamma * (1.0 - done) * self.value(next_obs)
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(-1).sum(0)  # summed over the two critics
        optimize(self.critic_opt, critic_loss)
        soft_update(self.critic_target, self.critic, cfg.tau)

        # Policy: advantage-weighted regression on the dataset's actions.
        adv = (q_target - v.detach())
        weights = torch.exp(self.setting("beta", like=adv) * adv).clamp(max=cfg.max_weight)
        actor_loss = -(weights * self.actor.log_prob(obs, act)).mean(-1)
        if not cfg.actor_lr_decay:  # pinned (a fine-tuned parent's optimizer holds its decayed rate)
            for group in self.actor_opt.param_groups:
                group["lr"] = cfg.actor_lr
        optimize(self.actor_opt, actor_loss)
        if cfg.actor_lr_decay:
            self.actor_sched.step()
        q = q.detach()
        return {"train/value_loss": value_loss.detach(), "train/critic_loss": critic_loss.detach(),
                "train/actor_loss": actor_loss.detach(), "train/q_mean": q.mean((0, -1)),
                "train/q_max": q.amax((0, -1)), "train/v_mean": v.detach().mean(-1), "train/adv_mean": adv.mean(-1)}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.deterministic(obs)
