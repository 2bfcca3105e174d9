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
import time
from dataclasses import asdict, dataclass
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
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.base import make_config

    tc = train_config or TrainConfig()
    tc.validate()
    cls = get_algorithm(algo_name)
    algo_cfg = make_config(cls.Config, algo_overrides)
    task = get_task(dataset.metadata["task"])
    name = dataset.metadata.get("name", "dataset")
    run = Path(run_dir) if run_dir else default_run_dir(algo_name, name, tc.seed)
    config_record = {"algorithm": algo_name, "dataset": name, "task": task.name, "dataset_checksum": dataset.metadata.get("checksum"),
                     "dataset_size": dataset.num_transitions, "train": asdict(tc), "algo": asdict(algo_cfg)}
    # Everything that can fail on a bad setting (device, sizes) fails before the run directory is touched.
    if cls.supports_population:  # a solo run is a population of one (it is then exactly any population's member)
        algo = cls.population(task.observation_dim, task.action_dim, algo_cfg, [tc.seed], device=tc.device)
    else:
        algo = cls(task.observation_dim, task.action_dim, algo_cfg, device=tc.device, seed=tc.seed)
    run.mkdir(parents=True, exist_ok=True)
    lock = RunDirLock(run)
    lock.acquire()
    try:
        return _train_locked(algo_name, algo, algo_cfg, task, name, dataset, tc, run, config_record, progress)
    finally:
        lock.release()


def _train_locked(algo_name, algo, algo_cfg, task, name, dataset, tc, run, config_record, progress):
    identity = _check_same_run(run, config_record)
    data, max_abs_reward = prepare_data(dataset, algo)
    shared = training_settings(algo_cfg)
    q_bound = tc.q_bound_factor * max(max_abs_reward, 1e-3) / (1.0 - shared.gamma)
    gen = torch.Generator(device=algo.device).manual_seed(tc.seed)
    batch_size = shared.batch_size

    step = 0
    ckpt_path = run / CHECKPOINT
    if (run / "checkpoint.pt").exists() and not ckpt_path.exists():
        raise D4RLLiteError(f"{run} holds a pickle checkpoint (checkpoint.pt) from an older d4rl-lite, which is not "
                            "read (a pickle can run code when loaded); train into a new --run-dir")
    if ckpt_path.exists():
        state = load_state(ckpt_path, map_location=algo.device)
        _check_identity(state, identity, ckpt_path)
        drawn_on = state.get("generator_device", "cpu")
        if drawn_on != algo.device.type:  # a CPU and a CUDA generator are different streams
            raise D4RLLiteError(f"{ckpt_path}: this run drew its batches on {drawn_on} and cannot continue exactly "
                                f"on {algo.device.type}; continue it with --device {drawn_on}")
        if algo.members:
            load_member_state_dicts(algo, [state["algo"]])
            # A checkpoint written before runs were populations of one kept the stream in torch_rng.
            algo.noise.generators[0].set_state(state.get("member_rng", state["torch_rng"]).cpu())
        else:
            algo.load_state_dict(state["algo"])
        gen.set_state(state["generator"].cpu())  # generator states are CPU byte tensors on every device
        torch.set_rng_state(state["torch_rng"].cpu())
        if torch.cuda.is_available() and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda_rng"]])
        step = state["step"]
        truncate_log(run / "log.jsonl", step)
    elif (run / "log.jsonl").exists():
        truncate_log(run / "log.jsonl", 0)  # lines of a run killed before its first checkpoint
    wandb_args = None
    if tc.wandb:
        wandb_args = {"project": tc.wandb_project, "group": f"{algo_name}-{name}", "name": f"{algo_name}-{name}-seed{tc.seed}",
                      "config": config_record, "dir": str(run)}
    logger = RunLogger(run / "log.jsonl", wandb_args)
    hooks = _OfflineHooks(algo, task, tc, logger, _read_evals(run / "log.jsonl"), ckpt_path, gen, identity, step)
    schedule = Schedule(tc.steps, tc.log_every, tc.eval_every, tc.checkpoint_every)
    guard = DivergenceGuard(ckpt_path, q_bound)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = hooks.bar = tqdm(total=tc.steps, initial=step, desc=f"{algo_name} {name}", unit="upd", dynamic_ncols=True)
    try:
        next_batch = (lambda _: data.sample_members(batch_size, [gen])) if algo.members else (lambda _: data.sample(batch_size, gen))
        step = run_loop(algo, next_batch, step, schedule, hooks, guard, bar)
    finally:
        if bar:
            bar.close()
        logger.close()
    history = hooks.history
    final = history[-1] if history else {}
    key = "eval/normalized_score" if final and "eval/normalized_score" in final else "eval/return_mean"
    best = max(history, key=lambda h: h[key]) if history else {}
    if final and not math.isfinite(final.get(key, float("nan"))):
        raise DivergenceError(f"training ended with a non-finite score ({key} = {final.get(key)}); no result written. "
                              "Lower the learning rate or check the dataset.")
    record = {**config_record, "run_dir": str(run), "steps": step, "final": final, "best": best,
              "curve": [{"step": h["step"], key: h[key]} for h in history]}
    write_record(run / RESULT, record)
    return read_record(run / RESULT, "result")


class _OfflineHooks:
    """What offline training adds to the loop: JSONL/W&B log lines, evaluations with the task's
    protocol (kept as ``history`` for the result), and exact-resume checkpoints."""

    def __init__(self, algo, task, tc: TrainConfig, logger: RunLogger, history: list[dict[str, Any]], ckpt_path: Path,
                 gen: torch.Generator, identity: str, start_step: int):
        self.algo, self.task, self.tc, self.logger, self.history = algo, task, tc, logger, history
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

        result = evaluate(self.task, self.algo.member_policy(0), episodes=self.tc.eval_episodes)
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
        _save_checkpoint(self.ckpt_path, self.algo, self.gen, step, self.identity)


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


def _save_checkpoint(path: Path, algo: Any, gen: torch.Generator, step: int, identity: str) -> None:
    """The run's exact-resume state. A population of one saves its member's state in the solo layout
    (``algorithms/population.py``) and the member's random stream as ``member_rng``."""
    from d4rl_lite.algorithms.population import member_state_dict

    state = {"algo": member_state_dict(algo, 0) if algo.members else algo.state_dict(), "generator": gen.get_state(),
             "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, "step": step,
             "identity": identity, "generator_device": gen.device.type}
    if algo.members:
        state["member_rng"] = algo.noise.generators[0].get_state()
    save_state(path, state)


def _read_evals(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    from d4rl_lite.training.logging import read_log

    return [r for r in read_log(path) if "eval/return_mean" in r]

