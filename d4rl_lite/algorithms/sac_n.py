"""Critic ensembles: SAC-N and EDAC (An et al. 2021), with REM's random mixtures (Agarwal et al. 2020).

SAC with N critics instead of two, and no behaviour constraint: the minimum over a large ensemble
is pessimistic exactly where the critics disagree, which is away from the data. EDAC adds a term
that makes the critics' action gradients diverse, so that a smaller N suffices.

    target:    y = r + gamma (1 - d) [agg_k Q'_k(s', a') - alpha log pi(a' | s')],   a' ~ pi(s')
    critics:   L(Q) = sum_k E_D[(Q_k(s, a) - y)^2] + eta ES(s, a)             (min, mean)
               L(Q) = N E_D[(sum_k w_k Q_k(s, a) - y)^2] + eta ES(s, a)        (rem)
    diversity: ES(s, a) = 1 / (N - 1) sum_{i != j} <g_i, g_j>,  g_k = grad_a Q_k(s, a) / ||grad_a Q_k(s, a)||
    actor:     L(pi) = E_D[alpha log pi(a~ | s) - agg_k Q_k(s, a~)],  a~ ~ pi(s);  temperature as in SAC

agg is ``target_aggregation``: ``min`` (SAC-N, EDAC), ``mean``, or ``rem``: w = u / sum(u) with
u ~ U(0, 1)^N drawn once per batch, the same mixture for prediction and target; the actor then
maximises the mean (REM acts on the mean of its heads), and so does ``mean``. ES averages over the
batch at the data's actions, as in the reference code: eta is ``diversity_weight`` (0: SAC-N).
rem's squared error is scaled by N so that its weight against ES matches the per-critic sum.
As the reference code, the three losses are taken at the parameters before the update (temperature,
actor, then critics step), the hidden layers' biases start at 0.1 and the output layers near 0
(critics U(+-3e-3), actor U(+-1e-3)), and the actor's log-std is clipped to [-5, 2].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import frozen, optimize
from d4rl_lite.algorithms.memory import mlp_weights
from d4rl_lite.algorithms.sac import SAC, SACConfig
from d4rl_lite.algorithms.settings import Count, Layers, Weight
from d4rl_lite.errors import UserInputError
from d4rl_lite.nets import (
    EnsembleLinear,
    QEnsemble,
    TanhGaussianPolicy,
    rand_uniform,
    soft_update,
)

AGGREGATIONS = ("min", "rem", "mean")


@dataclass
class SACNConfig(SACConfig):
    actor_hidden: Layers = (256, 256, 256)
    """Hidden layer sizes of the tanh-Gaussian actor (An et al.: 3x256)."""
    critic_hidden: Layers = (256, 256, 256)
    """Hidden layer sizes of each of the num_critics critics (An et al.: 3x256)."""
    num_critics: Count = 10
    """N, the critics in the ensemble; it shapes the networks, so a study of N is one population per N.
    An et al. (D4RL-v2): SAC-N 10 on halfcheetah, several hundred on hopper;
    EDAC 10 on halfcheetah and walker2d, 50 on hopper."""
    target_aggregation: str = "min"
    """How the critics' values combine in the target and the actor's objective: "min" (SAC-N, EDAC),
    "mean", or "rem" (a random convex mixture per batch, as REM; the actor maximises the mean)."""
    diversity_weight: Weight = 0.0
    """EDAC's eta: weight of the critics' action-gradient similarity in their loss (0 = SAC-N)."""

    def validate(self) -> None:
        if self.target_aggregation not in AGGREGATIONS:
            raise UserInputError(f"target_aggregation must be one of {', '.join(AGGREGATIONS)}, "
                                 f"got {self.target_aggregation!r}")
        if self.num_critics < 2:  # a min, mixture or spread over one critic is no ensemble (and its std is undefined)
            raise UserInputError(f"num_critics must be >= 2 for an ensemble, got {self.num_critics}")


@dataclass
class EDACConfig(SACNConfig):
    diversity_weight: Weight = 1.0
    """EDAC's eta: weight of the critics' action-gradient similarity in their loss. An et al. (D4RL-v2):
    1 on halfcheetah, hopper and walker2d, 5 on their medium-expert sets; 0 is SAC-N."""


def aggregate(q: torch.Tensor, how: str, mixture: torch.Tensor | None = None) -> torch.Tensor:
    """The critics' values q (N, ...) combined over the first dimension: their minimum, mean, or the
    convex ``mixture`` (N, ...) of them (rem)."""
    if how == "min":
        return q.min(0).values
    if how == "mean":
        return q.mean(0)
    return (mixture * q).sum(0)


def random_mixture(num_critics: int, members: int, like: torch.Tensor, noise) -> torch.Tensor:
    """REM's weights w = u / sum(u), u ~ U(0, 1)^N, from ``noise`` (a run's or each member's stream):
    (N, 1) for a run (members 0), (N, M, 1) for a population, to broadcast against Q-values (N, [M,] B)."""
    u = rand_uniform((members, num_critics) if members else (num_critics,), like=like, generator=noise)
    w = u / u.sum(-1, keepdim=True)
    return (w.t() if members else w).unsqueeze(-1)


def gradient_diversity(grads: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """EDAC's ES over a batch of the critics' action gradients ``grads`` (N, ..., B, A): each
    normalised, 1 / (N - 1) sum_{i != j} <g_i, g_j> per state, averaged over the batch: N for
    identical gradients, 0 for orthogonal ones, never below -N / (N - 1) (-2: two opposed ones).
    The pair sum is ||sum_i g_i||^2 - sum_i ||g_i||^2: no N x N matrix per state."""
    unit = grads / (grads.norm(dim=-1, keepdim=True) + eps)
    pairs = unit.sum(0).pow(2).sum(-1) - unit.pow(2).sum(-1).sum(0)
    return pairs.mean(-1) / (grads.shape[0] - 1)


def _reference_init(module: nn.Module, output_scale: float) -> nn.Module:
    """An et al.'s initialisation: hidden biases 0.1, the output layer U(+-output_scale)."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, EnsembleLinear))]
    with torch.no_grad():
        for layer in layers[:-1]:
            layer.bias.fill_(0.1)
        layers[-1].weight.uniform_(-output_scale, output_scale)
        layers[-1].bias.uniform_(-output_scale, output_scale)
    return module


@register("sac_n")
class SACN(SAC):
    name = "sac_n"
    naive_baseline = False
    Config = SACNConfig
    supports_population = True
    # Only the ensemble's diversity weight: the learning rates and tau are one value per optimizer
    # or fused update, N shapes the networks and the aggregation chooses code.
    sweepable = ("diversity_weight",)

    @staticmethod
    def memory_bytes(cfg: SACNConfig, obs_dim: int, act_dim: int) -> int:
        """The N - 1 critics ``least_run_bytes`` counts once too few (weights, gradients, Adam moments,
        targets) and their batch activations (``algorithms/memory.py``)."""
        widths = [obs_dim + act_dim, *cfg.critic_hidden, 1]
        weights = mlp_weights(widths)
        return (cfg.num_critics - 1) * 20 * weights + 3 * 4 * cfg.num_critics * cfg.batch_size * sum(widths)

    def setup(self) -> None:
        cfg = self.config
        self.build(lambda: _reference_init(TanhGaussianPolicy(self.obs_dim, self.act_dim, cfg.actor_hidden,
                                                              log_std_min=-5.0), 1e-3),
                   lambda: _reference_init(QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden,
                                                     num_q=cfg.num_critics), 3e-3))

    def critic_value(self, q: torch.Tensor) -> torch.Tensor:
        """What the actor maximises: the minimum over the critics, or their mean (mean, rem)."""
        return q.min(0).values if self.config.target_aggregation == "min" else q.mean(0)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step on temperature, actor and critics; metrics stay on the device."""
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]
        n, how = cfg.num_critics, cfg.target_aggregation
        alpha = self.log_alpha.exp().detach()
        mixture = random_mixture(n, self.members, obs, self.noise) if how == "rem" else None

        with torch.no_grad():  # the target from the actor before its step, as the reference code
            next_act, next_logp = self.actor(next_obs, generator=self.noise)
            q_next = aggregate(self.critic_target(next_obs, next_act), how, mixture) - alpha * next_logp
            target = rew + cfg.gamma * (1.0 - done) * q_next

        # Actor and temperature, against the critics before their step.
        with frozen(self.critic):
            new_act, logp = self.actor(obs, generator=self.noise)
            q_pi = self.critic(obs, new_act)
            actor_loss = (alpha * logp - self.critic_value(q_pi)).mean(-1)
            optimize(self.actor_opt, actor_loss)
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean(-1)
        optimize(self.alpha_opt, alpha_loss)

        # Critics: each critic's copy of the data actions, so that grad_a of their sum is per critic.
        eta = self.setting("diversity_weight", like=actor_loss)
        diverse = isinstance(eta, torch.Tensor) or eta != 0  # a sweep's members hold one weight each
        tiled_act = act.expand(n, *act.shape).detach().requires_grad_(diverse)
        q = self.critic(obs.expand(n, *obs.shape), tiled_act)
        if how == "rem":
            critic_loss = n * (aggregate(q, how, mixture) - target).pow(2).mean(-1)
        else:
            critic_loss = (q - target).pow(2).mean(-1).sum(0)
        metrics = {}
        if diverse:
            (grads,) = torch.autograd.grad(q.sum(), tiled_act, create_graph=True)
            diversity = gradient_diversity(grads)
            critic_loss = critic_loss + eta * diversity
            metrics["train/diversity"] = diversity.detach()
        optimize(self.critic_opt, critic_loss)

        soft_update(self.critic_target, self.critic, cfg.tau)
        q = q.detach()
        return {
            "train/critic_loss": critic_loss.detach(),
            "train/actor_loss": actor_loss.detach(),
            "train/alpha": alpha,
            "train/entropy": -logp.detach().mean(-1),
            "train/q_mean": q.mean((0, -1)),
            "train/q_max": q.amax((0, -1)),
            # The ensemble's disagreement, at the data's actions and at the policy's.
            "train/q_std": q.std(0).mean(-1),
            "train/q_std_policy": q_pi.detach().std(0).mean(-1),
            **metrics,
        }


@register("edac")
class EDAC(SACN):
    """SAC-N with EDAC's gradient-diversity term on by default (diversity_weight 1)."""

    name = "edac"
    Config = EDACConfig
