"""Vectorized data collection: run a behaviour policy in a vector env and gather whole episodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.envs.policies import Policy
from d4rl_lite.envs.vector import EnvBatch
from d4rl_lite.errors import UserInputError
from d4rl_lite.tasks import Task


def episode_seed(seed: int, episode_index: int) -> int:
    """Reset seed of episode ``episode_index`` of a build with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, episode_index, 1]).generate_state(1)[0])


class _EpisodeBuffers:
    """Preallocated storage for the episodes all vector-env copies are running, written with one
    vectorized assignment per field and step (no per-copy Python work on the hot path)."""

    def __init__(self, task: Task, num_envs: int, obs_example: Any):
        h, n = task.horizon, num_envs
        self.dict_obs = isinstance(obs_example, dict)
        if self.dict_obs:
            self.obs = {k: np.empty((n, h + 1, *np.shape(v)[1:]), np.float32) for k, v in obs_example.items()}
        else:
            self.obs = np.empty((n, h + 1, *np.shape(obs_example)[1:]), np.float32)
        self.actions = np.empty((n, h, task.action_dim), np.float32)
        self.rewards = np.empty((n, h), np.float32)
        self.terminations = np.zeros((n, h), bool)
        self.truncations = np.zeros((n, h), bool)
        self.t = np.zeros(n, np.int64)
        self.rows = np.arange(n)

    def _put_obs(self, slots: np.ndarray, steps: np.ndarray, obs: Any) -> None:
        if self.dict_obs:
            for k, v in obs.items():
                self.obs[k][slots, steps] = v[slots]
        else:
            self.obs[slots, steps] = obs[slots]

    def start(self, slots: np.ndarray, obs: Any) -> None:
        self.t[slots] = 0
        self._put_obs(slots, np.zeros(len(slots), np.int64), obs)

    def step(self, actions, rewards, terminations, truncations, next_obs) -> None:
        r, t = self.rows, self.t
        self.actions[r, t] = actions
        self.rewards[r, t] = rewards
        self.terminations[r, t] = terminations
        self.truncations[r, t] = truncations
        self._put_obs(r, t + 1, next_obs)
        self.t += 1

    def finish(self, slot: int) -> dict[str, Any]:
        t = int(self.t[slot])
        obs = ({k: v[slot, : t + 1].copy() for k, v in self.obs.items()} if self.dict_obs
               else self.obs[slot, : t + 1].copy())
        terminations = self.terminations[slot, :t].copy()
        truncations = self.truncations[slot, :t] & ~terminations  # a real termination wins
        return {"observations": obs, "actions": self.actions[slot, :t].copy(), "rewards": self.rewards[slot, :t].copy(),
                "terminations": terminations, "truncations": truncations}


def collect_episodes(
    task: Task,
    policy: Policy,
    size: int,
    seed: int,
    num_envs: int = 8,
    reset_options: dict[str, Any] | Callable[[int], dict[str, Any] | None] | None = None,
    progress: Callable[[int], None] | None = None,
    max_episode_steps: int | None = None,
    continuing: bool = False,
    workers: int | None = 1,
) -> EpisodeArrays:
    """Collect exactly ``size`` transitions: episodes 0, 1, 2, ... in index order.

    Episode ``i`` is reset with ``episode_seed(seed, i)`` and ``reset_options`` (a dict, or a
    function of ``i``), and the policy is told which episode each copy runs (``start_episode``),
    so the bytes do not depend on ``num_envs``. The last episode is cut at ``size`` and marked as
    a timeout, as D4RL cut its datasets.

    ``continuing``: each copy is one continuing run, never reset after its first episode; it is
    cut into episodes of ``max_episode_steps`` (default: the horizon) marked as timeouts, each
    starting where the previous ended (D4RL maze2d). Then episode ``i`` runs on copy
    ``i % num_envs`` and the data does depend on ``num_envs``. ``workers`` processes share the env
    stepping (default 1: builds measured 2x slower with 2 workers on 2 cores, the behaviour
    policy's NumPy/BLAS threads then fighting the env worker for a core); the bytes never
    depend on it.
    """
    horizon = _episode_horizon(task, size, num_envs, max_episode_steps)
    # A continuing run has no time limit of its own; it is cut into episodes here.
    envs = EnvBatch(task, num_envs, max_episode_steps=10**9 if continuing else horizon, workers=workers)
    done = _FinishedEpisodes(size)
    try:
        rollout = _Rollout(task, policy, envs, seed, reset_options, horizon if continuing else None)
        while not done.complete:
            for episode, data in rollout.step():
                done.add(episode, data)
            counted = done.extend_prefix()
            if progress and counted:
                progress(counted)
    finally:
        envs.close()
    return _concatenate(done.prefix(), size)


def _episode_horizon(task: Task, size: int, num_envs: int, max_episode_steps: int | None) -> int:
    """The steps an episode may run (``max_episode_steps``, default the task's horizon), after
    refusing a request that cannot be collected."""
    if size < 1:
        raise UserInputError(f"size must be >= 1 transition, got {size}")
    if num_envs < 1:
        raise UserInputError(f"num_envs must be >= 1, got {num_envs}")
    horizon = max_episode_steps or task.horizon
    if horizon > task.horizon:
        raise UserInputError(f"episodes of {horizon} steps exceed the task horizon of {task.horizon}")
    return horizon


class _Rollout:
    """The env copies stepping the policy, each running one episode index at a time: episodes
    0..num_envs-1 first, then each copy whose episode ends takes the next index."""

    def __init__(self, task: Task, policy: Policy, envs: EnvBatch, seed: int,
                 reset_options: dict[str, Any] | Callable[[int], dict[str, Any] | None] | None, cut_at: int | None):
        self.task, self.policy, self.envs, self.seed = task, policy, envs, seed
        self.options_for = reset_options if callable(reset_options) else (lambda _i: reset_options)
        self.start_episode = getattr(policy, "start_episode", None)
        self.cut_at = cut_at  # continuing: copies are never reset, their runs cut into episodes of this many steps
        n = envs.num_envs
        self.slot_episode = np.arange(n)
        for i in range(n):
            envs.reset(i, episode_seed(seed, i), self.options_for(i))
            if self.start_episode:
                self.start_episode(i, i)
        self.next_episode = n
        self.obs = envs.obs
        self.buffers = _EpisodeBuffers(task, n, self.obs)
        self.buffers.start(np.arange(n), self.obs)

    def step(self) -> list[tuple[int, dict[str, Any]]]:
        """Step every copy once; return the episodes that ended, (index, arrays), their copies
        already started on the next indices."""
        buffers = self.buffers
        actions = np.asarray(self.policy(self.task.flatten_observation(self.obs)), dtype=np.float32)
        self.obs, rewards, terms, truncs = self.envs.step(actions)
        if self.cut_at is not None:
            truncs = buffers.t + 1 >= self.cut_at
        buffers.step(actions, rewards, terms, truncs, self.obs)
        ended = terms | truncs
        if not ended.any():
            return []
        ended_slots = np.flatnonzero(ended)
        finished = []
        for slot in ended_slots:
            finished.append((int(self.slot_episode[slot]), buffers.finish(int(slot))))
            self.slot_episode[slot] = self.next_episode
            if self.cut_at is None:
                self.envs.reset(int(slot), episode_seed(self.seed, self.next_episode), self.options_for(self.next_episode))
            if self.start_episode:
                self.start_episode(int(slot), self.next_episode)
            self.next_episode += 1
        self.obs = self.envs.obs
        buffers.start(ended_slots, self.obs)
        return finished


class _FinishedEpisodes:
    """Finished episodes by index, and the unbroken prefix 0..k-1 of them that the data is taken
    from (copies finish out of order), until it holds ``size`` transitions."""

    def __init__(self, size: int):
        self.size = size
        self.by_index: dict[int, dict[str, Any]] = {}
        self.episodes = self.steps = 0  # episodes 0..episodes-1 are all finished, holding ``steps``

    @property
    def complete(self) -> bool:
        return self.steps >= self.size

    def add(self, index: int, episode: dict[str, Any]) -> None:
        self.by_index[index] = episode

    def extend_prefix(self) -> int:
        """Extend the prefix over the episodes finished since; return the transitions it gained
        (up to ``size``), for progress."""
        before = self.steps
        while self.episodes in self.by_index and self.steps < self.size:
            self.steps += len(self.by_index[self.episodes]["rewards"])
            self.episodes += 1
        return min(self.steps, self.size) - min(before, self.size)

    def prefix(self) -> list[dict[str, Any]]:
        return [self.by_index[i] for i in range(self.episodes)]


def _concatenate(episodes: list[dict[str, Any]], size: int) -> EpisodeArrays:
    """Join episodes in order, cutting the last one so the total is exactly ``size``."""
    total = sum(len(e["rewards"]) for e in episodes)
    excess = total - size
    if excess > 0:
        last = episodes[-1]
        keep = len(last["rewards"]) - excess
        cut = {k: v[:keep] for k, v in last.items() if k != "observations"}
        cut["observations"] = ({k: v[: keep + 1] for k, v in last["observations"].items()}
                               if isinstance(last["observations"], dict) else last["observations"][: keep + 1])
        if not cut["terminations"][-1]:
            cut["truncations"] = cut["truncations"].copy()
            cut["truncations"][-1] = True  # cut by the size budget: a time limit, not a terminal
        episodes = episodes[:-1] + [cut]
    return EpisodeArrays.concatenate([
        EpisodeArrays(episode_lengths=np.array([len(e["rewards"])]), **e) for e in episodes
    ])
