"""The table's files: markdown (with its footnotes), CSV, JSON and LaTeX. Text that comes from
result files is escaped for each format (a result's text can never break a column or run LaTeX)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.benchmark.suites import budgets_apart
from d4rl_lite.benchmark.table import AGENT, DATA, REFERENCE_COLUMNS, SUMMARY, is_summary


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
    """The data column first (when any run recorded it), the online agent's (full replays), then the
    algorithms in name order."""
    return sorted({r["algorithm"] for r in rows}, key=lambda a: (a not in REFERENCE_COLUMNS, a != DATA, a))


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
            if a in REFERENCE_COLUMNS:
                cells.append("–" if r is None else _one_decimal(r['final_mean']))
                continue
            if r is None:
                cells.append("–")  # not planned here (a suite's only_on), or left out of an average
                continue
            if r["metric"] == "missing":
                cells.append("**MISSING**")
                continue
            short = r["seeds"] < most_seeds and not is_summary(r)
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
                    "– where that means nothing, e.g. stitch segments, or the runs predate it)." if DATA in algos else "")
                 + (f" `{AGENT}`: the normalized score of the online agent whose whole replay (or a part of it) "
                    "the dataset is (100 episodes, deterministic)." if AGENT in algos else ""))
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
    cells = [r for r in rows if r["steps"] and not is_summary(r)]
    by_dataset = {d: min(r["steps"] for r in cells if r["dataset"] == d) for d in dict.fromkeys(r["dataset"] for r in cells)}
    if not by_dataset:
        return ""
    values = list(by_dataset.values())
    usual = max(sorted(set(values)), key=values.count)  # a tie: the smaller
    return f" after {usual:,} updates" + "".join(f" ({n:,} on {', '.join(ds)})"
                                                  for n, ds in budgets_apart(by_dataset, usual).items())


def _public(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the files show them: without the table's own markers (``SUMMARY``)."""
    return [{k: v for k, v in r.items() if k != SUMMARY} for r in rows]


def to_csv(rows: list[dict[str, Any]]) -> str:
    rows = _public(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(dict.fromkeys(k for r in rows for k in r)), restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(_public(rows), indent=2, default=lambda v: None)


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
            if a in REFERENCE_COLUMNS:
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
