"""Populations: the networks of several training runs side by side, and each run's random stream.

A population of M members trains M runs of one algorithm (one per seed) in one process. Every
layer holds all members' weights, so M small matrix products become one batched product:

    nn.Linear of the M solo networks          -> one EnsembleLinear over members: (M, B, in) -> (M, B, out)
    EnsembleLinear over n critics (QEnsemble) -> one over critics x members, critic-major (q * M + m)
    any other parameter or buffer, shape S    -> (M, 1, *S), broadcasting over the batch dimension

Tensors carry the member dimension first, (M, B, ...); Q-values come out as (num_q, M, B), so code
that takes ``q.min(0)`` over critics reads the same for a solo run and for a population.

``stack_members`` builds a population module from M solo modules (each initialised from its own
seed, so member m starts exactly where the solo run with seed m starts); ``member_tensor`` /
``stack_tensors`` convert one member's tensors to and from the solo layout, which is what
checkpoints hold: a population writes, and resumes from, ordinary solo checkpoints.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from d4rl_lite.nets import EnsembleLinear, QEnsemble

# How a population tensor relates to its members' tensors (see the module docstring).
LINEAR_WEIGHT, LINEAR_BIAS, ENSEMBLE, PLAIN = "linear_weight", "linear_bias", "ensemble", "plain"


def stack_members(solos: list[nn.Module]) -> nn.Module:
    """One module computing what each of ``solos`` (same class and sizes) computes, members first."""
    members = len(solos)
    pop = copy.deepcopy(solos[0])
    kinds: dict[str, tuple[str, int]] = {}
    for name, module in list(pop.named_modules()):
        parts = [s.get_submodule(name) for s in solos]
        if isinstance(module, nn.Linear):
            layer = EnsembleLinear.from_weights(torch.stack([p.weight.detach().t() for p in parts]),
                                                torch.stack([p.bias.detach() for p in parts]).unsqueeze(1))
            _replace(pop, name, layer)
            kinds.update({_join(name, "weight"): (LINEAR_WEIGHT, 1), _join(name, "bias"): (LINEAR_BIAS, 1)})
            continue
        if isinstance(module, EnsembleLinear):
            n = module.weight.shape[0]
            weight = stack_tensors([p.weight.detach() for p in parts], (ENSEMBLE, n))
            bias = stack_tensors([p.bias.detach() for p in parts], (ENSEMBLE, n))
            _replace(pop, name, EnsembleLinear.from_weights(weight, bias))
            kinds.update({_join(name, "weight"): (ENSEMBLE, n), _join(name, "bias"): (ENSEMBLE, n)})
            continue
        if isinstance(module, QEnsemble):
            module.members = members
        for key, value in list(module._parameters.items()) + list(module._buffers.items()):
            if value is None:
                continue
            stacked = stack_tensors([getattr(p, key).detach() for p in parts], (PLAIN, 1))
            if key in module._parameters:
                module._parameters[key] = nn.Parameter(stacked, requires_grad=value.requires_grad)
            else:
                module._buffers[key] = stacked
            kinds[_join(name, key)] = (PLAIN, 1)
    pop.member_kinds = kinds  # read by member_state_dict / load_member_state_dicts
    pop.members = members
    return pop


def stack_tensors(tensors: list[torch.Tensor], kind: tuple[str, int]) -> torch.Tensor:
    """The population tensor of the members' solo ``tensors`` (weights or their optimizer states)."""
    how, n = kind
    if how == LINEAR_WEIGHT:  # nn.Linear weight (out, in) -> (M, in, out)
        return torch.stack([t.t() for t in tensors])
    if how == LINEAR_BIAS:  # (out,) -> (M, 1, out)
        return torch.stack([t.unsqueeze(0) for t in tensors])
    if how == ENSEMBLE:  # (n, a, b) each -> (n * M, a, b), critic-major
        return torch.stack(tensors, dim=1).reshape(n * len(tensors), *tensors[0].shape[1:])
    return torch.stack([t.unsqueeze(0) for t in tensors])  # S -> (M, 1, *S)


def member_tensor(stacked: torch.Tensor, kind: tuple[str, int], m: int, members: int) -> torch.Tensor:
    """Member ``m``'s solo tensor out of a population tensor (the inverse of ``stack_tensors``)."""
    how, n = kind
    if how == LINEAR_WEIGHT:
        return stacked[m].t().contiguous()
    if how == LINEAR_BIAS:
        return stacked[m, 0].clone()
    if how == ENSEMBLE:
        return stacked.view(n, members, *stacked.shape[1:])[:, m].clone()
    return stacked[m, 0].clone()


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


class MemberGenerators:
    """Each member's own random stream: member m draws exactly what its solo run draws.

    A solo run draws from torch's global generator, seeded with its seed and advanced by building
    its networks; ``states`` are those generator states, one per member.
    """

    def __init__(self, states: list[torch.Tensor], device: torch.device):
        self.generators = []
        for state in states:
            g = torch.Generator(device=device)
            g.set_state(state)
            self.generators.append(g)

    def randn(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """(M, *shape[1:]) standard normal draws, member m's from its own stream."""
        return torch.stack([torch.randn(shape[1:], generator=g, device=like.device, dtype=like.dtype)
                            for g in self.generators])

    def rand(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.rand(shape[1:], generator=g, device=like.device, dtype=like.dtype)
                            for g in self.generators])
