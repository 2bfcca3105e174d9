"""What a validity check's judge reads and how it states its effect: the runs' per-seed values by
(algorithm, dataset), the 95% interval of an effect from rliable's stratified bootstrap, and the
three verdicts. Shared by ``validity`` (the check kinds of the algorithm table) and ``data_checks``
(the kinds about how the data was collected)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.records import RunResult

MIN_SEEDS = 3
REPS = 2000
REPRODUCED, NOT_REPRODUCED, NOT_ENOUGH = "reproduced", "not reproduced", "not enough runs"


def final_metric(spec: dict[str, Any], result: RunResult, results_dir: Path) -> float | None:
    """The run's final ``metric`` in the check's unit (times its ``scale``), None if not finite or not recorded."""
    value = result.final.value(spec["metric"])
    if value is not None and np.isfinite(value):
        return float(value) * spec.get("scale", 1)
    return None


def interval(func: Any, matrices: list[np.ndarray]) -> tuple[float, float, float]:
    """(point, low, high): ``func`` of the seeds x datasets matrices and its 95% percentile bootstrap CI."""
    import warnings

    from d4rl_lite.benchmark.stats import _rliable, seeded_bootstrap

    rly, _ = _rliable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with seeded_bootstrap() as state:
            boot = rly.StratifiedIndependentBootstrap(*matrices, random_state=state)
            ci = boot.conf_int(lambda *m: np.array([func(*m)]), reps=REPS, method="percentile")
    return float(func(*matrices)), float(ci[0][0]), float(ci[1][0])


@dataclass
class Evidence:
    """What a check's judge reads: the pattern, its applicable datasets, the runs' per-seed values by
    (algorithm, dataset), and ``base``, the verdict's fields so far (a judge may amend them)."""

    spec: dict[str, Any]
    base: dict[str, Any]
    datasets: list[str]
    cells: dict[tuple[str, str], list[float]]
    records: list[RunResult]  # the finished runs
    stopped: list[RunResult]  # runs stopped without a result that the check counts
    results_dir: Path
    min_seeds: int

    def seeds(self, algo: str, dataset: str) -> int:
        return len(self.cells.get((algo, dataset), []))

    def fewest_seeds(self, algos: list[str], datasets: list[str]) -> int:
        return min(len(self.cells[(a, d)]) for a in algos for d in datasets)

    def matrix(self, algo: str, datasets: list[str], n: int) -> np.ndarray:
        """``algo``'s first ``n`` seeds x ``datasets``: what the bootstrap resamples."""
        return np.array([[self.cells[(algo, d)][s] for d in datasets] for s in range(n)])

    def baseline_and_treatments(self) -> tuple[list[str], np.ndarray, list[np.ndarray]] | str:
        """(the spec's treatments with ``min_seeds`` seeds on every dataset, the baseline's matrix, theirs),
        all cut to the fewest seeds any has; or why there are not enough runs (a treatment short of
        seeds somewhere is left out; the baseline never is)."""
        spec, datasets, min_seeds = self.spec, self.datasets, self.min_seeds
        present = [t for t in spec["treatment"] if all(self.seeds(t, d) >= min_seeds for d in datasets)]
        short = [f"{a} on {d}" for a in [spec["baseline"], *present] for d in datasets if self.seeds(a, d) < min_seeds]
        if short or not present:
            return "fewer than %d seeds: %s" % (min_seeds, ", ".join(short) if short else
                                                f"none of {', '.join(spec['treatment'])} ran")
        n = self.fewest_seeds([spec["baseline"], *present], datasets)
        return present, self.matrix(spec["baseline"], datasets, n), [self.matrix(t, datasets, n) for t in present]

    def not_enough(self, reason: str) -> dict[str, Any]:
        return {**self.base, "effect": None, "low": None, "high": None, "verdict": NOT_ENOUGH, "reason": reason}

    def judged(self, point: float, low: float, high: float, verdict: str, reason: str, **details: Any) -> dict[str, Any]:
        return {**self.base, "effect": point, "low": low, "high": high, **details, "verdict": verdict, "reason": reason}
