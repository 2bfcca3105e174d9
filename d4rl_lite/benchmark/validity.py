"""The validity report: does a suite's table reproduce the patterns the literature agrees on?

The patterns are data (``patterns.json``): a claim, its source, the dataset kinds it concerns and
a check. Each check reduces the runs to one effect (e.g. the best of IQL and CQL minus BC, in
success percentage points, averaged over the stitch datasets) with a 95% confidence interval from
rliable's stratified independent bootstrap (each algorithm's seeds resampled within each dataset)
and a verdict: ``reproduced``, ``not reproduced``, or ``not enough runs`` (a cell with fewer than
``MIN_SEEDS`` seeds, or runs that predate what the check needs). A failed pattern is reported as
failed; nothing is dropped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.benchmark.patterns import load_patterns
from d4rl_lite.benchmark.table import catalogue_name
from d4rl_lite.records import RunSpec
from d4rl_lite.errors import UserInputError

MIN_SEEDS = 3
REPS = 2000
REPRODUCED, NOT_REPRODUCED, NOT_ENOUGH = "reproduced", "not reproduced", "not enough runs"


def _kind(dataset: str) -> str | None:
    name = catalogue_name(dataset)
    return name.kind if name else None


def applicable(spec: dict[str, Any], datasets: list[str]) -> list[str]:
    """The datasets of ``datasets`` a check concerns (by kind; ``*``: all)."""
    return [d for d in datasets if "*" in spec["kinds"] or _kind(d) in spec["kinds"]]


def last_logged(record: dict[str, Any], results_dir: Path, key: str) -> float | None:
    """The run's last logged ``key``, read from the log beside its result under ``results_dir``
    (``bench`` layout, else the run named in its result)."""
    from d4rl_lite.training.logging import read_log

    name = RunSpec.from_record(record).run_id
    runs = [results_dir / name] + ([results_dir / Path(record["run_dir"]).name] if record.get("run_dir") else [])
    for run in runs:
        if (run / "log.jsonl").is_file():
            values = [row[key] for row in read_log(run / "log.jsonl") if key in row]
            return float(values[-1]) if values else None
    return None


def overestimation(record: dict[str, Any], results_dir: Path) -> float | None:
    """(V - G) / |G|: the critic's value of its own policy at the final evaluation's first states
    (``eval/predicted_value``, min over the critics of Q(s, pi(s))) against the discounted return
    the policy then got from them in the rewards it learned (``eval/discounted_return``), the
    quantity CQL's theorem bounds. A run stopped for divergence (no final evaluation) counts with
    its Q at the data's state-actions when it was stopped against its last evaluation's return: an
    under-statement of an over-estimate that has passed the divergence bound. None when the run
    predates these records or its return is 0 (no scale to compare with)."""
    stopped_q = (record.get("at_divergence") or {}).get("train/q_mean")
    if stopped_q is not None:
        value, actual = stopped_q, last_logged(record, results_dir, "eval/discounted_return")
    else:
        final = record.get("final") or {}
        value, actual = final.get("eval/predicted_value"), final.get("eval/discounted_return")
    if value is None or actual is None or actual == 0 or not np.isfinite(value):
        return None
    return (float(value) - float(actual)) / abs(float(actual))


def diverged_records(results_dir: Path, algorithm: str) -> list[dict[str, Any]]:
    """The divergence records of ``algorithm``'s runs under ``results_dir`` that stopped without a result."""
    from d4rl_lite.files import CorruptFileError, read_record

    out = []
    for path in sorted(results_dir.glob(f"{algorithm}__*/diverged.json")):
        if not (path.parent / "result.json").exists():
            try:
                out.append(read_record(path, "divergence record"))
            except CorruptFileError:
                continue  # the table lists it as refused
    return [r for r in out if r.get("algorithm") == algorithm and not r.get("sweep")]


def run_values(spec: dict[str, Any], records: list[dict[str, Any]], results_dir: Path) -> dict[tuple[str, str], list[float]]:
    """{(algorithm, dataset): the per-seed values the check compares}, seeds in order."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r["algorithm"], r["dataset"], r["train"]["seed"])):
        if r.get("sweep"):
            continue  # a sweep member is not the algorithm at its settings
        if spec["check"] == "overestimation":
            if r["algorithm"] in (spec["naive"], spec["conservative"]):
                ratio = overestimation(r, results_dir)
                if ratio is not None:
                    cells[(r["algorithm"], r["dataset"])].append(ratio)
        elif spec["metric"] in r["final"] and np.isfinite(r["final"][spec["metric"]]):
            cells[(r["algorithm"], r["dataset"])].append(float(r["final"][spec["metric"]]) * spec.get("scale", 1))
    return cells


def _interval(func: Any, matrices: list[np.ndarray]) -> tuple[float, float, float]:
    """(point, low, high): ``func`` of the seeds x datasets matrices and its 95% percentile bootstrap CI."""
    import warnings

    from d4rl_lite.benchmark.stats import _rliable, seeded_bootstrap

    rly, _ = _rliable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with seeded_bootstrap() as state:
            boot = rly.StratifiedIndependentBootstrap(*matrices, random_state=state)
            ci = boot.conf_int(lambda *m: np.array([func(*m)]), reps=REPS, method="percentile")
    return float(func(*matrices)), float(ci[0][0]), float(ci[1][0])


def evaluate_pattern(pattern_id: str, spec: dict[str, Any], records: list[dict[str, Any]], results_dir: Path,
                     min_seeds: int = MIN_SEEDS) -> dict[str, Any]:
    """One check on the runs of a results directory: its effect, interval and verdict."""
    check = spec["check"]
    datasets = applicable(spec, sorted({r["dataset"] for r in records}))
    out: dict[str, Any] = {"id": pattern_id, "claim": spec["claim"], "source": spec["source"], "check": check,
                           "datasets": datasets, "unit": spec["unit"], "threshold": spec["threshold"]}
    stopped = diverged_records(results_dir, spec["naive"]) if check == "overestimation" else []
    cells = run_values(spec, records + stopped, results_dir)
    algos = {"better": lambda: [spec["baseline"], *spec["treatment"]], "near_data": lambda: [spec["algorithm"]],
             "overestimation": lambda: [spec["naive"], spec["conservative"]]}[check]()
    out["cells"] = {a: {d: float(np.mean(cells[(a, d)])) for d in datasets if cells.get((a, d))} for a in algos}
    out["seeds"] = {a: {d: len(cells.get((a, d), [])) for d in datasets} for a in algos}

    def not_enough(reason: str) -> dict[str, Any]:
        return {**out, "effect": None, "low": None, "high": None, "verdict": NOT_ENOUGH, "reason": reason}

    if not datasets:
        return not_enough(f"the suite has no dataset of kind {', '.join(spec['kinds'])}")
    if check == "better":
        present = [t for t in spec["treatment"] if all(len(cells.get((t, d), [])) >= min_seeds for d in datasets)]
        short = [f"{a} on {d}" for a in [spec["baseline"], *present] for d in datasets if len(cells.get((a, d), [])) < min_seeds]
        if short or not present:
            return not_enough("fewer than %d seeds: %s" % (min_seeds, ", ".join(short) if short else
                                                           f"none of {', '.join(spec['treatment'])} ran"))
        n = min(len(cells[(a, d)]) for a in [spec["baseline"], *present] for d in datasets)
        base = np.array([[cells[(spec["baseline"], d)][s] for d in datasets] for s in range(n)])
        treats = [np.array([[cells[(t, d)][s] for d in datasets] for s in range(n)]) for t in present]

        def effect(b: np.ndarray, *ts: np.ndarray) -> float:
            return float((np.max([t.mean(0) for t in ts], axis=0) - b.mean(0)).mean())

        point, low, high = _interval(effect, [base, *treats])
        verdict = REPRODUCED if low > spec["threshold"] else NOT_REPRODUCED
        reason = (f"best of {', '.join(present)} minus {spec['baseline']}: {point:.1f} [{low:.1f}, {high:.1f}]; "
                  f"reproduced when the interval lies above {spec['threshold']}")
        return {**out, "effect": point, "low": low, "high": high, "verdict": verdict, "reason": reason}
    if check == "near_data":
        algo = spec["algorithm"]
        data = {d: next(((r.get("data") or {}).get("normalized_return") for r in records if r["dataset"] == d
                         and (r.get("data") or {}).get("normalized_return") is not None), None) for d in datasets}
        if any(v is None for v in data.values()):
            return not_enough("no data score recorded for " + ", ".join(d for d, v in data.items() if v is None)
                              + " (runs that predate data scores, or episodes outside the task's protocol)")
        short = [d for d in datasets if len(cells.get((algo, d), [])) < min_seeds]
        if short:
            return not_enough(f"fewer than {min_seeds} seeds of {algo} on {', '.join(short)}")
        n = min(len(cells[(algo, d)]) for d in datasets)
        runs = np.array([[cells[(algo, d)][s] for d in datasets] for s in range(n)])
        reference = np.array([data[d] for d in datasets])
        point, low, high = _interval(lambda m: float((m.mean(0) - reference).mean()), [runs])
        thr = spec["threshold"]
        verdict = REPRODUCED if -thr <= low and high <= thr else NOT_REPRODUCED
        reason = (f"{algo} minus the data's own score: {point:.1f} [{low:.1f}, {high:.1f}]; reproduced when the "
                  f"interval lies within ±{thr}")
        return {**out, "effect": point, "low": low, "high": high, "data": data, "verdict": verdict, "reason": reason}
    # overestimation
    naive, conservative = spec["naive"], spec["conservative"]
    # A naive run whose |Q| passed the divergence bound was stopped and has no result: it counts with
    # its Q at that step (its divergence record keeps it), else the extreme would be left out.
    counted = sum(1 for r in stopped if overestimation(r, results_dir) is not None)
    lost = len(stopped) - counted
    if stopped:
        out["diverged_naive_runs"] = {"counted_at_divergence": counted, "not_counted": lost}
    both = [d for d in datasets if len(cells.get((naive, d), [])) >= min_seeds
            and len(cells.get((conservative, d), [])) >= min_seeds]
    out["datasets"] = both
    if not both:
        return not_enough(f"no dataset with {min_seeds}+ seeds of both {naive} and {conservative} whose runs recorded "
                          "their critic's value and their policy's discounted return at evaluation (runs that "
                          "predate these records cannot be checked)"
                          + (f"; {lost} {naive} run(s) diverged without a record of their Q" if lost else ""))
    n = min(len(cells[(a, d)]) for a in (naive, conservative) for d in both)
    mats = {a: np.array([[cells[(a, d)][s] for d in both] for s in range(n)]) for a in (naive, conservative)}
    point, low, high = _interval(lambda m: float(m.mean()), [mats[naive]])
    c_point, c_low, c_high = _interval(lambda m: float(m.mean()), [mats[conservative]])
    verdict = REPRODUCED if low > spec["threshold"] and c_high < 0 else NOT_REPRODUCED
    reason = (f"{naive}: its value of its policy over that policy's return by {point:+.0%} [{low:+.0%}, {high:+.0%}] (reproduced above "
              f"{spec['threshold']:+.0%}); {conservative}: {c_point:+.0%} [{c_low:+.0%}, {c_high:+.0%}] (below 0)"
              + (f"; {counted} {naive} run(s) diverged (Q beyond the bound) and count with their Q then" if counted else "")
              + (f"; {lost} {naive} run(s) diverged without a record of their Q and are not counted" if lost else ""))
    return {**out, "effect": point, "low": low, "high": high, "naive": naive, "conservative": conservative,
            "conservative_effect": c_point,
            "conservative_low": c_low, "conservative_high": c_high, "verdict": verdict, "reason": reason}


def check_validity(results_dir: str | Path, records: list[dict[str, Any]], names: list[str] | None = None,
                   min_seeds: int = MIN_SEEDS) -> list[dict[str, Any]]:
    """Evaluate the checks ``names`` (default: every check whose dataset kinds the runs include)."""
    patterns = load_patterns()
    unknown = sorted(set(names or []) - set(patterns))
    if unknown:
        raise UserInputError(f"unknown validity pattern(s) {', '.join(unknown)}; known: {', '.join(patterns)}")
    datasets, algos = sorted({r["dataset"] for r in records}), {r["algorithm"] for r in records}
    # Unnamed, a check applies where the suite has its datasets and ran the algorithm it is about.
    about = {"better": "baseline", "near_data": "algorithm", "overestimation": "naive"}
    chosen = names if names is not None else [p for p, spec in patterns.items()
                                              if applicable(spec, datasets) and spec[about[spec["check"]]] in algos]
    return [evaluate_pattern(p, patterns[p], records, Path(results_dir), min_seeds) for p in chosen]


def to_markdown(verdicts: list[dict[str, Any]]) -> str:
    lines = ["| pattern | effect [95% CI] | verdict |", "|---|---|---|"]
    for v in verdicts:
        if v["effect"] is None:
            shown = "–"
        elif v["check"] == "overestimation":
            shown = (f"{v['naive']} {v['effect']:+.0%} [{v['low']:+.0%}, {v['high']:+.0%}]; "
                     f"{v['conservative']} {v['conservative_effect']:+.0%} "
                     f"[{v['conservative_low']:+.0%}, {v['conservative_high']:+.0%}]")
        else:
            shown = f"{v['effect']:+.1f} [{v['low']:+.1f}, {v['high']:+.1f}] {v['unit']}"
        lines.append(f"| {v['id']}: {v['claim']} | {shown} | **{v['verdict']}** ({v['reason']}) |")
    return "\n".join(lines)


def write_validity(results_dir: str | Path, verdicts: list[dict[str, Any]]) -> Path:
    path = Path(results_dir) / "validity.json"
    path.write_text(json.dumps({"min_seeds": MIN_SEEDS, "bootstrap_reps": REPS, "patterns": verdicts}, indent=2) + "\n")
    return path
