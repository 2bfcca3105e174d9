"""The one training loop: batch -> update -> (log, evaluate, checkpoint at their intervals).

Offline training (``training/offline.py``: batches from a fixed dataset) and online behaviour
training (``production/behavior_training.py``: each batch comes after one environment step into a
replay buffer) both run through ``run_loop``; they differ only in where batches come from and in
what their log, evaluation and checkpoint hooks write.

The loop guards every run the same way: metrics are read back to the host only at log intervals
(so a GPU is never synchronised per update); nothing diverged is ever evaluated or saved
(non-finite metrics, Q-values beyond a sane bound, or non-finite weights stop the run with the
metric, the step and where the last good checkpoint is).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from d4rl_lite.errors import D4RLLiteError
from d4rl_lite.files import load_state


class DivergenceError(D4RLLiteError):
    """Training produced a non-finite loss or weight, or an implausible Q-value.

    ``members``: which members of a population diverged (indices; ``messages`` says why for each);
    ``step``: when it was seen; ``values``: the metrics read at that step, if any (for the others).
    """

    def __init__(self, message: str, members: list[int] | None = None, step: int | None = None,
                 messages: list[str] | None = None, values: list[dict[str, float]] | None = None):
        super().__init__(message)
        self.members, self.step = members or [], step
        self.messages, self.values = messages or [message], values


@dataclass
class Schedule:
    """When the loop stops and when it calls each hook (every ``*_every`` steps, and at the end)."""

    total_steps: int
    log_every: int
    eval_every: int
    checkpoint_every: int


class Hooks(Protocol):
    # ``values``: the metrics read back to the host, one dict per run (one for a solo run, M for a population)
    def log(self, step: int, values: list[dict[str, float]]) -> None: ...
    def evaluate(self, step: int) -> None: ...
    def checkpoint(self, step: int) -> None: ...


# The progress bar moves every this many updates: often enough for a short run to show motion,
# rarely enough to cost nothing (it reads no tensor).
BAR_EVERY = 25


def run_loop(algo: Any, next_batch: Callable[[int], dict[str, torch.Tensor] | None], start_step: int,
             schedule: Schedule, hooks: Hooks, guard: DivergenceGuard, bar: Any = None, precision: str = "fp32") -> int:
    """Run ``algo.update`` from ``start_step`` to ``schedule.total_steps``; returns the last step.

    ``next_batch(step)`` returns the batch for this step's update, or None for a step without one
    (an online run still filling its replay buffer). Before every evaluation and checkpoint the
    metrics and weights are checked by ``guard``. ``precision="bf16"`` runs the updates' matrix
    products under bf16 autocast (weights, optimizer state, activations and losses stay fp32).
    """
    cast = (torch.autocast(device_type=algo.device.type, dtype=torch.bfloat16) if precision == "bf16"
            else contextlib.nullcontext())
    step, last_checked = start_step, start_step
    metrics: dict[str, torch.Tensor] = {}
    total = schedule.total_steps
    while step < total:
        batch = next_batch(step)
        if batch is not None:
            with cast:
                metrics = algo.update(batch)
            algo.step += 1
        step += 1
        if bar is not None and (step % BAR_EVERY == 0 or step == total):
            bar.update(step - bar.n)
        if step % schedule.log_every == 0:
            values = host_values(metrics, getattr(algo, "members", 0))  # the only host sync: at log intervals
            guard.check_metrics(values, step)
            last_checked = step
            hooks.log(step, values)
        at_eval = step % schedule.eval_every == 0 or step == total
        at_checkpoint = step % schedule.checkpoint_every == 0 or step == total
        if (at_eval or at_checkpoint) and last_checked != step:
            guard.check_metrics(host_values(metrics, getattr(algo, "members", 0)), step)
            last_checked = step
        if at_eval:
            guard.check_weights(algo, step)
            hooks.evaluate(step)
        if at_checkpoint:
            guard.check_weights(algo, step)
            hooks.checkpoint(step)
    return step


def host_values(metrics: dict[str, torch.Tensor], members: int) -> list[dict[str, float]]:
    """The metrics on the host, one dict per run: a population's metric tensors hold one value per
    member (member dimension first). One transfer for all of them."""
    runs = max(members, 1)
    if not metrics:
        return [{} for _ in range(runs)]
    device = next((v.device for v in metrics.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
    rows = torch.stack([torch.as_tensor(v, device=device).detach().float().reshape(-1).expand(runs)
                        for v in metrics.values()]).tolist()  # plain floats from a plugin algorithm are fine too
    return [{k: row[m] for k, row in zip(metrics, rows)} for m in range(runs)]


@dataclass
class DivergenceGuard:
    """Stops training whose metrics or weights are not finite, or whose Q-values exceed ``q_bound``.

    ``checkpoints``: each run's checkpoint file (where its last good state is kept, named in the
    error); ``labels`` name a population's members in the error (their seeds).
    """

    checkpoints: list[Path]
    q_bound: float = math.inf
    labels: list[str] | None = None
    # The metrics that are value estimates (bounded by ``q_bound``): declared by name, so a metric
    # such as train/cql_gap is never mistaken for one. An algorithm adds its own as ``value_metrics``.
    value_metrics: tuple[str, ...] = ("train/q_mean", "train/q_max", "train/v_mean")

    def check_metrics(self, values: list[dict[str, float]], step: int) -> None:
        """Raise naming every run whose metrics diverged (a population's others may go on)."""
        bad = [(m, message) for m, run_values in enumerate(values)
               if (message := self._metric_problem(run_values, m, step))]
        if bad:
            raise DivergenceError(bad[0][1], [m for m, _ in bad], step, [msg for _, msg in bad], values)

    def _metric_problem(self, run_values: dict[str, float], m: int, step: int) -> str | None:
        for key, v in run_values.items():
            if not math.isfinite(v):
                return (f"training diverged: {self._who(m)}{key} = {v} at step {step:,}; {self._kept(m)}. "
                        "Lower the learning rate or check the dataset.")
            if key in self.value_metrics and abs(v) > self.q_bound:
                return (f"training diverged: {self._who(m)}{key} = {v:.4g} at step {step:,} exceeds the sane bound "
                        f"{self.q_bound:.4g} (= q_bound_factor x max|r| / (1 - gamma)); {self._kept(m)}.")
        return None

    def check_weights(self, algo: Any, step: int) -> None:
        """Raise naming every run with a non-finite floating tensor anywhere in the state a checkpoint
        would save: weights, optimizer moments, temperatures, Lagrange multipliers, statistics."""
        whole = algo.state_dict()
        if all(bool(torch.isfinite(t).all()) for t in _tensors(whole) if t.is_floating_point()):
            return  # the usual case: one pass over the stacked tensors, no per-member copies
        members = getattr(algo, "members", 0)
        if members:  # name the members at fault
            from d4rl_lite.algorithms.population import member_state_dict

            states = [member_state_dict(algo, m) for m in range(members)]
        else:
            states = [whole]
        bad = []
        for m, state in enumerate(states):
            names = non_finite_parts(state)
            if names:
                bad.append((m, f"training diverged: {self._who(m)}non-finite weights in {names[0]} at "
                               f"step {step:,}; {self._kept(m)}. Lower the learning rate or check the dataset."))
        if bad:
            raise DivergenceError(bad[0][1], [m for m, _ in bad], step, [msg for _, msg in bad])

    def _who(self, m: int) -> str:
        return f"member {self.labels[m]}: " if self.labels and len(self.labels) > 1 else ""

    def _kept(self, m: int) -> str:  # only read when a run actually diverged
        checkpoint = self.checkpoints[min(m, len(self.checkpoints) - 1)]
        if not checkpoint.exists():
            return "no checkpoint was written yet"
        return f"the last good checkpoint is kept at {checkpoint} (step {load_state(checkpoint)['step']:,})"


def non_finite_parts(state: dict[str, Any]) -> list[str]:
    """The top-level entries of a state (``algo.state_dict()``) holding a NaN or infinite float, sorted."""
    return sorted({k for k, v in state.items() for t in _tensors(v)
                   if t.is_floating_point() and not bool(torch.isfinite(t).all())})


def _tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)
