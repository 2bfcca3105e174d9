"""Benchmark runner: every run of a suite as a file; finished runs are skipped, partial ones resume.

Each run trains in its own process (a local process pool by default, or Ray tasks on a cluster)
and leaves ``RESULTS/<run id>/`` with config.json, log.jsonl, checkpoint.safetensors and result.json.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from d4rl_lite.benchmark.suites import Suite
from d4rl_lite.errors import UserInputError
from d4rl_lite.files import write_record
from d4rl_lite.records import FINETUNE_SUFFIX, RunSpec, count_label


def result_path(results_dir: Path, algo: str, dataset: str, seed: int) -> Path:
    return results_dir / RunSpec.of(algo, dataset, seed).run_id / "result.json"


def is_finished(results_dir: Path, suite: Suite, algo: str, dataset: str, seed: int) -> bool:
    from d4rl_lite.files import CorruptFileError, read_record

    path = result_path(results_dir, algo, dataset, seed)
    if not path.exists():
        return False
    try:
        steps = read_record(path, "result").get("steps", 0)
    except CorruptFileError:
        return False  # damaged: the run resumes from its checkpoint (itself verified) and rewrites it
    budget = suite.steps_on(dataset)
    if isinstance(steps, int) and steps > budget:  # its score would not be the suite's budget's
        raise UserInputError(f"{path.parent} trained for {steps:,} steps, more than the {budget:,} of suite "
                         f"{suite.name!r} on {dataset}: give the suite its own --results directory or delete that run")
    return steps == budget


def ensure_datasets(suite: Suite, root: str | os.PathLike | None, log: Callable[[str], None] = print,
                    force: bool = False) -> None:
    """Build the suite's datasets that are not built yet, at the sizes and seeds the suite names.

    A dataset is identified by name, size and seed: one built otherwise is an error, or rebuilt with ``force``.
    """
    from d4rl_lite.datasets.builders import build_dataset, built_recipe
    from d4rl_lite.datasets.catalogue import is_built, parse_dataset_name
    from d4rl_lite.errors import ChecksumMismatchError

    for name, spec in suite.datasets.items():
        size, seed = spec.get("size"), spec.get("seed", 0)
        if is_built(parse_dataset_name(name), root):
            try:
                built = built_recipe(parse_dataset_name(name), root) or {}
            except ChecksumMismatchError:
                built = {}  # damaged or old: treated as a mismatch
            if (size is None or built.get("size") == size) and built.get("seed") == seed:
                continue
            if not force:
                raise UserInputError(f"dataset {name} is built with size {built.get('size')} and seed {built.get('seed')}, "
                                 f"but suite {suite.name!r} asks for size {size} and seed {seed}; pass --force to "
                                 "rebuild it (or point --root elsewhere)")
        log(f"building {name} ({size or 'default size'}, seed {seed})")
        from tqdm import tqdm

        from d4rl_lite.datasets.builders import builder_for

        builder = builder_for(parse_dataset_name(name))
        total = size if size is not None else (builder.default_size if builder else None)
        with tqdm(total=total, unit="tr", unit_scale=True, desc=f"build {name}", dynamic_ncols=True, delay=0.5) as bar:
            build_dataset(name, size=size, seed=seed, root=root, overwrite=force, progress=bar.update)


def run_group(suite_dict: dict[str, Any], algo: str, dataset: str, seeds: list[int], results_dir: str,
              root: str | None, device: str, wandb: bool) -> list[dict[str, Any]]:
    """The runs of one algorithm on one dataset for ``seeds`` (in a worker process), trained as one
    population (``train_population``; one seed is a solo run); each resumes from its checkpoint."""
    import torch

    from d4rl_lite.benchmark.finetune_suite import finetune_group
    from d4rl_lite.datasets.d4rl_compat import load_dataset
    from d4rl_lite.training.offline import TrainConfig, train_population

    torch.set_num_threads(1)  # one worker per core
    # ... so its evaluations step their env copies in-process too (unless the user says otherwise).
    os.environ.setdefault("D4RL_LITE_ENV_WORKERS", "1")
    suite = Suite(**suite_dict)
    suite.import_plugins()  # user algorithms register themselves in this worker too (run_suite allowed it)
    tc = TrainConfig(steps=suite.steps_on(dataset), seed=seeds[0], device=device, log_every=suite.log_every,
                     eval_every=suite.eval_every_on(dataset), eval_episodes=suite.eval_episodes,
                     checkpoint_every=suite.checkpoint_every, wandb=wandb, wandb_project=f"d4rl-lite-{suite.name}",
                     precision=suite.precision, compile=suite.compile, suite=suite.name)
    records = train_population(algo, load_dataset(dataset, root=root), tc, suite.algo_settings(algo, dataset), seeds,
                               [Path(results_dir) / RunSpec.of(algo, dataset, s).run_id for s in seeds])
    tuned = finetune_group(suite, algo, dataset, seeds, Path(results_dir), root, device, wandb)  # the suite's online phase
    return [{"algorithm": algo, "dataset": dataset, "seed": s, **({"diverged": r["diverged"]} if "diverged" in r else
                                                                  {"final": r["final"]}),
             **({"finetuned": tuned[s]} if s in tuned else {})} for s, r in zip(seeds, records)]


def population_groups(suite: Suite, runs: list[tuple[str, str, int]], population: bool) -> list[tuple[str, str, list[int]]]:
    """``runs`` (algorithm, dataset, seed) grouped into the jobs of a suite: with ``population``, one
    job per algorithm and dataset holding its seeds (algorithms that cannot train as populations,
    and ``population=False``, keep one job per seed)."""
    from d4rl_lite.algorithms import get_algorithm

    groups: dict[tuple[Any, ...], list[int]] = {}
    for algo, dataset, seed in runs:
        together = population and get_algorithm(algo).supports_population
        groups.setdefault((algo, dataset) if together else (algo, dataset, seed), []).append(seed)
    return [(key[0], key[1], seeds) for key, seeds in groups.items()]


def check_workers(workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserInputError(f"--workers must be a whole number >= 1 (runs in parallel), got {workers!r}")


def run_suite(suite: Suite, results_dir: str | Path, *, executor: str = "local", workers: int = 2,
              address: str | None = None, root: str | os.PathLike | None = None, device: str = "auto",
              wandb: bool = False, log: Callable[[str], None] = print, force: bool = False,
              population: bool = True, allow_imports: bool = False) -> dict[str, int]:
    """Run every unfinished run of ``suite``; returns counts of runs done now, skipped and failed.

    With ``population`` (default) the unfinished seeds of an algorithm on a dataset train together
    as one population (one job, one worker); the results are the runs' own either way. The suite's
    ``imports`` (code) run here and in every worker only with ``allow_imports``; without, a suite
    that has them is refused before anything is written."""
    from d4rl_lite.benchmark.finetune_suite import is_finetuned, plan_of
    from d4rl_lite.benchmark.suite_checks import imports_refused

    check_workers(workers)
    if suite.imports and not allow_imports:
        raise UserInputError(imports_refused(suite.name, suite.imports))
    if suite.imports:
        suite.import_plugins()
        suite.validate()  # the algorithms the imports registered, checked as the built-in ones were at load
    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    write_record(results / "suite.json", suite.__dict__)  # checksummed: an edited plan (a dropped algorithm) is caught
    ensure_datasets(suite, root, log, force=force)
    plan = plan_of(suite)
    todo = [r for r in suite.runs() if not is_finished(results, suite, *r)
            or (plan is not None and plan.applies(r[0]) and not is_finetuned(results, plan, *r))]
    skipped = len(suite.runs()) - len(todo)
    jobs = population_groups(suite, todo, population)
    log(f"suite {suite.name}: {len(suite.runs())} runs, {skipped} already finished, {len(todo)} to run "
        f"({executor}, {count_label(workers, 'worker')}" + (f", {len(jobs)} populations" if len(jobs) < len(todo) else "") + ")")
    if not todo:
        return {"done": 0, "skipped": skipped, "failed": 0}
    args = [(suite.__dict__, a, d, seeds, str(results), None if root is None else str(root), device, wandb)
            for a, d, seeds in jobs]
    from d4rl_lite.benchmark.executors import run_local, run_ray

    runner = run_local if executor == "local" else run_ray if executor == "ray" else None
    if runner is None:
        raise UserInputError(f"unknown executor {executor!r}: use local or ray")
    watch = [job_progress(suite, results, a, d, seeds) for a, d, seeds in jobs]
    t0 = time.time()
    try:
        done, failed = runner(run_group, args, watch, workers, address, log)
    except KeyboardInterrupt:
        left = sum(not is_finished(results, suite, *r) for r in todo)
        log(f"suite {suite.name}: stopped; {len(todo) - left} runs finished now, {left} not: the same command "
            "trains them, each from its last checkpoint")
        raise
    log(f"suite {suite.name}: {done} runs finished, {failed} failed, in {time.time() - t0:.0f} s")
    return {"done": done, "skipped": skipped, "failed": failed}


def job_progress(suite: Suite, results: Path, algo: str, dataset: str, seeds: list[int]) -> Any:
    """What a job's progress lines read: its runs' logs, then (a suite that fine-tunes ``algo``)
    its fine-tuning runs' logs, counted in env steps."""
    from d4rl_lite.benchmark.finetune_suite import finetune_run_id, plan_of
    from d4rl_lite.benchmark.progress import JobProgress, job_name

    plan, name = plan_of(suite), job_name(algo, dataset, seeds)
    online = None
    if plan is not None and plan.applies(algo):  # the same seeds fine-tune online after their offline budget
        online = JobProgress(name + FINETUNE_SUFFIX, [results / finetune_run_id(algo, dataset, s) for s in seeds],
                             plan.env_steps, unit="env steps")
    return JobProgress(name, [results / RunSpec.of(algo, dataset, s).run_id for s in seeds], suite.steps_on(dataset),
                       then=online)
