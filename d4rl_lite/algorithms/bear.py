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
    ConditionalVAE,
    QEnsemble,
    TanhGaussianPolicy,
    best_of_candidates,
    repeat_rows,
    soft_update,
)


@dataclass
class BEARConfig(AlgorithmConfig):
    actor_hidden: Layers = (256, 256)
    """Hidden layer sizes of the tanh-Gaussian actor."""
    critic_hidden: Layers = (256, 256)
    """Hidden layer sizes of each of the two critics."""
    vae_hidden: Layers = (750, 750)
    """Hidden layer sizes of the conditional VAE's encoder and decoder (the model of the behaviour policy)."""
    actor_lr: LearningRate = 1e-4
    """Adam learning rate of the actor."""
    critic_lr: LearningRate = 3e-4
    """Adam learning rate of the critics."""
    vae_lr: LearningRate = 3e-4
    """Adam learning rate of the VAE."""
    lagrange_lr: LearningRate = 1e-3
    """Adam learning rate of log alpha, the Lagrange multiplier of the MMD constraint (dual ascent)."""
    tau: Rate = 0.005
    """Soft target update rate: the target critics move this fraction towards the online ones per update."""
    mmd_threshold: float = 0.05
    """epsilon: the constraint MMD(pi, behaviour) <= epsilon; alpha grows while the MMD exceeds it."""
    mmd_samples: Count = 4
    """Policy actions and VAE actions per state in the MMD estimate; the actor's Q term averages the same policy actions."""
    kernel: str = "laplacian"
    """MMD kernel, "laplacian" (L1 distance) or "gaussian" (squared L2); the reference uses "laplacian" on hopper and
    walker2d, "gaussian" on halfcheetah."""
    kernel_sigma: float = 20.0
    """Kernel bandwidth sigma: k(a, b) = exp(-d(a, b) / (2 sigma)), d the kernel's distance between actions."""
    log_alpha_min: float = -5.0
    """Lower clamp of log alpha, the MMD constraint's Lagrange multiplier, after each dual step."""
    log_alpha_max: float = 10.0
    """Upper clamp of log alpha, the MMD constraint's Lagrange multiplier, after each dual step."""
    lmbda: float = 0.75
    """lambda: target value = lmbda * min(Q'1, Q'2) + (1 - lmbda) * max(Q'1, Q'2), mixing min and max over critics."""
    target_samples: Count = 10
    """Policy actions per next state in the target; the target takes the best of them."""
    act_samples: Count = 100
    """Policy samples per state when acting; the one with the highest Q1 is taken (as the reference)."""
    warmup_steps: Steps = 40_000
    """First updates: the actor only keeps the MMD to the behaviour samples under the threshold, without Q."""
    # "hidden" meant the actor's and critics' layers here (the VAE has its own): kept so for --set.
    renamed = {"hidden": ("actor_hidden", "critic_hidden")}

    def validate(self) -> None:
        if self.kernel not in ("laplacian", "gaussian"):
            raise UserInputError(f"kernel must be 'laplacian' or 'gaussian', got {self.kernel!r}")


def mmd(x: torch.Tensor, y: torch.Tensor, kernel: str, sigma: float) -> torch.Tensor:
    """Per-state MMD between sample sets x ([M,] B, n, A) and y ([M,] B, m, A):
    sqrt(E k(x, x') + E k(y, y') - 2 E k(x, y)).

    k(x, x') and k(x, y) come from one kernel matrix of x against x and y; k(y, y'), on the VAE's
    samples (no gradient), stays outside autograd."""
    n = x.shape[-2]
    k_x = kernel_matrix(x, torch.cat([x, y], -2), kernel, sigma)  # ([M,] B, n, n + m): k(x, x') | k(x, y)
    with torch.no_grad():
        k_yy = kernel_matrix(y, y, kernel, sigma)
    return (k_x[..., :n].mean((-2, -1)) + k_yy.mean((-2, -1)) - 2 * k_x[..., n:].mean((-2, -1)) + 1e-6).sqrt()


def kernel_matrix(a: torch.Tensor, b: torch.Tensor, kernel: str, sigma: float) -> torch.Tensor:
    """k(a_i, b_j) = exp(-d(a_i, b_j) / (2 sigma)) for sample sets a ([M,] B, n, A), b ([M,] B, m, A): ([M,] B, n, m).
    The Laplacian's L1 distances come from torch.cdist, which keeps no (n, m, A) differences for the backward."""
    if kernel == "laplacian":
        dist = torch.cdist(a, b, p=1.0)
    else:
        dist = (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)
    return torch.exp(-dist / (2.0 * sigma))


@register("bear")
class BEAR(OfflineAlgorithm):
    name = "bear"
    Config = BEARConfig
    supports_population = True
    sweepable = ("lmbda", "mmd_threshold")

    def setup(self) -> None:
        cfg = self.config
        self.actor = self.network(lambda: TanhGaussianPolicy(self.obs_dim, self.act_dim, cfg.actor_hidden))
        self.critic = self.network(lambda: QEnsemble(self.obs_dim, self.act_dim, cfg.critic_hidden, num_q=2))
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.vae = self.network(lambda: ConditionalVAE(self.obs_dim, self.act_dim, cfg.vae_hidden))
        self.log_alpha = self.member_tensor(math.log(1.0), requires_grad=True)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.vae_opt = adam(self.vae.parameters(), lr=cfg.vae_lr)
        self.alpha_opt = adam([self.log_alpha], lr=cfg.lagrange_lr)

    def mmd_to_data(self, obs: torch.Tensor, policy_actions: torch.Tensor | None = None) -> torch.Tensor:
        """MMD between ``mmd_samples`` policy actions and as many VAE (behaviour) actions, per state."""
        cfg, b = self.config, obs.shape[-2]
        rep = obs.repeat_interleave(cfg.mmd_samples, -2)  # rows grouped by state
        with torch.no_grad():
            data_like = self.vae.decode(rep, generator=self.noise).unflatten(-2, (b, cfg.mmd_samples))
        if policy_actions is None:
            policy_actions = self.actor(obs, generator=self.noise, samples=cfg.mmd_samples)[0]
        return mmd(policy_actions.unflatten(-2, (b, cfg.mmd_samples)), data_like, cfg.kernel, cfg.kernel_sigma)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
        next_obs, done = batch["next_observations"], batch["terminals"]
        b = obs.shape[-2]

        vae_loss = self.vae.loss(obs, act, generator=self.noise)
        optimize(self.vae_opt, vae_loss)

        with torch.no_grad():
            nxt = repeat_rows(next_obs, cfg.target_samples)  # rows grouped by state
            q_t = self.critic_target(nxt, self.actor(next_obs, generator=self.noise, samples=cfg.target_samples)[0])
            q_min, q_max = q_t.min(0).values, q_t.max(0).values
            lmbda = self.setting("lmbda", like=q_min)
            q_t = lmbda * q_min + (1.0 - lmbda) * q_max
            target = rew + cfg.gamma * (1.0 - done) * q_t.unflatten(-1, (b, cfg.target_samples)).max(-1).values
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(-1).sum(0)  # summed over the two critics
        optimize(self.critic_opt, critic_loss)

        rep = repeat_rows(obs, cfg.mmd_samples)
        pi_actions = self.actor(obs, generator=self.noise, samples=cfg.mmd_samples)[0]  # rows grouped by state
        divergence = self.mmd_to_data(obs, pi_actions)
        alpha = self.log_alpha.exp().detach()
        threshold = self.setting("mmd_threshold", like=divergence)
        constraint = alpha * (divergence - threshold)
        if self.step < cfg.warmup_steps:
            actor_loss = constraint.mean(-1)
        else:
            with frozen(self.critic):
                q_pi = self.critic(rep, pi_actions).min(0).values.unflatten(-1, (b, cfg.mmd_samples)).mean(-1)
            actor_loss = (-q_pi + constraint).mean(-1)
        optimize(self.actor_opt, actor_loss)

        # Dual ascent on alpha: grows while the MMD exceeds its threshold.
        alpha_loss = -(self.log_alpha.exp() * (divergence.detach() - threshold)).mean(-1)
        optimize(self.alpha_opt, alpha_loss)
        with torch.no_grad():
            self.log_alpha.clamp_(cfg.log_alpha_min, cfg.log_alpha_max)
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {"train/vae_loss": vae_loss.detach(), "train/critic_loss": critic_loss.detach(),
                "train/actor_loss": actor_loss.detach(), "train/mmd": divergence.detach().mean(-1), "train/alpha": alpha,
                "train/q_mean": q.detach().mean((0, -1)), "train/q_max": q.detach().amax((0, -1))}

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Best of ``act_samples`` policy samples under Q1 (as the reference)."""
        n = self.config.act_samples
        return best_of_candidates(self.critic, obs, self.actor(obs, generator=self.eval_noise, samples=n)[0], n)

    @torch.no_grad()
    def behavior_log_likelihood(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """How well the VAE (the model of the behaviour policy) explains (s, a), per state ([M,] B): its ELBO
        as the proxy of log pi_b(a | s), i.e. minus its training loss (reconstruction error + 0.5 KL), taken
        at the posterior mean so that it draws nothing from any random stream. Fine-tuning logs it."""
        mean, log_std = self.vae.encoder(torch.cat([obs, act], -1)).chunk(2, -1)
        std = log_std.clamp(-4, 15).exp()
        kl = -0.5 * (1 + torch.log(std.pow(2)) - mean.pow(2) - std.pow(2)).mean(-1)
        return -((self.vae.decode(obs, mean) - act).pow(2).mean(-1) + 0.5 * kl)
