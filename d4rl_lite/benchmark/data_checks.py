"""Validity checks about how the data was collected (Agarwal, Schuurmans, Norouzi 2020):

- ``near_agent``: offline RL on the whole replay of an online agent against that agent's own final
  score (each run records it, ``data.online_agent``) and against behaviour cloning.
- ``subsample_order``: the same algorithm on two subsamples of one dataset of equal size, one drawn
  at random from all of it and one its first part (early, poor experience): diversity over size.

Each judge reads an ``Evidence`` (``evidence.py``) and returns a verdict with a 95% interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from d4rl_lite.benchmark.evidence import NOT_REPRODUCED, REPRODUCED, Evidence, interval


def _online_agent_scores(ev: Evidence) -> dict[str, float | None]:
    """{dataset: the normalized score of the online agent that collected it}, as its runs recorded it."""
    from d4rl_lite.benchmark.table import online_agent, recorded_data_facts

    recorded = recorded_data_facts(ev.records, online_agent)
    return {d: recorded.get(d) for d in ev.datasets}


def judge_near_agent(ev: Evidence) -> dict[str, Any]:
    """The best of the treatments minus the online agent's score, mean over the full replays: reproduced
    when its interval lies above -threshold (within the margin, or above) and the best treatment's
    interval over the baseline (BC) lies above 0. A treatment short of seeds somewhere is left out."""
    spec, datasets = ev.spec, ev.datasets
    agent = _online_agent_scores(ev)
    if any(v is None for v in agent.values()):
        return ev.not_enough("no online agent's score recorded for " + ", ".join(d for d, v in agent.items() if v is None)
                             + " (not a full replay, or runs that predate this record)")
    compared = ev.baseline_and_treatments()
    if isinstance(compared, str):
        return ev.not_enough(compared)
    present, base, treats = compared
    agents = np.array([agent[d] for d in datasets])

    def best(ts: tuple[np.ndarray, ...]) -> np.ndarray:  # per dataset, the best treatment's mean over seeds
        return np.max([t.mean(0) for t in ts], axis=0)

    point, low, high = interval(lambda *ts: float((best(ts) - agents).mean()), treats)
    over_bc, bc_low, bc_high = interval(lambda b, *ts: float((best(ts) - b.mean(0)).mean()), [base, *treats])
    margin = spec["threshold"]
    verdict = REPRODUCED if low > -margin and bc_low > 0 else NOT_REPRODUCED
    reason = (f"best of {', '.join(present)} minus the online agent ({', '.join(f'{a:.1f}' for a in agents)}): "
              f"{point:+.1f} [{low:+.1f}, {high:+.1f}] (reproduced above -{margin}); minus {spec['baseline']}: "
              f"{over_bc:+.1f} [{bc_low:+.1f}, {bc_high:+.1f}] (above 0)")
    return ev.judged(point, low, high, verdict, reason, online_agent=dict(zip(datasets, agents.tolist())),
                     over_baseline=over_bc, over_baseline_low=bc_low, over_baseline_high=bc_high)


def _subsample_label(dataset: str) -> tuple[str, str] | None:
    """(the dataset it is a subsample of, its label): ``hopper-full-replay-first10pct-v0`` ->
    (``hopper-full-replay-v0``, ``first10pct``); None for a dataset that is no subsample."""
    from d4rl_lite.benchmark.table import catalogue_name
    from d4rl_lite.datasets.subsample import split_kind

    name = catalogue_name(dataset)
    if name is None or name.subsample is None:
        return None
    return f"{name.task}-{split_kind(name.kind)[0]}-v{name.version}", name.subsample.label


def subsample_pairs(datasets: list[str], better: str, worse: str) -> list[tuple[str, str]]:
    """(the ``better`` subsample, the ``worse`` one) of each dataset both were drawn from, in name order."""
    by_source: dict[str, dict[str, str]] = {}
    for d in datasets:
        parsed = _subsample_label(d)
        if parsed:
            by_source.setdefault(parsed[0], {})[parsed[1]] = d
    return [(labels[better], labels[worse]) for _, labels in sorted(by_source.items()) if better in labels and worse in labels]


def judge_diversity(ev: Evidence) -> dict[str, Any]:
    """Each algorithm's score on the ``better`` subsample minus on the ``worse`` one of the same data,
    mean over the algorithms and the datasets: reproduced when its interval lies above the threshold.
    An algorithm short of seeds on some pair is left out (and named)."""
    spec, min_seeds = ev.spec, ev.min_seeds
    pairs = subsample_pairs(ev.datasets, spec["better"], spec["worse"])
    ev.base["pairs"] = [list(p) for p in pairs]
    if not pairs:
        return ev.not_enough(f"no dataset has both its {spec['better']} and its {spec['worse']} subsample in the suite")
    columns = [d for pair in pairs for d in pair]
    present = [a for a in spec["algorithms"] if all(ev.seeds(a, d) >= min_seeds for d in columns)]
    left_out = [a for a in spec["algorithms"] if a not in present]
    if not present:
        return ev.not_enough(f"fewer than {min_seeds} seeds of each of {', '.join(spec['algorithms'])} on some of "
                             + ", ".join(columns))
    n = ev.fewest_seeds(present, columns)
    matrices = [ev.matrix(a, columns, n) for a in present]  # columns: better, worse, better, worse, ...

    def gap(*ms: np.ndarray) -> float:
        means = np.array([m.mean(0) for m in ms])  # algorithms x columns
        return float((means[:, 0::2] - means[:, 1::2]).mean())

    point, low, high = interval(gap, matrices)
    per_algorithm = {a: float((m.mean(0)[0::2] - m.mean(0)[1::2]).mean()) for a, m in zip(present, matrices)}
    verdict = REPRODUCED if low > spec["threshold"] else NOT_REPRODUCED
    reason = (f"{spec['better']} minus {spec['worse']}, mean over {', '.join(present)}: {point:+.1f} [{low:+.1f}, {high:+.1f}] "
              f"(" + ", ".join(f"{a} {v:+.1f}" for a, v in per_algorithm.items()) + f"); reproduced when the interval "
              f"lies above {spec['threshold']}" + (f"; left out (fewer than {min_seeds} seeds): {', '.join(left_out)}"
                                                    if left_out else ""))
    return ev.judged(point, low, high, verdict, reason, per_algorithm=per_algorithm)
