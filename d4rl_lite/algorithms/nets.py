"""Networks shared by every algorithm: MLPs, Q ensembles, tanh-Gaussian policies, target updates."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear-activation stack; the output layer has no activation."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), activation()]
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class QEnsemble(nn.Module):
    """``num_q`` critics Q(s, a) evaluated together; returns (num_q, B)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), num_q: int = 2):
        super().__init__()
        self.num_q = num_q
        dims = [obs_dim + act_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [EnsembleLinear(a, b, num_q), nn.ReLU()]
        layers.append(EnsembleLinear(dims[-1], 1, num_q))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, actions], dim=-1)
        if x.dim() == 2:  # the same batch for every member
            x = x.unsqueeze(0).expand(self.num_q, -1, -1)
        return self.net(x).squeeze(-1)


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

    def forward(self, obs: torch.Tensor, deterministic: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(action, log_prob) with the reparameterisation trick; deterministic gives tanh(mean)."""
        mean, log_std = self.distribution_params(obs)
        if deterministic:
            pre_tanh = mean
        else:
            eps = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
            pre_tanh = mean + log_std.exp() * eps
        log_prob = _gaussian_log_prob(pre_tanh, mean, log_std) - _tanh_log_det(pre_tanh)
        return torch.tanh(pre_tanh), log_prob

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """log pi(a | s) of given actions in (-1, 1) (clipped away from the bounds for atanh)."""
        mean, log_std = self.distribution_params(obs)
        pre_tanh = torch.atanh(actions.clamp(-1 + eps, 1 - eps))
        return _gaussian_log_prob(pre_tanh, mean, log_std) - _tanh_log_det(pre_tanh)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self(obs, deterministic=deterministic)[0]


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
