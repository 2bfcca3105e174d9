"""Probabilistic dynamics ensemble (PETS / MBPO / MOPO): n Gaussian models of (delta-state, reward).

Each model maps (s, a) to a diagonal Gaussian over y = (s' - s, r). Its log-variance is kept
between learned bounds by soft clamps, as in the reference (Chua et al. 2018, used by MBPO and
MOPO): logvar = max - softplus(max - raw), then min + softplus(logvar - min); the loss adds
0.01 * (sum max - sum min), which pulls the bounds together so that they stay tight.

Models are evaluated together (``EnsembleLinear``): input (n, B, d) -> (n, B, out). In a population
of M members (``nets.members``) the layers are critic-major over (model, member), inputs
(n, M, B, d) -> outputs (n, M, B, out), and the bounds are per member.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from d4rl_lite.nets import EnsembleLinear

# The reference's L2 weight decay of its four hidden layers and of its output layer (MOPO and MBPO
# code); a deeper ensemble's further hidden layers take the last hidden value.
HIDDEN_DECAYS, OUTPUT_DECAY = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5), 1e-4
# Weight of the log-variance bounds' term in the loss (the reference's 0.01).
LOGVAR_BOUND_WEIGHT = 0.01


class GaussianEnsemble(nn.Module):
    """``n`` MLPs (swish activations) each giving the mean and log-variance of y = (s' - s, r)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (200, 200, 200, 200), n: int = 7):
        super().__init__()
        self.n, self.out_dim = n, obs_dim + 1
        self.members = 0  # set by nets.members.stack_members
        dims = [obs_dim + act_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [EnsembleLinear(a, b, n), nn.SiLU()]  # SiLU = swish
        layers.append(EnsembleLinear(dims[-1], 2 * self.out_dim, n))  # mean and log-variance heads side by side
        self.net = nn.Sequential(*layers)
        # Shared by the n models (the reference's bounds): start at 0.5 and -10.
        self.max_logvar = nn.Parameter(torch.full((self.out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((self.out_dim,), -10.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of every model, each (n, [M,] B, out), for inputs (n, [M,] B, in)."""
        if not self.members:
            mean, raw = self.net(x).chunk(2, dim=-1)
            return mean, self._bounded(raw, self.max_logvar, self.min_logvar)
        n, m, b = x.shape[:3]
        mean, raw = self.net(x.reshape(n * m, b, x.shape[-1])).view(n, m, b, -1).chunk(2, dim=-1)
        # Member by member, on contiguous tensors shaped as a solo run's, forward and backward: the
        # bounds' gradients (sums over the batch and the models) then add up in the same order
        # whatever M is, so each member is its solo run bit for bit (broadcast over (n, M, B, out),
        # the order depended on M).
        logvar = torch.cat([self._bounded(raw[:, j].contiguous(), self.max_logvar[j], self.min_logvar[j])
                            for j in range(m)]).view(m, n, b, -1).transpose(0, 1)
        return mean, logvar

    @staticmethod
    def _bounded(raw: torch.Tensor, max_logvar: torch.Tensor, min_logvar: torch.Tensor) -> torch.Tensor:
        logvar = max_logvar - F.softplus(max_logvar - raw)
        return min_logvar + F.softplus(logvar - min_logvar)

    def regularizer(self) -> torch.Tensor:
        """The reference's extra loss terms, per member (a scalar for a solo ensemble): each layer's
        L2 decay 0.5 * decay * ||W||^2 and 0.01 * (sum max_logvar - sum min_logvar)."""
        linears = [m for m in self.net if isinstance(m, EnsembleLinear)]
        decays = [HIDDEN_DECAYS[min(i, len(HIDDEN_DECAYS) - 1)] for i in range(len(linears) - 1)] + [OUTPUT_DECAY]
        bounds = self.max_logvar.sum(-1) - self.min_logvar.sum(-1)  # ([M, 1])
        total = LOGVAR_BOUND_WEIGHT * bounds.reshape(-1) if self.members else LOGVAR_BOUND_WEIGHT * bounds
        for layer, decay in zip(linears, decays):
            w = layer.weight
            squares = w.view(self.n, self.members, *w.shape[1:]).pow(2).sum((0, 2, 3)) if self.members else w.pow(2).sum()
            total = total + 0.5 * decay * squares
        return total
