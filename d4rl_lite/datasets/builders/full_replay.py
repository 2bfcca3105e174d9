"""``full-replay``: the whole experience of one behaviour-training run, from its first step to its
expert-level step, in collection order (D4RL-v2's full-replay). The replay and the run's policy at
that step, the online agent, are committed in the task's zoo by ``export-behavior --full-replay``
(``production/full_replay.py``); a task whose run's replay was not kept has no full replay (the
build says so), never something else under its name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from d4rl_lite.datasets.behavior.policies import read_card, zoo_dir, zoo_file
from d4rl_lite.datasets.builders.replay import replay_to_episodes
from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.errors import D4RLLiteError
from d4rl_lite.tasks import Task

FOLDER = "full_replay"


def full_replay_missing(task: Task) -> str | None:
    """Why ``task`` has no full replay to build from, or None when its zoo holds one."""
    try:
        return None if isinstance(read_card(task.name).get("full_replay"), dict) else "no full replay committed yet"
    except D4RLLiteError:
        return "no behaviour policies committed yet"


def build_full_replay(task: Task, *, size: int | None, seed: int, num_envs: int,
                      progress: Callable[[int], None] | None = None) -> tuple[EpisodeArrays, dict[str, Any]]:
    """The committed replay up to its expert-level step (or its first ``size`` transitions)."""
    block = read_card(task.name).get("full_replay")
    if not isinstance(block, dict):
        raise D4RLLiteError(f"{task.name} has no full replay committed: the replay of a behaviour-training run up to "
                            "its expert is exported with `d4rl-lite export-behavior TASK --full-replay --run-dir RUN` "
                            f"(a run of `d4rl-lite train-behavior {task.name}`); hopper's and walker2d's are made so")
    steps = int(block["steps"])
    files = sorted((zoo_dir(task.name) / FOLDER / "replay").glob("chunk_*.npz"))
    chunks = [zoo_file(task.name, f"{FOLDER}/replay/{f.name}") for f in files]  # each checked against the manifest
    covered = max((int(c.stem.split("_")[2]) for c in chunks), default=0)
    if covered < steps:
        raise D4RLLiteError(f"{task.name}'s committed full replay covers {covered:,} of its {steps:,} steps: restore the "
                            "zoo from the repository (git checkout)")
    raw = replay_to_episodes(chunks, steps, size)
    if progress:
        progress(int(raw.episode_lengths.sum()))
    agent = block["online_agent"]
    return raw, {"source": "the whole replay buffer of a behaviour-training run (a re-run of the committed recipe)",
                 "up_to_step": steps, "run": block["run"], "online_agent": agent,
                 "description": f"SAC replay buffer from step 0 to its expert-level step {steps:,}",
                 "card": {"online agent": f"{agent['normalized_score']:.1f} normalized ({agent['return_mean']:.1f} "
                                          f"± {agent['return_std']:.1f}, step {agent['step']:,}, {agent['how']})"}}
