"""The benchmark table: per dataset x algorithm, final and best score, mean +- std over seeds.

Scores are D4RL-normalized (percent) where the task has both reference scores, else raw returns
(marked ``raw``). Outputs: markdown, CSV, JSON and LaTeX.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

NORMALIZED, RAW = "eval/normalized_score", "eval/return_mean"


def read_results(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished run's record (``*/result.json``), in a stable order."""
    out = []
    for path in sorted(Path(results_dir).glob("*/result.json")):
        out.append(json.loads(path.read_text()))
    return out


def _domain(dataset: str) -> str:
    return "maze" if dataset.startswith("pointmaze") else "locomotion"


def score_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, algorithm), then per-domain averages over datasets (normalized only)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["algorithm"])].append(r)
    rows = []
    for (dataset, algo), runs in sorted(groups.items()):
        metric = NORMALIZED if all(NORMALIZED in r["final"] for r in runs) else RAW
        final = np.array([r["final"][metric] for r in runs])
        best = np.array([r["best"].get(metric, np.nan) for r in runs])
        rows.append({"dataset": dataset, "algorithm": algo, "metric": "normalized" if metric == NORMALIZED else "raw",
                     "seeds": len(runs), "steps": int(min(r["steps"] for r in runs)),
                     "final_mean": float(final.mean()), "final_std": float(final.std()),
                     "best_mean": float(best.mean()), "best_std": float(best.std())})
    by_domain: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["metric"] == "normalized":
            by_domain[(_domain(row["dataset"]), row["algorithm"])].append(row)
    for (domain, algo), rs in sorted(by_domain.items()):
        rows.append({"dataset": f"{domain} average ({len(rs)} datasets)", "algorithm": algo, "metric": "normalized",
                     "seeds": min(r["seeds"] for r in rs), "steps": min(r["steps"] for r in rs),
                     "final_mean": float(np.mean([r["final_mean"] for r in rs])), "final_std": float("nan"),
                     "best_mean": float(np.mean([r["best_mean"] for r in rs])), "best_std": float("nan")})
    return rows


def _pm(mean: float, std: float) -> str:
    return f"{mean:.1f}" if np.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """Datasets as rows, algorithms as columns, cells 'final mean ± std' (normalized unless marked raw)."""
    algos = sorted({r["algorithm"] for r in rows})
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    cell = {(r["dataset"], r["algorithm"]): r for r in rows}
    lines = ["| dataset | " + " | ".join(algos) + " |", "|---|" + "---|" * len(algos)]
    for d in datasets:
        cells = []
        for a in algos:
            r = cell.get((d, a))
            cells.append("" if r is None else _pm(r["final_mean"], r["final_std"]) + (" (raw)" if r["metric"] == "raw" else ""))
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    seeds = sorted({r["seeds"] for r in rows})
    lines.append("")
    lines.append(f"Final evaluation, mean ± std over {'/'.join(map(str, seeds))} seeds; D4RL-normalized score "
                 "(100 = reference expert / controller) unless marked raw (task without measured ref_max).")
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, default=lambda v: None)


def to_latex(rows: list[dict[str, Any]]) -> str:
    algos = sorted({r["algorithm"] for r in rows})
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    cell = {(r["dataset"], r["algorithm"]): r for r in rows}
    esc = lambda s: s.replace("_", r"\_")  # noqa: E731
    out = [r"\begin{tabular}{l" + "r" * len(algos) + "}", r"\toprule",
           "dataset & " + " & ".join(esc(a) for a in algos) + r" \\", r"\midrule"]
    for d in datasets:
        cells = []
        for a in algos:
            r = cell.get((d, a))
            cells.append("" if r is None else _pm(r["final_mean"], r["final_std"]).replace("±", r"$\pm$"))
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
    """One panel per dataset: each algorithm's evaluation curve, mean over seeds with min-max band."""
    from d4rl_lite.plotting import pyplot, save_figure

    plt = pyplot()
    datasets = sorted({r["dataset"] for r in records})
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
            ax.plot(steps, values.mean(0), label=algo)
            if len(values) > 1:
                ax.fill_between(steps, values.min(0), values.max(0), alpha=0.2)
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("normalized score" if key == NORMALIZED else "return")
    axes[0][-1].legend(fontsize=7)
    return save_figure(fig, path)
