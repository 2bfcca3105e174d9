"""Policy rollouts in a vector env with one fixed seed per evaluation episode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from d4rl_lite.tasks import Task


class Policy(Protocol):
    """What ``evaluate`` drives: flat float32 observations (batch, obs_dim) -> actions.

    A policy may also define ``start_episode(slot, episode_index)``, called when the vector
    env's copy ``slot`` starts evaluation episode ``episode_index`` (used to give stochastic
    policies a per-episode random stream, so results do not depend on the number of copies).
    """

    def __call__(self, observations: np.ndarray) -> np.ndarray: ...


class UniformRandomPolicy:
    """Uniform random actions; episode ``i`` draws from its own stream seeded by (seed, i)."""

    def __init__(self, task: Task, seed: int = 0):
        self.low = task.action_space.low.astype(np.float32)
        self.high = task.action_space.high.astype(np.float32)
        self.seed = seed
        self._streams: dict[int, np.random.Generator] = {}

    def start_episode(self, slot: int, episode_index: int) -> None:
        self._streams[slot] = np.random.default_rng([self.seed, episode_index])

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return np.stack(
            [self._streams[slot].uniform(self.low, self.high) for slot in range(len(observations))]
        ).astype(np.float32)


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
) -> EvalResult:
    """Run ``episodes`` episodes of ``task`` under its evaluation protocol.

    Episode ``i`` is reset with seed ``seed + i`` (default: the task's evaluation seed) and,
    on mazes, with the task's fixed goal cell (or ``reset_options``, e.g. a start/goal pair). Copies of the vector env that finish early start
    the next pending episode, so all ``num_envs`` stay busy.
    """
    episodes = task.eval_episodes if episodes is None else episodes
    seed = task.eval_seed if seed is None else seed
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    num_envs = max(1, min(num_envs, episodes))
    options = task.eval_reset_options() if reset_options is None else reset_options
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    successes = np.zeros(episodes, dtype=bool) if task.domain == "maze" else None
    start_episode = getattr(policy, "start_episode", None)

    envs = task.make_vector_env(num_envs)
    try:
        slot_episode = np.arange(num_envs)  # which episode each copy is running; -1 = idle
        obs, _ = envs.reset(seed=[seed + i for i in range(num_envs)], options=options)
        if start_episode:
            for slot in range(num_envs):
                start_episode(slot, slot)
        next_episode = num_envs
        while (slot_episode >= 0).any():
            actions = np.asarray(policy(task.flatten_observation(obs)))
            obs, rewards, terminations, truncations, infos = envs.step(actions)
            active = slot_episode >= 0
            ep = slot_episode[active]
            returns[ep] += rewards[active]
            lengths[ep] += 1
            if successes is not None and "success" in infos:
                successes[ep] |= np.asarray(infos["success"], dtype=bool)[active]
            ended = terminations | truncations
            if not ended.any():
                continue
            seeds: list[int | None] = [None] * num_envs
            for slot in np.flatnonzero(ended & active):
                if next_episode < episodes:
                    slot_episode[slot] = next_episode
                    seeds[slot] = seed + next_episode
                    if start_episode:
                        start_episode(int(slot), next_episode)
                    next_episode += 1
                else:
                    slot_episode[slot] = -1
            # Idle copies keep stepping (their results are ignored) and are reset like the rest,
            # because a vector env without autoreset refuses to step past an episode end.
            obs, _ = envs.reset(seed=seeds, options={**(options or {}), "reset_mask": ended})
    finally:
        envs.close()
    return EvalResult(returns, lengths, successes, [seed + i for i in range(episodes)])


def evaluate_multitask(task: Task, policy: Policy, episodes_per_task: int = 20, seed: int | None = None) -> list[dict[str, Any]]:
    """OGBench-style maze protocol: the five longest start -> goal pairs, each from its start cell.

    The policy sees each pair's goal in its observation (the flat view's last two entries).
    Returns one summary per pair (success rate, returns), in the pairs' order.
    """
    from d4rl_lite.datasets.maze.grid import MazeGrid

    if task.domain != "maze":
        raise ValueError(f"the multi-task protocol is defined for mazes; {task.name} is a {task.domain} task")
    seed = task.eval_seed if seed is None else seed
    out = []
    for k, (start, goal) in enumerate(MazeGrid.for_task(task).longest_pairs(5)):
        options = {"reset_cell": np.array(start), "goal_cell": np.array(goal)}
        result = evaluate(task, policy, episodes_per_task, seed + 1000 * k, reset_options=options)
        out.append({"start": list(start), "goal": list(goal), **result.summary()})
    return out
