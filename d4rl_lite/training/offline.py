"""Offline training: an algorithm on a fixed dataset, solo or as a population of seeds, through the
one training loop (``loop.py``); what a run directory holds is ``run_files.py``'s business.

Exact resume: a checkpoint holds the algorithm (weights, optimizers, its step), the batch
sampler's generator, the random streams and the step; the JSONL log is cut back to the
checkpoint's step on resume. Killing a run anywhere and re-running the same command gives the
same final weights as an uninterrupted run (bit for bit on CPU).
A population is a list of ``Member`` records (what each run is, where it writes, its checkpoint,
random stream and hooks); members stopped at different steps continue as one population per step.
The hooks each member gives the loop are ``offline_hooks.py``; the data as trained is ``data.py``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from d4rl_lite.algorithms.base import check_sweepable, training_settings
from d4rl_lite.algorithms.compiled import check_compilable, compile_update
from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.errors import UserInputError
from d4rl_lite.files import load_state
from d4rl_lite.locking import RunDirLock
from d4rl_lite.paths import path_name
from d4rl_lite.records import RunSpec
from d4rl_lite.tasks import get_task
from d4rl_lite.training.data import RewardTransform, data_facts, prepare_data  # noqa: F401 (RewardTransform: re-exported)
from d4rl_lite.training.logging import RunLogger, wandb_run_args
from d4rl_lite.training.loop import DivergenceError, Schedule, run_loop
from d4rl_lite.training.member_divergence import drop_diverged, member_guard, record_divergence
from d4rl_lite.training.offline_hooks import MemberHooks, OfflineHooks
from d4rl_lite.training.run_files import (
    CHECKPOINT,
    check_same_run,
    checked_step,
    read_evals,
    resume_members,
    write_result,
)


@dataclass
class TrainConfig:
    steps: int = 1_000_000
    seed: int = 0
    device: str = "auto"
    log_every: int = 1000
    eval_every: int = 5000
    eval_episodes: int | None = None  # None: the task's protocol (10 locomotion, 100 mazes)
    checkpoint_every: int = 5000
    q_bound_factor: float = 100.0  # |Q| beyond factor * max|r| / (1 - gamma) is divergence
    precision: str = "fp32"  # "bf16": matrix products of the updates under bf16 autocast (see training/loop.py)
    wandb: bool = False
    wandb_project: str = "d4rl-lite"
    suite: str | None = None  # the suite a bench run belongs to: a results table misses no run of it
    # CPU threads of this process (torch.set_num_threads). Small networks gain nothing from a second
    # intra-op thread and lose much when cores are shared (a 2-member CQL population at 2x128 beside
    # one other process: 80 s for 300 updates with all cores, 25 s with one). Not part of a run's identity.
    threads: int = 1
    # torch.compile of the updates (algorithms/compiled.py); not part of a run's identity.
    compile: bool = False

    def validate(self) -> None:
        for name in ("steps", "log_every", "eval_every", "checkpoint_every", "threads"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise UserInputError(f"--seed must be >= 0, got {self.seed}")
        if self.eval_episodes is not None and self.eval_episodes < 1:
            raise UserInputError(f"eval_episodes must be >= 1, got {self.eval_episodes}")
        if not (self.q_bound_factor > 0 and math.isfinite(self.q_bound_factor)):
            raise UserInputError(f"q_bound_factor must be a positive number, got {self.q_bound_factor}")
        if self.precision not in ("fp32", "bf16"):
            raise UserInputError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.checkpoint_every % self.log_every:
            raise UserInputError(f"checkpoint_every ({self.checkpoint_every}) must be a multiple of log_every "
                             f"({self.log_every}): every checkpoint is preceded by a divergence check")


def default_run_dir(algo: str, dataset_name: str, seed: int, settings: dict[str, Any] | None = None) -> Path:
    """``runs/<run id>`` (``records.RunSpec.run_id``: ``iql__hopper-medium-v0__seed0``, a sweep member's
    settings before the seed), the name ``bench`` gives the same run in its results directory."""
    return Path("runs") / path_name(RunSpec.of(algo, dataset_name, seed, settings).run_id,
                                    "run directory (from the dataset's name)")


def member_label(seed: int, settings: dict[str, Any] | None = None) -> str:
    """How messages name a member: ``seed 3``, or ``cql_weight=10 seed 3`` in a sweep."""
    return RunSpec.of("", "", seed, settings).label


@dataclass
class Member:
    """One run of a population: what it is, where it writes, and (once training starts) its random
    stream, identity and hooks."""

    spec: RunSpec
    config: Any  # the algorithm's config of this member
    run: Path
    state: dict[str, Any] | None = None  # its checkpoint, when it resumes
    record: dict[str, Any] = field(default_factory=dict)  # what config.json and its result say it is
    gen: Any = None
    identity: str = ""
    hooks: Any = None

    @property
    def checkpoint(self) -> Path:
        return self.run / CHECKPOINT

    @property
    def stopped_at(self) -> int:
        return checked_step(self.state.get("step"), self.checkpoint) if self.state else 0


def train(
    algo_name: str,
    dataset: OfflineDataset,
    train_config: TrainConfig | None = None,
    algo_overrides: dict[str, Any] | None = None,
    run_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``algo_name`` on ``dataset``; resume from ``run_dir`` if it holds a checkpoint.

    Returns the final record: config, last and best evaluation, run directory.
    """
    tc = train_config or TrainConfig()
    return train_population(algo_name, dataset, tc, algo_overrides, [tc.seed], [run_dir] if run_dir else None, progress)[0]


def train_population(
    algo_name: str,
    dataset: OfflineDataset,
    train_config: TrainConfig | None = None,
    algo_overrides: dict[str, Any] | None = None,
    seeds: list[int] | None = None,
    run_dirs: list[str | Path] | None = None,
    progress: bool = False,
    member_settings: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Train one run per seed of ``seeds`` together, as one population (``OfflineAlgorithm.population``).

    Each member writes the run directory, checkpoints, log and result its solo run (``train`` with
    its seed) writes, and ends with the same weights (within float rounding of batched products);
    a killed population resumes from its members' checkpoints. ``run_dirs``: one per seed (default
    ``runs/<run id>``). ``member_settings``: a sweep, one dict per member of the algorithm's
    ``sweepable`` settings it holds on top of ``algo_overrides`` (its solo run is ``train`` with
    those settings). Returns the members' final records, in the order of ``seeds``.
    """
    from d4rl_lite.algorithms import get_algorithm, memory
    from d4rl_lite.algorithms.settings import domain_settings, make_config

    tc = train_config or TrainConfig()
    tc.validate()
    torch.set_num_threads(tc.threads)
    seeds = [tc.seed] if seeds is None else [int(s) for s in seeds]
    swept = [dict(m) for m in member_settings] if member_settings else [{} for _ in seeds]
    if len(swept) != len(seeds):
        raise ValueError(f"{len(swept)} member settings for {len(seeds)} seeds")
    if not seeds or min(seeds) < 0:
        raise UserInputError(f"--seeds must be whole numbers >= 0, got {seeds}")
    cls = get_algorithm(algo_name)
    if len(seeds) > 1 and not cls.supports_population:
        raise UserInputError(f"{algo_name} does not train as a population; train its seeds one at a time (--seed)")
    if tc.compile:
        check_compilable(cls)
    check_sweepable(algo_name, cls.sweepable, {key for m in swept for key in m})
    task = get_task(dataset.metadata["task"])
    by_domain = domain_settings(algo_name, task.domain, task.name)  # the reference settings for this kind of task ...
    configs = [make_config(cls.Config, {**by_domain, **(algo_overrides or {}), **m}) for m in swept]  # ... under the run's own
    name = dataset.metadata.get("name", "dataset")
    too_big = memory.too_big(algo_name, name, configs[0], task.observation_dim, len(seeds), task.action_dim)
    if too_big:  # before anything is allocated or written
        raise UserInputError(too_big)
    members = _members(algo_name, name, seeds, configs, swept, run_dirs)
    results = {}
    for group in _groups_by_step(members):
        for member, record in zip(group, _train_group(cls, dataset, task, tc, group, by_domain, progress)):
            results[id(member)] = record
    return [results[id(m)] for m in members]


def _members(algo_name: str, dataset_name: str, seeds: list[int], configs: list[Any], swept: list[dict[str, Any]],
             run_dirs: list[str | Path] | None) -> list[Member]:
    """The population's members: each one's run, its config, its directory and its checkpoint if it has one."""
    specs = [RunSpec.of(algo_name, dataset_name, s, {key: getattr(cfg, key) for key in m})  # swept values as numbers
             for s, cfg, m in zip(seeds, configs, swept)]
    twice = sorted({spec.label for spec in specs if specs.count(spec) > 1})
    if twice:
        raise UserInputError(f"the members of a population must differ; given twice: {', '.join(twice)}")
    if run_dirs is not None and len(run_dirs) != len(seeds):
        raise ValueError(f"{len(run_dirs)} run directories for {len(seeds)} seeds")
    runs = ([Path(d) for d in run_dirs] if run_dirs else
            [default_run_dir(algo_name, dataset_name, s.seed, dict(s.sweep)) for s in specs])
    if len(set(runs)) != len(runs):
        raise ValueError("every member of a population needs its own run directory")
    return [Member(spec, cfg, run, load_state(run / CHECKPOINT) if (run / CHECKPOINT).is_file() else None)
            for spec, cfg, run in zip(specs, configs, runs)]


def _groups_by_step(members: list[Member]) -> list[list[Member]]:
    """Members that stopped at different steps (some trained alone before, or a kill between two
    members' checkpoint writes) continue as one population per step: each still ends exactly as its
    solo run would."""
    groups: dict[int, list[Member]] = {}
    for member in members:
        groups.setdefault(member.stopped_at, []).append(member)
    if len(groups) > 1:
        print("d4rl-lite: these runs stopped at different steps ("
              + ", ".join(f"{m.spec.label}: step {m.stopped_at:,}" for m in members)
              + f"); they continue as {len(groups)} populations, one after the other", file=sys.stderr)
    return list(groups.values())


def _train_group(cls: Any, dataset: OfflineDataset, task: Any, tc: TrainConfig, members: list[Member],
                 by_domain: dict[str, Any], progress: bool) -> list[dict[str, Any]]:
    """Train ``members`` (all at one step) as one population; their final (or divergence) records."""
    for m in members:
        m.record = {"algorithm": m.spec.algorithm, "dataset": m.spec.dataset, "task": task.name,
                    "dataset_checksum": dataset.metadata.get("checksum"), "dataset_size": dataset.num_transitions,
                    "train": asdict(replace(tc, seed=m.spec.seed)), "algo": asdict(m.config),
                    **({"domain_settings": by_domain} if by_domain else {}),
                    **({"sweep": dict(m.spec.sweep)} if m.spec.sweep else {})}
    # Everything that can fail on a bad setting (device, sizes) fails before a run directory is touched.
    seeds = [m.spec.seed for m in members]
    if cls.supports_population:  # a solo run is a population of one: exactly what it would be in any population
        algo = cls.population(task.observation_dim, task.action_dim, [m.config for m in members], seeds, device=tc.device)
    else:
        algo = cls(task.observation_dim, task.action_dim, members[0].config, device=tc.device, seed=seeds[0])
    if tc.compile:
        compile_update(algo)
    locks = []
    try:
        for m in members:
            m.run.mkdir(parents=True, exist_ok=True)
            locks.append(RunDirLock(m.run))
            locks[-1].acquire()
        return _train_locked(algo, task, dataset, tc, members, progress)
    finally:
        for lock in locks:
            lock.release()


def _train_locked(algo: Any, task: Any, dataset: OfflineDataset, tc: TrainConfig, members: list[Member],
                  progress: bool) -> list[dict[str, Any]]:
    for m in members:
        m.identity = check_same_run(m.run, m.record)
    data, max_abs_reward, rewards_as_trained = prepare_data(dataset, algo)
    shared = training_settings(algo.config)
    facts = data_facts(dataset, task, data.tensors["rewards"], shared.gamma)
    for m in members:
        m.record = {**m.record, "data": facts}  # results and divergence records alike
        m.gen = torch.Generator(device=algo.device).manual_seed(m.spec.seed)
    q_bound = tc.q_bound_factor * max(max_abs_reward, 1e-3) / (1.0 - shared.gamma)
    step = resume_members(algo, [m.run for m in members], [m.state for m in members], [m.checkpoint for m in members],
                          [m.identity for m in members], [m.gen for m in members])
    _attach_hooks(algo, task, tc, members, step, rewards_as_trained, shared.gamma)
    schedule = Schedule(tc.steps, tc.log_every, tc.eval_every, tc.checkpoint_every)
    bar = members[0].hooks.bar = _progress_bar(members, tc.steps, step) if progress else None
    active = list(members)  # the members still training
    diverged: dict[int, dict[str, Any]] = {}  # id(member) -> its divergence record
    guard = member_guard(active, q_bound, algo)
    try:
        while True:
            if algo.members:
                member_gens = [m.gen for m in active]
                next_batch = lambda _: data.sample_members(shared.batch_size, member_gens)  # noqa: E731
            else:
                next_batch = lambda _: data.sample(shared.batch_size, active[0].gen)  # noqa: E731
            try:
                step = run_loop(algo, next_batch, step, schedule, MemberHooks([m.hooks for m in active]), guard, bar,
                                tc.precision)
                break
            except DivergenceError as e:
                if not e.members:
                    raise
                if len(e.members) == len(active):  # every member is lost: record each, then stop
                    record_divergence(e, active, diverged)
                    raise
                algo, active, guard, values = drop_diverged(e, algo, active, q_bound, diverged)
                if tc.compile:  # the smaller population is a new instance
                    compile_update(algo, quiet=True)
                step = e.step
                hooks = MemberHooks([m.hooks for m in active])
                # What was due at that step, for the members that go on (their checks passed again).
                if values is not None and step % schedule.log_every == 0:
                    hooks.log(step, values)
                if step % schedule.eval_every == 0 or step == schedule.total_steps:
                    hooks.evaluate(step)
                if step % schedule.checkpoint_every == 0 or step == schedule.total_steps:
                    hooks.checkpoint(step)
    finally:
        if bar:
            bar.close()
        for m in members:
            m.hooks.logger.close()
    return [diverged.get(id(m)) or write_result(m.run, m.record, m.hooks.history, step) for m in members]


def _attach_hooks(algo: Any, task: Any, tc: TrainConfig, members: list[Member], step: int,
                  rewards_as_trained: Any, gamma: float) -> None:
    """Each member's hooks: its log (and W&B run), evaluations, checkpoints, from ``step`` on."""
    for index, m in enumerate(members):
        m.hooks = OfflineHooks(algo, index, task, tc, RunLogger(m.run / "log.jsonl", wandb_run_args(tc, m)),
                               read_evals(m.run / "log.jsonl"), m.checkpoint, m.gen, m.identity, step,
                               rewards_as_trained, gamma)


def _progress_bar(members: list[Member], total: int, step: int) -> Any:
    """The population's tqdm bar: algorithm, dataset, and its seeds (or its member count in a sweep)."""
    from tqdm import tqdm

    first = members[0].spec
    label = f"{first.algorithm} {first.dataset}" + (
        f" {len(members)} members" if any(m.spec.sweep for m in members) else
        f" seeds {','.join(str(m.spec.seed) for m in members)}" if len(members) > 1 else "")
    return tqdm(total=total, initial=step, desc=label, unit="upd", dynamic_ncols=True)
