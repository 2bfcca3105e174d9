"""The verified runs of a results directory: every ``RUN/result.json`` read and checked (checksum,
budget, score against its own log, references), with what is missing and what is refused, and why."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from d4rl_lite.benchmark.finetune_suite import plan_mismatch, plan_of
from d4rl_lite.benchmark.suites import dataset_steps, planned_runs
from d4rl_lite.errors import UserInputError
from d4rl_lite.records import NORMALIZED, RAW, RunResult, RunSpec, RunStatus


@dataclass(frozen=True)
class ResultSet:
    """The runs of a results directory, each a ``RunResult``: the verified ones and what is wrong with the rest.

    ``missing``: runs the suite (``suite.json``) or the grid of datasets x algorithms x seeds
    seen expects but which have no result; ``refused``: result files that exist but cannot be
    trusted (damaged, NaN score, wrong budget, score not in their own log) and runs stopped for
    divergence, with the reason. ``planned``: the offline runs the suite plans (None without a suite.json).
    """

    runs: tuple[RunResult, ...]
    planned: tuple[RunSpec, ...] | None = None

    def __iter__(self) -> Iterator[RunResult]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def _with(self, *status: RunStatus) -> list[RunResult]:
        return [r for r in self.runs if r.status in status]

    @property
    def finished(self) -> list[RunResult]:
        """The verified offline runs: the table's."""
        return [r for r in self._with(RunStatus.FINISHED) if not r.finetuned]

    @property
    def finetuned(self) -> list[RunResult]:
        """The verified fine-tuning runs (benchmark/finetune_suite.py)."""
        return [r for r in self._with(RunStatus.FINISHED) if r.finetuned]

    @property
    def missing(self) -> list[RunResult]:
        return self._with(RunStatus.MISSING)

    @property
    def refused(self) -> list[RunResult]:
        return self._with(RunStatus.REFUSED, RunStatus.DIVERGED)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.refused


@dataclass(frozen=True)
class _SuitePlan:
    """What a results directory's suite.json says to check its runs against."""

    budgets: dict[str, int] | None = None  # {dataset: the suite's updates on it; "": elsewhere}
    online_budget: dict[str, int] | None = None  # {"": the env steps of the suite's fine-tuning runs}
    finetune: Any = None  # the suite's fine-tuning plan, if any
    expected: dict[str, tuple[RunSpec, bool]] | None = None  # {run id: (the run, fine-tuning?)} it plans


def collect_results(results_dir: str | Path) -> ResultSet:
    """Read and check every ``RUN/result.json`` under ``results_dir``; see ``ResultSet``."""
    from d4rl_lite.files import CorruptFileError

    results_dir = Path(results_dir)
    suite = read_suite_description(results_dir)
    plan = _suite_plan(suite, results_dir / "suite.json")
    read = [_read_run(path, plan) for path in sorted(results_dir.glob("*/result.json"))]
    read += _diverged_runs(results_dir)
    finished = [r for r in read if r.status is RunStatus.FINISHED]
    named = sorted({str(r.suite) for r in finished if not r.finetuned and r.suite})
    if suite is None and named:  # deleted: the runs it planned, and so the missing ones, are unknown
        raise CorruptFileError(f"{results_dir / 'suite.json'} is missing, but the runs here were trained by suite "
                               f"{', '.join(named)}: without it the table cannot say which runs are missing. Restore "
                               f"it, or run `d4rl-lite bench {named[0]} --results {results_dir}` (finished runs are "
                               "kept) to write it again")
    expected = plan.expected if plan.expected is not None else _grid_of([r for r in finished if not r.finetuned])
    there = {r.run_id for r in read}
    missing = [RunResult.missing(*expected[run_id]) for run_id in sorted(set(expected) - there)]
    planned = None if plan.expected is None else tuple(spec for _, (spec, tuned) in sorted(plan.expected.items())
                                                        if not tuned)
    return ResultSet(tuple(read + missing), planned)


def _suite_plan(suite: dict[str, Any] | None, suite_file: Path) -> _SuitePlan:
    """The budgets and planned runs of a suite description (nothing without one)."""
    from d4rl_lite.files import CorruptFileError

    if suite is None:
        return _SuitePlan()
    try:
        budgets = {"": int(suite["steps"]), **{d: dataset_steps(suite, d) for d in suite["datasets"]}}
        runs = planned_runs(suite["algorithms"], suite["datasets"], suite["seeds"], suite.get("only_on") or {})
        specs = [RunSpec.of(*run) for run in runs]
        expected = {spec.run_id: (spec, False) for spec in specs}
        plan = plan_of(suite)
        if plan is not None:
            tuned = [RunResult.missing(spec, True) for spec in specs if plan.applies(spec.algorithm)]
            expected |= {r.run_id: (r.spec, True) for r in tuned}
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, UserInputError):  # int(Infinity)
        raise CorruptFileError(f"{suite_file}: not a suite description (written by `d4rl-lite bench`); "
                               "delete it to report the results without it") from None
    return _SuitePlan(budgets, {"": plan.env_steps} if plan is not None else None, plan, expected)


def _read_run(path: Path, plan: _SuitePlan) -> RunResult:
    """The run of a ``result.json``: finished when it passes every check, else refused with the reason."""
    from d4rl_lite.files import CorruptFileError, read_record

    try:
        record = read_record(path, "result")
    except CorruptFileError as e:
        return RunResult.unusable(RunStatus.REFUSED, path, _without_path(e, path))
    online = isinstance(record.get("finetune"), dict)
    try:
        problem = _check_record(record, path, plan.online_budget if online else plan.budgets)
    except CorruptFileError as e:  # its log is damaged: this run is refused, the others still count
        problem = str(e)
    if online and plan.finetune is not None and not problem:
        problem = plan_mismatch(plan.finetune, record)
    if problem:
        return RunResult.unusable(RunStatus.REFUSED, path, problem)
    return RunResult.finished(record, path)


def _diverged_runs(results_dir: Path) -> list[RunResult]:
    """The population members that diverged: a divergence record and no result."""
    from d4rl_lite.files import CorruptFileError, read_record

    out = []
    for path in sorted(results_dir.glob("*/diverged.json")):
        if not (path.parent / "result.json").exists():
            try:
                reason = str(read_record(path, "divergence record").get("diverged", "diverged"))
            except CorruptFileError as e:
                reason = _without_path(e, path)
            out.append(RunResult.unusable(RunStatus.DIVERGED, path, reason))
    return out


def _grid_of(finished: list[RunResult]) -> dict[str, tuple[RunSpec, bool]]:
    """Without a suite, the full grid of what is there (a sweep's members are columns of their own)."""
    specs = [r.spec for r in finished]
    columns = {(spec.algorithm, spec.sweep) for spec in specs}
    datasets = {spec.dataset for spec in specs}
    seeds = {spec.seed for spec in specs}
    grid = [RunSpec(a, d, s, sweep) for a, sweep in columns for d in datasets for s in seeds]
    return {spec.run_id: (spec, False) for spec in grid}


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


def read_results(results_dir: str | Path) -> list[RunResult]:
    """Every verified offline run (``*/result.json``) of a results directory, in a stable order."""
    return collect_results(results_dir).finished
