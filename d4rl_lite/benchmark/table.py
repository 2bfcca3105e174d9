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

NORMALIZED, RAW, SUCCESS = "eval/normalized_score", "eval/return_mean", "eval/success_rate"
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
    suite = read_suite_description(results_dir)
    if suite is not None:
        try:
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
    named = sorted({str(r["train"].get("suite")) for r in records if r["train"].get("suite")})
    if suite is None and named:  # deleted: the runs it planned, and so the missing ones, are unknown
        raise CorruptFileError(f"{suite_file} is missing, but the runs here were trained by suite {', '.join(named)}: "
                               "without it the table cannot say which runs are missing. Restore it, or run `d4rl-lite "
                               f"bench {named[0]} --results {results_dir}` (finished runs are kept) to write it again")
    seen = {f"{r['algorithm']}__{r['dataset']}__seed{r['train']['seed']}" for r in records}
    refused_ids = {Path(line.split(":")[0]).parent.name for line in refused}
    if expected is None:  # no suite: the full grid of what is there
        algos = {r["algorithm"] for r in records}
        datasets = {r["dataset"] for r in records}
        seeds = {r["train"]["seed"] for r in records}
        expected = {run_id(a, d, s) for a in algos for d in datasets for s in seeds}
    missing = sorted(expected - seen - refused_ids)
    return ResultSet(records, missing, refused, sorted(expected) if suite is not None else None)


def read_suite_description(results_dir: Path) -> dict[str, Any] | None:
    """The verified ``suite.json`` that ``bench`` wrote into a results directory (None: there is none).

    It carries a checksum: an edited plan (an algorithm taken out, say) would hide missing runs."""
    from d4rl_lite.files import CorruptFileError, read_record

    path = Path(results_dir) / "suite.json"
    if not path.exists():
        return None
    try:
        return read_record(path, "suite description")
    except CorruptFileError as e:
        raise CorruptFileError(f"{e}".split(". Re-run")[0] + ": the suite's planned runs cannot be trusted. Run "
                               f"`d4rl-lite bench SUITE --results {results_dir}` again to rewrite it (finished runs are "
                               "kept), or delete it to report the runs alone") from None


def _check_record(record: dict[str, Any], path: Path, budgets: dict[str, int] | None) -> str | None:
    from d4rl_lite.schema import mismatch
    from d4rl_lite.training.logging import read_log
    from d4rl_lite.training.run_files import RESULT_SPEC

    if problem := mismatch(record, RESULT_SPEC):  # types first: what follows relies on them
        return f"not a run result ({problem})"
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
    if any(key not in point for point in record["curve"]):
        return f"not a run result (curve: a point without {key}, the score of its final evaluation)"
    if not (isinstance(score, (int, float)) and math.isfinite(score)):
        return f"final score is {score!r}, not a finite number (a diverged run)"
    budget = None if budgets is None else budgets.get(record["dataset"], budgets[""])
    if budget is not None and steps != budget:
        return f"trained for {steps:,} steps, the suite asks for {budget:,}" + (
            f" on {record['dataset']}" if budget != budgets[""] else "")
    if key == NORMALIZED and (problem := _reference_problem(record)):
        return problem
    log_path = path.parent / "log.jsonl"
    if not log_path.is_file():
        return "has no log.jsonl beside it to check its score against"
    evals = [row for row in read_log(log_path) if row.get("step") == final.get("step") and key in row]
    if not evals or not math.isclose(float(evals[-1][key]), float(score), rel_tol=1e-9, abs_tol=1e-9):
        return f"final score {score} does not match its own log.jsonl at step {final.get('step')}"
    return None


def _reference_problem(record: dict[str, Any]) -> str | None:
    """A table normalizes every run of a task with one set of references, the task's current ones:
    a run normalized with others is refused (its recorded references, or for results written before
    they were recorded, its final raw return re-normalized)."""
    from d4rl_lite.errors import UnknownNameError
    from d4rl_lite.tasks import get_task
    from d4rl_lite.training.run_files import reference_record

    try:
        current = reference_record(str(record.get("task")))
    except UnknownNameError:
        return None  # a task this version does not know: nothing to compare with
    if current is None:
        return f"has normalized scores, but task {record.get('task')} has no measured reference scores here"
    used = record.get("references")
    if isinstance(used, dict):
        same = all(isinstance(used.get(k), (int, float)) and math.isclose(used[k], current[k], rel_tol=1e-12)
                   for k in ("ref_min", "ref_max"))
        how = f"ref_min {used.get('ref_min')!r}, ref_max {used.get('ref_max')!r}"
    else:
        final = record["final"]
        expected = get_task(record["task"]).normalized_score(final.get(RAW, math.nan))
        same = math.isclose(expected, final[NORMALIZED], rel_tol=1e-9, abs_tol=1e-9)
        how = "other references (its final return does not give its normalized score with the current ones)"
    if same:
        return None
    return (f"was normalized with {how}; this table normalizes every {record['task']} run with ref_min "
            f"{current['ref_min']:g}, ref_max {current['ref_max']:g} (`d4rl-lite refs` says where they come from): "
            "re-run it with these, or restore the references it was trained with")


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
        if all(SUCCESS in r["final"] for r in runs):  # goal tasks: the unit the validity checks read
            rows[-1]["success_mean"] = 100 * float(np.mean([r["final"][SUCCESS] for r in runs]))
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


def _one_decimal(x: float) -> str:
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text  # a mean that rounds to zero has no sign worth printing


def _pm(mean: float, std: float, seeds: int = 0) -> str:
    """'12.3 ± 4.5' over seeds; '12.3 (1 seed)' where a spread over one seed would read as '± 0.0'."""
    if seeds == 1:
        return f"{_one_decimal(mean)} (1 seed)"
    return _one_decimal(mean) if np.isnan(std) else f"{_one_decimal(mean)} ± {_one_decimal(std)}"


def _md(text: str) -> str:
    """Text from result files as one markdown table cell: pipes escaped, no line breaks."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
                  "^": r"\textasciicircum{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}"}


def _tex(text: str) -> str:
    """Text from result files as LaTeX that prints it literally (no command in it can run)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in " ".join(str(text).split()))


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The data column first (when any run recorded it), then the algorithms in name order."""
    return sorted({r["algorithm"] for r in rows}, key=lambda a: (a != DATA, a))


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """Datasets as rows, algorithms as columns, cells 'final mean ± std' (normalized unless marked raw);
    the data column first."""
    algos = _columns(rows)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    cell = {(r["dataset"], r["algorithm"]): r for r in rows}
    lines = ["| dataset | " + " | ".join(_md(a) for a in algos) + " |", "|---|" + "---|" * len(algos)]
    most_seeds = max(r["seeds"] for r in rows)
    for d in datasets:
        cells = []
        for a in algos:
            r = cell.get((d, a))
            if a == DATA:
                cells.append("–" if r is None else _one_decimal(r['final_mean']))
                continue
            if r is None:
                cells.append("–")  # not planned here (a suite's only_on), or left out of an average
                continue
            if r["metric"] == "missing":
                cells.append("**MISSING**")
                continue
            short = r["seeds"] < most_seeds and not _summary_row(d)
            text = _pm(r["final_mean"], r["final_std"], 0 if short else r["seeds"]) + (" (raw)" if r["metric"] == "raw" else "")
            if short:
                text += f" (**{r['seeds']}/{most_seeds} seeds**)"
            cells.append(text)
        lines.append(f"| {_md(d)} | " + " | ".join(cells) + " |")
    seeds = sorted({r["seeds"] for r in rows if r["seeds"]})
    lines.append("")
    lines.append(f"Final evaluation{_budgets(rows)}, mean ± std over {'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''}; "
                 "D4RL-normalized score "
                 "(100 = reference expert / controller) unless marked raw (task without measured ref_max)."
                 + (f" `{DATA}`: the dataset's own episodes, mean normalized score (episodes under the task's protocol; "
                    "– where that means nothing, e.g. stitch segments, or the runs predate it)." if DATA in algos else ""))
    success = [r for r in rows if "success_mean" in r]
    if success:
        lines.append("")
        lines.append("Success rate (%) of the final evaluation, mean over seeds (the unit of the validity checks on "
                     "goal tasks): " + "; ".join(
                         f"{_md(d)}: " + ", ".join(f"{_md(r['algorithm'])} {r['success_mean']:.0f}"
                                                   for r in success if r["dataset"] == d)
                         for d in dict.fromkeys(r["dataset"] for r in success)) + ".")
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
    writer = csv.DictWriter(buf, list(dict.fromkeys(k for r in rows for k in r)), restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, default=lambda v: None)


def to_latex(rows: list[dict[str, Any]]) -> str:
    algos = _columns(rows)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    cell = {(r["dataset"], r["algorithm"]): r for r in rows}
    out = [r"\begin{tabular}{l" + "r" * len(algos) + "}", r"\toprule",
           "dataset & " + " & ".join(_tex(a) for a in algos) + r" \\", r"\midrule"]
    for d in datasets:
        cells = []
        for a in algos:
            r = cell.get((d, a))
            if a == DATA:
                cells.append("--" if r is None else _one_decimal(r['final_mean']))
                continue
            cells.append("missing" if r is None or r["metric"] == "missing"
                         else _pm(r["final_mean"], r["final_std"], r["seeds"]).replace("±", r"$\pm$"))
        out.append(_tex(d) + " & " + " & ".join(cells) + r" \\")
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
    """One panel per dataset in a grid of at most three columns (readable at paper size): each
    algorithm's evaluation curve, mean over seeds, with a band from the lowest to the highest seed."""
    from d4rl_lite.plotting import pyplot

    plt = pyplot()
    datasets = sorted({r["dataset"] for r in records})
    # One colour per algorithm across panels: an algorithm that runs on some datasets only (only_on)
    # keeps its colour in every panel it is in.
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {a: cycle[i % len(cycle)] for i, a in enumerate(sorted({r["algorithm"] for r in records}))}
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 0.4), dpi=100, squeeze=False)
    for ax in axes.flat[len(datasets):]:
        ax.set_visible(False)
    for ax, d in zip(axes.flat, datasets):
        by_algo: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            if r["dataset"] == d:
                by_algo[r["algorithm"]].append(r)
        for algo, runs in sorted(by_algo.items()):
            key = [k for k in runs[0]["curve"][0] if k != "step"][0]
            steps = [p["step"] for p in runs[0]["curve"]]
            values = np.array([[p[key] for p in r["curve"]][: len(steps)] for r in runs if len(r["curve"]) >= len(steps)])
            ax.plot(steps, values.mean(0), label=f"{algo} ({_count(len(values), 'seed')})", color=colour[algo])
            if len(values) > 1:
                ax.fill_between(steps, values.min(0), values.max(0), alpha=0.2, color=colour[algo])
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("normalized score" if key == NORMALIZED else "return")
        ax.legend(fontsize=7)  # what this panel shows, and nothing else
    fig.suptitle("evaluation score: line = mean over seeds, band = lowest to highest seed", fontsize=9)
    fig.tight_layout()
    return fig


def _count(n: int, noun: str) -> str:
    """"1 dataset", "3 datasets"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
