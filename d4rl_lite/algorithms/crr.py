"""Critic Regularized Regression (Wang, Novikov et al. 2020): behaviour cloning of the data's actions,
each kept or weighted by how much the critic prefers it to the policy's own actions.

    critics:   L(Q_i) = E_D (Q_i(s, a) - r - gamma (1 - d) min_j Q'_j(s', a'))^2,  a' ~ pi'(s')
    advantage: A(s, a) = Q(s, a) - mean_k Q(s, a_k)  ("mean")  or  Q(s, a) - max_k Q(s, a_k)  ("max"),
               a_k ~ pi(s), k = 1..m (action_samples);  Q = the mean of the critics
    actor:     L(pi) = -E_D f(A(s, a)) log pi(a | s),
               f = 1[A > 0]  ("binary")  or  min(exp(A / beta), max_weight)  ("exp")
    acting:    critic-weighted policy ("cwp"): m actions a_k ~ pi(s), one of them drawn with
               probability softmax_k Q(s, a_k); or the policy's mean ("mean")

On data of mixed quality, plain BC imitates every action; CRR imitates those the critic rates above
what the policy would do. The paper's critic is distributional; as d3rlpy's CRR, this one is an
ordinary critic, and its target networks (critic and policy, pi') are copied every 100 updates.

The policy is a Gaussian around a tanh'd mean whose samples are clipped to the action bounds (as
d3rlpy's CRR), not a tanh-Gaussian: data actions at the bounds (the maze controller clips its
actions to +-1) keep a finite log pi(a | s), where a tanh-Gaussian's atanh(+-1) would let them
dominate the regression. Its log-std is state-independent (as this toolkit's AWAC and IQL).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import AlgorithmConfig, OfflineAlgorithm, adam, optimize
from d4rl_lite.algorithms.memory import mlp_weights
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate, Rate, WeightClip
from d4rl_lite.errors import UserInputError
from d4rl_lite.nets import GaussianPolicy, QEnsemble, rand_uniform, randn, soft_update


@dataclass
class CRRConfig(AlgorithmConfig):
    # d3rlpy's CRRConfig defaults; its D4RL script instead uses filter="binary", batch 256 and soft
    # target updates (target_update_interval=1, tau=0.005).
    actor_hidden: Layers = (256, 256)
    """Hidden layer sizes of the Gaussian actor (d3rlpy's default encoder: 2 x 256)."""
    critic_hidden: Layers = (256, 256)
    """Hidden layer sizes of each critic (d3rlpy's default encoder: 2 x 256)."""
    num_critics: Count = 1
    """Number of critics: the target takes their min, the advantage their mean (d3rlpy's CRR: 1)."""
    actor_lr: LearningRate = 3e-4
    """Adam learning rate of the actor (d3rlpy: 3e-4)."""
    critic_lr: LearningRate = 3e-4
    """Adam learning rate of the critics (d3rlpy: 3e-4)."""
    batch_size: Count = 100
    """Transitions per update (d3rlpy's CRR: 100; its D4RL script: 256)."""
    filter: str = "exp"
    """Which data actions the actor imitates: "binary" = those with advantage A > 0, each with weight 1;
    "exp" = all, weighted min(exp(A / beta), max_weight) (d3rlpy's default; the paper studies both)."""
    advantage: str = "mean"
    """Baseline of the advantage A(s, a) = Q(s, a) - baseline: "mean" or "max" of Q(s, a_k) over action_samples
    actions a_k drawn from the policy (the paper's CRR-mean and CRR-max)."""
    action_samples: Count = 4
    """m: policy actions per state for the advantage's baseline and for acting by "cwp" (paper and d3rlpy: 4)."""
    beta: float = 1.0
    """Temperature beta of the "exp" filter exp(A / beta) (paper and d3rlpy: 1; unused by "binary")."""
    max_weight: WeightClip = 20.0
    """Upper clip of the "exp" filter's weights (paper and d3rlpy: 20)."""
    target_update_interval: Count = 100
    """Updates between target network updates (d3rlpy's hard updates: every 100; 1 for soft updates)."""
    tau: Rate = 1.0
    """Fraction of the way the target critics and policy move towards the online ones at each target update
    (1 = a copy, d3rlpy's hard update; its D4RL script: 0.005 every update)."""
    act_by: str = "cwp"
    """Evaluation action: "cwp" = critic-weighted policy, one of action_samples policy actions drawn with
    probability softmax of their Q values (d3rlpy's CRR acts so); "mean" = the policy's mean action."""

    def validate(self) -> None:
        for name, allowed in (("filter", ("binary", "exp")), ("advantage", ("mean", "max")), ("act_by", ("cwp", "mean"))):
            if getattr(self, name) not in allowed:
                raise UserInputError(f"{name} must be {' or '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        if self.beta <= 0 or self.max_weight <= 0:
            raise UserInputError(f"beta and max_weight must be > 0, got beta={self.beta}, max_weight={self.max_weight}")


def advantage_baseline(q_samples: torch.Tensor, how: str) -> torch.Tensor:
    """The advantage's baseline from Q of the sampled policy actions, (..., m) -> (...): "mean" or "max"."""
    return q_samples.mean(-1) if how == "mean" else q_samples.amax(-1)


def filter_weights(adv: torch.Tensor, how: str, beta: float | torch.Tensor, max_weight: float) -> torch.Tensor:
    """f(A): 1[A > 0] ("binary") or min(exp(A / beta), max_weight) ("exp"), elementwise."""
    if how == "binary":
        return (adv > 0).to(adv.dtype)
    return torch.exp(adv / beta).clamp(max=max_weight)


def sample_index(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Per row of ``probs`` (..., m), the index drawn with those probabilities, by inverting their
    cumulative sum at ``uniform`` (..., 1) in [0, 1): no host sync, and the draw comes from a given stream."""
    return (probs.cumsum(-1) <= uniform).sum(-1).clamp(max=probs.shape[-1] - 1)


@register("crr")
class CRR(OfflineAlgorithm):
    name = "crr"
    Config = CRRConfig
    supports_population = True
    sweepable = ("beta",)

    @staticmethod
    def memory_bytes(cfg: CRRConfig, obs_dim: int, act_dim: int) -> int:
        """The critics' activations on action_samples policy actions per state, and the extra critics
        (``algorithms/memory.py``)."""
        widths = [obs_dim + act_dim, *cfg.critic_hidden, 1]
        weights = mlp_weights(widths)
        return (cfg.num_critics - 1) * 20 * weights + 4 * cfg.num_critics * cfg.batch_size * cfg.action_samples * sum(widths)

    def setup(self) -> None:
        cfg = self.config
        # log-std in [-5, 2]: IQL's reference range (d3rlpy clamps a state-dependent one to [-20, 2]).
        self.actor = self.network(lambda: GaussianPolicy(self.obs_dim, self.act_dim, cfg.actor_hidden,
                                                          log_std_min=-5.0, log_std_max=2.0))
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = self.network(lambda: QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=cfg.num_critics))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)

    @staticmethod
    def sample_actions(policy: nn.Module, obs: torch.Tensor, n: int, generator) -> torch.Tensor:
        """``n`` actions per state drawn from ``policy`` and clipped to the bounds: ([M,] B * n, A), rows grouped by state."""
        dist = policy.distribution(obs)
        loc, scale = dist.loc.repeat_interleave(n, -2), dist.scale.repeat_interleave(n, -2)
        return (loc + randn(loc.shape, like=loc, generator=generator) * scale).clamp(-1.0, 1.0)

    def sampled_values(self, obs: torch.Tensor, n: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(actions ([M,] B, n, A), their Q values ([M,] B, n)) for ``n`` policy actions per state."""
        b = obs.shape[-2]
        actions = self.sample_actions(self.actor, obs, n, generator)
        q = self.critic(obs.repeat_interleave(n, -2), actions).mean(0).unflatten(-1, (b, n))
        return actions.unflatten(-2, (b, n)), q

    def advantage(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """A(s, a) = Q(s, a) - the baseline over ``action_samples`` policy actions, ([M,] B)."""
        _, q_samples = self.sampled_values(obs, self.config.action_samples, self.noise)
        return self.critic(obs, act).mean(0) - advantage_baseline(q_samples, self.config.advantage)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]

        with torch.no_grad():  # a' from the target policy, as d3rlpy; no entropy term
            next_act = self.sample_actions(self.actor_target, next_obs, 1, self.noise)
            target = rew + cfg.gamma * (1.0 - done) * self.critic_target(next_obs, next_act).min(0).values
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(-1).sum(0)  # summed over the critics
        optimize(self.critic_opt, critic_loss)

        with torch.no_grad():  # the advantage under the critic just updated (d3rlpy's order)
            adv = self.advantage(obs, act)
            weights = filter_weights(adv, cfg.filter, self.setting("beta", like=adv), cfg.max_weight)
        log_prob = self.actor.log_prob(obs, act)
        actor_loss = -(weights * log_prob).mean(-1)
        optimize(self.actor_opt, actor_loss)

        if self.step % cfg.target_update_interval == 0:  # the step is a Python int: no host sync
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
        return {"train/critic_loss": critic_loss.detach(), "train/actor_loss": actor_loss.detach(),
                "train/q_mean": q.detach().mean((0, -1)), "train/q_max": q.detach().amax((0, -1)),
                "train/adv_mean": adv.mean(-1), "train/filter_mean": weights.mean(-1),
                "train/log_likelihood": log_prob.detach().mean(-1)}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        if self.config.act_by == "mean":
            return self.actor.deterministic(obs)
        actions, q = self.sampled_values(obs, self.config.action_samples, self.eval_noise)
        pick = sample_index(torch.softmax(q, -1), rand_uniform((*q.shape[:-1], 1), like=q, generator=self.eval_noise))
        index = pick[..., None, None].expand(*pick.shape, 1, actions.shape[-1])
        return actions.gather(-2, index).squeeze(-2)
