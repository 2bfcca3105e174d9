"""Online SAC training of behaviour policies, with a ladder of evaluated checkpoints and resume.

Runs through the one training loop (``training/loop.py``) with online experience
(``training/online.py``).

A run directory holds everything a run needs to continue after a kill:

    latest.safetensors    SAC weights + optimizers, step, RNG states (verified, written atomically)
    log.jsonl             SAC's metrics at every checkpoint
    replay/chunk_*.npz    the replay buffer, appended chunk by chunk (the real experience, in
                          order: the source of ``medium-replay``)
    ladder/step_*.safetensors   actor weights every ``ladder_every`` steps
    ladder.json           each ladder entry with its evaluated returns
    curve.csv, curve.png  the training curve
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4rl_lite.algorithms.settings import make_config
from d4rl_lite.algorithms.sac import SAC, SACConfig
from d4rl_lite.evaluation.evaluate import evaluate
from d4rl_lite.errors import D4RLLiteError, UserInputError
from d4rl_lite.files import load_state, save_state
from d4rl_lite.locking import RunDirLock
from d4rl_lite.tasks import Task, get_task
from d4rl_lite.training.logging import RunLogger, truncate_log
from d4rl_lite.training.loop import DivergenceGuard, Schedule, run_loop
from d4rl_lite.training.online import OnlineExperience, ReplayBuffer
from d4rl_lite.training.run_files import checked_step
from d4rl_lite.schema import Range, read_checked_json

LATEST = "latest.safetensors"
# Behaviour-training evaluations use their own seeds, apart from the benchmark's.
BEHAVIOR_EVAL_SEED = 2_000_000
CURVE_FIELDS = ["step", "wall_time_s", "updates_per_s", "eval_det_mean", "eval_det_std", "eval_sto_mean",
                "eval_sto_std", "train_return_last10", "alpha", "q_mean", "critic_loss"]


@dataclass
class BehaviorConfig:
    total_steps: int = 1_000_000
    start_steps: int = 10_000  # uniform random actions before learning starts
    eval_every: int = 10_000
    ladder_every: int = 50_000
    checkpoint_every: int = 10_000
    eval_episodes: int = 10
    seed: int = 0
    threads: int = 1
    sac: SACConfig = field(default_factory=SACConfig)

    def __post_init__(self) -> None:
        if isinstance(self.sac, dict):  # from a run's config.json (older runs use older setting names)
            self.sac = make_config(SACConfig, self.sac)
        for name in ("eval_every", "ladder_every"):
            if getattr(self, name) % self.checkpoint_every:
                raise UserInputError(f"{name} ({getattr(self, name)}) must be a multiple of checkpoint_every ({self.checkpoint_every})")
        if self.ladder_every % self.eval_every:  # a ladder entry records its step's evaluation
            raise UserInputError(f"ladder_every ({self.ladder_every}) must be a multiple of eval_every ({self.eval_every})")


def read_run_config(run: Path) -> tuple[str, dict[str, Any]]:
    """A behaviour run's config.json: its task, and the rest as ``BehaviorConfig`` arguments."""
    counts = {f.name: Range(int, 0 if f.name in ("start_steps", "seed") else 1) for f in fields(BehaviorConfig)}
    spec = {"task": str, "sac": dict, **{f"{name}?": c for name, c in counts.items() if name != "sac"}}
    saved = read_checked_json(run / "config.json", spec, "behaviour run config", "Delete the run directory and train again.")
    unknown = sorted(set(saved) - set(counts) - {"task"})
    if unknown:
        raise D4RLLiteError(f"{run / 'config.json'}: behaviour run config has settings this version does not know "
                            f"({', '.join(unknown)}); train it with the version that wrote it, or delete it")
    return saved["task"], {k: v for k, v in saved.items() if k != "task"}


def default_run_dir(task: str, seed: int) -> Path:
    """Outside the work tree, so runs survive a fresh checkout: $D4RL_LITE_RUNS or ~/.cache/d4rl_lite/runs."""
    base = Path(os.environ.get("D4RL_LITE_RUNS") or Path.home() / ".cache" / "d4rl_lite" / "runs")
    return base / f"behavior-{task}-seed{seed}"


def actor_policy(sac: SAC, deterministic: bool, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    gen = torch.Generator().manual_seed(seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        return sac.sample_action(torch.from_numpy(obs), deterministic=deterministic, generator=gen).numpy()

    return policy


def train_behavior(task_name: str, run_dir: str | Path | None = None, config: BehaviorConfig | None = None,
                   log: Callable[[str], None] = print) -> Path:
    """Train (or resume) a SAC behaviour policy for ``task_name``; return the run directory.

    The run goes through the one training loop (``training/loop.py``) with online experience
    (``training/online.py``): one environment step, then one SAC update, per step.
    """
    task: Task = get_task(task_name)
    if task.domain not in ("locomotion", "skill"):
        raise UserInputError(f"behaviour policies are trained for locomotion and skill tasks; {task_name!r} is a {task.domain} task")
    cfg = config or BehaviorConfig()
    run = Path(run_dir) if run_dir else default_run_dir(task_name, cfg.seed)
    run.mkdir(parents=True, exist_ok=True)
    lock = RunDirLock(run)
    lock.acquire()
    try:
        return _train_locked(task, run, cfg, log)
    finally:
        lock.release()


def _train_locked(task: Task, run: Path, cfg: BehaviorConfig, log: Callable[[str], None]) -> Path:
    config_file = run / "config.json"
    if config_file.exists():
        saved_task, saved = read_run_config(run)
        if saved_task != task.name:
            raise UserInputError(f"{run} holds a run of another task; pick another run directory")
        # A resumed run may be extended, and may run on another number of threads (the machine's
        # business; on CPU the thread count can change float summation order, not the algorithm).
        cfg = BehaviorConfig(**{**saved, "total_steps": cfg.total_steps, "threads": cfg.threads})
    else:
        config_file.write_text(json.dumps({**asdict(cfg), "task": task.name}, indent=2))
    torch.set_num_threads(cfg.threads)

    sac = SAC(task.observation_dim, task.action_dim, cfg.sac, device="cpu", seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    replay_offset = 0  # the global step of the replay buffer's first transition
    latest = run / LATEST
    if (run / "latest.pt").exists() and not latest.exists():
        raise D4RLLiteError(f"{run} holds latest.pt, a pickle checkpoint from an older d4rl-lite, which is not read (a "
                            "pickle can run code); delete it to continue from the run's weights snapshot")
    if latest.exists():
        state = load_state(latest)
        sac.load_state_dict(state["sac"])
        step = checked_step(state.get("step"), latest)
        gen.set_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
        replay_offset = state.get("replay_offset", 0)
        log(f"resumed {task.name} at step {step:,} from {run}")
    elif (run / SNAPSHOT_WEIGHTS).exists():
        # Warm restart from a committed snapshot (a fresh machine): weights only; optimizers start
        # afresh and the replay buffer refills with the current policy before updates resume.
        from safetensors.torch import load_file

        weights = load_file(str(run / SNAPSHOT_WEIGHTS))
        for name in ("actor", "critic", "critic_target"):
            getattr(sac, name).load_state_dict({k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith(name + ".")})
        with torch.no_grad():
            sac.log_alpha.copy_(weights["log_alpha"])
        info = read_checked_json(run / SNAPSHOT_INFO, SNAPSHOT_SPEC, "snapshot info", "Restore it with the snapshot's weights.")
        step = replay_offset = checked_step(info["step"], run / SNAPSHOT_INFO)
        log(f"warm restart of {task.name} at step {step:,} from the snapshot in {run} (replay buffer refills first)")
    replay = ReplayBuffer(cfg.total_steps - replay_offset, task.observation_dim, task.action_dim)
    if latest.exists():
        replay.load_chunks(run / "replay", step - replay_offset)

    experience = OnlineExperience(task, sac, replay, cfg.start_steps, cfg.sac.batch_size, gen, rng, first_step=replay_offset)
    hooks = _BehaviorHooks(run, task, sac, cfg, experience, log, step)
    schedule = Schedule(cfg.total_steps, cfg.checkpoint_every, cfg.eval_every, cfg.checkpoint_every)
    try:
        run_loop(sac, experience.next_batch, step, schedule, hooks, DivergenceGuard([latest]))
    finally:
        experience.close()
        hooks.logger.close()
    _plot_curve(run, task.name)
    return run


class _BehaviorHooks:
    """What behaviour training adds to the loop: log.jsonl lines, the curve (deterministic and
    stochastic evaluations), the ladder of actor snapshots, and exact-resume checkpoints."""

    def __init__(self, run: Path, task: Task, sac: SAC, cfg: BehaviorConfig, experience: OnlineExperience,
                 log: Callable[[str], None], start_step: int):
        self.run, self.task, self.sac, self.cfg, self.experience, self.print = run, task, sac, cfg, experience, log
        if (run / "log.jsonl").exists():
            truncate_log(run / "log.jsonl", start_step)  # lines past the checkpoint are written again
        self.logger = RunLogger(run / "log.jsonl")
        self.values: dict[str, float] = {}
        self._clock = (time.time(), start_step)

    def log(self, step: int, values: list[dict[str, float]]) -> None:
        self.values = values[0]
        self.logger.log(step, self.values)

    def evaluate(self, step: int) -> None:
        then, step_then = self._clock
        row = _evaluate_row(self.task, self.sac, self.cfg, step, time.time() - then, step - step_then,
                            self.experience.recent_returns, self.values)
        _append_curve(self.run, row)
        self.print(f"{self.task.name} step {step:,}: eval det {row['eval_det_mean']:.1f} sto {row['eval_sto_mean']:.1f} "
                   f"({row['updates_per_s']:.0f} steps/s)")
        self._clock = (time.time(), step)

    def checkpoint(self, step: int) -> None:
        self.experience.save(self.run / "replay")
        if step % self.cfg.ladder_every == 0:
            _add_ladder_entry(self.run, self.sac, step)
        save_state(self.run / LATEST, {"sac": self.sac.state_dict(), "step": step, "torch_rng": self.experience.gen.get_state(),
                                       "numpy_rng": self.experience.rng.bit_generator.state,
                                       "replay_offset": self.experience.first_step})
        _save_snapshot_weights(self.run, self.sac, step, self.experience.first_step)


SNAPSHOT_WEIGHTS = "weights.safetensors"
SNAPSHOT_INFO = "snapshot.json"
SNAPSHOT_FILES = ("config.json", "curve.csv", "curve.png", "ladder.json", SNAPSHOT_WEIGHTS, SNAPSHOT_INFO)
SNAPSHOT_SPEC = {"step": Range(int, 0), "replay_starts_at_step?": Range(int, 0)}


def _save_snapshot_weights(run: Path, sac: SAC, step: int, replay_offset: int) -> None:
    """Weights only (no optimizer state, no replay): small enough to commit, enough to warm-restart."""
    from safetensors.torch import save_file

    tensors = {f"{name}.{k}": v.contiguous() for name in ("actor", "critic", "critic_target")
               for k, v in getattr(sac, name).state_dict().items()}
    tensors["log_alpha"] = sac.log_alpha.detach().clone()
    tmp = run / (SNAPSHOT_WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, run / SNAPSHOT_WEIGHTS)
    (run / SNAPSHOT_INFO).write_text(json.dumps({"step": step, "replay_starts_at_step": replay_offset}))


def snapshot_run(run: str | Path, dest: str | Path) -> Path:
    """Copy what a fresh machine needs to continue a run (weights, ladder, curve) into ``dest``."""
    import shutil

    run, dest = Path(run), Path(dest)
    latest = run / LATEST
    if latest.exists() and not (run / SNAPSHOT_WEIGHTS).exists():  # runs started before snapshots existed
        task_name, saved = read_run_config(run)
        cfg, task = BehaviorConfig(**saved), get_task(task_name)
        state = load_state(latest)
        sac = SAC(task.observation_dim, task.action_dim, cfg.sac, device="cpu")
        sac.load_state_dict(state["sac"])
        _save_snapshot_weights(run, sac, state["step"], state.get("replay_offset", 0))
    (dest / "ladder").mkdir(parents=True, exist_ok=True)
    for name in SNAPSHOT_FILES:
        if (run / name).exists():
            shutil.copy2(run / name, dest / name)
    for f in (run / "ladder").glob("*.safetensors"):
        shutil.copy2(f, dest / "ladder" / f.name)
    return dest


def _evaluate_row(task, sac, cfg, step, elapsed, steps_done, recent_returns, metrics) -> dict[str, Any]:
    det = evaluate(task, actor_policy(sac, True), episodes=cfg.eval_episodes, seed=BEHAVIOR_EVAL_SEED)
    sto = evaluate(task, actor_policy(sac, False, seed=step), episodes=cfg.eval_episodes, seed=BEHAVIOR_EVAL_SEED)
    m = {k.split("/")[-1]: v for k, v in metrics.items()}
    return {
        "step": step, "wall_time_s": round(elapsed, 2), "updates_per_s": steps_done / max(elapsed, 1e-9),
        "eval_det_mean": det.returns.mean(), "eval_det_std": det.returns.std(),
        "eval_sto_mean": sto.returns.mean(), "eval_sto_std": sto.returns.std(),
        "train_return_last10": float(np.mean(recent_returns)) if recent_returns else float("nan"),
        "alpha": m.get("alpha", float("nan")), "q_mean": m.get("q_mean", float("nan")),
        "critic_loss": m.get("critic_loss", float("nan")),
    }


def read_curve(run: Path) -> list[dict[str, str]]:
    """The rows of the run's curve.csv (one per evaluation; none before the first)."""
    path = run / "curve.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _append_curve(run: Path, row: dict[str, Any]) -> None:
    path = run / "curve.csv"
    rows = read_curve(run)
    # After a resume, drop rows from beyond the checkpoint (they will be recomputed).
    rows = [r for r in rows if int(r["step"]) < row["step"]] + [{k: row[k] for k in CURVE_FIELDS}]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, CURVE_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    _plot_curve(run, run.name)


def _add_ladder_entry(run: Path, sac: SAC, step: int) -> None:
    from safetensors.torch import save_file

    ladder_dir = run / "ladder"
    ladder_dir.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in sac.actor.state_dict().items()}, ladder_dir / f"step_{step:08d}.safetensors")
    last = next(r for r in reversed(read_curve(run)) if int(r["step"]) == step)
    index_file = run / "ladder.json"
    ladder = json.loads(index_file.read_text()) if index_file.exists() else []
    ladder = [e for e in ladder if e["step"] < step] + [{
        "step": step, "file": f"ladder/step_{step:08d}.safetensors",
        "eval_det_mean": float(last["eval_det_mean"]), "eval_sto_mean": float(last["eval_sto_mean"]),
    }]
    index_file.write_text(json.dumps(ladder, indent=2))


def _plot_curve(run: Path, title: str) -> None:
    from d4rl_lite.plotting import pyplot, save_figure

    plt = pyplot()
    rows = read_curve(run)
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for key, label in (("eval_det_mean", "deterministic"), ("eval_sto_mean", "stochastic (dataset actions)")):
        ax.plot(steps, [float(r[key]) for r in rows], label=label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, run / "curve.png")
