"""Export a training run's ladder into the package: pick expert and medium, measure them, write the card."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from d4rl_lite.datasets.behavior.policies import CARD_SPEC, ActorPolicy, load_actor, read_card, write_manifest, zoo_dir
from d4rl_lite.datasets.builders.replay import load_replay_chunk, pack_replay_chunk
from d4rl_lite.errors import UserInputError
from d4rl_lite.evaluation.evaluate import evaluate
from d4rl_lite.paths import relative_path
from d4rl_lite.schema import Range, read_checked_json
from d4rl_lite.references import store_reference_score
from d4rl_lite.tasks import Task, get_task

REFERENCE_EPISODES = 100
# What export reads of a behaviour run (written by ``train_behavior``).
RUN_CONFIG_SPEC = {"task": str, "seed": Range(int, 0), "sac": {"actor_hidden?": [Range(int, 1)], "hidden?": [Range(int, 1)]}}
LADDER_SPEC = [{"step": Range(int, 0), "file": str, "eval_sto_mean": float}]
EXPORT_EVAL_SEED = 3_000_000  # apart from training-time and benchmark evaluation seeds
CANDIDATES = 3  # ladder entries re-measured with 100 episodes per role
REPLAY_COMMIT_LIMIT = 20 * 2**20  # bytes (packed, compressed) of replay per task: walker2d's 200k steps take 16.9 MB


def export_behavior(task_name: str, run_dir: str | Path, zoo_root: str | Path | None = None,
                    episodes: int = REFERENCE_EPISODES, store_reference: bool = True,
                    log: Callable[[str], None] = print) -> Path:
    """Copy the run's ladder into ``zoo_root/<task>`` (default: the package zoo) and write card.json.

    expert = the best of the ladder's top entries by 10-episode stochastic return, re-measured over
    ``episodes`` episodes; medium = the entry whose re-measured return is closest to 1/3 of that.
    Returns are of the stochastic policy (sampled actions), the behaviour that generates datasets.
    With ``store_reference`` the expert's mean becomes the task's ref_max (not for a skill task).
    """
    task = get_task(task_name)
    run = Path(run_dir)
    config, ladder = _read_behavior_run(run)
    hidden = tuple(config["sac"].get("actor_hidden", config["sac"].get("hidden")))  # older runs: "hidden"
    dest = Path(zoo_root) / task_name if zoo_root else zoo_dir(task_name)
    measure = _Remeasured(task, run, hidden, episodes, log)
    expert, medium = _pick_expert_and_medium(ladder, measure)
    tmp = dest.with_name(dest.name + ".tmp")
    replay_committed = _stage_run_files(run, tmp, ladder, medium["step"])
    how = f"{episodes} episodes, actions sampled from the policy, reset seeds {EXPORT_EVAL_SEED}+i"
    card = {
        "task": task_name,
        "hidden": list(hidden),
        "expert": {"step": expert["step"], "file": expert["file"], **measure(expert), "episodes": episodes, "how": how},
        "medium": {"step": medium["step"], "file": medium["file"], **measure(medium), "episodes": episodes,
                   "how": how, "target": "closest to 1/3 of the expert's return"},
        "training": {"algorithm": "SAC (d4rl_lite.algorithms.sac), online", "seed": config["seed"],
                     "steps_trained": max(e["step"] for e in ladder), "run_dir": str(run.resolve()),
                     "replay_starts_at_step": _replay_start(run),
                     "replay_to_medium_committed": replay_committed,
                     "command": f"d4rl-lite train-behavior {task_name} --seed {config['seed']}",
                     "config": config},
        "ladder": [{**e, **measure.by_step.get(e["step"], {})} for e in ladder],
        "exported_on": date.today().isoformat(),
    }
    _publish(tmp, dest, card)
    if store_reference and task.domain != "skill":  # a skill (ant-goal) is not scored by the benchmark
        store_reference_score(task_name, "ref_max", measure(expert)["return_mean_100"],
                              f"committed expert SAC policy (step {expert['step']:,}), mean over {how}",
                              return_std=measure(expert)["return_std_100"], episodes=episodes,
                              measured_on=date.today().isoformat(),
                              command=f"d4rl-lite export-behavior {task_name}")
    return dest


def _read_behavior_run(run: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's config and its non-empty ladder, each ladder file a path inside the run (each is
    read from the run and copied into the export: both stay inside)."""
    config = read_checked_json(run / "config.json", RUN_CONFIG_SPEC, "behaviour run config")
    ladder = read_checked_json(run / "ladder.json", LADDER_SPEC, "ladder")
    if not ladder:
        raise UserInputError(f"{run} has no ladder entries yet; train longer first")
    for e in ladder:
        relative_path(e.get("file") if isinstance(e, dict) else e, f"{run / 'ladder.json'}: entry file")
    return config, ladder


class _Remeasured:
    """A ladder entry's return over ``episodes`` episodes, measured once per entry (by step) and logged."""

    def __init__(self, task: Task, run: Path, hidden: tuple[int, ...], episodes: int, log: Callable[[str], None]):
        self.task, self.run, self.hidden, self.episodes, self.log = task, run, hidden, episodes, log
        self.by_step: dict[int, dict[str, float]] = {}

    def __call__(self, entry: dict[str, Any]) -> dict[str, float]:
        if entry["step"] not in self.by_step:
            actor = load_actor(self.task, self.run / entry["file"], self.hidden)
            r = evaluate(self.task, ActorPolicy(actor, seed=EXPORT_EVAL_SEED), episodes=self.episodes, seed=EXPORT_EVAL_SEED)
            self.by_step[entry["step"]] = {"return_mean_100": float(r.returns.mean()), "return_std_100": float(r.returns.std())}
            self.log(f"{self.task.name} step {entry['step']:,}: {self.episodes}-episode return "
                     f"{r.returns.mean():.1f} ± {r.returns.std():.1f}")
        return self.by_step[entry["step"]]


def _pick_expert_and_medium(ladder: list[dict[str, Any]], measure: _Remeasured) -> tuple[dict[str, Any], dict[str, Any]]:
    """Expert: the best re-measured of the ladder's ``CANDIDATES`` top entries; medium: of the
    ``CANDIDATES`` entries nearest 1/3 of the expert's return, the one whose re-measured return is nearest."""
    top = sorted(ladder, key=lambda e: -e["eval_sto_mean"])[:CANDIDATES]
    expert = max(top, key=lambda e: measure(e)["return_mean_100"])
    target = measure(expert)["return_mean_100"] / 3.0
    near = sorted(ladder, key=lambda e: abs(e["eval_sto_mean"] - target))[:CANDIDATES]
    medium = min(near, key=lambda e: abs(measure(e)["return_mean_100"] - target))
    return expert, medium


def _stage_run_files(run: Path, tmp: Path, ladder: list[dict[str, Any]], medium_step: int) -> bool:
    """Copy the run's ladder, its curve and its replay up to the medium policy into a fresh ``tmp``;
    return whether the replay was committed (``copy_replay_to_medium``)."""
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "ladder").mkdir(parents=True)
    for e in ladder:
        shutil.copy2(run / e["file"], tmp / e["file"])
    for name in ("curve.csv", "curve.png"):
        if (run / name).exists():
            shutil.copy2(run / name, tmp / name)
    return copy_replay_to_medium(run, tmp, medium_step)


def _publish(tmp: Path, dest: Path, card: dict[str, Any]) -> None:
    """Write the card and the manifest into ``tmp``, then put ``tmp`` in the place of ``dest``."""
    (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    write_manifest(tmp)  # every file's SHA-256, checked whenever a builder uses the zoo
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def export_replay(task_name: str, run: str | Path, zoo_root: str | Path | None = None) -> Path:
    """Commit the replay buffer of ``run`` (a later run of the committed policies' recipe, say after
    the original run's buffer was lost) next to the committed policies, which stay as they are; the
    card records where the replay comes from.

    D4RL's medium-replay is a SAC run's experience "until the policy reaches the medium level", so
    the replay ends at the first evaluation of ``run`` (10 episodes, sampled actions, as the ladder's
    ``eval_sto_mean``) at or above the committed medium policy's return. A fixed step would not do:
    runs of one recipe learn at different speeds (walker2d's re-run was at ~800 where the original
    reached medium, 2200, so its replay held no medium-level episode)."""
    run = Path(run)
    config = read_checked_json(run / "config.json", RUN_CONFIG_SPEC, "behaviour run config")
    if config.get("task") != task_name:
        raise UserInputError(f"{run} trained {config.get('task')!r}, not {task_name}")
    dest = Path(zoo_root) / task_name if zoo_root else zoo_dir(task_name)
    card = read_card(task_name) if zoo_root is None else read_checked_json(dest / "card.json", CARD_SPEC, "behaviour card")
    medium_return = card["medium"]["return_mean_100"]
    end_step = step_reaching(run, medium_return)
    if end_step is None:
        raise UserInputError(f"{run}'s evaluations never reach the medium policy's return ({medium_return:.1f}); "
                         f"train it longer (re-run train-behavior with a larger --steps), then export again")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(dest, tmp)
    shutil.rmtree(tmp / "replay", ignore_errors=True)
    if not copy_replay_to_medium(run, tmp, end_step):
        shutil.rmtree(tmp)
        raise UserInputError(f"{run}'s replay does not cover steps 0-{end_step:,} from its start, or exceeds "
                         f"{REPLAY_COMMIT_LIMIT / 2**20:.0f} MB packed")
    card["training"]["replay_to_medium_committed"] = True
    card["training"]["replay_run"] = {"run_dir": str(run.resolve()), "seed": config["seed"], "steps": end_step,
                                      "until": f"its evaluation first reached the medium policy's return "
                                               f"({medium_return:.1f})",
                                      "command": f"d4rl-lite train-behavior {task_name} --seed {config['seed']} "
                                                 f"--steps {end_step}",
                                      "exported_on": date.today().isoformat(),
                                      "note": "a later run of the same recipe: its replay, not the committed run's"}
    _publish(tmp, dest, card)
    return dest


def step_reaching(run: Path, target_return: float) -> int | None:
    """The first evaluated step of ``run`` whose 10-episode return (sampled actions) is at least
    ``target_return``, or None."""
    from d4rl_lite.production.behavior_training import read_curve

    return next((int(row["step"]) for row in read_curve(run) if float(row["eval_sto_mean"]) >= target_return), None)


def copy_replay_to_medium(run: Path, dest: Path, medium_step: int, limit: int = REPLAY_COMMIT_LIMIT) -> bool:
    """Copy the run's replay chunks covering steps [0, medium_step) into ``dest/replay``, compressed,
    so that ``medium-replay`` is the real replay on every machine, not only where the run was.
    Returns False (and copies nothing) when the run's replay does not cover that range, or when it
    would exceed ``limit`` bytes (packed: ``pack_replay_chunk``)."""
    chunks = [c for c in sorted((run / "replay").glob("chunk_*.npz")) if int(c.stem.split("_")[1]) < medium_step]
    covered = max((int(c.stem.split("_")[2]) for c in chunks), default=0)
    if _replay_start(run) != 0 or covered < medium_step:
        return False
    import numpy as np

    out = dest / "replay"
    out.mkdir(parents=True, exist_ok=True)
    for c in chunks:
        np.savez_compressed(out / c.name, **pack_replay_chunk(load_replay_chunk(c)))
    if sum(f.stat().st_size for f in out.iterdir()) > limit:
        shutil.rmtree(out)
        return False
    return True


def _replay_start(run: Path) -> int:
    """0 unless the run was warm-restarted from a snapshot, which lost the replay before that step."""
    info = run / "snapshot.json"
    from d4rl_lite.production.behavior_training import SNAPSHOT_SPEC

    return read_checked_json(info, SNAPSHOT_SPEC, "snapshot info").get("replay_starts_at_step", 0) if info.exists() else 0
