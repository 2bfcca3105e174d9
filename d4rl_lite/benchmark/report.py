"""The report of a results directory: the table (md, csv, json, tex), learning curves, aggregate
statistics, and the same table and plots logged to W&B; loud about missing or refused runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from d4rl_lite.benchmark import stats
from d4rl_lite.benchmark.curves import plot_learning_curves
from d4rl_lite.benchmark.finetune_report import finetune_table
from d4rl_lite.benchmark.ope_file import fqe_section
from d4rl_lite.benchmark.results import collect_results, read_suite_description
from d4rl_lite.benchmark.table import partial_algorithms, score_table
from d4rl_lite.benchmark.table_formats import to_markdown, write_tables
from d4rl_lite.errors import DatasetNotFoundError, UserInputError
from d4rl_lite.records import RunResult
from d4rl_lite.training.logging import RunLogger


def print_report(results: Path, wandb: bool = False, suite_name: str = "report") -> bool:
    """Print and write the table of ``results``; False when runs are missing or refused (said loudly)."""
    if not results.is_dir():
        raise DatasetNotFoundError(f"no results directory at {results}")
    found = collect_results(results)
    records = found.finished
    for line in found.refused:
        print(f"d4rl-lite: REFUSED {line}", file=sys.stderr)
    if not records:
        raise UserInputError(f"no usable finished runs under {results} (expected RUN/result.json files written by "
                         "`d4rl-lite train` or `bench`)")
    # The table's runs; fine-tuning runs have their own table.
    rows = score_table(records, absent=[r for r in found.missing + found.refused if not r.finetuned], planned=found.planned)
    print(to_markdown(rows))
    tuned = finetune_table(found.finetuned)
    if tuned:
        print("\n" + tuned)
        (results / "finetune.md").write_text(tuned + "\n")
    fqe = fqe_section(results, records, rows)  # the estimates of `d4rl-lite ope`, when there are (fqe_mean: csv/json)
    if fqe:
        print("\n" + fqe)
    paths = write_tables(rows, results)
    paths.append(plot_learning_curves(records, results / "learning_curves.png"))
    try:
        partial = partial_algorithms(found.planned)
        scores, datasets = stats.score_matrices(records, leave_out=partial)
        if partial:
            print(f"\n(left out of the aggregate: {', '.join(sorted(partial))}, which the suite runs on some datasets only)")
        if scores and datasets:
            agg = stats.aggregate(scores)
            print(f"\nAggregate over {len(datasets)} dataset(s) x {len(next(iter(scores.values())))} seed(s), "
                  "normalized score, 95% stratified bootstrap CIs:")
            for a in sorted(agg, key=lambda a: -agg[a]["iqm"]):
                g = agg[a]
                print(f"  {a:<9} IQM {g['iqm']:6.1f} [{g['iqm_low']:.1f}, {g['iqm_high']:.1f}]   "
                      f"mean {g['mean']:6.1f} [{g['mean_low']:.1f}, {g['mean_high']:.1f}]")
            poi = stats.probability_of_improvement(scores)
            (results / "aggregates.json").write_text(json.dumps({"datasets": datasets, "aggregate": agg,
                                                                 "probability_of_improvement": poi}, indent=2))
            paths += [results / "aggregates.json", stats.plot_aggregates(agg, results / "iqm.png"),
                      stats.plot_performance_profiles(scores, results / "performance_profiles.png")]
    except ImportError as e:
        print(f"(aggregate statistics skipped: {e})")
    paths += _validity_section(results, records + found.finetuned)
    print("written: " + ", ".join(str(p) for p in paths))
    if wandb:
        run_dir = log_benchmark_to_wandb(suite_name, rows, [p for p in paths if p.suffix == ".png"], results)
        if run_dir:
            print(f"W&B: table and plots logged ({run_dir})")
    if not found.complete:
        shown = ", ".join(r.run_id for r in found.missing[:5]) + (", ..." if len(found.missing) > 5 else "")
        print(f"d4rl-lite: INCOMPLETE TABLE: {len(found.missing)} run(s) missing"
              + (f" ({shown})" if found.missing else "") + f", {len(found.refused)} refused; cells say MISSING or "
              "show their seed count, and averages cover only datasets every algorithm completed", file=sys.stderr)
    return found.complete


def _validity_section(results: Path, records: list[RunResult]) -> list[Path]:
    """Print the validity checks (``validity.py``) the suite names, or that its datasets allow; write
    validity.json and validity.md."""
    from d4rl_lite.benchmark import validity

    names = (read_suite_description(results) or {}).get("patterns")
    try:
        verdicts = validity.check_validity(results, records, names)
    except (ImportError, ValueError) as e:  # rliable missing; a suite.json naming checks this version lacks
        print(f"(validity checks skipped: {e})")
        return []
    if not verdicts:
        return []
    text = validity.to_markdown(verdicts)
    counts = {v: sum(x["verdict"] == v for x in verdicts) for v in (validity.REPRODUCED, validity.NOT_REPRODUCED,
                                                                   validity.NOT_ENOUGH)}
    print(f"\nValidity: the literature's patterns on this suite ({', '.join(f'{n} {v}' for v, n in counts.items())}):")
    print(text)
    (results / "validity.md").write_text(text + "\n")
    return [validity.write_validity(results, verdicts), results / "validity.md"]


def log_benchmark_to_wandb(suite: str, rows: list[dict[str, Any]], images: list[Path], results_dir: Path,
                           project: str = "d4rl-lite") -> Path | None:
    """One W&B run per benchmark report: the table as a wandb.Table and the plots as images.

    Returns the W&B run directory, or None when W&B failed (reported, never fatal).
    """
    logger = RunLogger(None,
                       {"project": project, "group": "benchmark", "name": f"{suite}-table", "dir": str(results_dir),
                        "job_type": "report"})
    if logger._wandb is None:
        logger.close()
        return None
    try:
        import wandb

        columns = list(dict.fromkeys(k for r in rows for k in r))
        payload: dict[str, Any] = {"benchmark/table": wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])}
        for img in images:
            payload[f"benchmark/{img.stem}"] = wandb.Image(str(img))
        logger._wandb.log(payload)
        run_dir = Path(logger._wandb.dir).parent
    except Exception as e:  # noqa: BLE001
        logger._disable_wandb(e)
        run_dir = None
    logger.close()
    return run_dir
