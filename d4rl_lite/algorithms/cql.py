"""Conservative Q-Learning (Kumar et al. 2020), CQL(H) with importance sampling on a SAC backbone.

The critic minimises, besides the Bellman error, log-sum-exp of Q over sampled actions minus Q at
the dataset's actions: Q is pushed down away from the data and up on it.

    critics: L(Q_i) = E_D (Q_i(s, a) - y)^2 + w * gap_i,   y = r + gamma (1 - d) min_j Q'_j(s', a'), a' ~ pi(s')
             (target_action="mean": a' = tanh(mean of pi(s')), as d3rlpy)
             gap_i = E_D [ T log sum_{a~} exp(Q_i(s, a~) / T) - Q_i(s, a) ]   over uniform, pi(s) and pi(s')
             actions, each corrected by its log-density (T = cql_temperature, w = cql_weight)
    Lagrange (lagrange=True): w becomes alpha' * cql_weight on gap_i - target_action_gap, and
             L(alpha') = -alpha' cql_weight mean_i (gap_i - target_action_gap)
    actor:   L(pi) = E_D [alpha log pi(a~ | s) - min_j Q_j(s, a~)],  a~ ~ pi(s)
             (the first warmup_steps: E_D [alpha log pi(a~ | s) - log pi(a | s)], behaviour cloning)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import NamedTuple

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
from d4rl_lite.nets import (
    QEnsemble,
    TanhGaussianPolicy,
    batched_call,
    rand_uniform,
    randn,
    repeat_rows,
    soft_update,
    tanh_gaussian_sample,
)

TARGET_ACTIONS = ("sampled", "mean")  # conventions for the next action of the critic's target


@dataclass
class CQLConfig(AlgorithmConfig):
    actor_hidden: Layers = (256, 256, 256)
    """Hidden layer sizes of the tanh-Gaussian actor."""
    critic_hidden: Layers = (256, 256, 256)
    """Hidden layer sizes of each of the two critics."""
    actor_lr: LearningRate = 1e-4
    """Adam learning rate of the actor (the paper: 3e-5)."""
    critic_lr: LearningRate = 3e-4
    """Adam learning rate of the critics."""
    temperature_lr: LearningRate = 1e-4
    """Adam learning rate of SAC's entropy temperature (auto-tuned towards target_entropy)."""
    tau: Rate = 0.005
    """Soft target update rate: the target critics move this fraction towards the online ones per update."""
    target_entropy: float | None = None
    """Target entropy of the temperature tuning; None: -|A| (minus the action dimension)."""
    cql_weight: float = 5.0
    """alpha of CQL(H) (min_q_weight): weight of the conservative gap in the critic loss; 10 is also common on gym."""
    num_sampled_actions: Count = 10
    """Actions per state for the log-sum-exp from each source: uniform random, pi(. | s) and pi(. | s'), valued at s."""
    cql_temperature: float = 1.0
    """Temperature of the log-sum-exp over sampled actions in the CQL(H) term."""
    lagrange: bool = False
    """Weight the gap by alpha' * cql_weight, alpha' tuned by dual ascent (target_action_gap); gym: off, antmaze: on."""
    target_action_gap: float = 5.0
    """tau of Lagrange CQL: the gap (log-sum-exp Q minus data Q) alpha' aims for; only with lagrange (antmaze: 5)."""
    lagrange_lr: LearningRate = 3e-4
    """Adam learning rate of log alpha', the Lagrange multiplier of the gap (only with lagrange)."""
    warmup_steps: Steps = 40_000
    """First updates: the actor learns by behaviour cloning (likelihood of the data), without Q."""
    backup_entropy: bool = False
    """Subtract the entropy term alpha * log pi(a' | s') in the critic's target, as SAC does (off, as in CORL)."""
    target_action: str = "sampled"
    """The next action a' of the critic's target: "sampled" a' ~ pi(. | s') (the CQL authors' code, CORL) or
    "mean", the policy's mean action tanh(mu(s')) (d3rlpy's CQL; see benchmarks/peer_scores.py)."""
    added_later = ("target_action",)
    renamed = {"alpha_lr": ("temperature_lr",), "temperature": ("cql_temperature",),
               "bc_warmup_steps": ("warmup_steps",)}

    def validate(self) -> None:
        if self.target_action not in TARGET_ACTIONS:
            raise UserInputError(f"target_action must be one of {', '.join(TARGET_ACTIONS)}, got {self.target_action!r}")


class SampledActions(NamedTuple):
    """The actions the critic phase samples; the last three blocks hold n per state, rows grouped by state."""

    next: torch.Tensor  # a' ~ pi(s') (or its mean action, target_action="mean"), one per next state, for the target
    next_logp: torch.Tensor
    uniform: torch.Tensor  # uniform on [-1, 1]^|A|
    current: torch.Tensor  # ~ pi(. | s)
    current_logp: torch.Tensor
    following: torch.Tensor  # ~ pi(. | s'), valued at s
    following_logp: torch.Tensor


@register("cql")
class CQL(OfflineAlgorithm):
    name = "cql"
    Config = CQLConfig
    supports_population = True
    sweepable = ("cql_weight", "target_action_gap")
    # Measured (docs/how-to/compile.md): one compiled region holds the actor's sample, whose log-density feeds
    # both the temperature's and the actor's loss, and two backward passes through it are refused.
    compile_refusal = "two backward passes share one compiled region"

    def setup(self) -> None:
        cfg = self.config
        self.actor = self.network(lambda: TanhGaussianPolicy(self.obs_dim, self.act_dim, cfg.actor_hidden))
        self.critic = self.network(lambda: QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = self.member_tensor(0.0, requires_grad=True)
        self.log_alpha_prime = self.member_tensor(0.0, requires_grad=True)
        self.target_entropy = -float(self.act_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.alpha_opt = adam([self.log_alpha], lr=cfg.temperature_lr)
        self.alpha_prime_opt = adam([self.log_alpha_prime], lr=cfg.lagrange_lr)

    @torch.no_grad()
    def _sample_actions(self, obs: torch.Tensor, next_obs: torch.Tensor, n: int) -> SampledActions:
        """The critic phase's actions, drawn in the reference order (a' ~ pi(s'), uniform, pi(s), pi(s'));
        the actor runs once, on s' and s together, each state's n samples sharing its one output."""
        (mean_next, log_std_next), (mean_now, log_std_now) = batched_call(self.actor.distribution_params,
                                                                          [(next_obs,), (obs,)])
        # the noise is drawn under either convention, so the other samples stay the same draws
        noise = randn(mean_next.shape, mean_next, self.noise)
        nxt, nxt_logp = tanh_gaussian_sample(mean_next, log_std_next,
                                             None if self.config.target_action == "mean" else noise)
        rows = (*obs.shape[:-2], obs.shape[-2] * n, self.act_dim)
        uniform = rand_uniform(rows, like=obs, generator=self.noise) * 2 - 1
        cur, cur_logp = tanh_gaussian_sample(repeat_rows(mean_now, n), repeat_rows(log_std_now, n),
                                             randn(rows, mean_now, self.noise))
        fol, fol_logp = tanh_gaussian_sample(repeat_rows(mean_next, n), repeat_rows(log_std_next, n),
                                             randn(rows, mean_next, self.noise))
        return SampledActions(nxt, nxt_logp, uniform, cur, cur_logp, fol, fol_logp)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]
        b, n = obs.shape[-2], cfg.num_sampled_actions

        # -- policy and temperature (SAC), with a behaviour-cloning warm-up --------------------
        new_act, logp = self.actor(obs, generator=self.noise)
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean(-1)
        optimize(self.alpha_opt, alpha_loss)
        alpha = self.log_alpha.exp().detach()
        if self.step < cfg.warmup_steps:
            actor_loss = (alpha * logp - self.actor.log_prob(obs, act)).mean(-1)
        else:
            with frozen(self.critic):
                actor_loss = (alpha * logp - self.critic(obs, new_act).min(0).values).mean(-1)
        optimize(self.actor_opt, actor_loss)

        # -- critic: Bellman error + CQL(H) ----------------------------------------------------
        sampled = self._sample_actions(obs, next_obs, n)
        with torch.no_grad():
            q_next = self.critic_target(next_obs, sampled.next).min(0).values
            if cfg.backup_entropy:
                q_next = q_next - alpha * sampled.next_logp
            target = rew + cfg.gamma * (1.0 - done) * q_next
        obs_rep = repeat_rows(obs, n)  # every sampled action is valued at s
        q, q_rand, q_cur, q_nxt = batched_call(self.critic, [  # one pass of the critics over all of them
            (obs, act), (obs_rep, sampled.uniform), (obs_rep, sampled.current), (obs_rep, sampled.following)], out_rows=-1)
        bellman = (q - target).pow(2).mean(-1).sum(0)  # summed over the two critics

        # each sampled Q minus its log-density: log U(-1, 1)^|A| for uniform ones, log pi for the policy's
        q_rand = q_rand.unflatten(-1, (b, n)) - self.act_dim * math.log(0.5)
        q_cur = (q_cur - sampled.current_logp).unflatten(-1, (b, n))
        q_nxt = (q_nxt - sampled.following_logp).unflatten(-1, (b, n))
        cat = torch.cat([q_rand, q_nxt, q_cur], dim=-1)
        gap = (torch.logsumexp(cat / cfg.cql_temperature, dim=-1) * cfg.cql_temperature - q).mean(-1)  # (num_q[, M])
        metrics = {}
        if cfg.lagrange:
            # alpha' rises while the gap exceeds target_action_gap:
            #   critic:  + alpha' * w * sum_i (gap_i - tau);   alpha':  - alpha' * w * mean_i (gap_i - tau)
            # (the reference implementations, CQL's and CORL's, average the two critics' terms in alpha''s loss).
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6).flatten()  # one per member, against gap's (num_q, M)
            weight, tau = self.setting("cql_weight", like=alpha_prime), self.setting("target_action_gap", like=alpha_prime)
            cql = (alpha_prime.detach() * weight * (gap - tau)).sum(0)
            prime_loss = -(alpha_prime * weight * (gap.detach() - tau)).mean(0)
            optimize(self.alpha_prime_opt, prime_loss)
            metrics = {"train/alpha_prime": alpha_prime.detach(), "train/alpha_prime_loss": prime_loss.detach()}
        else:
            gap_sum = gap.sum(0)
            cql = self.setting("cql_weight", like=gap_sum) * gap_sum
        critic_loss = bellman + cql
        optimize(self.critic_opt, critic_loss)
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {"train/critic_loss": critic_loss.detach(), "train/bellman_loss": bellman.detach(),
                "train/cql_gap": gap.detach().mean(0), "train/actor_loss": actor_loss.detach(), "train/alpha": alpha,
                "train/q_mean": q.detach().mean((0, -1)), "train/q_max": q.detach().amax((0, -1)), **metrics}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs, deterministic=True)[0]
