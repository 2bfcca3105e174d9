"""When a locomotion task's episode ends, read from the next observation alone (model-based
rollouts stop there, as MOPO's reference ends its rollouts with such "static" functions).

Each rule takes raw next observations (..., obs_dim) and gives a boolean (...): True where the
episode would have terminated. The ranges are Gymnasium v5's default ``healthy_*`` ranges, which
are D4RL's (v2 and v5 lay out the observations alike: position x left out, so obs[0] is the torso
height and obs[1] its angle):

- hopper (Hopper-v5): healthy while z > 0.7, |angle| < 0.2 and |obs[1:]| < 100. (The environment
  checks the unclipped joint velocities; the observation clips them to +-10, so that part of the
  check never fires on observations.)
- walker2d (Walker2d-v5): healthy while 0.8 < z < 2.0 and -1 < angle < 1.
- ant (Ant-v5): healthy while 0.2 <= z <= 1.0.
- none: never ends (halfcheetah; point mazes are continuing tasks).

Non-finite observations count as terminal under every rule but "none".
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _finite(obs: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(obs).all(-1)


def _hopper(obs: torch.Tensor) -> torch.Tensor:
    z, angle = obs[..., 0], obs[..., 1]
    healthy = _finite(obs) & (obs[..., 1:].abs() < 100).all(-1) & (z > 0.7) & (angle.abs() < 0.2)
    return ~healthy


def _walker2d(obs: torch.Tensor) -> torch.Tensor:
    z, angle = obs[..., 0], obs[..., 1]
    return ~(_finite(obs) & (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0))


def _ant(obs: torch.Tensor) -> torch.Tensor:
    z = obs[..., 0]
    return ~(_finite(obs) & (z >= 0.2) & (z <= 1.0))


def _never(obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(obs.shape[:-1], dtype=torch.bool, device=obs.device)


TERMINATION_RULES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": _never, "hopper": _hopper, "walker2d": _walker2d, "ant": _ant}
