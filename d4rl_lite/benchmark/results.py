"""The verified runs of a results directory: every ``RUN/result.json`` read and checked (checksum,
budget, score against its own log, references), with what is missing and what is refused, and why."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from d4rl_lite.benchmark.finetune_suite import finetune_run_id, plan_mismatch, plan_of
from d4rl_lite.benchmark.suites import dataset_steps, planned_runs
from d4rl_lite.errors import UserInputError
from d4rl_lite.records import FINETUNE_SUFFIX, RunSpec

# The metrics of a result's evaluations that tables and checks read.
NORMALIZED, RAW, SUCCESS = "eval/normalized_score", "eval/return_mean", "eval/success_rate"


@dataclass(frozen=True)
class Refusal:
    """A result file that exists but cannot be trusted: which run (its directory's name), the file, why."""

    run_id: str
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ResultSet:
    """The verified runs of a results directory, and what is wrong with the rest.

    ``missing``: runs the suite (``suite.json``) or the grid of datasets x algorithms x seeds
    seen expects but which have no result; ``refused``: result files that exist but cannot be
    trusted (damaged, NaN score, wrong budget, score not in their own log), with the reason.
    """

    records: list[dict[str, Any]]
    missing: list[str] = field(default_factory=list)
    finetuned: list[dict[str, Any]] = field(default_factory=list)  # fine-tuning runs (benchmark/finetune_suite.py)
    refused: list[Refusal] = field(default_factory=list)
    planned: list[str] | None = None  # every run id the suite plans (None without a suite.json)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.refused


def collect_results(results_dir: str | Path) -> ResultSet:
    """Read and check every ``RUN/result.json`` under ``results_dir``; see ``ResultSet``."""
    from d4rl_lite.files import CorruptFileError, read_record

    results_dir = Path(results_dir)
    budgets: dict[str, int] | None = None  # {dataset: the suite's updates on it; "": elsewhere}
    online_budget: dict[str, int] | None = None  # {"": the env steps of the suite's fine-tuning runs}
    plan = None  # the suite's fine-tuning plan, if any
    expected = None
    suite_file = results_dir / "suite.json"
    suite = read_suite_description(results_dir)
    if suite is not None:
        try:
            budgets = {"": int(suite["steps"]), **{d: dataset_steps(suite, d) for d in suite["datasets"]}}
            runs = planned_runs(suite["algorithms"], suite["datasets"], suite["seeds"], suite.get("only_on") or {})
            expected = {RunSpec.of(*run).run_id for run in runs}
            plan = plan_of(suite)
            if plan is not None:
                online_budget = {"": plan.env_steps}
                expected |= {finetune_run_id(*run) for run in runs if plan.applies(run[0])}
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, UserInputError):  # int(Infinity)
            raise CorruptFileError(f"{suite_file}: not a suite description (written by `d4rl-lite bench`); "
                                   "delete it to report the results without it") from None
    records: list[dict[str, Any]] = []
    finetuned: list[dict[str, Any]] = []
    refused: list[Refusal] = []
    for path in sorted(results_dir.glob("*/result.json")):
        try:
            record = read_record(path, "result")
        except CorruptFileError as e:
            refused.append(Refusal(path.parent.name, path, _without_path(e, path)))
            continue
        online = isinstance(record.get("finetune"), dict)
        try:
            problem = _check_record(record, path, online_budget if online else budgets)
        except CorruptFileError as e:  # its log is damaged: this run is refused, the others still count
            problem = str(e)
        if online and plan is not None and not problem:
            problem = plan_mismatch(plan, record)
        if problem:
            refused.append(Refusal(path.parent.name, path, problem))
        else:
            (finetuned if online else records).append(record)
    for path in sorted(results_dir.glob("*/diverged.json")):  # a population member that diverged
        if not (path.parent / "result.json").exists():
            try:
                reason = str(read_record(path, "divergence record").get("diverged", "diverged"))
            except CorruptFileError as e:
                reason = _without_path(e, path)
            refused.append(Refusal(path.parent.name, path, reason))
    named = sorted({str(r["train"].get("suite")) for r in records if r["train"].get("suite")})
    if suite is None and named:  # deleted: the runs it planned, and so the missing ones, are unknown
        raise CorruptFileError(f"{suite_file} is missing, but the runs here were trained by suite {', '.join(named)}: "
                               "without it the table cannot say which runs are missing. Restore it, or run `d4rl-lite "
                               f"bench {named[0]} --results {results_dir}` (finished runs are kept) to write it again")
    seen = {RunSpec.from_record(r).run_id for r in records} | {RunSpec.from_record(r).run_id + FINETUNE_SUFFIX
                                                               for r in finetuned}
    refused_ids = {r.run_id for r in refused}
    if expected is None:  # no suite: the full grid of what is there (a sweep's members are columns of their own)
        specs = [RunSpec.from_record(r) for r in records]
        columns = {(spec.algorithm, spec.sweep) for spec in specs}
        datasets = {spec.dataset for spec in specs}
        seeds = {spec.seed for spec in specs}
        expected = {RunSpec(a, d, s, sweep).run_id for a, sweep in columns for d in datasets for s in seeds}
    missing = sorted(expected - seen - refused_ids)
    return ResultSet(records, missing, finetuned, refused, sorted(expected) if suite is not None else None)


def _without_path(error: Exception, path: Path) -> str:
    """A file error's message without its leading ``path: `` (a Refusal names the file itself)."""
    text = str(error)
    return text[len(f"{path}: "):] if text.startswith(f"{path}: ") else text


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
