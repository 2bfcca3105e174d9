"""Evaluation under a task's protocol: fixed seeds per episode, batched policy calls, success on mazes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from d4rl_lite.envs.policies import Policy
from d4rl_lite.envs.vector import EnvBatch
from d4rl_lite.errors import UserInputError
from d4rl_lite.tasks import GOAL_DOMAINS, Task


@dataclass
class EvalResult:
    returns: np.ndarray  # (episodes,) raw undiscounted returns, in episode-index order
    lengths: np.ndarray
    successes: np.ndarray | None  # mazes: goal reached at least once in the episode
    seeds: list[int]
    discounted_returns: np.ndarray | None = None  # with ``gamma``: sum_t gamma^t r_t of each episode, raw rewards
    start_observations: np.ndarray | None = None  # with ``gamma``: (episodes, obs_dim) flat first observations

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


EVAL_COPIES = 10  # env copies an evaluation steps at once (per member of a population)


def evaluate(
    task: Task,
    policy: Policy,
    episodes: int | None = None,
    seed: int | None = None,
    num_envs: int = EVAL_COPIES,
    reset_options: dict[str, Any] | None = None,
    workers: int | None = None,
    gamma: float | None = None,
) -> EvalResult:
    """Run ``episodes`` episodes of ``task`` under its evaluation protocol.

    Episode ``i`` is reset with seed ``seed + i`` (default: the task's evaluation seed) and, on
    mazes, with the task's fixed goal cell (or ``reset_options``, e.g. a start/goal pair). The
    ``num_envs`` copies step together with one batched policy call per step; a copy that
    finishes starts the next pending episode. ``workers`` processes share the env stepping
    (default: one per core, see ``default_env_workers``); results do not depend on it. With
    ``gamma``, each episode's discounted return is kept too (the yardstick of a critic's value
    at the episode's first observation, which is kept as well).
    """
    start_episode = getattr(policy, "start_episode", None)
    return _run_episodes(task, lambda obs: np.asarray(policy(obs[0]))[None], 1, episodes, seed, num_envs,
                         reset_options, workers, start_episode, gamma)[0]


def evaluate_population(
    task: Task,
    algo: Any,
    episodes: int | None = None,
    seed: int | None = None,
    num_envs: int = EVAL_COPIES,
    workers: int | None = None,
    gamma: float | None = None,
) -> list[EvalResult]:
    """``evaluate`` for every member of a population at once: each member runs the episodes (and
    seeds) its solo evaluation runs, on its own env copies, and every step is one policy call for
    the whole population (observations (M, copies, d)). One result per member."""
    return _run_episodes(task, algo.act, algo.members, episodes, seed, num_envs, None, workers, None, gamma)


def _run_episodes(task: Task, act: Any, members: int, episodes: int | None, seed: int | None, num_envs: int,
                  reset_options: dict[str, Any] | None, workers: int | None, start_episode: Any,
                  gamma: float | None = None) -> list[EvalResult]:
    """The evaluation loop: ``members`` groups of copies (member m owns copies [m * n, (m + 1) * n)),
    each running episodes 0..episodes-1 in order; ``act`` maps (M, n, d) observations to (M, n, A)."""
    episodes = task.eval_episodes if episodes is None else episodes
    seed = task.eval_seed if seed is None else seed
    if episodes < 1:
        raise UserInputError(f"episodes must be >= 1, got {episodes}")
    n = max(1, min(num_envs, episodes))  # copies per member
    options = task.eval_reset_options() if reset_options is None else reset_options
    returns = np.zeros((members, episodes))
    lengths = np.zeros((members, episodes), dtype=np.int64)
    successes = np.zeros((members, episodes), dtype=bool) if task.domain in GOAL_DOMAINS else None
    discounted = np.zeros((members, episodes)) if gamma is not None else None
    starts: np.ndarray | None = None

    envs = EnvBatch(task, members * n, workers=workers)
    try:
        owner = np.repeat(np.arange(members), n)  # the member each copy belongs to
        slot_episode = np.tile(np.arange(n), members)  # which of its member's episodes a copy runs; -1 = idle
        for slot in range(members * n):
            envs.reset(slot, seed + int(slot_episode[slot]), options)
            if start_episode:
                start_episode(slot, int(slot_episode[slot]))
        next_episode = np.full(members, n)
        while (slot_episode >= 0).any():
            active = slot_episode >= 0
            obs = task.flatten_observation(envs.obs)
            if discounted is not None:  # the first observations only serve the discounted-return yardstick
                if starts is None:
                    starts = np.zeros((members, episodes, obs.shape[-1]), dtype=obs.dtype)
                first = active.copy()
                first[active] = lengths[owner[active], slot_episode[active]] == 0
                starts[owner[first], slot_episode[first]] = obs[first]
            actions = np.asarray(act(obs.reshape(members, n, -1))).reshape(members * n, -1)
            _, rewards, terminations, truncations = envs.step(actions, active)
            who, ep = owner[active], slot_episode[active]
            returns[who, ep] += rewards[active]
            if discounted is not None:
                discounted[who, ep] += gamma ** lengths[who, ep] * rewards[active]
            lengths[who, ep] += 1
            if successes is not None:
                successes[who, ep] |= envs.successes[active]
            for slot in np.flatnonzero((terminations | truncations) & active):
                m = owner[slot]
                if next_episode[m] < episodes:
                    slot_episode[slot] = next_episode[m]
                    envs.reset(int(slot), seed + int(next_episode[m]), options)
                    if start_episode:
                        start_episode(int(slot), int(next_episode[m]))
                    next_episode[m] += 1
                else:
                    slot_episode[slot] = -1  # idle: no longer stepped
    finally:
        envs.close()
    seeds = [seed + i for i in range(episodes)]
    return [EvalResult(returns[m], lengths[m], None if successes is None else successes[m], seeds,
                       None if discounted is None else discounted[m], None if starts is None else starts[m])
            for m in range(members)]
