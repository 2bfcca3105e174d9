"""The opt-in compiled update (``train --compile``, a suite's ``"compile": true``).

``torch.compile`` (inductor) of the algorithm's own ``update``, unchanged: the losses keep reading
like their papers. What makes it compile and stay the eager run lives here, once:

- Optimizer steps run eagerly (each optimizer's ``step`` is excluded from compilation). Backward is a graph break anyway, so every compiled region is the arithmetic
  between two optimizer steps: a phase's losses (and the sampling and targets before them).
- Random draws are inductor's fallbacks to torch's own generators (``fallback_random``): a compiled
  update draws exactly what the eager one draws, solo and per population member, so a compiled
  run is its eager run within float rounding (tests/test_compile.py states the tolerance).
- On CUDA, ``mode="reduce-overhead"`` (CUDA graphs: a small network's update is kernel-launch
  bound there). Not yet measured on a GPU; eager stays the default.

Whether an algorithm's compiled update is offered is decided per algorithm from measurement and
declared on its class (``OfflineAlgorithm.compile_refusal``); ``--compile`` on one that refuses
stops in one line. Measured here (benchmarks/compile_speed.py, docs/how-to/compile.md): on one CPU
thread the compiled update ran at 0.8-1.1x eager solo (2x256) and 0.4-0.8x as a bf16 population
(2x128): the matrix products dominate and inductor calls the same kernels; so on CPU it says so.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from d4rl_lite.errors import UserInputError

# What --compile says on a CPU (one line): measured, it does not pay there.
CPU_NOTE = ("d4rl-lite: --compile on CPU: the compiled update measured no faster than eager here (0.4-1.1x, "
            "docs/how-to/compile.md); it is meant for GPUs (CUDA graphs)")


def compile_refusal(cls: Any) -> str | None:
    """Why ``cls``'s update is not compiled (one line), or None when ``--compile`` compiles it."""
    from d4rl_lite.algorithms.base import OfflineAlgorithm

    reason = getattr(cls, "compile_refusal", OfflineAlgorithm.compile_refusal)  # the base's: not measured
    return (f"--compile: {cls.name}'s update is not compiled ({reason}); run it without --compile "
            f"(in a suite, without \"compile\": true)") if reason else None


def check_compilable(cls: Any) -> None:
    """Refuse ``--compile`` for ``cls`` in one line, before anything is built or written."""
    refusal = compile_refusal(cls)
    if refusal:
        raise UserInputError(refusal)


def compile_update(algo: Any, quiet: bool = False) -> None:
    """Replace ``algo.update`` by its compiled form (first call compiles: tens of seconds on CPU).

    Call again on a new instance (a population that dropped a diverged member is one)."""
    check_compilable(type(algo))
    import torch._inductor.config as inductor

    inductor.fallback_random = True  # the same draws, from the same generators, as the eager update
    for value in vars(algo).values():
        # Optimizer steps stay eager: traced, each optimizer was a graph of its own, recompiled per
        # instance, and slower than torch's foreach kernels. (A scheduler's step cannot be wrapped
        # so: its state_dict holds its attributes.)
        if isinstance(value, torch.optim.Optimizer):
            value.step = torch.compiler.disable(value.step)
    mode = "reduce-overhead" if algo.device.type == "cuda" else None
    algo.update = torch.compile(algo.update, mode=mode)
    if algo.device.type == "cpu" and not quiet:
        print(CPU_NOTE, file=sys.stderr)
