"""A population member that diverges: its guard, its record, and the population going on without it
(members: ``training.offline.Member`` records).

Members are independent runs: when some diverge (a non-finite metric or weight, or |Q| past its
bound), each gets ``diverged.json`` and keeps its last good checkpoint, and the others go on from
that step as a smaller population, exactly as their solo runs would.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from d4rl_lite.algorithms.population import drop_members
from d4rl_lite.files import write_record
from d4rl_lite.training.loop import DivergenceError, DivergenceGuard
from d4rl_lite.training.run_files import DIVERGED


def member_guard(members: list[Any], q_bound: float, algo: Any) -> DivergenceGuard:
    declared = DivergenceGuard.value_metrics + tuple(getattr(algo, "value_metrics", ()))
    return DivergenceGuard([m.checkpoint for m in members], q_bound, labels=[m.spec.label for m in members],
                           value_metrics=declared)


def record_divergence(error: DivergenceError, active: list[Any], diverged: dict[int, dict[str, Any]]) -> None:
    """Write diverged.json for each member ``error`` names: its record, the error, the step and,
    when the metrics tripped the guard, their values then (a naive run's Q at divergence is what
    the validity report's over-estimation check reads)."""
    for index, message in zip(error.members, error.messages):
        lost = active[index]
        at = None if error.values is None else {k: v for k, v in error.values[index].items() if math.isfinite(v)}
        diverged[id(lost)] = {**lost.record, "run_dir": str(lost.run), "diverged": message, "steps": error.step,
                              **({"at_divergence": at} if at is not None else {})}
        write_record(lost.run / DIVERGED, diverged[id(lost)])


def drop_diverged(error: DivergenceError, algo: Any, active: list[Any], q_bound: float,
                   diverged: dict[int, dict[str, Any]]) -> tuple[Any, list[Any], DivergenceGuard, Any]:
    """Stop the members ``error`` names (each keeps its last good checkpoint and gets diverged.json)
    and check the others again at that step, dropping any that diverged in the same interval.
    Returns (the smaller population, the members still active, their guard, their metrics at
    that step or None)."""
    values = error.values
    while True:
        record_divergence(error, active, diverged)
        print("\n".join(f"d4rl-lite: {message} The other members go on." for message in error.messages), file=sys.stderr)
        keep = [j for j in range(len(active)) if j not in error.members]
        values = None if values is None else [values[j] for j in keep]
        active = [active[j] for j in keep]
        algo = drop_members(algo, error.members, [m.spec.seed for m in active])
        for index, m in enumerate(active):
            m.hooks.algo, m.hooks.member = algo, index
        guard = member_guard(active, q_bound, algo)
        try:
            if values is not None:
                guard.check_metrics(values, error.step)
            guard.check_weights(algo, error.step)
            return algo, active, guard, values
        except DivergenceError as again:
            if len(again.members) == len(active):
                raise
            error = DivergenceError(str(again), again.members, error.step, again.messages)
