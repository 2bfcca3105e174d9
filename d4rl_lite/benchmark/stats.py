"""Aggregate statistics across datasets with rliable (Agarwal et al. 2021): IQM with stratified
bootstrap confidence intervals, probability of improvement, performance profiles.

Score matrices are (runs = seeds) x (tasks = datasets) of final normalized scores, one per
algorithm, over the datasets every algorithm was run on. Needs the ``stats`` extra
(``pip install "d4rl-lite[stats]"``).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from d4rl_lite.records import RunResult

BOOTSTRAP_REPS = 2000
SEED = 0


def _rliable():
    import warnings

    # rliable passes numpy RandomState objects the bootstrap library (arch) has deprecated.
    warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
    try:
        from rliable import library as rly
        from rliable import metrics
    except ImportError:
        raise ImportError('aggregate statistics need rliable: pip install "d4rl-lite[stats]"') from None
    return rly, metrics


def score_matrices(results: list[RunResult], leave_out: set[str] = frozenset()) -> tuple[dict[str, np.ndarray], list[str]]:
    """{algorithm: (seeds x datasets) final normalized scores} over the datasets shared by all
    algorithms with normalized scores, and the dataset order. Seeds are matched by index.
    ``leave_out``: algorithms not aggregated (those a suite runs on some datasets only)."""
    by: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(results, key=lambda r: (r.spec.algorithm, r.spec.dataset, r.spec.seed)):
        if r.final.normalized and r.spec.algorithm not in leave_out:
            by[r.column][r.spec.dataset].append(r.final.normalized_score)
    if not by:
        return {}, []
    datasets = sorted(set.intersection(*(set(d) for d in by.values())))
    n = min(len(by[a][d]) for a in by for d in datasets) if datasets else 0
    return {a: np.array([[by[a][d][s] for d in datasets] for s in range(n)]) for a in sorted(by)}, datasets


@contextlib.contextmanager
def seeded_bootstrap(seed: int = SEED) -> Iterator[np.random.RandomState]:
    """Reproducible rliable intervals: its stratified bootstrap draws resampling indices from
    NumPy's global generator (``np.random.choice``), whatever ``random_state`` it is given, and
    arch ignores that argument too. The global state is seeded inside and restored after."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield np.random.RandomState(seed)
    finally:
        np.random.set_state(saved)


def aggregate(scores: dict[str, np.ndarray], reps: int = BOOTSTRAP_REPS, seed: int = SEED) -> dict[str, dict[str, float]]:
    """IQM and mean per algorithm with 95% stratified-bootstrap CIs (scores in percent)."""
    rly, metrics = _rliable()

    def funcs(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    with seeded_bootstrap(seed) as state:
        points, cis = rly.get_interval_estimates(scores, funcs, reps=reps, random_state=state)
    return {a: {"iqm": float(points[a][0]), "iqm_low": float(cis[a][0][0]), "iqm_high": float(cis[a][1][0]),
                "mean": float(points[a][1]), "mean_low": float(cis[a][0][1]), "mean_high": float(cis[a][1][1])}
            for a in scores}


def probability_of_improvement(scores: dict[str, np.ndarray], reps: int = 1000, seed: int = SEED,
                               against: str | None = None) -> dict[str, dict[str, float]]:
    """P(X > Y), with 95% CIs, of the best algorithm by IQM (or ``against``) over every other one.

    rliable's estimator is slow (every pair costs ``reps`` bootstraps in Python), so the report
    compares the leader with each other algorithm rather than all ordered pairs.
    """
    rly, metrics = _rliable()
    best = against or max(scores, key=lambda a: metrics.aggregate_iqm(scores[a]))
    pairs = {f"{best},{y}": (scores[best], scores[y]) for y in sorted(scores) if y != best}
    if not pairs:
        return {}
    with seeded_bootstrap(seed) as state:
        points, cis = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps,
                                                 random_state=state)
    return {k: {"p": float(points[k]), "low": float(np.ravel(cis[k])[0]), "high": float(np.ravel(cis[k])[1])} for k in pairs}


def plot_aggregates(agg: dict[str, dict[str, float]], path: str | Path) -> Path:
    from d4rl_lite.plotting import pyplot, save_figure

    plt = pyplot()
    algos = sorted(agg, key=lambda a: agg[a]["iqm"])
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(algos) + 1.2), dpi=100)
    for i, a in enumerate(algos):
        ax.plot([agg[a]["iqm_low"], agg[a]["iqm_high"]], [i, i], linewidth=6, alpha=0.5, color="#4477aa")
        ax.plot(agg[a]["iqm"], i, "|", color="black", markersize=14)
    ax.set_yticks(range(len(algos)), algos)
    ax.set_xlabel("IQM of normalized score (95% stratified bootstrap CI)")
    return save_figure(fig, path)


def plot_performance_profiles(scores: dict[str, np.ndarray], path: str | Path) -> Path:
    """Fraction of runs scoring above tau, for tau across the observed range, with CIs."""
    rly, _ = _rliable()
    from d4rl_lite.plotting import pyplot, save_figure

    plt = pyplot()
    hi = max(float(np.max(v)) for v in scores.values())
    taus = np.linspace(min(0.0, min(float(np.min(v)) for v in scores.values())), max(hi, 1.0), 81)
    with seeded_bootstrap():  # its intervals are a bootstrap too: the same figure for the same scores
        profiles, cis = rly.create_performance_profile(scores, taus, reps=500)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for a in sorted(scores):
        ax.plot(taus, profiles[a], label=a)
        ax.fill_between(taus, cis[a][0], cis[a][1], alpha=0.15)
    ax.set_xlabel("normalized score tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
