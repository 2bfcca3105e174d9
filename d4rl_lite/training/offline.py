"""Offline training: an algorithm on a fixed dataset, through the one training loop (``loop.py``).

A run directory holds config.json (the run's identity), checkpoint.safetensors, log.jsonl and,
at the end, result.json. Exact resume: a checkpoint holds the algorithm (weights, optimizers, its step), the batch
sampler's generator, torch's global RNG and the step; the JSONL log is cut back to the
checkpoint's step on resume. Killing a run anywhere and re-running the same command gives the
same final weights as an uninterrupted run (bit for bit on CPU).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from d4rl_lite.algorithms.base import training_settings
from d4rl_lite.algorithms.population import load_member_state_dicts
from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.errors import D4RLLiteError, ReferenceScoreUnavailable
from d4rl_lite.files import load_state, read_record, save_state, write_record
from d4rl_lite.locking import RunDirLock
from d4rl_lite.training.logging import RunLogger, truncate_log
from d4rl_lite.training.loop import DivergenceError, DivergenceGuard, Schedule, run_loop
from d4rl_lite.tasks import get_task

CHECKPOINT = "checkpoint.safetensors"
RESULT = "result.json"
DIVERGED = "diverged.json"  # a population member that diverged (the others went on): its error and step
CONFIG = "config.json"
# Settings that do not change what a run computes: a run may be continued with other values.
NOT_IDENTITY = ("steps", "wandb", "wandb_project", "device")


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


def prepare_data(dataset: OfflineDataset, algo: Any) -> tuple[Any, float]:
    """Tensors on the algorithm's device, normalized as its config asks; returns (data, max |reward|)."""
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
    if cfg.normalize_reward:  # IQL on locomotion: returns spread over 1000
        t["rewards"] = t["rewards"] * dataset.return_range_scale(1000.0)
    scale, bias = cfg.reward_scale, cfg.reward_bias
    if scale != 1.0 or bias != 0.0:
        t["rewards"] = t["rewards"] * scale + bias
    return data, float(t["rewards"].abs().max())


def default_run_dir(algo: str, dataset_name: str, seed: int) -> Path:
    return Path("runs") / f"{algo}-{dataset_name}-seed{seed}"


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
) -> list[dict[str, Any]]:
    """Train one run per seed of ``seeds`` together, as one population (``OfflineAlgorithm.population``).

    Each member writes the run directory, checkpoints, log and result its solo run (``train`` with
    its seed) writes, and ends with the same weights (within float rounding of batched products);
    a killed population resumes from its members' checkpoints. ``run_dirs``: one per seed (default
    ``runs/ALGO-DATASET-seedS``). Returns the members' final records, in the order of ``seeds``.
    """
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.base import make_config

    tc = train_config or TrainConfig()
    tc.validate()
    seeds = [tc.seed] if seeds is None else [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds must be distinct whole numbers >= 0, got {seeds}")
    cls = get_algorithm(algo_name)
    if len(seeds) > 1 and not cls.supports_population:
        raise ValueError(f"{algo_name} does not train as a population; train its seeds one at a time (--seed)")
    algo_cfg = make_config(cls.Config, algo_overrides)
    task = get_task(dataset.metadata["task"])
    name = dataset.metadata.get("name", "dataset")
    if run_dirs is not None and len(run_dirs) != len(seeds):
        raise ValueError(f"{len(run_dirs)} run directories for {len(seeds)} seeds")
    runs = [Path(d) for d in run_dirs] if run_dirs else [default_run_dir(algo_name, name, s) for s in seeds]
    if len(set(runs)) != len(runs):
        raise ValueError("every member of a population needs its own run directory")
    stopped_at = [load_state(run / CHECKPOINT)["step"] if (run / CHECKPOINT).is_file() else 0 for run in runs]
    if len(set(stopped_at)) > 1:
        # Members that stopped at different steps (some trained alone before, or a kill between two
        # members' checkpoint writes) continue as one population per step: each still ends exactly
        # as its solo run would.
        groups: dict[int, list[int]] = {}
        for i, at in enumerate(stopped_at):
            groups.setdefault(at, []).append(i)
        print("d4rl-lite: these runs stopped at different steps ("
              + ", ".join(f"seed {seeds[i]}: step {at:,}" for i, at in enumerate(stopped_at))
              + f"); they continue as {len(groups)} populations, one after the other", file=sys.stderr)
        results: list[dict[str, Any]] = [{} for _ in seeds]
        for members in groups.values():
            done = train_population(algo_name, dataset, tc, algo_overrides, [seeds[i] for i in members],
                                    [runs[i] for i in members], progress)
            for i, record in zip(members, done):
                results[i] = record
        return results
    records = [{"algorithm": algo_name, "dataset": name, "task": task.name, "dataset_checksum": dataset.metadata.get("checksum"),
                "dataset_size": dataset.num_transitions, "train": asdict(replace(tc, seed=s)), "algo": asdict(algo_cfg)}
               for s in seeds]
    # Everything that can fail on a bad setting (device, sizes) fails before a run directory is touched.
    if cls.supports_population:  # a solo run is a population of one: exactly what it would be in any population
        algo = cls.population(task.observation_dim, task.action_dim, algo_cfg, seeds, device=tc.device)
    else:
        algo = cls(task.observation_dim, task.action_dim, algo_cfg, device=tc.device, seed=seeds[0])
    locks = []
    try:
        for run in runs:
            run.mkdir(parents=True, exist_ok=True)
            locks.append(RunDirLock(run))
            locks[-1].acquire()
        return _train_locked(algo_name, algo, algo_cfg, task, name, dataset, tc, seeds, runs, records, progress)
    finally:
        for lock in locks:
            lock.release()


def _train_locked(algo_name, algo, algo_cfg, task, name, dataset, tc, seeds, runs, records, progress):
    identities = [_check_same_run(run, record) for run, record in zip(runs, records)]
    data, max_abs_reward = prepare_data(dataset, algo)
    shared = training_settings(algo_cfg)
    q_bound = tc.q_bound_factor * max(max_abs_reward, 1e-3) / (1.0 - shared.gamma)
    gens = [torch.Generator(device=algo.device).manual_seed(s) for s in seeds]
    batch_size = shared.batch_size
    ckpt_paths = [run / CHECKPOINT for run in runs]
    step = _resume(algo, runs, ckpt_paths, identities, gens)
    hooks = []
    for m, (seed, run, record) in enumerate(zip(seeds, runs, records)):
        wandb_args = None
        if tc.wandb:
            wandb_args = {"project": tc.wandb_project, "group": f"{algo_name}-{name}",
                          "name": f"{algo_name}-{name}-seed{seed}", "config": record, "dir": str(run)}
        logger = RunLogger(run / "log.jsonl", wandb_args)
        hooks.append(_OfflineHooks(algo, m, task, tc, logger, _read_evals(run / "log.jsonl"), ckpt_paths[m], gens[m],
                                   identities[m], step))
    schedule = Schedule(tc.steps, tc.log_every, tc.eval_every, tc.checkpoint_every)
    guard = DivergenceGuard(ckpt_paths, q_bound, labels=[f"seed {s}" for s in seeds])
    bar = None
    if progress:
        from tqdm import tqdm

        label = f"{algo_name} {name}" + (f" seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else "")
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
                if e.member is None or len(active) == 1:
                    raise
                # One member diverged: it stops (its last good checkpoint stays), the others go on.
                lost = active.pop(e.member)
                diverged[lost] = {**records[lost], "run_dir": str(runs[lost]), "diverged": str(e), "steps": e.step}
                write_record(runs[lost] / DIVERGED, diverged[lost])
                print(f"d4rl-lite: {e} The other members go on.", file=sys.stderr)
                algo = _without_member(algo, e.member, [seeds[i] for i in active])
                for index, i in enumerate(active):
                    hooks[i].algo, hooks[i].member = algo, index
                guard = DivergenceGuard([ckpt_paths[i] for i in active], q_bound, labels=[f"seed {seeds[i]}" for i in active])
                step = e.step
                members = _Members([hooks[i] for i in active])
                if step % schedule.eval_every == 0 or step == schedule.total_steps:  # what was due at that step
                    members.evaluate(step)
                if step % schedule.checkpoint_every == 0 or step == schedule.total_steps:
                    members.checkpoint(step)
    finally:
        if bar:
            bar.close()
        for h in hooks:
            h.logger.close()
    return [diverged[i] if i in diverged else _write_result(runs[i], records[i], hooks[i].history, step)
            for i in range(len(seeds))]


def _without_member(algo: Any, lost: int, seeds: list[int]) -> Any:
    """The population ``algo`` without member ``lost``: the others' weights, optimizer states and
    random streams, exactly as they are."""
    from d4rl_lite.algorithms.population import member_state_dict

    keep = [m for m in range(algo.members) if m != lost]
    global_rng = torch.get_rng_state()  # building networks draws from it; evaluations use it
    smaller = type(algo).population(algo.obs_dim, algo.act_dim, algo.config, seeds, device=algo.device)
    torch.set_rng_state(global_rng)
    load_member_state_dicts(smaller, [member_state_dict(algo, m) for m in keep])
    for generator, m in zip(smaller.noise.generators, keep):
        generator.set_state(algo.noise.generators[m].get_state())
    return smaller


def _resume(algo: Any, runs: list[Path], ckpt_paths: list[Path], identities: list[str], gens: list[torch.Generator]) -> int:
    """Load the members' checkpoints (all or none; at one step); returns the step to continue from."""
    for run, ckpt in zip(runs, ckpt_paths):
        if (run / "checkpoint.pt").exists() and not ckpt.exists():
            raise D4RLLiteError(f"{run} holds a pickle checkpoint (checkpoint.pt) from an older d4rl-lite, which is not "
                                "read (a pickle can run code when loaded); train into a new --run-dir")
    found = [ckpt.exists() for ckpt in ckpt_paths]
    if not any(found):
        for run in runs:
            if (run / "log.jsonl").exists():
                truncate_log(run / "log.jsonl", 0)  # lines of a run killed before its first checkpoint
        return 0
    states = [load_state(ckpt, map_location=algo.device) if ok else None for ckpt, ok in zip(ckpt_paths, found)]
    steps = sorted({s["step"] if s else 0 for s in states})
    if len(steps) > 1:  # train_population groups members by step before they get here
        raise D4RLLiteError(f"members at different steps {steps} cannot continue as one population")
    for state, identity, ckpt, gen in zip(states, identities, ckpt_paths, gens):
        _check_identity(state, identity, ckpt)
        drawn_on = state.get("generator_device", "cpu")
        if drawn_on != algo.device.type:  # a CPU and a CUDA generator are different streams
            raise D4RLLiteError(f"{ckpt}: this run drew its batches on {drawn_on} and cannot continue exactly "
                                f"on {algo.device.type}; continue it with --device {drawn_on}")
        gen.set_state(state["generator"].cpu())  # generator states are CPU byte tensors on every device
    if algo.members:
        load_member_state_dicts(algo, [s["algo"] for s in states])
        for generator, state in zip(algo.noise.generators, states):
            # A checkpoint written before runs were populations of one kept the stream in torch_rng.
            generator.set_state(state.get("member_rng", state["torch_rng"]).cpu())
    else:
        algo.load_state_dict(states[0]["algo"])
    torch.set_rng_state(states[0]["torch_rng"].cpu())
    if torch.cuda.is_available() and states[0].get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all([t.cpu() for t in states[0]["cuda_rng"]])
    for run in runs:
        truncate_log(run / "log.jsonl", steps[0])
    return steps[0]


def _write_result(run: Path, record: dict[str, Any], history: list[dict[str, Any]], step: int) -> dict[str, Any]:
    final = history[-1] if history else {}
    key = "eval/normalized_score" if final and "eval/normalized_score" in final else "eval/return_mean"
    best = max(history, key=lambda h: h[key]) if history else {}
    if final and not math.isfinite(final.get(key, float("nan"))):
        raise DivergenceError(f"training ended with a non-finite score ({key} = {final.get(key)}); no result written. "
                              "Lower the learning rate or check the dataset.")
    result = {**record, "run_dir": str(run), "steps": step, "final": final, "best": best,
              "curve": [{"step": h["step"], key: h[key]} for h in history]}
    write_record(run / RESULT, result)
    return read_record(run / RESULT, "result")


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

            results = evaluate_population(self.hooks[0].task, algo, episodes=self.hooks[0].tc.eval_episodes)
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
    protocol (kept as ``history`` for the result), and exact-resume checkpoints."""

    def __init__(self, algo, member: int, task, tc: TrainConfig, logger: RunLogger, history: list[dict[str, Any]],
                 ckpt_path: Path, gen: torch.Generator, identity: str, start_step: int):
        self.algo, self.member, self.task, self.tc, self.logger, self.history = algo, member, task, tc, logger, history
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

        self.record_evaluation(step, evaluate(self.task, self.algo.member_policy(self.member), episodes=self.tc.eval_episodes))

    def record_evaluation(self, step: int, result: Any) -> None:
        ev = {"eval/return_mean": float(result.returns.mean()), "eval/return_std": float(result.returns.std())}
        try:
            ev["eval/normalized_score"] = float(self.task.normalized_score(result.returns.mean()))
        except ReferenceScoreUnavailable:
            pass
        if result.successes is not None:
            ev["eval/success_rate"] = float(result.successes.mean())
        self.logger.log(step, ev)
        self.history.append({"step": step, **ev})
        if self.bar is not None and "eval/normalized_score" in ev:
            self.bar.set_postfix_str(f"score {ev['eval/normalized_score']:.1f}")
        self._clock = (time.perf_counter(), step)  # evaluation time is not update time

    def checkpoint(self, step: int) -> None:
        _save_checkpoint(self.ckpt_path, self.algo, self.member, self.gen, step, self.identity)


def run_identity(record: dict[str, Any]) -> str:
    """What makes two runs the same run: everything in the config record but the NOT_IDENTITY settings."""
    import hashlib

    plain = {k: v for k, v in json.loads(json.dumps(record)).items() if k not in ("run_uid", "checksum")}
    plain["train"] = {k: v for k, v in plain["train"].items() if k not in NOT_IDENTITY}
    return "sha256:" + hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def _check_same_run(run: Path, record: dict[str, Any]) -> str:
    """A run directory belongs to one configuration: resuming with another would mix two runs.

    Returns the run's identity for its checkpoints: the settings' hash and the run's own random
    id (two runs of the same settings are still two runs: their checkpoints are not interchangeable).
    """
    import uuid

    path = run / CONFIG
    uid = uuid.uuid4().hex
    if path.exists():
        old = read_record(path, "run config")
        if run_identity(old) != run_identity(record):
            raise ValueError(f"{run} holds a run with another configuration; use another --run-dir or delete it")
        uid = str(old.get("run_uid", ""))
    write_record(path, {**record, "run_uid": uid})  # the latest steps/device/wandb, same identity
    return checkpoint_identity({**record, "run_uid": uid})


def checkpoint_identity(config: dict[str, Any]) -> str:
    return f"{run_identity(config)}/run:{config.get('run_uid', '')}"


def _check_identity(state: dict[str, Any], identity: str, path: Path) -> None:
    if state.get("identity") != identity:
        raise D4RLLiteError(f"{path}: this checkpoint belongs to another run (other algorithm, dataset or settings) "
                            "than its directory's config.json; it is not used. Delete the run directory and train again.")


def _save_checkpoint(path: Path, algo: Any, member: int, gen: torch.Generator, step: int, identity: str) -> None:
    """A run's exact-resume state. A population's member saves its state in the solo layout
    (``algorithms/population.py``) and its random stream as ``member_rng``."""
    from d4rl_lite.algorithms.population import member_state_dict

    state = {"algo": member_state_dict(algo, member) if algo.members else algo.state_dict(), "generator": gen.get_state(),
             "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, "step": step,
             "identity": identity, "generator_device": gen.device.type}
    if algo.members:
        state["member_rng"] = algo.noise.generators[member].get_state()
    save_state(path, state)


def _read_evals(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    from d4rl_lite.training.logging import read_log

    return [r for r in read_log(path) if "eval/return_mean" in r]

