"""Policy rollouts in a batch of env copies, with one fixed seed per evaluation episode."""

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


class EnvBatch:
    """Independent copies of a task's env stepped in lock-step, each reset with its own seed and
    options (SyncVectorEnv resets every copy with the same options)."""

    def __init__(self, task: Task, num_envs: int, max_episode_steps: int | None = None):
        self.envs = [task.make_env(max_episode_steps=max_episode_steps) for _ in range(num_envs)]
        self.obs: Any = None

    def _set(self, i: int, obs: Any) -> None:
        if self.obs is None:  # allocate the batch from the first observation
            n = len(self.envs)
            self.obs = ({k: np.zeros((n, *np.shape(v))) for k, v in obs.items()} if isinstance(obs, dict)
                        else np.zeros((n, *np.shape(obs))))
        if isinstance(obs, dict):
            for k, v in obs.items():
                self.obs[k][i] = v
        else:
            self.obs[i] = obs

    def reset(self, i: int, seed: int, options: dict[str, Any] | None) -> None:
        self._set(i, self.envs[i].reset(seed=seed, options=options)[0])

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        """Step every copy (or only the ``active`` ones); ``self.successes`` holds info["success"] (mazes)."""
        n = len(self.envs)
        rewards, terms, truncs = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
        self.successes = np.zeros(n, bool)
        for i, env in enumerate(self.envs):
            if active is not None and not active[i]:
                continue
            obs, rewards[i], terms[i], truncs[i], info = env.step(actions[i])
            self.successes[i] = bool(info.get("success", False))
            self._set(i, obs)
        return self.obs, rewards, terms, truncs

    def close(self) -> None:
        for env in self.envs:
            env.close()


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

    Episode ``i`` is reset with seed ``seed + i`` (default: the task's evaluation seed) and, on
    mazes, with the task's fixed goal cell (or ``reset_options``, e.g. a start/goal pair). The
    ``num_envs`` copies step together with one batched policy call per step; a copy that
    finishes starts the next pending episode.
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

    envs = EnvBatch(task, num_envs)
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
