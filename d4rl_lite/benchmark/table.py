"""The benchmark table: per dataset x algorithm, final and best score, mean +- std over seeds.

Scores are D4RL-normalized (percent) where the task has both reference scores, else raw returns
(marked ``raw``). Outputs: markdown, CSV, JSON and LaTeX.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.benchmark.suites import budgets_apart, dataset_steps, planned_runs, run_id, split_run_id

NORMALIZED, RAW = "eval/normalized_score", "eval/return_mean"
# The column of the data's own episodes (their mean normalized score, recorded by each run as
# ``data.normalized_return``): which algorithms beat their data is read at a glance.
DATA = "data"


@dataclass
class ResultSet:
    """The verified runs of a results directory, and what is wrong with the rest.

    ``missing``: runs the suite (``suite.json``) or the grid of datasets x algorithms x seeds
    seen expects but which have no result; ``refused``: result files that exist but cannot be
    trusted (damaged, NaN score, wrong budget, score not in their own log), with the reason.
    """

    records: list[dict[str, Any]]
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    planned: list[str] | None = None  # every run id the suite plans (None without a suite.json)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.refused


def collect_results(results_dir: str | Path) -> ResultSet:
    """Read and check every ``RUN/result.json`` under ``results_dir``; see ``ResultSet``."""
    from d4rl_lite.files import CorruptFileError, read_record

    results_dir = Path(results_dir)
    budgets: dict[str, int] | None = None  # {dataset: the suite's updates on it; "": elsewhere}
    expected = None
    suite_file = results_dir / "suite.json"
    if suite_file.is_file():
        try:
            suite = json.loads(suite_file.read_text())
            budgets = {"": int(suite["steps"]), **{d: dataset_steps(suite, d) for d in suite["datasets"]}}
            expected = {run_id(*run) for run in planned_runs(suite["algorithms"], suite["datasets"], suite["seeds"],
                                                             suite.get("only_on") or {})}
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError):  # OverflowError: int(Infinity)
            raise CorruptFileError(f"{suite_file}: not a suite description (written by `d4rl-lite bench`); "
                                   "delete it to report the results without it") from None
    records, refused = [], []
    for path in sorted(results_dir.glob("*/result.json")):
        try:
            record = read_record(path, "result")
        except CorruptFileError as e:
            refused.append(str(e))
            continue
        try:
            problem = _check_record(record, path, budgets)
        except CorruptFileError as e:  # its log is damaged: this run is refused, the others still count
            problem = str(e)
        if problem:
            refused.append(f"{path}: {problem}")
        else:
            records.append(record)
    for path in sorted(results_dir.glob("*/diverged.json")):  # a population member that diverged
        if not (path.parent / "result.json").exists():
            try:
                refused.append(f"{path}: {read_record(path, 'divergence record').get('diverged', 'diverged')}")
            except CorruptFileError as e:
                refused.append(str(e))
    seen = {f"{r['algorithm']}__{r['dataset']}__seed{r['train']['seed']}" for r in records}
    refused_ids = {Path(line.split(":")[0]).parent.name for line in refused}
    if expected is None:  # no suite: the full grid of what is there
        algos = {r["algorithm"] for r in records}
        datasets = {r["dataset"] for r in records}
        seeds = {r["train"]["seed"] for r in records}
        expected = {run_id(a, d, s) for a in algos for d in datasets for s in seeds}
    missing = sorted(expected - seen - refused_ids)
    return ResultSet(records, missing, refused, sorted(expected) if suite_file.is_file() else None)


def _check_record(record: dict[str, Any], path: Path, budgets: dict[str, int] | None) -> str | None:
    from d4rl_lite.training.logging import read_log

    try:
        final, steps = record["final"], int(record["steps"])
        key = NORMALIZED if NORMALIZED in final else RAW
        score = final[key]
        well_formed = (type(record["train"]["seed"]) is int and isinstance(record["algorithm"], str)
                       and isinstance(record["dataset"], str))
    except (KeyError, TypeError, ValueError, OverflowError):
        well_formed = False
    if not well_formed:
        return "not a run result (missing or malformed final score, steps, seed, algorithm or dataset)"
    if not (isinstance(score, (int, float)) and math.isfinite(score)):
        return f"final score is {score!r}, not a finite number (a diverged run)"
    budget = None if budgets is None else budgets.get(record["dataset"], budgets[""])
    if budget is not None and steps != budget:
        return f"trained for {steps:,} steps, the suite asks for {budget:,}" + (
            f" on {record['dataset']}" if budget != budgets[""] else "")
    log_path = path.parent / "log.jsonl"
    if not log_path.is_file():
        return "has no log.jsonl beside it to check its score against"
    evals = [row for row in read_log(log_path) if row.get("step") == final.get("step") and key in row]
    if not evals or not math.isclose(float(evals[-1][key]), float(score), rel_tol=1e-9, abs_tol=1e-9):
        return f"final score {score} does not match its own log.jsonl at step {final.get('step')}"
    return None


def read_results(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every verified run record (``*/result.json``) of a results directory, in a stable order."""
    return collect_results(results_dir).records


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


def column_name(record: dict[str, Any]) -> str:
    """The table column of a run: its algorithm, with a sweep member's values (``cql[cql_weight=5]``),
    so that members of a sweep are never pooled as seeds of one cell."""
    swept = record.get("sweep") or {}
    return record["algorithm"] + ("[" + ",".join(f"{k}={v}" for k, v in sorted(swept.items())) + "]" if swept else "")


def partial_algorithms(planned: list[str] | None) -> set[str]:
    """The algorithms a suite plans on some of its datasets only (its ``only_on``), from its run ids."""
    pairs = {split_run_id(run) for run in planned or []}
    datasets = {d for _, d in pairs}
    return {a for a, _ in pairs if {d for b, d in pairs if b == a} != datasets}


def score_table(records: list[dict[str, Any]], expected: list[str] | None = None,
                planned: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (dataset, algorithm), then per-domain averages over datasets (normalized only).

    ``expected``: run ids (``algo__dataset__seedN``) that should be there; a (dataset, algorithm)
    pair with none of its runs usable gets a row with ``metric`` "missing" and 0 seeds.
    ``planned``: every run id the suite plans, when known; an algorithm it plans on some of a
    domain's datasets only is left out of that domain's average.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], column_name(r))].append(r)
    rows = []
    for (dataset, algo), runs in sorted(groups.items()):
        metric = NORMALIZED if all(NORMALIZED in r["final"] for r in runs) else RAW
        final = np.array([r["final"][metric] for r in runs])
        best = np.array([r["best"].get(metric, np.nan) for r in runs])
        rows.append({"dataset": dataset, "algorithm": algo, "metric": "normalized" if metric == NORMALIZED else "raw",
                     "seeds": len(runs), "steps": int(min(r["steps"] for r in runs)),
                     "final_mean": float(final.mean()), "final_std": float(final.std()),
                     "best_mean": float(best.mean()), "best_std": float(best.std())})
    present = {(r["dataset"], r["algorithm"]) for r in rows}
    for run in expected or []:
        algo, dataset = split_run_id(run)
        if (dataset, algo) not in present:
            present.add((dataset, algo))
            rows.append({"dataset": dataset, "algorithm": algo, "metric": "missing", "seeds": 0, "steps": 0,
                         "final_mean": float("nan"), "final_std": float("nan"),
                         "best_mean": float("nan"), "best_std": float("nan")})
    data_scores: dict[str, float] = {}
    for r in records:
        value = (r.get("data") or {}).get("normalized_return")
        if value is not None:
            data_scores.setdefault(r["dataset"], float(value))
    rows += [{"dataset": d, "algorithm": DATA, "metric": "data", "seeds": 0, "steps": 0, "final_mean": v,
              "final_std": float("nan"), "best_mean": v, "best_std": float("nan")} for d, v in data_scores.items()]
    rows.sort(key=lambda r: (r["dataset"], r["algorithm"] != DATA, r["algorithm"]))
    rows += _single_task_means(rows)
    # A domain average compares algorithms only over the datasets every one of them has a row for.
    # An algorithm the suite runs on some datasets only (its only_on) is not in the average, so that
    # it does not shrink everyone's to its few datasets.
    normalized = [r for r in rows if r["metric"] == "normalized"]
    wanted = {split_run_id(run) for run in planned} if planned is not None else None
    by_domain: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for row in normalized:
        by_domain[_domain(row["dataset"])][row["dataset"]][row["algorithm"]] = row
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
        label = f"{domain} average ({_count(len(shared), 'dataset')}" + "".join(f"; {n}" for n in notes) + ")"
        if all(d in data_scores for d in shared):
            mean = float(np.mean([data_scores[d] for d in shared]))
            rows.append({"dataset": label, "algorithm": DATA, "metric": "data", "seeds": 0, "steps": 0, "final_mean": mean,
                         "final_std": float("nan"), "best_mean": mean, "best_std": float("nan")})
        for algo in algos:
            rs = [per_dataset[d][algo] for d in shared]
            rows.append({"dataset": label, "algorithm": algo, "metric": "normalized",
                         "seeds": min(r["seeds"] for r in rs), "steps": min(r["steps"] for r in rs),
                         "final_mean": float(np.mean([r["final_mean"] for r in rs])), "final_std": float("nan"),
                         "best_mean": float(np.mean([r["best_mean"] for r in rs])), "best_std": float("nan")})
    return rows


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
                rs = list(cells.values())
                out.append({"dataset": label, "algorithm": algo, "metric": "task mean",
                            "seeds": min(r["seeds"] for r in rs), "steps": min(r["steps"] for r in rs),
                            "final_mean": float(np.mean([r["final_mean"] for r in rs])), "final_std": float("nan"),
                            "best_mean": float(np.mean([r["best_mean"] for r in rs])), "best_std": float("nan")})
    return out


def _pm(mean: float, std: float) -> str:
    return f"{mean:.1f}" if np.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The data column first (when any run recorded it), then the algorithms in name order."""
    return sorted({r["algorithm"] for r in rows}, key=lambda a: (a != DATA, a))


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """Datasets as rows, algorithms as columns, cells 'final mean ± std' (normalized unless marked raw);
    the data column first."""
    algos = _columns(rows)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    cell = {(r["dataset"], r["algorithm"]): r for r in rows}
    lines = ["| dataset | " + " | ".join(algos) + " |", "|---|" + "---|" * len(algos)]
    most_seeds = max(r["seeds"] for r in rows)
    for d in datasets:
        cells = []
        for a in algos:
            r = cell.get((d, a))
            if a == DATA:
                cells.append("–" if r is None else f"{r['final_mean']:.1f}")
                continue
            if r is None:
                cells.append("–")  # not planned here (a suite's only_on), or left out of an average
                continue
            if r["metric"] == "missing":
                cells.append("**MISSING**")
                continue
            text = _pm(r["final_mean"], r["final_std"]) + (" (raw)" if r["metric"] == "raw" else "")
            if r["seeds"] < most_seeds and not _summary_row(d):
                text += f" (**{r['seeds']}/{most_seeds} seeds**)"
            cells.append(text)
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    seeds = sorted({r["seeds"] for r in rows if r["seeds"]})
    lines.append("")
    lines.append(f"Final evaluation{_budgets(rows)}, mean ± std over {'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''}; "
                 "D4RL-normalized score "
                 "(100 = reference expert / controller) unless marked raw (task without measured ref_max)."
                 + (f" `{DATA}`: the dataset's own episodes, mean normalized score (episodes under the task's protocol; "
                    "– where that means nothing, e.g. stitch segments, or the runs predate it)." if DATA in algos else ""))
    return "\n".join(lines)


def _budgets(rows: list[dict[str, Any]]) -> str:
    """' after 30,000 updates (100,000 on hopper-medium-replay-v0)': the budget of most datasets' runs
    and the datasets trained longer or shorter (a suite's per-dataset steps); '' without runs."""
    cells = [r for r in rows if r["steps"] and not _summary_row(r["dataset"])]
    by_dataset = {d: min(r["steps"] for r in cells if r["dataset"] == d) for d in dict.fromkeys(r["dataset"] for r in cells)}
    if not by_dataset:
        return ""
    values = list(by_dataset.values())
    usual = max(sorted(set(values)), key=values.count)  # a tie: the smaller
    return f" after {usual:,} updates" + "".join(f" ({n:,} on {', '.join(ds)})"
                                                  for n, ds in budgets_apart(by_dataset, usual).items())


def _summary_row(label: str) -> bool:
    """A row of averages (a domain's, or a single-task dataset's mean over its tasks), not one dataset's runs."""
    return "average" in label or "mean of" in label


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, default=lambda v: None)


def to_latex(rows: list[dict[str, Any]]) -> str:
    algos = _columns(rows)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    cell = {(r["dataset"], r["algorithm"]): r for r in rows}
    esc = lambda s: s.replace("_", r"\_")  # noqa: E731
    out = [r"\begin{tabular}{l" + "r" * len(algos) + "}", r"\toprule",
           "dataset & " + " & ".join(esc(a) for a in algos) + r" \\", r"\midrule"]
    for d in datasets:
        cells = []
        for a in algos:
            r = cell.get((d, a))
            if a == DATA:
                cells.append("--" if r is None else f"{r['final_mean']:.1f}")
                continue
            cells.append("missing" if r is None or r["metric"] == "missing"
                         else _pm(r["final_mean"], r["final_std"]).replace("±", r"$\pm$"))
        out.append(esc(d) + " & " + " & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out)


WRITERS = {"md": to_markdown, "csv": to_csv, "json": to_json, "tex": to_latex}


def write_tables(rows: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, fn in WRITERS.items():
        path = out / f"table.{ext}"
        path.write_text(fn(rows) + "\n")
        paths.append(path)
    return paths


def plot_learning_curves(records: list[dict[str, Any]], path: str | Path) -> Path:
    """``learning_curves_figure`` saved to ``path``."""
    from d4rl_lite.plotting import save_figure

    return save_figure(learning_curves_figure(records), path)


def learning_curves_figure(records: list[dict[str, Any]]) -> Any:
    """One panel per dataset: each algorithm's evaluation curve, mean over seeds with min-max band."""
    from matplotlib.lines import Line2D

    from d4rl_lite.plotting import pyplot

    plt = pyplot()
    datasets = sorted({r["dataset"] for r in records})
    # One colour per algorithm across panels: an algorithm that runs on some datasets only (only_on)
    # would otherwise shift the colours of the panels it is in, under a legend drawn from another.
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {a: cycle[i % len(cycle)] for i, a in enumerate(sorted({r["algorithm"] for r in records}))}
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), dpi=100, squeeze=False)
    for ax, d in zip(axes[0], datasets):
        by_algo: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            if r["dataset"] == d:
                by_algo[r["algorithm"]].append(r)
        for algo, runs in sorted(by_algo.items()):
            key = [k for k in runs[0]["curve"][0] if k != "step"][0]
            steps = [p["step"] for p in runs[0]["curve"]]
            values = np.array([[p[key] for p in r["curve"]][: len(steps)] for r in runs if len(r["curve"]) >= len(steps)])
            ax.plot(steps, values.mean(0), label=algo, color=colour[algo])
            if len(values) > 1:
                ax.fill_between(steps, values.min(0), values.max(0), alpha=0.2, color=colour[algo])
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("normalized score" if key == NORMALIZED else "return")
    handles = [Line2D([], [], color=c, label=a) for a, c in colour.items()]
    axes[0][-1].legend(handles=handles, fontsize=7)  # every algorithm, whichever panels it is in
    return fig


def _count(n: int, noun: str) -> str:
    """"1 dataset", "3 datasets"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
