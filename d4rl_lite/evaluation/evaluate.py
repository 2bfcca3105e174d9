"""Evaluation under a task's protocol: fixed seeds per episode, batched policy calls, success on mazes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from d4rl_lite.envs.policies import Policy
from d4rl_lite.envs.vector import EnvBatch
from d4rl_lite.tasks import GOAL_DOMAINS, Task


@dataclass
class EvalResult:
    returns: np.ndarray  # (episodes,) raw undiscounted returns, in episode-index order
    lengths: np.ndarray
    successes: np.ndarray | None  # mazes: goal reached at least once in the episode
    seeds: list[int]

    def summary(self) -> dict[str, Any]:
        out = {
            "episodes": len(self.returns),
            "return_mean": float(self.returns.mean()),
            "return_std": float(self.returns.std()),
            "return_min": float(self.returns.min()),
            "return_max": float(self.returns.max()),
            "length_mean": float(self.lengths.mean()),
        }
        if self.successes is not None:
            out["success_rate"] = float(self.successes.mean())
        return out


def evaluate(
    task: Task,
    policy: Policy,
    episodes: int | None = None,
    seed: int | None = None,
    num_envs: int = 10,
    reset_options: dict[str, Any] | None = None,
    workers: int | None = None,
) -> EvalResult:
    """Run ``episodes`` episodes of ``task`` under its evaluation protocol.

    Episode ``i`` is reset with seed ``seed + i`` (default: the task's evaluation seed) and, on
    mazes, with the task's fixed goal cell (or ``reset_options``, e.g. a start/goal pair). The
    ``num_envs`` copies step together with one batched policy call per step; a copy that
    finishes starts the next pending episode. ``workers`` processes share the env stepping
    (default: one per core, see ``default_env_workers``); results do not depend on it.
    """
    episodes = task.eval_episodes if episodes is None else episodes
    seed = task.eval_seed if seed is None else seed
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    num_envs = max(1, min(num_envs, episodes))
    options = task.eval_reset_options() if reset_options is None else reset_options
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    successes = np.zeros(episodes, dtype=bool) if task.domain in GOAL_DOMAINS else None
    start_episode = getattr(policy, "start_episode", None)

    envs = EnvBatch(task, num_envs, workers=workers)
    try:
        slot_episode = np.arange(num_envs)  # which episode each copy is running; -1 = idle
        for slot in range(num_envs):
            envs.reset(slot, seed + slot, options)
            if start_episode:
                start_episode(slot, slot)
        next_episode = num_envs
        while (slot_episode >= 0).any():
            active = slot_episode >= 0
            actions = np.asarray(policy(task.flatten_observation(envs.obs)))
            _, rewards, terminations, truncations = envs.step(actions, active)
            ep = slot_episode[active]
            returns[ep] += rewards[active]
            lengths[ep] += 1
            if successes is not None:
                successes[ep] |= envs.successes[active]
            for slot in np.flatnonzero((terminations | truncations) & active):
                if next_episode < episodes:
                    slot_episode[slot] = next_episode
                    envs.reset(int(slot), seed + next_episode, options)
                    if start_episode:
                        start_episode(int(slot), next_episode)
                    next_episode += 1
                else:
                    slot_episode[slot] = -1  # idle: no longer stepped
    finally:
        envs.close()
    return EvalResult(returns, lengths, successes, [seed + i for i in range(episodes)])


def evaluate_multitask(task: Task, policy: Policy, episodes_per_task: int = 20, seed: int | None = None) -> list[dict[str, Any]]:
    """OGBench-style maze protocol: the five longest start -> goal pairs, each from its start cell.

    The policy sees each pair's goal in its observation (the flat view's last two entries).
    Returns one summary per pair (success rate, returns), in the pairs' order.
    """
    from d4rl_lite.envs.maze_grid import MazeGrid

    if task.domain != "maze":
        raise ValueError(f"the multi-task protocol is defined for mazes; {task.name} is a {task.domain} task")
    seed = task.eval_seed if seed is None else seed
    out = []
    for k, (start, goal) in enumerate(MazeGrid.for_task(task).longest_pairs(5)):
        options = {"reset_cell": np.array(start), "goal_cell": np.array(goal)}
        result = evaluate(task, policy, episodes_per_task, seed + 1000 * k, reset_options=options)
        out.append({"start": list(start), "goal": list(goal), **result.summary()})
    return out
