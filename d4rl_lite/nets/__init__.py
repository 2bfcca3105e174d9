"""Networks shared by every algorithm: MLPs, Q ensembles, tanh-Gaussian policies, target updates."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """Linear-ReLU stack; the output layer has no activation.

    The ReLUs work in place: a linear layer's backward needs its input, not its output, so the
    pre-activation need not be kept, and at CQL's 7680-row batches not writing a second
    activation tensor per layer is measurably faster (memory traffic, not FLOPs, bounds the
    elementwise ops on this CPU).
    """
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU(inplace=True)]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied as one batched matmul: input (n, B, in) -> (n, B, out)."""

    def __init__(self, in_dim: int, out_dim: int, n: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        # Same initialisation as nn.Linear, member by member.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_weights(cls, weight: torch.Tensor, bias: torch.Tensor) -> EnsembleLinear:
        """A layer holding ``weight`` (n, in, out) and ``bias`` (n, 1, out) as they are (no initialisation)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.weight = nn.Parameter(weight.clone())
        layer.bias = nn.Parameter(bias.clone())
        return layer

    def forward(self, x: torch.Tensor, first: int | None = None) -> torch.Tensor:
        """``first``: only the first ``first`` of the n layers (x: (first, B, in))."""
        weight, bias = (self.weight, self.bias) if first is None else (self.weight[:first], self.bias[:first])
        if weight.shape[-1] == 1:
            # A Q head: a batched matrix-vector product. CPU bmm/baddbmm with one output column
            # (and its backward) runs at ~1.5 GFLOP/s here, slower than a 256x256 layer; multiply
            # and sum does the same arithmetic without it (updates 3-11% faster).
            return (x * weight.transpose(1, 2)).sum(-1, keepdim=True) + bias
        # Under bf16 autocast (--precision bf16) the product runs in bf16; what leaves the layer is
        # fp32 again, so only matrix products change precision.
        return torch.baddbmm(bias, x, weight).float()


class QEnsemble(nn.Module):
    """``num_q`` critics Q(s, a) evaluated together; returns (num_q, B), or (num_q, M, B) for a
    population of M members (``nets.members``: inputs (M, B, d))."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), num_q: int = 2):
        super().__init__()
        self.num_q = num_q
        self.members = 0  # set by nets.members.stack_members
        dims = [obs_dim + act_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [EnsembleLinear(a, b, num_q), nn.ReLU(inplace=True)]  # in place: see mlp
        layers.append(EnsembleLinear(dims[-1], 1, num_q))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, actions], dim=-1)
        if self.members:  # (M, B, d), or per critic (num_q, M, B, d): critic-major rows of the stacked layers
            m, b = x.shape[-3], x.shape[-2]
            x = x.expand(self.num_q, m, b, x.shape[-1]).reshape(self.num_q * m, b, x.shape[-1])
            return self.net(x).view(self.num_q, m, b)
        if x.dim() == 2:  # the same batch for every critic
            x = x.unsqueeze(0).expand(self.num_q, -1, -1)
        return self.net(x).squeeze(-1)

    def first(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_1(s, a) alone, ([M,] B): what ``forward(obs, actions)[0]`` gives, computing only the first
        critic (critic-major layers: its rows come first), for losses and choices that read Q_1 only."""
        x = torch.cat([obs, actions], dim=-1)
        rows = self.members or 1
        x = x if self.members else x.unsqueeze(0)
        for layer in self.net:
            x = layer(x, first=rows) if isinstance(layer, EnsembleLinear) else layer(x)
        q1 = x.squeeze(-1)  # (M, B), or (1, B) for a solo run
        return q1 if self.members else q1[0]


class TanhGaussianPolicy(nn.Module):
    """SAC's policy: a = tanh(mu + sigma * eps), with the tanh change of variables in log pi."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256),
                 log_std_min: float = -20.0, log_std_max: float = 2.0):
        super().__init__()
        self.trunk = mlp(obs_dim, 2 * act_dim, hidden)
        self.act_dim = act_dim
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def distribution_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.trunk(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def forward(self, obs: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None,
                samples: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(action, log_prob) with the reparameterisation trick; deterministic gives tanh(mean).

        ``samples`` actions per state, rows grouped by state: the draws and results of
        ``forward(obs.repeat_interleave(samples, -2))``, with the network run once per state."""
        mean, log_std = self.distribution_params(obs)
        if deterministic:
            return tanh_gaussian_sample(mean, log_std, None)
        mean, log_std = repeat_rows(mean, samples), repeat_rows(log_std, samples)
        return tanh_gaussian_sample(mean, log_std, randn(mean.shape, like=mean, generator=generator))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """log pi(a | s) of given actions in (-1, 1) (clipped away from the bounds for atanh)."""
        mean, log_std = self.distribution_params(obs)
        pre_tanh = torch.atanh(actions.clamp(-1 + eps, 1 - eps))
        return _gaussian_log_prob(pre_tanh, mean, log_std) - _tanh_log_det(pre_tanh)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self(obs, deterministic=deterministic)[0]


def randn(shape: Sequence[int], like: torch.Tensor, generator=None) -> torch.Tensor:
    """Standard normal draws shaped ``shape`` on ``like``'s device and dtype; ``generator`` is None
    (torch's global stream), a torch.Generator, or a population's ``nets.members.MemberGenerators``."""
    if hasattr(generator, "generators"):
        return generator.randn(tuple(shape), like)
    return torch.randn(tuple(shape), device=like.device, dtype=like.dtype, generator=generator)


def rand_uniform(shape: Sequence[int], like: torch.Tensor, generator=None) -> torch.Tensor:
    """Uniform [0, 1) draws, as ``randn`` (global stream, a torch.Generator, or MemberGenerators)."""
    if hasattr(generator, "generators"):
        return generator.rand(tuple(shape), like)
    return torch.rand(tuple(shape), device=like.device, dtype=like.dtype, generator=generator)


def repeat_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """Each row (dim -2) n times, rows grouped by state: the layout of every sampled-action block."""
    return x if n == 1 else x.repeat_interleave(n, -2)


def tanh_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor,
                         eps: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(tanh(mean + std * eps), its log-density) of a tanh-Gaussian; eps None: the mode, tanh(mean)."""
    pre_tanh = mean if eps is None else mean + log_std.exp() * eps
    log_prob = _gaussian_log_prob(pre_tanh, mean, log_std) - _tanh_log_det(pre_tanh)
    return torch.tanh(pre_tanh), log_prob


# Devices on which batched_call concatenates. A GPU update is launch-bound: one call per layer instead of
# several pays. On the CPU (one thread) it measured slower (CQL's critics' forward and backward
# on data, uniform, pi(s) and pi(s') actions in one call, 0.70x at 2x128 with 5 members, 0.93x at 2x256
# solo): the larger activations leave the caches. There the groups run one by one.
CONCATENATE_ON = {"cuda"}


def batched_call(fn: Callable[..., Any], groups: Sequence[tuple[torch.Tensor, ...]], out_rows: int = -2) -> list[Any]:
    """``[fn(*group) for group in groups]``, on the devices of ``CONCATENATE_ON`` as one call of ``fn``
    on the groups' rows concatenated (inputs' rows on dim -2, the output's on ``out_rows``; a tuple
    output is split item by item). Only for networks whose rows do not interact (every MLP here)."""
    if groups[0][0].device.type not in CONCATENATE_ON:
        return [fn(*group) for group in groups]
    sizes = [group[0].shape[-2] for group in groups]
    out = fn(*[torch.cat(parts, -2) for parts in zip(*groups)])
    if isinstance(out, tuple):
        return list(zip(*[item.split(sizes, out_rows) for item in out]))
    return list(out.split(sizes, out_rows))


def _gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def _tanh_log_det(pre_tanh: torch.Tensor) -> torch.Tensor:
    # log(1 - tanh(x)^2), written stably as 2 * (log 2 - x - softplus(-2x)).
    return (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * source, in place, all parameters in one fused op."""
    t_params = list(target.parameters())
    torch._foreach_lerp_(t_params, list(source.parameters()), tau)


class DeterministicActor(nn.Module):
    """a = tanh(f(s)) (TD3+BC, BC)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


class GaussianPolicy(nn.Module):
    """N(tanh(f(s)), exp(log_std)) with a state-independent, clamped log-std (AWAC, IQL).

    Samples are not squashed; they are clipped to the action bounds when acting.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256),
                 log_std_min: float = -6.0, log_std_max: float = 0.0, init_log_std: float = 0.0):
        super().__init__()
        self.mean_net = mlp(obs_dim, act_dim, hidden)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean = torch.tanh(self.mean_net(obs))
        std = self.log_std.clamp(self.log_std_min, self.log_std_max).exp()
        # No argument validation: it checks the scale with a host readback on every call.
        return torch.distributions.Normal(mean, std.expand_as(mean), validate_args=False)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.distribution(obs).log_prob(actions).sum(-1)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mean_net(obs))


class ValueNet(nn.Module):
    """V(s) (IQL)."""

    def __init__(self, obs_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, 1, hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class ConditionalVAE(nn.Module):
    """Generative model of the behaviour policy, p(a | s) (BCQ, BEAR): encoder q(z | s, a), decoder p(a | s, z)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (750, 750), latent_dim: int | None = None,
                 latent_clip: float = 0.5):
        super().__init__()
        self.latent_dim = latent_dim or 2 * act_dim
        self.latent_clip = latent_clip
        self.encoder = mlp(obs_dim + act_dim, 2 * self.latent_dim, hidden)
        self.decoder = mlp(obs_dim + self.latent_dim, act_dim, hidden)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor,
                generator=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, mean, std) for the VAE loss."""
        mean, log_std = self.encoder(torch.cat([obs, actions], -1)).chunk(2, -1)
        std = log_std.clamp(-4, 15).exp()
        z = mean + std * randn(std.shape, like=std, generator=generator)
        return self.decode(obs, z), mean, std

    def prior(self, obs: torch.Tensor, generator=None) -> torch.Tensor:
        """One latent per row of ``obs`` from the prior, clipped: BCQ's choice to stay near likely actions."""
        z = randn((*obs.shape[:-1], self.latent_dim), like=obs, generator=generator)
        return z.clamp(-self.latent_clip, self.latent_clip)

    def decode(self, obs: torch.Tensor, z: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        """Actions decoded from latents ``z`` (None: drawn from the ``prior``)."""
        if z is None:
            z = self.prior(obs, generator)
        return torch.tanh(self.decoder(torch.cat([obs, z], -1)))

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, generator=None) -> torch.Tensor:
        """Reconstruction + 0.5 * KL(q(z | s, a) || N(0, I)) (BCQ's weighting), over a run's batch."""
        recon, mean, std = self(obs, actions, generator)
        kl = -0.5 * (1 + torch.log(std.pow(2)) - mean.pow(2) - std.pow(2)).mean((-2, -1))
        return (recon - actions).pow(2).mean((-2, -1)) + 0.5 * kl


def best_of_candidates(critic: QEnsemble, obs: torch.Tensor, candidates: torch.Tensor, n: int) -> torch.Tensor:
    """Per state, the one of ``n`` candidate actions (rows grouped by state) with the highest Q1."""
    b = obs.shape[-2]
    best = critic.first(obs.repeat_interleave(n, -2), candidates).unflatten(-1, (b, n)).argmax(-1)  # ([M,] B)
    grouped = candidates.unflatten(-2, (b, n))  # ([M,] B, n, A)
    index = best[..., None, None].expand(*best.shape, 1, grouped.shape[-1])
    return grouped.gather(-2, index).squeeze(-2)
