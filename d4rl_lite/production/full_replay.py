"""Export a behaviour-training run's whole replay as the source of a task's ``full-replay`` dataset.

D4RL-v2's full-replay is the entire replay of the SAC run that produced its expert, from the first
step to the expert's. Where that run's buffer is gone, a re-run of the same recipe serves, and then
its own policy is the online agent the offline agents are compared with. Its expert-level step is
chosen by the rule the committed experts were (``export.py``): among the run's ladder entries, the
``CANDIDATES`` best by their 10-episode return are measured over 100 episodes (sampled actions, as
the behaviour acted), and the best is the expert-level step. The replay up to that step and that
checkpoint are committed; the card records the run, the replay's length and the online agent's
100-episode score under the benchmark's evaluation protocol (deterministic actions, as the offline
agents are evaluated), normalized: the line a table draws for "the agent that collected the data".
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.datasets.behavior.policies import CARD_SPEC, ActorPolicy, load_actor, read_card, write_manifest, zoo_dir
from d4rl_lite.datasets.builders.replay import load_replay_chunk, pack_replay_chunk
from d4rl_lite.errors import UserInputError
from d4rl_lite.evaluation.evaluate import evaluate
from d4rl_lite.paths import relative_path
from d4rl_lite.production.export import CANDIDATES, EXPORT_EVAL_SEED, LADDER_SPEC, RUN_CONFIG_SPEC, _replay_start
from d4rl_lite.schema import read_checked_json
from d4rl_lite.tasks import get_task

FOLDER = "full_replay"  # in the task's zoo: replay/chunk_*.npz (packed) and the online agent's actor
AGENT_FILE = "online_agent.safetensors"


def export_full_replay(task_name: str, run_dir: str | Path, zoo_root: str | Path | None = None, episodes: int = 100,
                       log: Callable[[str], None] = print) -> Path:
    """Commit ``run_dir``'s replay up to its expert-level step, and that step's actor, into the task's
    zoo (``zoo_root/<task>``, default the package's); returns the zoo folder."""
    task = get_task(task_name)
    run = Path(run_dir)
    config = read_checked_json(run / "config.json", RUN_CONFIG_SPEC, "behaviour run config")
    if config.get("task") != task_name:
        raise UserInputError(f"{run} trained {config.get('task')!r}, not {task_name}")
    ladder = read_checked_json(run / "ladder.json", LADDER_SPEC, "ladder")
    if not ladder:
        raise UserInputError(f"{run} has no ladder entries yet; train longer first")
    hidden = tuple(config["sac"].get("actor_hidden", config["sac"].get("hidden")))
    expert, measured = _expert_level_entry(task, run, ladder, hidden, episodes, log)
    step = expert["step"]
    chunks = [c for c in sorted((run / "replay").glob("chunk_*.npz")) if int(c.stem.split("_")[1]) < step]
    covered = max((int(c.stem.split("_")[2]) for c in chunks), default=0)
    if _replay_start(run) != 0 or covered < step:
        raise UserInputError(f"{run}'s replay does not cover steps 0-{step:,} from its start (a warm restart loses "
                             "the buffer before it): its full replay is missing, and no other data stands in for it")
    actor = load_actor(task, run / relative_path(expert["file"], f"{run / 'ladder.json'}: entry file"), hidden)
    online = evaluate(task, ActorPolicy(actor, seed=EXPORT_EVAL_SEED, deterministic=True), episodes=episodes)
    mean = float(online.returns.mean())
    log(f"{task_name} online agent (step {step:,}): {episodes}-episode return {mean:.1f} deterministic")
    dest = Path(zoo_root) / task_name if zoo_root else zoo_dir(task_name)
    card = read_card(task_name) if zoo_root is None else read_checked_json(dest / "card.json", CARD_SPEC, "behaviour card")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(dest, tmp)
    shutil.rmtree(tmp / FOLDER, ignore_errors=True)
    (tmp / FOLDER / "replay").mkdir(parents=True)
    for c in chunks:
        np.savez_compressed(tmp / FOLDER / "replay" / c.name, **pack_replay_chunk(load_replay_chunk(c)))
    shutil.copy2(run / expert["file"], tmp / FOLDER / AGENT_FILE)
    card["full_replay"] = _card_block(task, config, step, measured, mean, float(online.returns.std()), episodes,
                                      sum(f.stat().st_size for f in (tmp / FOLDER / "replay").iterdir()))
    (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    write_manifest(tmp)
    shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def _expert_level_entry(task: Any, run: Path, ladder: list[dict[str, Any]], hidden: tuple[int, ...], episodes: int,
                        log: Callable[[str], None]) -> tuple[dict[str, Any], dict[int, dict[str, float]]]:
    """The ladder entry the committed experts' rule picks, and every candidate's 100-episode measure."""
    candidates = sorted(ladder, key=lambda e: e["eval_sto_mean"], reverse=True)[:CANDIDATES]
    measured = {}
    for entry in candidates:
        actor = load_actor(task, run / relative_path(entry["file"], f"{run / 'ladder.json'}: entry file"), hidden)
        r = evaluate(task, ActorPolicy(actor, seed=EXPORT_EVAL_SEED), episodes=episodes, seed=EXPORT_EVAL_SEED)
        measured[entry["step"]] = {"return_mean_100": float(r.returns.mean()), "return_std_100": float(r.returns.std())}
        log(f"{task.name} step {entry['step']:,}: {episodes}-episode return {r.returns.mean():.1f} (sampled actions)")
    best = max(candidates, key=lambda e: measured[e["step"]]["return_mean_100"])
    return best, measured


def _card_block(task: Any, config: dict[str, Any], step: int, measured: dict[int, dict[str, float]],
                mean: float, std: float, episodes: int, packed_bytes: int) -> dict[str, Any]:
    normalized = float(task.normalized_score(mean))
    return {
        "steps": step, "transitions": step, "packed_bytes": packed_bytes,
        "run": {"seed": config["seed"], "trained_steps": config.get("total_steps"),
                "command": f"d4rl-lite train-behavior {task.name} --seed {config['seed']} --steps {config.get('total_steps')}",
                "note": "a re-run of the committed policies' recipe with its whole replay kept; its own policy is "
                        "the online agent", "exported_on": date.today().isoformat()},
        "expert_level_step": {"rule": f"the best of the {CANDIDATES} ladder entries with the highest 10-episode "
                                      f"return, each re-measured over {episodes} episodes (sampled actions)",
                              "candidates": {str(k): v for k, v in sorted(measured.items())}},
        "online_agent": {"step": step, "file": f"{FOLDER}/{AGENT_FILE}", "return_mean": mean, "return_std": std,
                         "normalized_score": normalized, "episodes": episodes,
                         "how": f"{episodes} episodes, deterministic actions, the benchmark's evaluation protocol"},
    }
