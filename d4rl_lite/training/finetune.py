"""Offline-to-online fine-tuning: a finished offline run goes on learning with interaction in its task's env.

A fine-tuning run starts from its parent's checkpoint (weights, optimizers, the algorithm's step, the
members' random streams and batch generator: warm-ups are over) with the settings the algorithm's
paper changes for the online phase (``algorithms/finetune_settings.json``). Each step of the loop
is one env step of every member (exploration: ``algorithms/exploration.py``) and one update on a
batch of the offline data as trained plus the member's online transitions (``MixedReplay``, sampled
by the run's ``Mix``); steps count env steps from 0. The run is a run directory of its own
(default ``<parent>__finetune`` beside the parent) with offline runs' guarantees: config.json (the
parent's record, the online settings and ``finetune``: parent, its checkpoint identity, its step,
its final offline evaluation, the sampling rule), identity-checked verified checkpoints, log.jsonl
(the parent's final evaluation at step 0, then the fine-tuning's), W&B, the divergence guard, and
result.json whose curve runs over env steps. A population fine-tunes its members' parents together,
each member in its own env copy; member m ends exactly as its solo fine-tuning run.

Exact resume rule. Member m's k-th online episode is reset with ``episode_seed(seed_m, k)``, so the
episode counter is all the seeds need. A checkpoint holds, per member, the online transitions so
far, the episodes started, where the current episode starts in the buffer, its return so far and
the current observation. On resume each env is reset with its current episode's seed and re-stepped
with that episode's stored actions (MuJoCo steps deterministically on one machine); the observation
reached must equal the stored one bit for bit, or the run is refused in one line.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from d4rl_lite.algorithms.compiled import check_compilable, compile_update
from d4rl_lite.algorithms.exploration import can_explore
from d4rl_lite.errors import UserInputError
from d4rl_lite.files import CorruptFileError, load_state, regular_file_exists
from d4rl_lite.locking import RunDirLock
from d4rl_lite.records import FINETUNE_SUFFIX, RunSpec
from d4rl_lite.training.data import prepare_data
from d4rl_lite.training.finetune_experience import Mix, MixedReplay, OnlineMembers, online_buffer_problem
from d4rl_lite.training.finetune_parents import Parent, check_directories, read_parent
from d4rl_lite.training.finetune_hooks import FinetuneHooks, FinetuneMemberHooks
from d4rl_lite.training.logging import RunLogger, truncate_log, wandb_run_args
from d4rl_lite.training.loop import DivergenceError, Schedule, run_loop
from d4rl_lite.training.member_divergence import member_guard, record_divergence
from d4rl_lite.training.offline import Member, TrainConfig
from d4rl_lite.training.run_files import (
    CHECKPOINT,
    NOT_IDENTITY,
    check_not_past,
    check_same_run,
    config_differences,
    load_member_states,
    read_evals,
    write_result,
)

SUFFIX = FINETUNE_SUFFIX


def finetune_settings(algo_name: str) -> dict[str, Any]:
    """The settings ``algo_name`` changes for the online phase (``algorithms/finetune_settings.json``)."""
    from importlib import resources

    table = json.loads(resources.files("d4rl_lite.algorithms").joinpath("finetune_settings.json").read_text())
    return dict(table.get(algo_name, {}).get("settings", {}))


def _shared_part(parent: Parent, sweepable: tuple[str, ...]) -> dict[str, Any]:
    """What every parent of one population must share: all but its seed, sweep and step."""
    c = parent.config
    return {"algorithm": c["algorithm"], "dataset": c["dataset"], "dataset_checksum": c.get("dataset_checksum"),
            "task": c.get("task"), "algo": {k: v for k, v in c["algo"].items() if k not in sweepable},
            "train": {k: v for k, v in c["train"].items() if k != "seed" and k not in NOT_IDENTITY},
            "parent_step": parent.step}


def finetune(parent_run: str | Path, train_config: TrainConfig | None = None, mix: Mix | None = None,
             run_dir: str | Path | None = None, progress: bool = False, root: Any = None) -> dict[str, Any]:
    """Fine-tune one finished offline run (a population of one); its final record."""
    return finetune_population([parent_run], train_config, mix, [run_dir] if run_dir else None, progress, root)[0]


def finetune_population(parent_runs: list[str | Path], train_config: TrainConfig | None = None, mix: Mix | None = None,
                        run_dirs: list[str | Path] | None = None, progress: bool = False,
                        root: Any = None) -> list[dict[str, Any]]:
    """Fine-tune finished offline runs of one algorithm and dataset (seeds or sweep members) together.

    ``train_config.steps`` counts env steps (one update each); ``mix`` how batches mix offline and
    online data; ``run_dirs`` one per parent (default: ``<parent>__finetune`` beside it); ``root``
    where the dataset lives. Returns each member's final record, in the order of ``parent_runs``.
    """
    from d4rl_lite.datasets.catalogue import parse_dataset_name
    from d4rl_lite.tasks import get_task

    tc, mix = train_config or TrainConfig(), mix or Mix()
    tc.validate()
    mix.validate()
    torch.set_num_threads(tc.threads)
    if not parent_runs:
        raise UserInputError("name at least one offline run directory to fine-tune")
    runs = [Path(d) for d in run_dirs] if run_dirs else [default_finetune_dir(p) for p in parent_runs]
    check_directories([Path(p) for p in parent_runs], runs)
    parents = [read_parent(p) for p in parent_runs]
    first = parents[0]
    task = get_task(first.config.get("task") or parse_dataset_name(first.config["dataset"]).task)
    too_big = online_buffer_problem(tc.steps, len(parents), task.observation_dim, task.action_dim)
    if too_big:  # before the dataset is read or a run directory made
        raise UserInputError(too_big)
    cls = _population_algorithm(parents)
    if tc.compile:
        check_compilable(cls)
    dataset = _parents_dataset(first, root)
    online_settings = finetune_settings(cls.name)
    members = [(_member(cls, p, run, tc, mix, online_settings), p) for p, run in zip(parents, runs)]
    groups: dict[int, list[tuple[Member, Parent]]] = {}
    for m, p in members:
        groups.setdefault(m.stopped_at, []).append((m, p))
    if len(groups) > 1:  # a kill between two members' checkpoint writes: each still ends as its solo run
        print(f"d4rl-lite: these fine-tuning runs stopped at different steps; they continue as {len(groups)} "
              "populations, one after the other", file=sys.stderr)
    results = {}
    for group in groups.values():
        for (m, _), record in zip(group, _finetune_group(cls, dataset, task, tc, mix, group, progress)):
            results[id(m)] = record
    return [results[id(m)] for m, _ in members]


def _population_algorithm(parents: list[Parent]) -> Any:
    """The algorithm class of ``parents``, refused unless it fine-tunes and they are members of one population."""
    from d4rl_lite.algorithms import get_algorithm

    first = parents[0]
    cls = get_algorithm(first.config["algorithm"])
    if not cls.supports_population:
        raise UserInputError(f"{cls.name} cannot be fine-tuned (it does not train as a population)")
    shared = _shared_part(first, cls.sweepable)
    for p in parents[1:]:
        if _shared_part(p, cls.sweepable) != shared:
            diff = config_differences(shared, _shared_part(p, cls.sweepable))
            raise UserInputError(f"{p.run} and {first.run} are not members of one population ({diff}); "
                                 "fine-tune them separately")
    return cls


def _parents_dataset(first: Parent, root: Any) -> Any:
    """The dataset the parents were trained on, refused when it changed since (its checksum)."""
    from d4rl_lite.datasets.d4rl_compat import load_dataset

    dataset = load_dataset(first.config["dataset"], root=root)
    if dataset.metadata.get("checksum") != first.config.get("dataset_checksum"):
        raise UserInputError(f"dataset {first.config['dataset']} changed since {first.run} was trained on it (checksum "
                             f"{first.config.get('dataset_checksum')} then, {dataset.metadata.get('checksum')} now); "
                             "fine-tuning needs the data the run learned from: rebuild it with the recipe the run used")
    return dataset


def _member(cls: Any, p: Parent, run: Path, tc: TrainConfig, mix: Mix, online_settings: dict[str, Any]) -> Member:
    """The fine-tuning member of parent ``p`` in ``run``: its config (the parent's with the online
    settings), its record, and its checkpoint when it was stopped before."""
    from d4rl_lite.algorithms.settings import make_config

    c = p.config
    config = make_config(cls.Config, {**{k: tuple(v) if isinstance(v, list) else v for k, v in c["algo"].items()},
                                      **online_settings})
    spec = RunSpec.of(cls.name, c["dataset"], int(c["train"]["seed"]), dict(c.get("sweep") or {}))
    record = {**{k: v for k, v in c.items() if k not in ("run_uid", "checksum", "train", "algo")},
              "algo": asdict(config), "train": asdict(replace(tc, seed=spec.seed)),
              "finetune": {"parent": str(p.run.resolve()), "parent_identity": p.identity, "parent_step": p.step,
                           "offline_final": p.result.get("final", {}), **mix.record(),
                           "online_settings": online_settings}}
    state = load_state(run / CHECKPOINT) if regular_file_exists(run / CHECKPOINT, "checkpoint") else None
    member = Member(spec, config, run, state, record)
    check_not_past(tc.steps, member.stopped_at, run, "env steps", "--env-steps")
    return member


def _finetune_group(cls: Any, dataset: Any, task: Any, tc: TrainConfig, mix: Mix,
                    group: list[tuple[Member, Parent]], progress: bool) -> list[dict[str, Any]]:
    members = [m for m, _ in group]
    algo = cls.population(task.observation_dim, task.action_dim, [m.config for m in members],
                          [m.spec.seed for m in members], device=tc.device)
    if not can_explore(algo):
        raise UserInputError(f"{cls.name} has no exploration rule (algorithms/exploration.py); it cannot be fine-tuned")
    if tc.compile:
        compile_update(algo)
    with contextlib.ExitStack() as locks:  # every member's run directory, for the whole run
        for m in members:
            locks.enter_context(RunDirLock(m.run))
        return _finetune_locked(algo, dataset, task, tc, mix, group, progress)


def _finetune_locked(algo: Any, dataset: Any, task: Any, tc: TrainConfig, mix: Mix,
                     group: list[tuple[Member, Parent]], progress: bool) -> list[dict[str, Any]]:
    from d4rl_lite.algorithms.base import training_settings

    members = [m for m, _ in group]
    for m in members:
        m.identity = check_same_run(m.run, m.record)
        m.gen = torch.Generator(device=algo.device).manual_seed(m.spec.seed)
    data, max_abs_reward, rewards_as_trained = prepare_data(dataset, algo)
    shared = training_settings(algo.config)
    resuming = all(m.state for m in members)
    step = _load_starting_states(algo, group, resuming)
    replay = MixedReplay(data, algo, rewards_as_trained, max(tc.steps, step), mix, shared.batch_size)
    online = OnlineMembers(task, algo, replay, [m.spec.seed for m in members], [m.gen for m in members])
    if resuming:
        online.restore([m.state.get("extra") or {} for m in members], step, [m.checkpoint for m in members])
    else:
        online.start()
    for index, m in enumerate(members):
        logger = _member_logger(m, tc, step, resuming)  # first: it cuts the log back to ``step``
        m.hooks = FinetuneHooks(algo, index, task, tc, logger, read_evals(m.run / "log.jsonl"), m.checkpoint, m.gen,
                                m.identity, step, rewards_as_trained, shared.gamma, online=online)
    bar = _progress_bar(members, tc, step) if progress else None
    q_bound = tc.q_bound_factor * max(max_abs_reward, 1e-3) / (1.0 - shared.gamma)
    diverged: dict[int, dict[str, Any]] = {}
    try:
        step = run_loop(algo, online.next_batch, step, Schedule(tc.steps, tc.log_every, tc.eval_every, tc.checkpoint_every),
                        FinetuneMemberHooks([m.hooks for m in members], replay), member_guard(members, q_bound, algo),
                        bar, tc.precision)
    except DivergenceError as e:
        # The population stops: its diverged members are recorded (their last good checkpoint kept);
        # the others continue from their checkpoints when fine-tuned again without them.
        if e.members:
            record_divergence(e, members, diverged)
        raise
    finally:
        if bar:
            bar.close()
        for m in members:
            m.hooks.logger.close()
        if online.stepper is not None:
            online.stepper.close()
    return [write_result(m.run, m.record, m.hooks.history, step) for m in members]


def _load_starting_states(algo: Any, group: list[tuple[Member, Parent]], resuming: bool) -> int:
    """Load the members' own checkpoints (``resuming``) or their parents' into ``algo``; the step it starts from."""
    members = [m for m, _ in group]
    gens = [m.gen for m in members]
    try:
        if resuming:
            load_member_states(algo, [m.state for m in members], [m.identity for m in members],
                               [m.checkpoint for m in members], gens)
            return members[0].stopped_at
        load_member_states(algo, [p.state for _, p in group], [p.identity for _, p in group],
                           [p.run / CHECKPOINT for _, p in group], gens)
        return 0
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CorruptFileError(f"a checkpoint does not fit {algo.name} ({str(e).splitlines()[0][:120]}); it was "
                               "damaged or forged") from None


def _member_logger(m: Member, tc: TrainConfig, step: int, resuming: bool) -> RunLogger:
    """The member's log (cut back to ``step`` when resuming, else started afresh) and W&B run."""
    log = m.run / "log.jsonl"
    if resuming:
        truncate_log(log, step)
    else:
        log.unlink(missing_ok=True)  # lines of a run killed before its first checkpoint
    logger = RunLogger(log, wandb_run_args(tc, m, finetune=True))
    if not resuming:  # the curve starts from the parent's final offline evaluation
        start = {k: v for k, v in m.record["finetune"]["offline_final"].items() if k.startswith("eval/")}
        if start:
            logger.log(0, start)
    return logger


def _progress_bar(members: list[Member], tc: TrainConfig, step: int) -> Any:
    """A tqdm bar over env steps, held by the first member's hooks."""
    from tqdm import tqdm

    label = f"finetune {members[0].spec.algorithm} {members[0].spec.dataset}" + (
        f" {len(members)} members" if len(members) > 1 else "")
    bar = members[0].hooks.bar = tqdm(total=tc.steps, initial=step, desc=label, unit="env step", dynamic_ncols=True)
    return bar


def default_finetune_dir(parent_run: str | Path) -> Path:
    """Where ``finetune`` writes by default: ``<parent dir>__finetune`` beside the parent."""
    run = Path(parent_run)
    return run.parent / (run.name + SUFFIX)

