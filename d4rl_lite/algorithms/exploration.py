"""How an offline algorithm acts while it gathers online experience (offline-to-online fine-tuning).

``explore(algo, observations)`` gives stochastic actions for raw flat observations, (M, n, obs_dim)
for a population: the algorithm's own ``explore`` method when it defines one (BCQ: its acting rule
already samples its VAE), else by the kind of actor it has:

    TanhGaussianPolicy (CQL, BEAR, BRAC, SAC)   a reparameterised sample tanh(mu + sigma eps)
    GaussianPolicy (AWAC, IQL, CRR)             a sample of N(mu, sigma), clipped to [-1, 1]
    DeterministicActor (TD3+BC, BC)             pi(s) + N(0, 0.1^2), clipped (TD3's exploration noise)

Every draw comes from ``algo.eval_noise``, each member's acting stream, so a population's member
explores exactly as its solo run does; the whole population acts in one policy call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from d4rl_lite.errors import UserInputError
from d4rl_lite.nets import DeterministicActor, GaussianPolicy, TanhGaussianPolicy, randn

# TD3's exploration noise (Fujimoto et al. 2018): Gaussian, std 0.1 of the action range's half-width.
DETERMINISTIC_NOISE = 0.1


def can_explore(algo: Any) -> bool:
    return callable(getattr(algo, "explore", None)) or isinstance(
        getattr(algo, "actor", None), (TanhGaussianPolicy, GaussianPolicy, DeterministicActor))


@torch.inference_mode()
def explore(algo: Any, observations: np.ndarray) -> np.ndarray:
    """Exploration actions (float32, in [-1, 1]) for raw flat ``observations`` (see the module docstring)."""
    obs = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=algo.device)
    obs = (obs - algo.obs_mean) / algo.obs_std
    own = getattr(algo, "explore", None)
    actor = getattr(algo, "actor", None)
    if callable(own):
        actions = own(obs)
    elif isinstance(actor, TanhGaussianPolicy):
        actions = actor(obs, generator=algo.eval_noise)[0]
    elif isinstance(actor, GaussianPolicy):
        dist = actor.distribution(obs)
        actions = dist.loc + randn(dist.loc.shape, like=dist.loc, generator=algo.eval_noise) * dist.scale
    elif isinstance(actor, DeterministicActor):
        mean = actor(obs)
        actions = mean + DETERMINISTIC_NOISE * randn(mean.shape, like=mean, generator=algo.eval_noise)
    else:
        raise UserInputError(f"{algo.name} has no exploration rule (an actor of a known kind, or an explore method); "
                             "it cannot be fine-tuned online")
    return actions.clamp(-1.0, 1.0).float().cpu().numpy()
