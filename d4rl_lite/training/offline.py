"""Offline training: an algorithm on a fixed dataset, solo or as a population of seeds, through the
one training loop (``loop.py``); what a run directory holds is ``run_files.py``'s business.

Exact resume: a checkpoint holds the algorithm (weights, optimizers, its step), the batch
sampler's generator, the random streams and the step; the JSONL log is cut back to the
checkpoint's step on resume. Killing a run anywhere and re-running the same command gives the
same final weights as an uninterrupted run (bit for bit on CPU).
About 350 lines: the entry points (train, train_population), the hooks they give the loop and
what happens when a member diverges are read together.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4rl_lite.algorithms.base import training_settings
from d4rl_lite.algorithms.population import drop_members
from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.errors import ReferenceScoreUnavailable
from d4rl_lite.files import load_state, write_record
from d4rl_lite.locking import RunDirLock
from d4rl_lite.training.logging import RunLogger
from d4rl_lite.training.loop import DivergenceError, DivergenceGuard, Schedule, run_loop
from d4rl_lite.training.run_files import (
    CHECKPOINT,
    DIVERGED,
    check_same_run,
    checked_step,
    read_evals,
    resume_members,
    save_checkpoint,
    write_result,
)
from d4rl_lite.tasks import get_task

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

    def validate(self) -> None:
        for name in ("steps", "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        if self.eval_episodes is not None and self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1, got {self.eval_episodes}")
        if not (self.q_bound_factor > 0 and math.isfinite(self.q_bound_factor)):
            raise ValueError(f"q_bound_factor must be a positive number, got {self.q_bound_factor}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.checkpoint_every % self.log_every:
            raise ValueError(f"checkpoint_every ({self.checkpoint_every}) must be a multiple of log_every "
                             f"({self.log_every}): every checkpoint is preceded by a divergence check")


@dataclass(frozen=True)
class RewardTransform:
    """The rewards the critics learn: ``multiplier * r + bias`` of the data's (and the env's) rewards."""

    multiplier: float = 1.0
    bias: float = 0.0

    def discounted(self, raw_discounted: np.ndarray, lengths: np.ndarray, gamma: float) -> np.ndarray:
        """sum_t gamma^t (multiplier r_t + bias) over episodes of ``lengths`` steps, from their
        raw ``sum_t gamma^t r_t``: what a critic's value at an episode's first state estimates."""
        return self.multiplier * raw_discounted + self.bias * (1.0 - gamma ** lengths) / (1.0 - gamma)


def prepare_data(dataset: OfflineDataset, algo: Any) -> tuple[Any, float, RewardTransform]:
    """Tensors on the algorithm's device, normalized as its config asks; returns (data, max
    |reward| as trained, the reward transform applied)."""
    cfg = training_settings(algo.config)
    data = dataset.to_torch(algo.device)
    t = data.tensors
    if cfg.normalize_states:
        stats = dataset.observation_stats()
        mean = torch.as_tensor(stats.mean, device=algo.device)
        std = torch.as_tensor(stats.std, device=algo.device)
        algo.obs_mean.copy_(mean)  # every member of a population gets the same statistics
        algo.obs_std.copy_(std)
        for key in ("observations", "next_observations"):
            t[key] = (t[key] - mean) / std
    multiplier = dataset.return_range_scale(1000.0) if cfg.normalize_reward else 1.0  # IQL on locomotion: returns spread over 1000
    if multiplier != 1.0:
        t["rewards"] = t["rewards"] * multiplier
    scale, bias = cfg.reward_scale, cfg.reward_bias
    if scale != 1.0 or bias != 0.0:
        t["rewards"] = t["rewards"] * scale + bias
    return data, float(t["rewards"].abs().max()), RewardTransform(float(multiplier * scale), float(bias))


def default_run_dir(algo: str, dataset_name: str, seed: int, settings: dict[str, Any] | None = None) -> Path:
    """``runs/ALGO-DATASET-seedS``; a sweep member's settings go before the seed (``...-cql_weight10-seed0``)."""
    from d4rl_lite.paths import path_name

    swept = "".join(f"-{key}{_shown(value)}" for key, value in sorted((settings or {}).items()))
    return Path("runs") / path_name(f"{algo}-{dataset_name}{swept}-seed{seed}", "run directory (from the dataset's name)")


def member_label(seed: int, settings: dict[str, Any] | None = None) -> str:
    """How messages name a member: ``seed 3``, or ``cql_weight=10 seed 3`` in a sweep."""
    return "".join(f"{key}={_shown(value)} " for key, value in sorted((settings or {}).items())) + f"seed {seed}"


def _shown(value: Any) -> str:
    return f"{value:.10g}" if isinstance(value, float) else str(value)  # 5.0 -> 5, 0.0001 -> 0.0001


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
    ``runs/ALGO-DATASET-seedS``). ``member_settings``: a sweep, one dict per member of the
    algorithm's ``sweepable`` settings it holds on top of ``algo_overrides`` (its solo run is
    ``train`` with those settings). Returns the members' final records, in the order of ``seeds``.
    """
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.base import domain_settings, make_config

    tc = train_config or TrainConfig()
    tc.validate()
    seeds = [tc.seed] if seeds is None else [int(s) for s in seeds]
    swept = [dict(m) for m in member_settings] if member_settings else [{} for _ in seeds]
    if len(swept) != len(seeds):
        raise ValueError(f"{len(swept)} member settings for {len(seeds)} seeds")
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds must be whole numbers >= 0, got {seeds}")
    cls = get_algorithm(algo_name)
    if len(seeds) > 1 and not cls.supports_population:
        raise ValueError(f"{algo_name} does not train as a population; train its seeds one at a time (--seed)")
    unsweepable = sorted({key for m in swept for key in m} - set(cls.sweepable))
    if unsweepable:
        raise ValueError(f"{', '.join(unsweepable)} cannot differ between the members of a {algo_name} population "
                         f"(it can sweep: {', '.join(cls.sweepable) or 'nothing'}); train such runs separately")
    task = get_task(dataset.metadata["task"])
    by_domain = domain_settings(algo_name, task.domain)  # the reference settings for this kind of task ...
    configs = [make_config(cls.Config, {**by_domain, **(algo_overrides or {}), **m}) for m in swept]  # ... under the run's own
    swept = [{key: getattr(cfg, key) for key in m} for cfg, m in zip(configs, swept)]  # as numbers ("5" -> 5.0)
    labels = [member_label(s, m) for s, m in zip(seeds, swept)]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"the members of a population must differ; given twice: {', '.join(twice)}")
    name = dataset.metadata.get("name", "dataset")
    if run_dirs is not None and len(run_dirs) != len(seeds):
        raise ValueError(f"{len(run_dirs)} run directories for {len(seeds)} seeds")
    runs = [Path(d) for d in run_dirs] if run_dirs else [default_run_dir(algo_name, name, s, m) for s, m in zip(seeds, swept)]
    if len(set(runs)) != len(runs):
        raise ValueError("every member of a population needs its own run directory")
    states = [load_state(run / CHECKPOINT) if (run / CHECKPOINT).is_file() else None for run in runs]
    stopped_at = [checked_step(state.get("step"), run / CHECKPOINT) if state else 0 for state, run in zip(states, runs)]
    if len(set(stopped_at)) > 1:
        # Members that stopped at different steps (some trained alone before, or a kill between two
        # members' checkpoint writes) continue as one population per step: each still ends exactly
        # as its solo run would.
        groups: dict[int, list[int]] = {}
        for i, at in enumerate(stopped_at):
            groups.setdefault(at, []).append(i)
        print("d4rl-lite: these runs stopped at different steps ("
              + ", ".join(f"{labels[i]}: step {at:,}" for i, at in enumerate(stopped_at))
              + f"); they continue as {len(groups)} populations, one after the other", file=sys.stderr)
        results: list[dict[str, Any]] = [{} for _ in seeds]
        for members in groups.values():
            done = train_population(algo_name, dataset, tc, algo_overrides, [seeds[i] for i in members],
                                    [runs[i] for i in members], progress,
                                    [swept[i] for i in members] if member_settings else None)
            for i, record in zip(members, done):
                results[i] = record
        return results
    records = [{"algorithm": algo_name, "dataset": name, "task": task.name, "dataset_checksum": dataset.metadata.get("checksum"),
                "dataset_size": dataset.num_transitions, "train": asdict(replace(tc, seed=s)), "algo": asdict(cfg),
                **({"domain_settings": by_domain} if by_domain else {}), **({"sweep": m} if m else {})}
               for s, cfg, m in zip(seeds, configs, swept)]
    # Everything that can fail on a bad setting (device, sizes) fails before a run directory is touched.
    if cls.supports_population:  # a solo run is a population of one: exactly what it would be in any population
        algo = cls.population(task.observation_dim, task.action_dim, configs, seeds, device=tc.device)
    else:
        algo = cls(task.observation_dim, task.action_dim, configs[0], device=tc.device, seed=seeds[0])
    locks = []
    try:
        for run in runs:
            run.mkdir(parents=True, exist_ok=True)
            locks.append(RunDirLock(run))
            locks[-1].acquire()
        return _train_locked(algo_name, algo, task, name, dataset, tc, seeds, swept, runs, records, states, progress)
    finally:
        for lock in locks:
            lock.release()


def _train_locked(algo_name, algo, task, name, dataset, tc, seeds, swept, runs, records, states, progress):
    labels = [member_label(s, m) for s, m in zip(seeds, swept)]
    identities = [check_same_run(run, record) for run, record in zip(runs, records)]
    data, max_abs_reward, rewards_as_trained = prepare_data(dataset, algo)
    shared = training_settings(algo.config)
    facts = data_facts(dataset, task, data.tensors["rewards"], shared.gamma)
    records = [{**record, "data": facts} for record in records]  # results and divergence records alike
    q_bound = tc.q_bound_factor * max(max_abs_reward, 1e-3) / (1.0 - shared.gamma)
    gens = [torch.Generator(device=algo.device).manual_seed(s) for s in seeds]
    batch_size = shared.batch_size
    ckpt_paths = [run / CHECKPOINT for run in runs]
    step = resume_members(algo, runs, states, ckpt_paths, identities, gens)
    hooks = []
    for m, (seed, settings, run, record) in enumerate(zip(seeds, swept, runs, records)):
        wandb_args = None
        if tc.wandb:
            wandb_args = {"project": tc.wandb_project, "group": f"{algo_name}-{name}",
                          "name": default_run_dir(algo_name, name, seed, settings).name, "config": record, "dir": str(run)}
        logger = RunLogger(run / "log.jsonl", wandb_args)
        hooks.append(_OfflineHooks(algo, m, task, tc, logger, read_evals(run / "log.jsonl"), ckpt_paths[m], gens[m],
                                   identities[m], step, rewards_as_trained, shared.gamma))
    schedule = Schedule(tc.steps, tc.log_every, tc.eval_every, tc.checkpoint_every)
    guard = DivergenceGuard(ckpt_paths, q_bound, labels=labels)
    bar = None
    if progress:
        from tqdm import tqdm

        label = f"{algo_name} {name}" + (f" {len(seeds)} members" if len(set(labels)) > len(set(seeds)) else
                                         f" seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else "")
        bar = hooks[0].bar = tqdm(total=tc.steps, initial=step, desc=label, unit="upd", dynamic_ncols=True)
    active = list(range(len(seeds)))  # the members still training (indices into seeds, runs, hooks)
    diverged: dict[int, dict[str, Any]] = {}
    try:
        while True:
            members = _Members([hooks[i] for i in active])
            if algo.members:
                member_gens = [gens[i] for i in active]
                next_batch = lambda _: data.sample_members(batch_size, member_gens)  # noqa: E731
            else:
                next_batch = lambda _: data.sample(batch_size, gens[0])  # noqa: E731
            try:
                step = run_loop(algo, next_batch, step, schedule, members, guard, bar, tc.precision)
                break
            except DivergenceError as e:
                if not e.members:
                    raise
                if len(e.members) == len(active):  # every member is lost: record each, then stop
                    _record_divergence(e, active, runs, records, diverged)
                    raise
                algo, active, guard, values = _drop_diverged(e, algo, active, seeds, labels, runs, records, hooks,
                                                             ckpt_paths, q_bound, diverged)
                step = e.step
                members = _Members([hooks[i] for i in active])
                # What was due at that step, for the members that go on (their checks passed again).
                if values is not None and step % schedule.log_every == 0:
                    members.log(step, values)
                if step % schedule.eval_every == 0 or step == schedule.total_steps:
                    members.evaluate(step)
                if step % schedule.checkpoint_every == 0 or step == schedule.total_steps:
                    members.checkpoint(step)
    finally:
        if bar:
            bar.close()
        for h in hooks:
            h.logger.close()
    return [diverged[i] if i in diverged else write_result(runs[i], records[i], hooks[i].history, step)
            for i in range(len(seeds))]


def data_facts(dataset: OfflineDataset, task: Any, trained_rewards: torch.Tensor, gamma: float) -> dict[str, Any]:
    """What a result compares itself with (the benchmark's data column and validity checks): the
    normalized score of the data's own protocol episodes (None where it means nothing, see the
    data card), and the mean Monte-Carlo return-to-go of the data's transitions in the rewards
    the critics learn (rescaled as trained) with the run's discount, the yardstick of Q-values."""
    from d4rl_lite.datasets.card import compute_card

    normalized = compute_card(dataset, task).get("normalized_return")
    returns, complete = dataset.discounted_returns(gamma, trained_rewards.detach().cpu().numpy())
    return {"normalized_return": normalized["mean"] if normalized else None,
            "mc_return": float(returns[complete].mean()) if complete.any() else None}


def _record_divergence(error, active, runs, records, diverged) -> None:
    """Write diverged.json for each member ``error`` names: its record, the error, the step and,
    when the metrics tripped the guard, their values then (a naive run's Q at divergence is what
    the validity report's over-estimation check reads)."""
    for index, message in zip(error.members, error.messages):
        lost = active[index]
        at = None if error.values is None else {k: v for k, v in error.values[index].items() if math.isfinite(v)}
        diverged[lost] = {**records[lost], "run_dir": str(runs[lost]), "diverged": message, "steps": error.step,
                          **({"at_divergence": at} if at is not None else {})}
        write_record(runs[lost] / DIVERGED, diverged[lost])


def _drop_diverged(error, algo, active, seeds, labels, runs, records, hooks, ckpt_paths, q_bound, diverged):
    """Stop the members ``error`` names (each keeps its last good checkpoint and gets diverged.json)
    and check the others again at that step, dropping any that diverged in the same interval.
    Returns (the smaller population, the members still active, their guard, their metrics at
    that step or None)."""
    values = error.values
    while True:
        _record_divergence(error, active, runs, records, diverged)
        print("\n".join(f"d4rl-lite: {message} The other members go on." for message in error.messages), file=sys.stderr)
        keep = [j for j in range(len(active)) if j not in error.members]
        values = None if values is None else [values[j] for j in keep]
        active = [active[j] for j in keep]
        algo = drop_members(algo, error.members, [seeds[i] for i in active])
        for index, i in enumerate(active):
            hooks[i].algo, hooks[i].member = algo, index
        guard = DivergenceGuard([ckpt_paths[i] for i in active], q_bound, labels=[labels[i] for i in active])
        try:
            if values is not None:
                guard.check_metrics(values, error.step)
            guard.check_weights(algo, error.step)
            return algo, active, guard, values
        except DivergenceError as again:
            if len(again.members) == len(active):
                raise
            error = DivergenceError(str(again), again.members, error.step, again.messages)


class _Members:
    """The loop's hooks for a population: each member's own hooks, called in turn."""

    def __init__(self, hooks: list[_OfflineHooks]):
        self.hooks = hooks

    def log(self, step: int, values: list[dict[str, float]]) -> None:
        for hook, member_values in zip(self.hooks, values):
            hook.log(step, member_values)

    def evaluate(self, step: int) -> None:
        algo = self.hooks[0].algo
        if getattr(algo, "members", 0) > 1:  # every member's episodes at once, one policy call per step
            from d4rl_lite.evaluation.evaluate import evaluate_population

            results = evaluate_population(self.hooks[0].task, algo, episodes=self.hooks[0].tc.eval_episodes,
                                          gamma=self.hooks[0].gamma)
            for hook, result in zip(self.hooks, results):
                hook.record_evaluation(step, result)
        else:
            for hook in self.hooks:
                hook.evaluate(step)

    def checkpoint(self, step: int) -> None:
        for hook in self.hooks:
            hook.checkpoint(step)


class _OfflineHooks:
    """What offline training adds to the loop: JSONL/W&B log lines, evaluations with the task's
    protocol (kept as ``history`` for the result), and exact-resume checkpoints. An evaluation also
    logs, for an algorithm with Q critics, the critic's value at the episodes' first states
    (``eval/predicted_value``) next to their discounted return in the rewards it learns
    (``eval/discounted_return``): the over-estimation check compares the two, as the CQL paper does."""

    def __init__(self, algo, member: int, task, tc: TrainConfig, logger: RunLogger, history: list[dict[str, Any]],
                 ckpt_path: Path, gen: torch.Generator, identity: str, start_step: int,
                 rewards_as_trained: RewardTransform, gamma: float):
        self.algo, self.member, self.task, self.tc, self.logger, self.history = algo, member, task, tc, logger, history
        self.rewards_as_trained = rewards_as_trained
        self.gamma = gamma if getattr(algo, "critic", None) is not None else None  # None: no value to compare
        self.ckpt_path, self.gen, self.identity = ckpt_path, gen, identity
        self.bar: Any = None
        self._clock = (time.perf_counter(), start_step)  # (time, step) of the last log line or evaluation

    def log(self, step: int, values: dict[str, float]) -> None:
        now, (then, step_then) = time.perf_counter(), self._clock
        values["time/updates_per_s"] = (step - step_then) / max(now - then, 1e-9)
        self._clock = (now, step)
        self.logger.log(step, values)
        if self.bar is not None:
            last = self.history[-1].get("eval/normalized_score") if self.history else None
            self.bar.set_postfix_str(f"{values['time/updates_per_s']:.0f} upd/s"
                                     + (f", score {last:.1f}" if last is not None else ""))

    def evaluate(self, step: int) -> None:
        from d4rl_lite.evaluation.evaluate import evaluate

        self.record_evaluation(step, evaluate(self.task, self.algo.member_policy(self.member), episodes=self.tc.eval_episodes,
                                              gamma=self.gamma))

    def record_evaluation(self, step: int, result: Any) -> None:
        ev = {"eval/return_mean": float(result.returns.mean()), "eval/return_std": float(result.returns.std())}
        try:
            ev["eval/normalized_score"] = float(self.task.normalized_score(result.returns.mean()))
        except ReferenceScoreUnavailable:
            pass
        if result.successes is not None:
            ev["eval/success_rate"] = float(result.successes.mean())
        if result.discounted_returns is not None:
            predicted = self.algo.predicted_values(result.start_observations, self.member)
            ev["eval/predicted_value"] = float(predicted.mean())
            ev["eval/discounted_return"] = float(self.rewards_as_trained.discounted(
                result.discounted_returns, result.lengths, self.gamma).mean())
        self.logger.log(step, ev)
        self.history.append({"step": step, **ev})
        if self.bar is not None and "eval/normalized_score" in ev:
            self.bar.set_postfix_str(f"score {ev['eval/normalized_score']:.1f}")
        self._clock = (time.perf_counter(), step)  # evaluation time is not update time

    def checkpoint(self, step: int) -> None:
        save_checkpoint(self.ckpt_path, self.algo, self.member, self.gen, step, self.identity)


