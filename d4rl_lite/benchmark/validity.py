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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.benchmark.data_checks import judge_diversity, judge_near_agent
from d4rl_lite.benchmark.finetune_suite import improvement, online_budgets
from d4rl_lite.benchmark.evidence import (  # noqa: F401 (the verdicts are read as validity.REPRODUCED, ...)
    MIN_SEEDS, NOT_ENOUGH, NOT_REPRODUCED, REPRODUCED, REPS, Evidence, final_metric, interval)
from d4rl_lite.benchmark.ope_file import OPE_FILE, judge_ope_ranking
from d4rl_lite.benchmark.patterns import load_patterns
from d4rl_lite.benchmark.table import catalogue_name, recorded_data_facts
from d4rl_lite.errors import UserInputError
from d4rl_lite.records import DISCOUNTED_RETURN, RunResult



def _kind(dataset: str) -> str | None:
    name = catalogue_name(dataset)
    return name.kind if name else None


def applicable(spec: dict[str, Any], datasets: list[str]) -> list[str]:
    """The datasets of ``datasets`` a check concerns (by kind; ``*``: all)."""
    return [d for d in datasets if "*" in spec["kinds"] or _kind(d) in spec["kinds"]]


def last_logged(result: RunResult, results_dir: Path, key: str) -> float | None:
    """The run's last logged ``key``, read from the log beside its result under ``results_dir``
    (``bench`` layout, else the run named in its result)."""
    from d4rl_lite.training.logging import read_log

    runs = [results_dir / result.spec.run_id] + ([results_dir / Path(result.run_dir).name] if result.run_dir else [])
    for run in runs:
        if (run / "log.jsonl").is_file():
            values = [row[key] for row in read_log(run / "log.jsonl") if key in row]
            return float(values[-1]) if values else None
    return None


def overestimation(result: RunResult, results_dir: Path) -> float | None:
    """(V - G) / |G|: the critic's value of its own policy at the final evaluation's first states
    (``eval/predicted_value``, min over the critics of Q(s, pi(s))) against the discounted return
    the policy then got from them in the rewards it learned (``eval/discounted_return``), the
    quantity CQL's theorem bounds. A run stopped for divergence (no final evaluation) counts with
    its Q at the data's state-actions when it was stopped against its last evaluation's return: an
    under-statement of an over-estimate that has passed the divergence bound. None when the run
    predates these records or its return is 0 (no scale to compare with)."""
    stopped_q = result.q_at_divergence
    if stopped_q is not None:
        value, actual = stopped_q, last_logged(result, results_dir, DISCOUNTED_RETURN)
    else:
        value, actual = result.final.predicted_value, result.final.discounted_return
    if value is None or actual is None or actual == 0 or not np.isfinite(value):
        return None
    return (float(value) - float(actual)) / abs(float(actual))


def diverged_records(results_dir: Path, algorithm: str) -> list[RunResult]:
    """The runs of ``algorithm`` under ``results_dir`` that stopped without a result, read from their
    divergence records (a sweep's members and fine-tuning runs left out)."""
    from d4rl_lite.files import CorruptFileError, read_record

    out = []
    for path in sorted(results_dir.glob(f"{algorithm}__*/diverged.json")):
        if not (path.parent / "result.json").exists():
            try:
                record = read_record(path, "divergence record")
            except CorruptFileError:
                continue  # the table lists it as refused
            if record.get("algorithm") == algorithm and not record.get("sweep") and not record.get("finetune"):
                try:
                    out.append(RunResult.diverged(record, path, str(record.get("diverged", "diverged"))))
                except (KeyError, TypeError, ValueError):
                    continue  # not a run's record (no seed): the table lists it as refused
    return out


def run_values(spec: dict[str, Any], results: list[RunResult], results_dir: Path) -> dict[tuple[str, str], list[float]]:
    """{(algorithm, dataset): the per-seed values the check compares}, seeds in order."""
    kind = CHECK_KINDS[spec["check"]]
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in sorted(results, key=lambda r: (r.spec.algorithm, r.spec.dataset, r.spec.seed)):
        if r.spec.sweep:
            continue  # a sweep member is not the algorithm at its settings
        if r.finetuned != kind.online:
            continue  # a check reads offline runs, or fine-tuning runs (``online``), never both
        value = kind.value(spec, r, results_dir)
        if value is not None:
            cells[r.spec.cell].append(value)
    return cells


def _overestimation_of_compared(spec: dict[str, Any], result: RunResult, results_dir: Path) -> float | None:
    """The run's ``overestimation`` when it is of the naive or the conservative algorithm."""
    return overestimation(result, results_dir) if result.spec.algorithm in (spec["naive"], spec["conservative"]) else None


def evaluate_pattern(pattern_id: str, spec: dict[str, Any], records: list[RunResult], results_dir: Path,
                     min_seeds: int = MIN_SEEDS) -> dict[str, Any]:
    """One check on the runs of a results directory: its effect, interval and verdict, judged as
    the check's kind (its ``check`` in patterns.json) says: ``CHECK_KINDS``."""
    kind = CHECK_KINDS[spec["check"]]
    datasets = applicable(spec, sorted({r.spec.dataset for r in records}))
    out: dict[str, Any] = {"id": pattern_id, "claim": spec["claim"], "source": spec["source"], "check": spec["check"],
                           "datasets": datasets, "unit": spec["unit"], "threshold": spec["threshold"]}
    stopped = kind.stopped_runs(spec, results_dir)
    cells = run_values(spec, records + stopped, results_dir)
    algos = kind.algorithms(spec)
    out["cells"] = {a: {d: float(np.mean(cells[(a, d)])) for d in datasets if cells.get((a, d))} for a in algos}
    out["seeds"] = {a: {d: len(cells.get((a, d), [])) for d in datasets} for a in algos}
    evidence = Evidence(spec, out, datasets, cells, records, stopped, results_dir, min_seeds)
    if not datasets:
        return evidence.not_enough(f"the suite has no dataset of kind {', '.join(spec['kinds'])}")
    return kind.judge(evidence)


def _judge_better(ev: Evidence) -> dict[str, Any]:
    """The best of the treatments minus the baseline, mean over the datasets: reproduced when its
    interval lies above the threshold. A treatment short of seeds somewhere is left out."""
    spec = ev.spec
    compared = ev.baseline_and_treatments()
    if isinstance(compared, str):
        return ev.not_enough(compared)
    present, base, treats = compared

    def effect(b: np.ndarray, *ts: np.ndarray) -> float:
        return float((np.max([t.mean(0) for t in ts], axis=0) - b.mean(0)).mean())

    point, low, high = interval(effect, [base, *treats])
    verdict = REPRODUCED if low > spec["threshold"] else NOT_REPRODUCED
    reason = (f"best of {', '.join(present)} minus {spec['baseline']}: {point:.1f} [{low:.1f}, {high:.1f}]; "
              f"reproduced when the interval lies above {spec['threshold']}")
    return ev.judged(point, low, high, verdict, reason)


def _judge_near_data(ev: Evidence) -> dict[str, Any]:
    """The algorithm minus the data's own score (recorded by its runs), mean over the datasets:
    reproduced when its interval lies within ±threshold."""
    spec, datasets = ev.spec, ev.datasets
    algo = spec["algorithm"]
    recorded = recorded_data_facts(ev.records)
    data = {d: recorded.get(d) for d in datasets}
    if any(v is None for v in data.values()):
        return ev.not_enough("no data score recorded for " + ", ".join(d for d, v in data.items() if v is None)
                             + " (runs that predate data scores, or episodes outside the task's protocol)")
    short = [d for d in datasets if ev.seeds(algo, d) < ev.min_seeds]
    if short:
        return ev.not_enough(f"fewer than {ev.min_seeds} seeds of {algo} on {', '.join(short)}")
    runs = ev.matrix(algo, datasets, ev.fewest_seeds([algo], datasets))
    reference = np.array([data[d] for d in datasets])
    point, low, high = interval(lambda m: float((m.mean(0) - reference).mean()), [runs])
    thr = spec["threshold"]
    verdict = REPRODUCED if -thr <= low and high <= thr else NOT_REPRODUCED
    reason = (f"{algo} minus the data's own score: {point:.1f} [{low:.1f}, {high:.1f}]; reproduced when the "
              f"interval lies within ±{thr}")
    return ev.judged(point, low, high, verdict, reason, data=data)


def _diverged_naive_runs(spec: dict[str, Any], results_dir: Path) -> list[RunResult]:
    """A naive run whose |Q| passed the divergence bound was stopped and has no result: it counts with
    its Q at that step (its divergence record keeps it), else the extreme would be left out."""
    return diverged_records(results_dir, spec["naive"])


def _judge_overestimation(ev: Evidence) -> dict[str, Any]:
    """The naive algorithm's relative over-estimation, mean over the datasets with enough seeds of
    both, must lie above the threshold and the conservative one's below 0."""
    spec, min_seeds = ev.spec, ev.min_seeds
    naive, conservative = spec["naive"], spec["conservative"]
    counted = sum(1 for r in ev.stopped if overestimation(r, ev.results_dir) is not None)
    lost = len(ev.stopped) - counted
    if ev.stopped:
        ev.base["diverged_naive_runs"] = {"counted_at_divergence": counted, "not_counted": lost}
    both = [d for d in ev.datasets if ev.seeds(naive, d) >= min_seeds and ev.seeds(conservative, d) >= min_seeds]
    ev.base["datasets"] = both
    if not both:
        return ev.not_enough(f"no dataset with {min_seeds}+ seeds of both {naive} and {conservative} whose runs recorded "
                             "their critic's value and their policy's discounted return at evaluation (runs that "
                             "predate these records cannot be checked)"
                             + (f"; {lost} {naive} run(s) diverged without a record of their Q" if lost else ""))
    n = ev.fewest_seeds([naive, conservative], both)
    point, low, high = interval(lambda m: float(m.mean()), [ev.matrix(naive, both, n)])
    c_point, c_low, c_high = interval(lambda m: float(m.mean()), [ev.matrix(conservative, both, n)])
    verdict = REPRODUCED if low > spec["threshold"] and c_high < 0 else NOT_REPRODUCED
    reason = (f"{naive}: its value of its policy over that policy's return by {point:+.0%} [{low:+.0%}, {high:+.0%}] (reproduced above "
              f"{spec['threshold']:+.0%}); {conservative}: {c_point:+.0%} [{c_low:+.0%}, {c_high:+.0%}] (below 0)"
              + (f"; {counted} {naive} run(s) diverged (Q beyond the bound) and count with their Q then" if counted else "")
              + (f"; {lost} {naive} run(s) diverged without a record of their Q and are not counted" if lost else ""))
    return ev.judged(point, low, high, verdict, reason, naive=naive, conservative=conservative, conservative_effect=c_point,
                     conservative_low=c_low, conservative_high=c_high)


def judge_same_online_budget(ev: Evidence) -> dict[str, Any] | None:
    """Improvements compare only when every compared run was fine-tuned alike (env steps, sampling
    rule, parent's budget): "not enough runs" naming the budgets when they differ, else None."""
    compared = set(CHECK_KINDS[ev.spec["check"]].algorithms(ev.spec))
    budgets = online_budgets([r for r in ev.records if r.spec.algorithm in compared and r.spec.dataset in ev.datasets])
    if len(budgets) > 1:
        return ev.not_enough("the compared runs were fine-tuned differently (" + "; ".join(sorted(budgets)) + ")")
    return None


def _shown_in_unit(v: dict[str, Any]) -> str:
    """A verdict's effect and interval in its unit (the table's column for most checks)."""
    return f"{v['effect']:+.1f} [{v['low']:+.1f}, {v['high']:+.1f}] {v['unit']}"


def _shown_as_overestimation(v: dict[str, Any]) -> str:
    """Both critics' relative over-estimation, naive and conservative, as percentages."""
    return (f"{v['naive']} {v['effect']:+.0%} [{v['low']:+.0%}, {v['high']:+.0%}]; "
            f"{v['conservative']} {v['conservative_effect']:+.0%} "
            f"[{v['conservative_low']:+.0%}, {v['conservative_high']:+.0%}]")


def _no_stopped_runs(spec: dict[str, Any], results_dir: Path) -> list[RunResult]:
    return []


@dataclass(frozen=True)
class CheckKind:
    """A kind of check (a pattern's ``check`` in patterns.json): what it reads of a run and how it judges."""

    subject: str  # the pattern's key naming the algorithm(s) the check is about (unnamed, it runs where one ran)
    algorithms: Callable[[dict[str, Any]], list[str]]  # whose cells the verdict shows
    value: Callable[[dict[str, Any], RunResult, Path], float | None]  # a run's value, None: not counted
    judge: Callable[[Evidence], dict[str, Any]]
    stopped_runs: Callable[[dict[str, Any], Path], list[RunResult]] = _no_stopped_runs  # counted without a result
    present: Callable[[Path], bool] = lambda results_dir: True  # unnamed, the check runs only where this holds
    online: bool = False  # it reads the fine-tuning runs (benchmark/finetune_suite.py) instead of the offline ones
    shown: Callable[[dict[str, Any]], str] = _shown_in_unit  # its effect as the validity table shows it


CHECK_KINDS = {
    "better": CheckKind("treatment", lambda spec: [spec["baseline"], *spec["treatment"]], final_metric, _judge_better),
    "near_data": CheckKind("algorithm", lambda spec: [spec["algorithm"]], final_metric, _judge_near_data),
    "overestimation": CheckKind("naive", lambda spec: [spec["naive"], spec["conservative"]], _overestimation_of_compared,
                                _judge_overestimation, _diverged_naive_runs, shown=_shown_as_overestimation),
    "near_agent": CheckKind("treatment", lambda spec: [spec["baseline"], *spec["treatment"]], final_metric, judge_near_agent),
    "subsample_order": CheckKind("algorithms", lambda spec: list(spec["algorithms"]), final_metric, judge_diversity),
    # The best treatment's improvement by fine-tuning (its final score minus its offline parent's) minus the baseline's.
    "better_improvement": CheckKind("treatment", lambda spec: [spec["baseline"], *spec["treatment"]],
                                    lambda spec, record, _: improvement(spec["metric"], record, spec.get("scale", 1)),
                                    lambda ev: judge_same_online_budget(ev) or _judge_better(ev), online=True),
    # About every run of a results directory that `d4rl-lite ope` estimated (no algorithm of its own).
    "rank_correlation": CheckKind("", lambda spec: [], lambda spec, record, results_dir: None, judge_ope_ranking,
                                  present=lambda results_dir: (results_dir / OPE_FILE).is_file()),
}


def _about_one_that_ran(spec: dict[str, Any], algos: set[str]) -> bool:
    """Whether the runs include the algorithm a check is about (its ``subject``; a list: any of them;
    a check about no algorithm in particular: always)."""
    if not CHECK_KINDS[spec["check"]].subject:
        return True
    subject = spec[CHECK_KINDS[spec["check"]].subject]
    return any(a in algos for a in (subject if isinstance(subject, list) else [subject]))


def check_validity(results_dir: str | Path, records: list[RunResult], names: list[str] | None = None,
                   min_seeds: int = MIN_SEEDS) -> list[dict[str, Any]]:
    """Evaluate the checks ``names`` (default: every check whose dataset kinds the runs include)."""
    patterns = load_patterns()
    unknown = sorted(set(names or []) - set(patterns))
    if unknown:
        raise UserInputError(f"unknown validity pattern(s) {', '.join(unknown)}; known: {', '.join(patterns)}")
    datasets = sorted({r.spec.dataset for r in records})
    # {online: the algorithms with runs of that kind}: offline runs, and fine-tuning runs (``online``).
    algos = {online: {r.spec.algorithm for r in records if r.finetuned == online}
             for online in (False, True)}
    # Unnamed, a check applies where the suite has its datasets and ran the algorithm it is about.
    chosen = names if names is not None else [p for p, spec in patterns.items() if applicable(spec, datasets)
                                              and _about_one_that_ran(spec, algos[CHECK_KINDS[spec["check"]].online])
                                              and CHECK_KINDS[spec["check"]].present(Path(results_dir))]
    return [evaluate_pattern(p, patterns[p], records, Path(results_dir), min_seeds) for p in chosen]


def to_markdown(verdicts: list[dict[str, Any]]) -> str:
    lines = ["| pattern | effect [95% CI] | verdict |", "|---|---|---|"]
    for v in verdicts:
        kind = CHECK_KINDS.get(v["check"])
        shown = "–" if v["effect"] is None else (kind.shown if kind else _shown_in_unit)(v)
        lines.append(f"| {v['id']}: {v['claim']} | {shown} | **{v['verdict']}** ({v['reason']}) |")
    return "\n".join(lines)


def write_validity(results_dir: str | Path, verdicts: list[dict[str, Any]]) -> Path:
    path = Path(results_dir) / "validity.json"
    path.write_text(json.dumps({"min_seeds": MIN_SEEDS, "bootstrap_reps": REPS, "patterns": verdicts}, indent=2) + "\n")
    return path
