"""A population's state as its members' solo states, and back (checkpoints, resume).

A population (``OfflineAlgorithm.population``) holds every member's weights, optimizer moments
and per-member scalars stacked (``nets.members``). Its checkpoints are the members' ordinary solo
checkpoints: ``member_state_dict(algo, m)`` is exactly what the solo run of member m would save,
and ``load_member_state_dicts`` stacks such states again, so a population resumes from solo
checkpoints and a solo run can be continued from a population's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from d4rl_lite.nets.members import PLAIN, member_tensor, stack_tensors


def _kinds(algo: Any) -> dict[int, tuple[str, int]]:
    """id(tensor) -> how it stacks members, for every parameter and state tensor of ``algo``."""
    kinds: dict[int, tuple[str, int]] = {}
    for value in algo._state_items().values():
        if isinstance(value, nn.Module):
            module_kinds = getattr(value, "member_kinds", None)
            if module_kinds is None:
                raise TypeError(f"{type(value).__name__} of {algo.name} was not built with network(): "
                                "a population needs every network built through OfflineAlgorithm.network")
            for name, tensor in list(value.named_parameters()) + list(value.named_buffers()):
                kinds[id(tensor)] = module_kinds[name]
        elif isinstance(value, torch.Tensor):
            kinds[id(value)] = (PLAIN, 1)
    return kinds


def member_state_dict(algo: Any, m: int) -> dict[str, Any]:
    """Member ``m``'s state, laid out as its solo run's ``state_dict()``."""
    members = algo.members
    kinds = _kinds(algo)
    out: dict[str, Any] = {"step": algo.step}
    for key, value in algo._state_items().items():
        if isinstance(value, nn.Module):
            out[key] = {k: member_tensor(v, value.member_kinds[k], m, members) for k, v in value.state_dict().items()}
        elif isinstance(value, torch.Tensor):
            out[key] = member_tensor(value.detach(), (PLAIN, 1), m, members)
        elif isinstance(value, torch.optim.Optimizer):
            state = value.state_dict()
            params = [p for group in value.param_groups for p in group["params"]]
            out[key] = {"param_groups": state["param_groups"],
                        "state": {i: {k: member_tensor(v, kinds[id(params[i])], m, members)
                                      if k != "step" else v  # Adam's moments are per weight; its step count is shared
                                      for k, v in s.items()} for i, s in state["state"].items()}}
        else:  # a learning-rate scheduler: the same for every member
            out[key] = value.state_dict()
    return out


def load_member_state_dicts(algo: Any, states: list[dict[str, Any]]) -> None:
    """Stack solo ``states`` (one per member, all at the same step) into the population ``algo``."""
    if len(states) != algo.members:
        raise ValueError(f"{len(states)} member states for a population of {algo.members}")
    steps = {s.get("step", 0) for s in states}
    if len(steps) != 1:
        raise ValueError(f"members at different steps ({sorted(steps)}) cannot train together")
    kinds = _kinds(algo)
    stacked: dict[str, Any] = {"step": steps.pop()}
    for key, value in algo._state_items().items():
        parts = [s[key] for s in states]
        if isinstance(value, nn.Module):
            stacked[key] = {k: stack_tensors([p[k] for p in parts], value.member_kinds[k]) for k in parts[0]}
        elif isinstance(value, torch.Tensor):
            stacked[key] = stack_tensors(parts, (PLAIN, 1))
        elif isinstance(value, torch.optim.Optimizer):
            params = [p for group in value.param_groups for p in group["params"]]
            stacked[key] = {"param_groups": parts[0]["param_groups"],
                            "state": {i: {k: stack_tensors([p["state"][i][k] for p in parts], kinds[id(params[int(i)])])
                                          if k != "step" else v
                                          for k, v in s.items()} for i, s in parts[0]["state"].items()}}
        else:
            stacked[key] = parts[0]
    algo.load_state_dict(stacked)


def drop_members(algo: Any, lost: list[int], seeds: list[int]) -> Any:
    """The population ``algo`` without the members ``lost`` (indices): the others' weights,
    optimizer states and random streams, exactly as they are; ``seeds``: the others' seeds."""
    keep = [m for m in range(algo.members) if m not in lost]
    global_rng = torch.get_rng_state()  # building networks draws from it; evaluations use it
    configs = [algo.member_configs[m] for m in keep]
    smaller = type(algo).population(algo.obs_dim, algo.act_dim, configs, seeds, device=algo.device)
    torch.set_rng_state(global_rng)
    load_member_state_dicts(smaller, [member_state_dict(algo, m) for m in keep])
    for generator, eval_generator, m in zip(smaller.noise.generators, smaller.eval_noise.generators, keep):
        generator.set_state(algo.noise.generators[m].get_state())
        eval_generator.set_state(algo.eval_noise.generators[m].get_state())
    return smaller
