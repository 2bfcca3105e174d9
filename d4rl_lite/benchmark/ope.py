"""``d4rl-lite ope``: FQE estimates of finished runs, next to their true scores, with rank correlations.

A PATH is a run directory (``train``'s) or a results directory of several (``bench``'s). Each
finished run's final policy (its checkpoint at the result's step) is evaluated by FQE
(``training/fqe.py``) on the dataset it was trained on (by name under the datasets root, checked against
the checksum the run recorded); the runs of one dataset are fitted together, ``stack`` critics at
a time. The estimates and their rank correlations with the true scores go to PATH/ope.json
(``ope_file.py``), where ``report`` finds them.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from d4rl_lite.benchmark.ope_file import correlation_block, describe, read_ope, write_ope
from d4rl_lite.errors import D4RLLiteError, UserInputError
from d4rl_lite.records import NORMALIZED, RAW, RunResult
from d4rl_lite.training.fqe import FQEConfig, config_record, fitted_q_evaluation


def _score(run: RunResult) -> tuple[float, str]:
    """The run's final score and which it is: normalized where it has one, else raw."""
    final = run.final
    return (float(final.normalized_score), "normalized") if final.normalized else (float(final.raw_return), "raw")


def finished_runs(path: str | os.PathLike) -> list[RunResult]:
    """The finished runs at ``path`` (a run directory, or a results directory of them); what is not
    finished or not trusted is said on stderr (and is an error for a single run, or when nothing is left)."""
    from d4rl_lite.files import read_record, regular_file_exists
    from d4rl_lite.training.run_files import CONFIG, DIVERGED, RESULT

    path = Path(path)
    if not path.is_dir():
        raise UserInputError(f"{path} is not a directory: give a run directory (`d4rl-lite train`'s) or a results "
                             "directory (`d4rl-lite bench`'s)")
    has_result = regular_file_exists(path / RESULT, "result")  # a FIFO or device there: said as such
    if has_result or regular_file_exists(path / CONFIG, "run config"):  # one run
        if not has_result:
            why = "diverged (diverged.json)" if (path / DIVERGED).is_file() else "is not finished (no result.json)"
            raise UserInputError(f"run {path} {why}; only a finished run's final policy can be evaluated "
                                 "(finish it with the same `d4rl-lite train` command)")
        result = read_record(path / RESULT, "result")
        _check_result(result, path / RESULT)
        if problem := _dataset_problem(result["dataset"]):
            from d4rl_lite.files import CorruptFileError

            raise CorruptFileError(f"{path / RESULT}: {problem}")
        return [RunResult.finished(result, path / RESULT)]
    runs = [d for d in sorted(path.iterdir()) if d.is_dir() and (d / CONFIG).is_file()]
    if not runs:
        raise UserInputError(f"{path} is neither a run directory (with config.json) nor a results directory (with "
                             "RUN/config.json): give the directory `d4rl-lite train` or `bench` wrote")
    from d4rl_lite.benchmark.results import collect_results

    found = collect_results(path)  # verified results: checksum, budget, score against the run's log
    for refusal in found.refused:
        print(f"d4rl-lite ope: REFUSED {refusal}", file=sys.stderr)
    verified = {r.directory: r for r in found.finished}  # offline runs: fine-tuning runs are left out
    out, unfinished = [], []
    for run in runs:
        if not (run / RESULT).is_file():
            if not (run / DIVERGED).is_file():
                unfinished.append(run.name)
            continue
        result = verified.get(run)
        if result is not None:
            if problem := _dataset_problem(result.spec.dataset):
                print(f"d4rl-lite ope: REFUSED {run.name}: {problem}", file=sys.stderr)
                continue
            out.append(result)
    if unfinished:
        print(f"d4rl-lite ope: {len(unfinished)} run(s) not finished, left out: {', '.join(unfinished[:5])}"
              + (", ..." if len(unfinished) > 5 else ""), file=sys.stderr)
    if not out:
        raise UserInputError(f"no finished runs under {path} to evaluate (finish them with `d4rl-lite bench` or `train`)")
    return out


def _dataset_problem(dataset: str) -> str | None:
    """Why a result's dataset is not read (None when it is a catalogue name, as ``train`` records): a
    path there would make the record choose the file FQE reads, wherever --root points."""
    from d4rl_lite.datasets.catalogue import recorded_dataset

    if recorded_dataset(dataset) is None:
        return (f"its dataset {dataset[:80]!r} is not a catalogue name (`train` records one, e.g. "
                "hopper-medium-v0), so it is not read; the result was edited. Train the run again")
    return None


def _check_result(result: dict[str, Any], path: Path) -> None:
    from d4rl_lite.files import CorruptFileError
    from d4rl_lite.schema import mismatch
    from d4rl_lite.training.run_files import RESULT_SPEC

    if problem := mismatch(result, RESULT_SPEC):
        raise CorruptFileError(f"{path}: not a run result ({problem})")
    if NORMALIZED not in result["final"] and RAW not in result["final"]:
        raise CorruptFileError(f"{path}: has no final score")


def load_policy(run: RunResult, device: str) -> tuple[Any, float]:
    """(the run's final algorithm, the gamma it was trained with); refused unless its checkpoint is
    the final one (the step its result reports)."""
    from d4rl_lite.algorithms.base import training_settings
    from d4rl_lite.training.checkpoints import load_run

    algo, record = load_run(run.directory, device=device)
    if record["step"] != run.steps:
        raise D4RLLiteError(f"{run.directory}: its checkpoint is at step {record['step']:,}, its result at step "
                            f"{run.steps:,}; the final policy is not there to evaluate (train it again)")
    return algo, float(training_settings(algo.config).gamma)


def load_run_dataset(name: str, runs: list[RunResult], root: str | os.PathLike | None) -> Any:
    """The dataset ``runs`` were trained on, by name under ``root``; refused when its checksum is not
    the one they recorded (the dataset was rebuilt with another size or seed since)."""
    from d4rl_lite.datasets.d4rl_compat import load_dataset

    dataset = load_dataset(name, root=root)
    for run in runs:
        trained_on = run.dataset_checksum
        if trained_on and trained_on != dataset.metadata.get("checksum"):
            raise D4RLLiteError(f"dataset {name} under the datasets root is not the one {run.spec.run_id} was trained on "
                                "(its checksum differs: rebuilt since?); point --root at the datasets the runs used")
    return dataset


def estimate_runs(path: str | os.PathLike, config: FQEConfig | None = None, root: str | os.PathLike | None = None,
                  device: str = "cpu", stack: int = 8, progress: bool = True) -> dict[str, Any]:
    """FQE of every finished run at ``path``; prints a table per dataset and writes PATH/ope.json.
    Returns the record written."""
    cfg = config or FQEConfig()
    cfg.validate()
    if stack < 1:
        raise UserInputError(f"--stack must be >= 1, got {stack}")
    runs = finished_runs(path)
    _check_writable(Path(path))
    by_dataset: dict[str, list[RunResult]] = defaultdict(list)
    for run in runs:
        by_dataset[run.spec.dataset].append(run)
    entries, blocks = [], []
    done = _earlier_estimates(Path(path), cfg)
    print(f"FQE of {len(runs)} run(s): {cfg.steps:,} updates each, critic {'x'.join(map(str, cfg.hidden))}, "
          f"seed {cfg.seed}. Estimates are discounted values in the dataset's raw rewards (not normalized "
          "scores): compare rankings."
          + (f" {sum(r.checksum in done for r in runs)} estimate(s) of ope.json kept (same results, same "
             "settings)." if done else ""))
    for name, group in sorted(by_dataset.items()):
        todo = [run for run in group if run.checksum not in done]
        dataset = load_run_dataset(name, group, root)
        estimates = []
        for start in range(0, len(todo), stack):
            chunk = todo[start:start + stack]
            loaded = [load_policy(run, device) for run in chunk]
            label = f"FQE {name} " + (f"{len(chunk)} runs" if len(chunk) > 1 else chunk[0].run_id)
            estimates += fitted_q_evaluation(dataset, [algo.act for algo, _ in loaded], cfg,
                                             gammas=[g for _, g in loaded], device=device,
                                             progress=label if progress else False)
        fresh = {run.checksum: _entry(run, est) for run, est in zip(todo, estimates)}
        entries_here = [fresh.get(run.checksum) or done[run.checksum] for run in group]
        data_value = _data_value(dataset, entries_here[0]["gamma"])
        entries += entries_here
        block = {"dataset": name, "data_value": data_value,
                 **correlation_block([e["fqe_value"] for e in entries_here], [e["score"] for e in entries_here])}
        blocks.append(block)
        _print_dataset(block, entries_here)
        # Written after each dataset: a stopped `ope` keeps what it finished, and the next one reuses it.
        _write(path, cfg, entries + [e for c, e in done.items() if c not in {x["result_checksum"] for x in entries}],
               blocks)
    overall = correlation_block([e["fqe_value"] for e in entries], [e["score"] for e in entries])
    if len(blocks) > 1:
        print(f"\nall datasets pooled (estimates of different datasets are in different units): {describe(overall)}")
    written = _write(path, cfg, entries, blocks, overall)
    print(f"written: {written}")
    return {"runs": entries, "datasets": blocks, "overall": overall}


def _check_writable(path: Path) -> None:
    """PATH/ope.json must be missing or a regular file: found out before fitting, not when writing after."""
    from d4rl_lite.benchmark.ope_file import OPE_FILE
    from d4rl_lite.files import UnreadableFileError, regular_file_exists

    try:
        regular_file_exists(path / OPE_FILE, "FQE estimates")
    except UnreadableFileError as e:
        raise UserInputError(f"{e.path} {e.problem.split(';')[0]}; `ope` writes its estimates to that path: move it "
                             "away and run again") from None


def _write(path: Any, cfg: FQEConfig, entries: list[dict[str, Any]], blocks: list[dict[str, Any]],
           overall: dict[str, Any] | None = None) -> Path:
    overall = overall or correlation_block([e["fqe_value"] for e in entries], [e["score"] for e in entries])
    return write_ope(Path(path), {"fqe": config_record(cfg), "runs": entries, "datasets": blocks, "overall": overall})


def _earlier_estimates(path: Path, cfg: FQEConfig) -> dict[str, dict[str, Any]]:
    """{result checksum: its estimate} from an ope.json already at ``path`` made with the same FQE
    settings: a run's estimate does not depend on the runs fitted beside it (``training/fqe.py``), so
    it is kept for the same result. Damaged or of other settings: nothing is kept (said once)."""
    from d4rl_lite.files import CorruptFileError

    try:
        earlier = read_ope(path)
    except CorruptFileError as e:
        print(f"d4rl-lite: the existing estimates are not reused ({e})")
        return {}
    import json

    if earlier is None or earlier["fqe"] != json.loads(json.dumps(config_record(cfg))):  # as the file holds it
        return {}
    return {e["result_checksum"]: e for e in earlier["runs"]}


def _finite(x: float) -> float | None:
    import math

    return float(x) if math.isfinite(x) else None


def _entry(run: RunResult, estimate: Any) -> dict[str, Any]:
    score, metric = _score(run)
    return {"run_id": run.run_id, "dataset": run.spec.dataset, "algorithm": run.spec.algorithm,
            "seed": run.spec.seed, "result_checksum": run.checksum, "score": score,
            "score_metric": metric, "fqe_value": _finite(estimate.value), "gamma": estimate.gamma,
            "td_loss": _finite(estimate.td_loss)}


def _data_value(dataset: Any, gamma: float) -> float | None:
    """The data's own discounted value from its episode starts (raw rewards), where its episodes are
    long enough to tell (``OfflineDataset.discounted_returns``): the behaviour's yardstick."""
    returns, complete = dataset.discounted_returns(gamma)
    starts = dataset.episode_starts
    usable = complete[starts]
    return float(returns[starts][usable].mean()) if usable.any() else None


def _print_dataset(block: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    data = f"{block['data_value']:.1f}" if block["data_value"] is not None else "n/a"
    print(f"\n{block['dataset']} (the data's own discounted value from its episode starts: {data})")
    width = max(len(e["run_id"]) for e in entries)
    print(f"  {'run':<{width}}  {'final score':>12}  {'FQE value':>10}")
    for e in sorted(entries, key=lambda e: -e["score"]):
        score = f"{e['score']:.1f}" + (" (raw)" if e["score_metric"] == "raw" else "")
        value = f"{e['fqe_value']:.1f}" if e["fqe_value"] is not None else "diverged"
        print(f"  {e['run_id']:<{width}}  {score:>12}  {value:>10}")
    print(f"  rank correlation, FQE vs final score: {describe(block)} (95% Fisher-z intervals)")
