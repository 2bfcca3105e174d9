"""MOPO (Yu et al. 2020): model-based offline policy optimisation with uncertainty-penalised rewards.

An ensemble of n probabilistic dynamics models is fitted to the data; SAC then trains on short
rollouts of the current policy in the models, each reward lowered by the models' uncertainty:

    models:   p_i(s' - s, r | s, a) = N(mu_i(s, a), Sigma_i(s, a)),  i = 1..n, by Gaussian NLL
    rollouts: from data states, h steps under pi; each step through a random elite i,
              (s' - s, r) ~ p_i,  r~ = r - lambda max_j ||Sigma_j(s, a)||_2   (j over all n models)
    policy:   SAC on batches of ``real_ratio`` data and the rest rollout transitions

One ``update`` is one step of the run. The first ``model_train_steps`` updates fit the models
(each on its own bootstrap resample of the batch, as the reference's per-model bootstrap; inputs
standardised by running statistics of the training rows). Hold-out: a fixed ``holdout_fraction``
of the dataset's transitions, chosen by a hash of their (s, a) bits, never enters a model's
gradient; each model's squared error on the held-out rows of its batches is averaged (over about
the last 100 batches) and the ``elites`` with the lowest become the elites (chosen on the device).
After that, every ``rollout_every`` updates (the first at ``model_train_steps``) ``rollout_batch``
start states, remembered from the latest batches, are rolled out ``rollout_horizon`` steps. A
rollout stops at a terminal: that transition is stored with done = 1, the row's later steps are
not. The ``termination`` rule (``envs/termination.py``) is set per task from the reference
(``domain_settings.json``). Transitions go into a ring of the last ``retain_rollouts`` rollouts'
size, a tensor of the algorithm (so a checkpoint holds it and training resumes exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import adam, optimize
from d4rl_lite.algorithms.memory import mlp_weights
from d4rl_lite.algorithms.sac import SAC, SACConfig
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate, Steps, Weight
from d4rl_lite.envs.termination import TERMINATION_RULES
from d4rl_lite.errors import UserInputError
from d4rl_lite.nets import rand_uniform, randn
from d4rl_lite.nets.dynamics import GaussianEnsemble

# The hold-out error is averaged with this decay: about the last 100 batches' held-out rows.
HOLDOUT_AVERAGE = 0.99
# Rollouts run this many start states at a time (memory: rows x models x hidden activations).
ROLLOUT_CHUNK = 10_000


@dataclass
class MOPOConfig(SACConfig):
    dynamics_hidden: Layers = (200, 200, 200, 200)
    """Hidden layer sizes of each dynamics model (swish activations). The shorthand ``hidden`` sets these too:
    to shrink the policy's networks alone, give ``dynamics_hidden`` beside it."""
    dynamics_lr: LearningRate = 1e-3
    """Adam learning rate of the dynamics models."""
    ensemble_size: Count = 7
    """Dynamics models in the ensemble (the reference's 7)."""
    elites: Count = 5
    """Models with the lowest hold-out error that rollouts step through (the reference's 5)."""
    holdout_fraction: float = 0.2
    """Fraction of the dataset's transitions (a fixed hash of s, a) that the models never train on; elites are
    chosen by their error there (the reference's ratio 0.2, which it caps at 1000 transitions)."""
    model_train_steps: Steps = 100_000
    """First updates: only the dynamics models are fitted (our choice: the reference trains them until the
    hold-out loss stops improving); SAC trains on model rollouts after them."""
    rollout_every: Count = 1000
    """Updates between two rollouts of the models (the reference's model_train_freq)."""
    rollout_batch: Count = 50_000
    """Start states per rollout, taken from the latest data batches (the reference's rollout_batch_size)."""
    rollout_horizon: Count = 5
    """Steps of each rollout, h (the reference's rollout_length per D4RL dataset: 5, but 1 on halfcheetah-medium,
    walker2d-random, -mixed and -medium-expert)."""
    retain_rollouts: Count = 5
    """Rollouts the model-data ring holds (the reference's model_retain_epochs): rollout_batch x rollout_horizon x this."""
    penalty: Weight = 1.0
    """lambda, the weight of the uncertainty max_i ||Sigma_i(s, a)|| subtracted from model rewards (the reference's
    penalty_coeff per D4RL dataset: 1, but 0.5 on halfcheetah-random, 5 on hopper-medium, walker2d-medium and
    halfcheetah-medium-expert, 2 on walker2d-medium-expert)."""
    real_ratio: float = 0.05
    """Fraction of each SAC batch taken from the dataset; the rest from model rollouts."""
    termination: str = "none"
    """Where model rollouts end: hopper, walker2d, ant (those tasks' healthy ranges) or none (never). Runs on hopper,
    walker2d and ant get their task's rule (the reference's); halfcheetah and the point mazes never end."""

    def validate(self) -> None:
        if self.elites > self.ensemble_size:
            raise UserInputError(f"elites ({self.elites}) cannot exceed ensemble_size ({self.ensemble_size})")
        if not 0.0 <= self.real_ratio <= 1.0:
            raise UserInputError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise UserInputError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.termination not in TERMINATION_RULES:
            raise UserInputError(f"termination must be one of {', '.join(TERMINATION_RULES)}, got {self.termination!r}")


def uncertainty_penalty(logvar: torch.Tensor) -> torch.Tensor:
    """max_i ||Sigma_i(s, a)||: the largest Euclidean norm over the n models of their standard
    deviations (the reference's learned-variance penalty); logvar (n, ..., out) -> (...)."""
    return (0.5 * logvar).exp().norm(dim=-1).amax(0)


def imagined_step(obs: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, model: torch.Tensor,
                  noise: torch.Tensor, penalty_weight: float | torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One model step for rows (G, C): a sample of model ``model`` (G, C) from the ensemble's
    outputs (n, G, C, obs + 1), drawn with standard-normal ``noise`` (G, C, obs + 1). Returns
    (next state, penalised reward, penalty)."""
    index = model[None, ..., None].expand(1, *model.shape, mean.shape[-1])
    sample = mean.gather(0, index)[0] + (0.5 * logvar.gather(0, index)[0]).exp() * noise
    penalty = uncertainty_penalty(logvar)
    return obs + sample[..., :-1], sample[..., -1] - penalty_weight * penalty, penalty


def choose_elites(holdout_error: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` models with the lowest hold-out error (..., n) -> (..., k), on the device."""
    return (-holdout_error).topk(k, dim=-1).indices


def in_holdout(obs: torch.Tensor, act: torch.Tensor, fraction: float) -> torch.Tensor:
    """Whether each transition is held out: a fixed hash of its (s, a) float bits, so the same
    transition is held out in every batch and in every run (about ``fraction`` of them)."""
    bits = torch.cat([obs, act], -1).contiguous().view(torch.int32).long() & 0xFFFFFFFF
    prime = 2_147_483_647  # 2^31 - 1: every product below stays under 2^63
    weights = torch.arange(1, bits.shape[-1] + 1, device=bits.device) * 1_000_003 % prime
    mixed = ((bits * weights) % prime).sum(-1) % prime * 2_654_435_761 % prime
    return mixed % 100_000 < round(fraction * 100_000)


@register("mopo")
class MOPO(SAC):
    name = "mopo"
    naive_baseline = False
    Config = MOPOConfig
    supports_population = True
    sweepable = ("penalty",)
    @staticmethod
    def memory_bytes(cfg: MOPOConfig, obs_dim: int, act_dim: int) -> int:
        """What MOPO keeps besides its SAC (``algorithms/memory.py``): the model-data ring (float32 rows of
        s, a, r, s', done), the dynamics ensemble's weights with gradients and Adam moments, and one
        rollout chunk's activations through every model."""
        ring = (cfg.rollout_batch * cfg.rollout_horizon * cfg.retain_rollouts + 1) * (2 * obs_dim + act_dim + 2) * 4
        widths = [obs_dim + act_dim, *cfg.dynamics_hidden, 2 * (obs_dim + 1)]
        models = 16 * cfg.ensemble_size * mlp_weights(widths)
        chunk = 4 * min(cfg.rollout_batch, 10_000) * cfg.ensemble_size * sum(widths)
        return ring + models + chunk

    @classmethod
    def cost_phases(cls, config: MOPOConfig, start: int, end: int) -> tuple[tuple[int, int, int], ...]:
        """Fitting the models, the updates that roll out (each a whole rollout, timed once), then SAC's.
        Rollouts run at model_train_steps and every rollout_every after; the one timed is the first
        whose start states are all remembered (at batch_size a step), or the span's last: earlier
        ones roll out fewer (an upper bound)."""
        fit_end = min(max(config.model_train_steps, start), end)
        fitting = (start, fit_end - start, fit_end - start)
        first, every = max(start, config.model_train_steps), config.rollout_every

        def at_or_after(step: int) -> int:  # the first rollout step >= step (step >= model_train_steps)
            return config.model_train_steps + -(-(step - config.model_train_steps) // every) * every

        rollouts = len(range(at_or_after(first), end, every)) if end > first else 0
        full = at_or_after(max(first, -(-config.rollout_batch // config.batch_size) - 1))
        timed = min(full, at_or_after(first) + (rollouts - 1) * every)
        rolling = (timed, rollouts, 1)
        sac = (timed + 1, end - first - rollouts, every - 1) if rollouts else (first, end - first, end - first)
        return tuple(phase for phase in (fitting, rolling, sac) if phase[1] > 0)

    def setup(self) -> None:
        super().setup()  # SAC's actor, critics, temperature and optimizers
        cfg = self.config
        self.dynamics = self.network(lambda: GaussianEnsemble(self.obs_dim, self.act_dim, cfg.dynamics_hidden,
                                                              cfg.ensemble_size))
        self.dynamics_opt = adam(self.dynamics.parameters(), lr=cfg.dynamics_lr)
        d_in = self.obs_dim + self.act_dim
        # Running sums of the training rows' inputs (float64), for the models' input standardisation.
        self.input_count = self.member_tensor(0.0).double()
        self.input_sum = self.member_tensor(torch.zeros(d_in)).double()
        self.input_sumsq = self.member_tensor(torch.zeros(d_in)).double()
        self.holdout_error = self.member_tensor(torch.zeros(cfg.ensemble_size))
        self.elite_index = self.member_tensor(torch.arange(cfg.elites, dtype=torch.float32)).long()
        self.start_states = self.member_tensor(torch.zeros(cfg.rollout_batch, self.obs_dim))
        # The model-data ring (rows: s, a, r, s', done) and one spare row that masked writes land in.
        self.capacity = cfg.rollout_batch * cfg.rollout_horizon * cfg.retain_rollouts
        self.model_data = self.member_tensor(torch.zeros(self.capacity + 1, 2 * self.obs_dim + self.act_dim + 2))
        self.model_next = self.member_tensor(0.0).long()  # where the next transition goes
        self.model_filled = self.member_tensor(0.0).long()
        self.rollout_penalty = self.member_tensor(0.0)  # of the last rollout, for the log
        self.rollout_length = self.member_tensor(0.0)

    # -- members-first views: a solo run's tensors get a member dimension of 1 ----------------------
    def _g(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.members else x.unsqueeze(0)

    def _outer(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.members else x.squeeze(0)

    @staticmethod
    def _each(t: torch.Tensor, *tail: int) -> torch.Tensor:
        """A per-run tensor attribute viewed (G, *tail): writes go to the attribute."""
        return t.view(-1, *tail)

    def _draw(self, sample, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """(G, *shape) draws, member m's from its own stream (``self.noise``)."""
        return self._g(sample((self.members, *shape) if self.members else shape, like=like, generator=self.noise))

    def _models(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ensemble on inputs (n, G, B, d) -> (mean, logvar), each (n, G, B, out)."""
        if self.members:
            return self.dynamics(x)
        mean, logvar = self.dynamics(x.squeeze(1))
        return mean.unsqueeze(1), logvar.unsqueeze(1)

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        count = self._each(self.input_count, 1, 1).clamp_min(1.0)
        mean = self._each(self.input_sum, 1, d) / count
        std = (self._each(self.input_sumsq, 1, d) / count - mean.pow(2)).clamp_min(0.0).sqrt()
        std = torch.where(std < 1e-6, torch.ones_like(std), std)  # a constant input stays as it is
        return (x - mean.float()) / std.float()

    # -- the update -----------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        per_step = self._remember_starts(self._g(batch["observations"]))
        if self.step < cfg.model_train_steps:
            return self._fit_models(batch)
        if (self.step - cfg.model_train_steps) % cfg.rollout_every == 0:
            self._rollout(available=min(cfg.rollout_batch, (self.step + 1) * per_step))
        metrics = super().update(self._mixed_batch(batch))
        filled = self._each(self.model_filled).float() / self.capacity
        return {**metrics, "train/model_penalty": self._outer(self._each(self.rollout_penalty)).clone(),
                "train/rollout_length": self._outer(self._each(self.rollout_length)).clone(),
                "train/model_data_fill": self._outer(filled)}

    def _fit_models(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step of Gaussian NLL on each model's bootstrap resample of the batch's training rows."""
        cfg, n = self.config, self.config.ensemble_size
        obs, act = self._g(batch["observations"]), self._g(batch["actions"])
        x = torch.cat([obs, act], -1)
        y = torch.cat([self._g(batch["next_observations"]) - obs, self._g(batch["rewards"]).unsqueeze(-1)], -1)
        held = in_holdout(obs, act, cfg.holdout_fraction).float()  # (G, B)
        train = 1.0 - held
        with torch.no_grad():
            self._each(self.input_count, 1).add_(train.sum(-1, keepdim=True).double())
            self._each(self.input_sum, x.shape[-1]).add_((train.unsqueeze(-1) * x).sum(-2).double())
            self._each(self.input_sumsq, x.shape[-1]).add_((train.unsqueeze(-1) * x.pow(2)).sum(-2).double())
        rows = x.shape[-2]
        pick = (self._draw(rand_uniform, (n, rows), like=x) * rows).long().clamp_max(rows - 1)  # (G, n, B)

        def resample(t: torch.Tensor) -> torch.Tensor:  # (G, B, d) -> each model's rows (n, G, B, d)
            t = t.unsqueeze(1).expand(-1, n, -1, -1)
            return t.gather(2, pick.unsqueeze(-1).expand(*pick.shape, t.shape[-1])).transpose(0, 1)

        mean, logvar = self._models(resample(self._standardise(x)))
        targets = resample(y)
        w_train, w_held = resample(train.unsqueeze(-1))[..., 0], resample(held.unsqueeze(-1))[..., 0]
        squared = (mean - targets).pow(2)
        nll = (squared * (-logvar).exp() + logvar).mean(-1)  # (n, G, B)
        model_loss = (nll * w_train).sum(-1) / w_train.sum(-1).clamp_min(1.0)  # (n, G)
        reg = self.dynamics.regularizer()
        optimize(self.dynamics_opt, self._outer(model_loss.sum(0)) + reg)

        with torch.no_grad():  # hold-out squared error of each model, averaged, and the elites it gives
            count = w_held.sum(-1)  # (n, G)
            error = (squared.detach().mean(-1) * w_held).sum(-1) / count.clamp_min(1.0)
            rate = (1.0 - HOLDOUT_AVERAGE) * (count > 0)  # a batch without held-out rows leaves it
            average = self._each(self.holdout_error, n)
            average.add_(rate.T * (error.T - average))
            self._each(self.elite_index, cfg.elites).copy_(choose_elites(average, cfg.elites))
            elite_error = average.gather(-1, self._each(self.elite_index, cfg.elites)).mean(-1)
        return {"train/model_loss": self._outer(model_loss.detach().mean(0)),
                "train/model_holdout_mse": self._outer(elite_error)}

    def _remember_starts(self, obs: torch.Tensor) -> int:
        """Keep the batch's states as rollout starts (a ring written in step order); returns how
        many a step keeps."""
        size = self.config.rollout_batch
        k = min(obs.shape[-2], size)
        where = (torch.arange(k, device=obs.device) + self.step * k) % size
        self._each(self.start_states, size, self.obs_dim)[:, where] = obs[:, :k]
        return k

    @torch.no_grad()
    def _rollout(self, available: int) -> None:
        """Roll the policy out in the models from the first ``available`` remembered start states
        (fewer than rollout_batch only if so few were seen yet); store the transitions."""
        cfg = self.config
        starts = self._each(self.start_states, cfg.rollout_batch, self.obs_dim)[:, :available]
        elites = self._each(self.elite_index, cfg.elites)
        obs_mean, obs_std = self._each(self.obs_mean, 1, self.obs_dim), self._each(self.obs_std, 1, self.obs_dim)
        rule = TERMINATION_RULES[cfg.termination]
        penalty_sum = torch.zeros(elites.shape[0], device=self.device)
        stored = torch.zeros_like(penalty_sum)
        for obs in starts.split(ROLLOUT_CHUNK, dim=1):
            alive = torch.ones(obs.shape[:2], dtype=torch.bool, device=self.device)
            for _ in range(cfg.rollout_horizon):
                act = self._g(self.actor(self._outer(obs), generator=self.noise)[0])
                x = self._standardise(torch.cat([obs, act], -1))
                mean, logvar = self._models(x.unsqueeze(0).expand(cfg.ensemble_size, *x.shape))
                slot = (self._draw(rand_uniform, obs.shape[1:2], like=obs) * cfg.elites).long().clamp_max(cfg.elites - 1)
                noise = self._draw(randn, (obs.shape[1], mean.shape[-1]), like=obs)
                lam = self.setting("penalty", like=self._outer(obs[..., 0]))
                next_obs, reward, penalty = imagined_step(obs, mean, logvar, elites.gather(1, slot), noise, lam)
                finite = torch.isfinite(next_obs).all(-1) & torch.isfinite(reward)
                done = rule(next_obs * obs_std + obs_mean)  # the rule reads raw observations
                keep = alive & finite
                self._store(obs, act, reward, next_obs, done, keep)
                penalty_sum += torch.where(keep, penalty, 0.0).sum(-1)
                stored += keep.sum(-1)
                alive = keep & ~done
                obs = torch.where(finite.unsqueeze(-1), next_obs, obs)  # rows that stopped stay masked
        self._each(self.rollout_penalty).copy_(penalty_sum / stored.clamp_min(1.0))
        self._each(self.rollout_length).copy_(stored / available)

    def _store(self, obs, act, reward, next_obs, done, keep) -> None:
        """Write the ``keep`` rows (G, C) in order at the ring's next places; the others go to the spare row."""
        rows = torch.cat([obs, act, reward.unsqueeze(-1), next_obs, done.float().unsqueeze(-1)], -1)
        rows = torch.where(keep.unsqueeze(-1), rows, 0.0)  # the spare row only ever holds zeros
        data = self._each(self.model_data, self.capacity + 1, rows.shape[-1])
        nxt, filled = self._each(self.model_next), self._each(self.model_filled)
        order = keep.long().cumsum(-1) - 1
        dest = torch.where(keep, (nxt.unsqueeze(-1) + order) % self.capacity, self.capacity)
        data.scatter_(1, dest.unsqueeze(-1).expand_as(rows), rows)
        count = keep.long().sum(-1)
        nxt.copy_((nxt + count) % self.capacity)
        filled.copy_((filled + count).clamp_max(self.capacity))

    def _mixed_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``real_ratio`` of the batch's own rows, the rest drawn uniformly from the model data."""
        rows = batch["rewards"].shape[-1]
        real = int(self.config.real_ratio * rows)
        data = self._each(self.model_data, self.capacity + 1, self.model_data.shape[-1])
        filled = self._each(self.model_filled)
        pick = (self._draw(rand_uniform, (rows - real,), like=data) * filled.unsqueeze(-1)).long()
        pick = torch.minimum(pick, (filled - 1).clamp_min(0).unsqueeze(-1))  # float rounding at the top end
        model = data.gather(1, pick.unsqueeze(-1).expand(*pick.shape, data.shape[-1]))
        o, a = self.obs_dim, self.act_dim
        parts = {"observations": model[..., :o], "actions": model[..., o:o + a], "rewards": model[..., o + a],
                 "next_observations": model[..., o + a + 1:-1], "terminals": model[..., -1]}
        return {k: self._outer(torch.cat([self._g(batch[k])[:, :real], v], 1)) for k, v in parts.items()}
