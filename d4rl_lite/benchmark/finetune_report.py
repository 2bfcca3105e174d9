"""The report's fine-tuning table (a suite's ``finetune``: ``finetune_suite.py``)."""

from __future__ import annotations

import numpy as np

from d4rl_lite.benchmark.finetune_suite import improvement
from d4rl_lite.benchmark.table_formats import _md
from d4rl_lite.records import NORMALIZED, RAW, RunResult


def finetune_table(results: list[RunResult]) -> str | None:
    """The report's fine-tuning table: per dataset and algorithm, the offline score, the score after
    fine-tuning and the improvement, mean ± std over seeds (each seed against its own parent)."""
    tuned = [r for r in results if r.finetuning is not None]
    if not tuned:
        return None
    cells: dict[tuple[str, str, int], list[RunResult]] = {}
    for r in sorted(tuned, key=lambda r: (r.spec.dataset, r.column, int(r.steps), r.spec.seed)):
        # A row per dataset, column (a sweep member's settings apart) and online budget: never pooled.
        cells.setdefault((r.spec.dataset, r.column, int(r.steps)), []).append(r)
    several = len({steps for _, _, steps in cells}) > 1
    lines = ["| dataset | algorithm | offline | after fine-tuning | improvement | seeds |", "|---|---|---|---|---|---|"]
    for (dataset, algorithm, steps), runs in cells.items():
        algorithm = f"{algorithm} ({steps:,} env steps)" if several else algorithm
        metric = NORMALIZED if all(r.final.normalized for r in runs) else RAW
        # Only runs whose scores before and after are finite numbers (an edited record may hold anything).
        runs = [r for r in runs if improvement(metric, r) is not None]
        if not runs:
            continue
        before = [float(r.finetuning.offline_final.value(metric)) for r in runs]
        after = [float(r.final.value(metric)) for r in runs]
        gains = np.array(after) - np.array(before)
        unit = "" if metric == NORMALIZED else " (raw)"
        lines.append(f"| {_md(dataset)} | {_md(algorithm)} | {np.mean(before):.1f} ± {np.std(before):.1f}{unit} | "
                     f"{np.mean(after):.1f} ± {np.std(after):.1f} | {gains.mean():+.1f} ± {gains.std():.1f} | {len(runs)} |")
    steps = sorted({int(r.steps) for r in tuned})
    lines += ["", f"Fine-tuning: {'/'.join(f'{s:,}' for s in steps)} env steps (one update each) from each run's final "
                  "offline policy; offline = the parent run's final evaluation, improvement = each seed's own after - "
                  "offline, mean ± std over seeds."]
    return "\n".join(lines)
