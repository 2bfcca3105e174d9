"""The benchmark table: per dataset x algorithm, final and best score, mean +- std over seeds.

Scores are D4RL-normalized (percent) where the task has both reference scores, else raw returns
(marked ``raw``); rows of averages follow (per domain, and per single-task maze dataset). Its
files (markdown, CSV, JSON, LaTeX) are ``table_formats.py``; the runs it reads, ``results.py``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from d4rl_lite.records import DataFacts, RunResult, RunSpec, count_label

# The column of the data's own episodes (their mean normalized score, recorded by each run as
# ``data.normalized_return``): which algorithms beat their data is read at a glance.
DATA = "data"
# The online agent that collected a full replay (its normalized score, ``data.online_agent``), beside
# the data column: who beats the agent whose experience they learned from is read at a glance.
AGENT = "online agent"
REFERENCE_COLUMNS = (DATA, AGENT)
# Marks a row of averages (a domain's, or a single-task maze dataset's mean over its tasks): the
# files leave it out, the writers read it instead of guessing from a row's label.
SUMMARY = "_summary"


def is_summary(row: dict[str, Any]) -> bool:
    return bool(row.get(SUMMARY))


def catalogue_name(dataset: str) -> Any:
    """The parsed catalogue name of a results table's dataset (task, kind), or None for a dataset
    from outside the catalogue (a path, a user's Minari id)."""
    from d4rl_lite.datasets.catalogue import parse_dataset_name
    from d4rl_lite.errors import UnknownNameError

    try:
        return parse_dataset_name(dataset)
    except UnknownNameError:
        return None


def _domain(dataset: str) -> str:
    """The task domain of a catalogue dataset name (locomotion, maze, antmaze), for per-domain averages."""
    from d4rl_lite.tasks import get_task

    name = catalogue_name(dataset)
    return get_task(name.task).domain if name else "other"


def partial_algorithms(planned: list[RunSpec] | tuple[RunSpec, ...] | None) -> set[str]:
    """The algorithms a suite plans on some of its datasets only (its ``only_on``), from its planned runs."""
    pairs = {spec.cell for spec in planned or []}
    datasets = {d for _, d in pairs}
    return {a for a, _ in pairs if {d for b, d in pairs if b == a} != datasets}


def score_table(results: list[RunResult], absent: list[RunResult] | None = None,
                planned: list[RunSpec] | tuple[RunSpec, ...] | None = None) -> list[dict[str, Any]]:
    """One row per (dataset, algorithm) of the finished ``results``, then per-domain averages over
    datasets (normalized only).

    ``absent``: runs that should be there but have no usable result (missing, refused); a
    (dataset, algorithm) pair with none of its runs usable gets a row with ``metric`` "missing" and 0 seeds.
    ``planned``: every offline run the suite plans, when known; an algorithm it plans on some of a
    domain's datasets only is left out of that domain's average.
    """
    rows = _run_rows(results)
    rows += _missing_rows(rows, absent or [])
    data_scores = recorded_data_facts(results)
    rows += [{"dataset": d, "algorithm": DATA, "metric": "data", "seeds": 0, "steps": 0, "final_mean": v,
              "final_std": float("nan"), "best_mean": v, "best_std": float("nan")} for d, v in data_scores.items()]
    rows += [{"dataset": d, "algorithm": AGENT, "metric": "online agent", "seeds": 0, "steps": 0, "final_mean": v,
              "final_std": float("nan"), "best_mean": v, "best_std": float("nan")}
             for d, v in recorded_data_facts(results, online_agent).items()]
    rows.sort(key=lambda r: (r["dataset"], r["algorithm"] not in REFERENCE_COLUMNS, r["algorithm"]))
    rows += _single_task_means(rows)
    rows += _domain_means(rows, data_scores, {spec.cell for spec in planned} if planned is not None else None)
    return rows


def _run_rows(results: list[RunResult]) -> list[dict[str, Any]]:
    """A row per (dataset, column) of the runs: final and best score, mean and std over its seeds,
    normalized when every run has the normalized score, else raw."""
    groups: dict[tuple[str, str], list[RunResult]] = defaultdict(list)
    for r in results:
        groups[(r.spec.dataset, r.column)].append(r)
    rows = []
    for (dataset, algo), runs in sorted(groups.items()):
        normalized = all(r.final.normalized for r in runs)
        final = np.array([r.final.score(normalized) for r in runs])
        best = np.array([_or_nan(r.best.score(normalized)) for r in runs])
        rows.append({"dataset": dataset, "algorithm": algo, "metric": "normalized" if normalized else "raw",
                     "seeds": len(runs), "steps": int(min(r.steps for r in runs)),
                     "final_mean": float(final.mean()), "final_std": float(final.std()),
                     "best_mean": float(best.mean()), "best_std": float(best.std())})
        if all(r.final.success_rate is not None for r in runs):  # goal tasks: the unit the validity checks read
            rows[-1]["success_mean"] = 100 * float(np.mean([r.final.success_rate for r in runs]))
    return rows


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _missing_rows(rows: list[dict[str, Any]], absent: list[RunResult]) -> list[dict[str, Any]]:
    """A "missing" row for each (dataset, algorithm) of the ``absent`` runs that has no row (a
    refused file in a directory that names no run names no cell)."""
    present = {(r["dataset"], r["algorithm"]) for r in rows}
    missing = []
    for run in absent:
        if run.spec is None:
            continue
        algo, dataset = run.spec.cell
        if (dataset, algo) not in present:
            present.add((dataset, algo))
            missing.append({"dataset": dataset, "algorithm": algo, "metric": "missing", "seeds": 0, "steps": 0,
                            "final_mean": float("nan"), "final_std": float("nan"),
                            "best_mean": float("nan"), "best_std": float("nan")})
    return missing


def online_agent(data: DataFacts) -> float | None:
    """A full replay's online agent's normalized score (for ``recorded_data_facts``)."""
    return data.online_agent


def recorded_data_facts(results: list[RunResult],
                        fact: Callable[[DataFacts], float | None] = lambda data: data.normalized_return) -> dict[str, float]:
    """{dataset: the data's own normalized score (or another of its ``data`` facts, ``online_agent``)},
    as the first run on it that recorded one has it."""
    data_scores: dict[str, float] = {}
    for r in results:
        value = fact(r.data)
        if value is not None:
            data_scores.setdefault(r.spec.dataset, float(value))
    return data_scores


def _domain_means(rows: list[dict[str, Any]], data_scores: dict[str, float],
                  wanted: set[tuple[str, str]] | None) -> list[dict[str, Any]]:
    """Per domain, the mean of each algorithm's normalized rows (and of the data's scores).

    A domain average compares algorithms only over the datasets every one of them has a row for.
    An algorithm the suite runs on some datasets only (not in its planned cells ``wanted``) is not in
    the average, so that it does not shrink everyone's to its few datasets.
    """
    by_domain: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        if row["metric"] == "normalized":
            by_domain[_domain(row["dataset"])][row["dataset"]][row["algorithm"]] = row
    out = []
    for domain, per_dataset in sorted(by_domain.items()):
        present = sorted({a for cells in per_dataset.values() for a in cells})
        partial = [a for a in present if wanted is not None and any((a, d) not in wanted for d in per_dataset)]
        algos = [a for a in present if a not in partial]
        shared = sorted(d for d, cells in per_dataset.items() if set(algos) <= set(cells))
        left_out = len(per_dataset) - len(shared)
        if not shared or not algos:
            continue
        notes = ([f"{left_out} left out: not run by every algorithm"] if left_out else []) + (
            [f"without {', '.join(partial)}: run on some datasets only"] if partial else [])
        label = f"{domain} average ({count_label(len(shared), 'dataset')}" + "".join(f"; {n}" for n in notes) + ")"
        if all(d in data_scores for d in shared):
            mean = float(np.mean([data_scores[d] for d in shared]))
            out.append({SUMMARY: True, "dataset": label, "algorithm": DATA, "metric": "data", "seeds": 0, "steps": 0,
                        "final_mean": mean, "final_std": float("nan"), "best_mean": mean, "best_std": float("nan")})
        out += [_mean_row(label, algo, "normalized", [per_dataset[d][algo] for d in shared]) for algo in algos]
    return out


def _mean_row(label: str, algo: str, metric: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A summary row ``label`` of ``algo``: the mean of ``rows``' scores, their fewest seeds and steps."""
    return {SUMMARY: True, "dataset": label, "algorithm": algo, "metric": metric,
            "seeds": min(r["seeds"] for r in rows), "steps": min(r["steps"] for r in rows),
            "final_mean": float(np.mean([r["final_mean"] for r in rows])), "final_std": float("nan"),
            "best_mean": float(np.mean([r["best_mean"] for r in rows])), "best_std": float("nan")}


def _single_task_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OGBench reports a single-task maze dataset as the mean over its maze's five tasks: one row
    per (maze, kind) and algorithm that has a normalized score on every task."""
    from d4rl_lite.tasks import TASKS

    groups: dict[tuple[str, str, int], dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        name = catalogue_name(row["dataset"])
        if name and TASKS[name.task].variant_of and row["metric"] == "normalized":
            groups[(TASKS[name.task].variant_of, name.kind, name.version)][row["algorithm"]][name.task] = row
    out = []
    for (base, kind, version), per_algo in sorted(groups.items()):
        tasks = sorted(t for t in TASKS if TASKS[t].variant_of == base)
        label = f"{base}-{kind}-v{version} (mean of {len(tasks)} tasks)"
        for algo, cells in sorted(per_algo.items()):
            if set(cells) == set(tasks):
                out.append(_mean_row(label, algo, "task mean", list(cells.values())))
    return out
