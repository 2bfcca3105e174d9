"""How much memory a run needs, checked before anything is allocated: a lower bound from its
networks and batch (``least_run_bytes``) plus what an algorithm keeps besides (its ``memory_bytes``:
MOPO's model-data ring, an ensemble's extra critics), against this machine's memory."""

from __future__ import annotations

import os
from typing import Any


def mlp_weights(widths: list[int]) -> int:
    """Weights and biases of a fully connected network through layer widths ``widths`` (input first)."""
    return sum((a + 1) * b for a, b in zip(widths, widths[1:]))


def least_run_bytes(config: Any, obs_dim: int) -> int:
    """A lower bound on one run's memory: every network's weights once, with their gradients and
    Adam's two moments (16 bytes a weight), and one batch of its inputs and hidden activations."""
    from d4rl_lite.algorithms.base import training_settings
    from d4rl_lite.algorithms.settings import hidden_fields

    weights = units = 0
    for name in hidden_fields(type(config)):
        widths = [obs_dim, *getattr(config, name), 1]  # the smallest input and output any network has
        weights += mlp_weights(widths)
        units += sum(getattr(config, name))
    return 16 * weights + 4 * training_settings(config).batch_size * (obs_dim + units)


def machine_memory_bytes() -> int | None:
    """The memory a new run can have: Linux's MemAvailable (free memory and what the page cache would
    give back), else the machine's physical memory; None where neither is known (no check). Physical
    memory alone let a run through that needed 20 of this machine's 23.5 GiB while others ran, and
    the kernel killed it."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: no check
        return None


def run_bytes(algo: str, config: Any, obs_dim: int, act_dim: int) -> int:
    """A lower bound on one run's memory: ``least_run_bytes`` and the algorithm's own ``memory_bytes``."""
    from d4rl_lite.algorithms import get_algorithm

    extra = getattr(get_algorithm(algo), "memory_bytes", None)
    return least_run_bytes(config, obs_dim) + (int(extra(config, obs_dim, act_dim)) if extra else 0)


def too_big(algo: str, dataset: str, config: Any, obs_dim: int, members: int = 1, act_dim: int | None = None) -> str | None:
    """Why one run of ``config`` (a population of ``members`` runs) cannot fit in this machine's
    memory, or None. ``act_dim``: the task's (default ``obs_dim``, a stand-in of the same order)."""
    need = members * run_bytes(algo, config, obs_dim, obs_dim if act_dim is None else act_dim)
    have = machine_memory_bytes()
    if have is None or need <= have:
        return None
    who = f"one run of {algo}" if members == 1 else f"{algo}'s population of {members} seeds"
    return (f"{who} on {dataset} needs at least {need / 2**30:,.1f} GiB of memory for its networks, batch and "
            f"buffers, more than the {have / 2**30:,.1f} GiB this machine has free; use smaller layers (hidden), batches or buffers "
            f"(`d4rl-lite settings {algo}` lists them)"
            + ("" if members == 1 else ", or fewer seeds (--population off: one at a time)"))
