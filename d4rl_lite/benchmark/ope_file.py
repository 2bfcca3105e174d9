"""``ope.json``: the FQE estimates of a results directory's runs, their rank correlations with the
true scores, and how ``report`` shows them (a column "FQE" next to the final score).

The file is a verified record (``files.write_record``: checksummed) of a declared shape (``OPE_SPEC``).
Each estimate names the result it was made for by that result's checksum: a run trained again
later has a new result, and its old estimate is not shown next to its new score.

Rank correlations are SciPy's Spearman rho and Kendall tau-b with their p-values; their 95%
intervals are Fisher-z intervals (z = atanh r, r = tanh(z +- 1.96 se)) with the standard errors of
Fieller, Hartley & Pearson (1957): sqrt(1.06 / (n - 3)) for Spearman, sqrt(0.437 / (n - 4)) for
Kendall. Deterministic, and defined from 4 (5) runs, where a bootstrap over so few runs degenerates.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.records import RunResult
from d4rl_lite.schema import Range

OPE_FILE = "ope.json"
FORMAT = "d4rl_lite.ope/1"
CONFIDENCE = 0.95
_FIELLER_VARIANCE = {"spearman": (1.06, 3), "kendall": (0.437, 4)}  # var(atanh r) = c / (n - k)

_UNIT = (Range(float, -1, 1), None)  # a rank correlation or one of its bounds
_CORRELATION = ({"statistic": _UNIT, "p_value": (Range(float, 0, 1), None), "low": _UNIT, "high": _UNIT,
                 "runs": Range(int, 0)}, None)
_STATS = {"runs": Range(int, 0), "spearman": _CORRELATION, "kendall": _CORRELATION}
OPE_SPEC = {
    "format": str, "fqe": dict, "confidence": Range(float, 0, 1),
    "runs": [{"run_id": str, "dataset": str, "algorithm": str, "seed": Range(int, 0), "result_checksum": str,
              "score": float, "score_metric": str, "fqe_value": (float, None), "gamma": Range(float, 0, 1),
              "td_loss": (float, None)}],
    "datasets": [{"dataset": str, "data_value": (float, None), **_STATS}],
    "overall": _STATS,
}


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def rank_correlation(kind: str, estimates: list[float], scores: list[float]) -> dict[str, Any] | None:
    """SciPy's ``kind`` ("spearman" or "kendall") correlation of ``estimates`` with ``scores`` and its
    Fisher-z interval (module docstring); None for fewer than 3 runs. Non-finite estimates are left out."""
    from scipy import stats

    pairs = [(e, s) for e, s in zip(estimates, scores) if e is not None and math.isfinite(e)]
    n = len(pairs)
    if n < 3:
        return None
    x, y = np.array(pairs).T
    result = stats.spearmanr(x, y) if kind == "spearman" else stats.kendalltau(x, y)
    r, p = float(result.statistic), float(result.pvalue)
    c, k = _FIELLER_VARIANCE[kind]
    low = high = None
    if math.isfinite(r) and n > k:
        z = math.atanh(max(-1 + 1e-12, min(1 - 1e-12, r)))  # |r| = 1 has z = inf: kept finite
        half = stats.norm.ppf(0.5 + CONFIDENCE / 2) * math.sqrt(c / (n - k))
        low, high = math.tanh(z - half), math.tanh(z + half)
    return {"statistic": _finite(r), "p_value": _finite(p), "low": low, "high": high, "runs": n}


def correlation_block(estimates: list[float | None], scores: list[float]) -> dict[str, Any]:
    est = [math.nan if e is None else e for e in estimates]
    return {"runs": len(scores), "spearman": rank_correlation("spearman", est, scores),
            "kendall": rank_correlation("kendall", est, scores)}


def describe(block: dict[str, Any]) -> str:
    """'Spearman 0.83 [0.31, 0.97] (p 0.04), Kendall 0.67 [...] (p 0.07) over 6 runs' for a correlation block."""
    parts = []
    for kind in ("spearman", "kendall"):
        c = block.get(kind)
        if c is None or c["statistic"] is None:
            parts.append(f"{kind.capitalize()} n/a")
            continue
        both = c["low"] is not None and c["high"] is not None
        interval = f" [{c['low']:.2f}, {c['high']:.2f}]" if both else " (too few runs for an interval)"
        p = f" (p {c['p_value']:.2g})" if c["p_value"] is not None else ""
        parts.append(f"{kind.capitalize()} {c['statistic']:.2f}{interval}{p}")
    return ", ".join(parts) + f" over {block['runs']} runs"


def write_ope(directory: Path, record: dict[str, Any]) -> Path:
    from d4rl_lite.files import write_record

    path = Path(directory) / OPE_FILE
    write_record(path, {"format": FORMAT, "confidence": CONFIDENCE, **record})
    return path


def read_ope(directory: Path) -> dict[str, Any] | None:
    """The verified ``ope.json`` of ``directory``, None when there is none; damaged or of another
    shape is one ``CorruptFileError``."""
    from d4rl_lite.files import CorruptFileError, read_record
    from d4rl_lite.schema import mismatch

    path = Path(directory) / OPE_FILE
    if not path.exists():
        return None
    record = read_record(path, "FQE estimates")
    if problem := mismatch(record, OPE_SPEC) or (record["format"] != FORMAT and f"format {record['format']!r}"):
        raise CorruptFileError(f"{path}: not FQE estimates written by `d4rl-lite ope` ({problem}); run it again")
    return record


# -- report: a column "FQE" next to the final score ----------------------------------------------
def fqe_section(results: Path, records: list[RunResult], rows: list[dict[str, Any]]) -> str | None:
    """The report's FQE table (dataset, algorithm, final score, FQE) when ``results`` holds estimates
    of its current runs, and ``fqe_mean`` added to the table's ``rows`` (csv/json); else None."""
    from d4rl_lite.benchmark.table import is_summary
    from d4rl_lite.benchmark.table_formats import _md
    from d4rl_lite.files import CorruptFileError

    try:
        ope = read_ope(results)
    except CorruptFileError as e:
        return f"(FQE column skipped: {e})"
    if ope is None:
        return None
    current = {r.checksum: r for r in records}
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    stale = 0
    for run in ope["runs"]:
        record = current.get(run["result_checksum"])
        if record is None:
            stale += 1
            continue
        if run["fqe_value"] is not None:
            cells[(record.spec.dataset, record.column)].append(run["fqe_value"])
    if not cells:
        return f"(FQE column skipped: the estimates in {results / OPE_FILE} are of other results; run `d4rl-lite ope` again)"
    lines = ["| dataset | algorithm | final | FQE |", "|---|---|---|---|"]
    for row in rows:
        values = cells.get((row["dataset"], row["algorithm"]))
        if is_summary(row) or not values:
            continue
        row["fqe_mean"], row["fqe_std"] = float(np.mean(values)), float(np.std(values))
        unit = " (raw)" if row["metric"] == "raw" else ""
        lines.append(f"| {_md(row['dataset'])} | {_md(row['algorithm'])} | {row['final_mean']:.1f}{unit} | "
                     f"{row['fqe_mean']:.1f} ± {row['fqe_std']:.1f} |")
    gammas = "/".join(f"{g:g}" for g in sorted({run["gamma"] for run in ope["runs"]}))
    steps = ope["fqe"].get("steps")
    lines += ["", (f"FQE: estimated value of each run's final policy from its dataset alone (Fitted Q Evaluation, "
                   f"{f'{steps:,}' if isinstance(steps, int) else '?'} updates), mean ± std over seeds; a discounted "
                   f"return (gamma {gammas}) in the dataset's raw rewards, not a normalized score: compare rankings, "
                   "not numbers.")]
    # The correlations of the current runs' estimates, computed here (not the file's: some may be stale).
    by_dataset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in ope["runs"]:
        if run["result_checksum"] in current:
            by_dataset[run["dataset"]].append(run)
    for dataset, runs in sorted(by_dataset.items()):
        lines.append(f"- {_md(dataset)}: {describe(correlation_block([r['fqe_value'] for r in runs], [r['score'] for r in runs]))}")
    if stale:
        lines.append(f"({stale} estimate(s) in {OPE_FILE} are of results no longer here or trained again; not shown)")
    return "\n".join(lines)


# -- validity: do FQE's estimates rank the runs as their true scores do? ----------------------------
def pooled_spearman(ope: dict[str, Any], records: list[RunResult]) -> dict[str, Any] | None:
    """Spearman's rho of FQE estimates against true scores within each dataset (reward units differ
    between datasets, so runs are ranked only against runs on the same data), pooled over the
    datasets by the inverse-variance mean of their Fisher z (weights n - 3), with its 95% interval
    tanh(z +- 1.96 sqrt(1.06 / sum(n - 3))). Only estimates of ``records``' current results count;
    datasets with fewer than 4 such runs are left out. None when no dataset has 4."""
    from scipy import stats

    current = {r.checksum for r in records}
    by_dataset: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run in ope["runs"]:
        if run["result_checksum"] in current and run["fqe_value"] is not None and math.isfinite(run["fqe_value"]):
            by_dataset[run["dataset"]].append((run["fqe_value"], run["score"]))
    per_dataset, weighted, weights = {}, 0.0, 0
    for dataset, pairs in sorted(by_dataset.items()):
        if len(pairs) < 4:
            continue
        x, y = np.array(pairs).T
        rho = float(stats.spearmanr(x, y).statistic)
        if not math.isfinite(rho):  # every estimate or score tied: no ranking to compare
            continue
        per_dataset[dataset] = {"spearman": rho, "runs": len(pairs)}
        weighted += (len(pairs) - 3) * math.atanh(max(-1 + 1e-12, min(1 - 1e-12, rho)))
        weights += len(pairs) - 3
    if not weights:
        return None
    z, half = weighted / weights, stats.norm.ppf(0.5 + CONFIDENCE / 2) * math.sqrt(1.06 / weights)
    return {"effect": math.tanh(z), "low": math.tanh(z - half), "high": math.tanh(z + half), "datasets": per_dataset}


def judge_ope_ranking(ev: Any) -> dict[str, Any]:
    """The pooled within-dataset Spearman correlation of FQE estimates (``ope.json``) with the runs'
    true final scores: reproduced when its interval lies above the threshold."""
    from d4rl_lite.benchmark.evidence import NOT_REPRODUCED, REPRODUCED
    from d4rl_lite.files import CorruptFileError

    try:
        ope = read_ope(ev.results_dir)
    except CorruptFileError as e:
        return ev.not_enough(str(e))
    if ope is None:
        return ev.not_enough(f"no FQE estimates in {ev.results_dir}: run `d4rl-lite ope {ev.results_dir}` first")
    pooled = pooled_spearman(ope, ev.records)
    if pooled is None:
        return ev.not_enough("no dataset has FQE estimates of 4 or more of its current runs (`d4rl-lite ope` again "
                             "after training more)")
    ev.base["datasets"] = sorted(pooled["datasets"])
    verdict = REPRODUCED if pooled["low"] > ev.spec["threshold"] else NOT_REPRODUCED
    reason = (f"Spearman's rho of FQE estimates with true scores, pooled over datasets: {pooled['effect']:+.2f} "
              f"[{pooled['low']:+.2f}, {pooled['high']:+.2f}] ("
              + ", ".join(f"{d} {v['spearman']:+.2f} over {v['runs']} runs" for d, v in pooled["datasets"].items())
              + f"); reproduced when the interval lies above {ev.spec['threshold']}")
    return ev.judged(pooled["effect"], pooled["low"], pooled["high"], verdict, reason, per_dataset=pooled["datasets"])
