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
    if size < 1:
        raise UserInputError(f"size must be >= 1 transition, got {size}")
    if num_envs < 1:
        raise UserInputError(f"num_envs must be >= 1, got {num_envs}")
    horizon = max_episode_steps or task.horizon
    if horizon > task.horizon:
        raise UserInputError(f"episodes of {horizon} steps exceed the task horizon of {task.horizon}")
    options_for = reset_options if callable(reset_options) else (lambda _i: reset_options)
    start_episode = getattr(policy, "start_episode", None)
    # A continuing run has no time limit of its own; it is cut into episodes here.
    envs = EnvBatch(task, num_envs, max_episode_steps=10**9 if continuing else horizon, workers=workers)
    finished: dict[int, dict[str, Any]] = {}
    prefix_episodes = prefix_steps = 0  # episodes 0..prefix_episodes-1 are all finished
    try:
        slot_episode = np.arange(num_envs)
        for i in range(num_envs):
            envs.reset(i, episode_seed(seed, i), options_for(i))
            if start_episode:
                start_episode(i, i)
        obs = envs.obs
        buffers = _EpisodeBuffers(task, num_envs, obs)
        buffers.start(np.arange(num_envs), obs)
        next_episode = num_envs
        while prefix_steps < size:
            actions = np.asarray(policy(task.flatten_observation(obs)), dtype=np.float32)
            obs, rewards, terms, truncs = envs.step(actions)
            if continuing:
                truncs = buffers.t + 1 >= horizon
            buffers.step(actions, rewards, terms, truncs, obs)
            ended = terms | truncs
            if not ended.any():
                continue
            ended_slots = np.flatnonzero(ended)
            for slot in ended_slots:
                finished[int(slot_episode[slot])] = buffers.finish(int(slot))
                slot_episode[slot] = next_episode
                if not continuing:
                    envs.reset(int(slot), episode_seed(seed, next_episode), options_for(next_episode))
                if start_episode:
                    start_episode(int(slot), next_episode)
                next_episode += 1
            obs = envs.obs
            buffers.start(ended_slots, obs)
            before = prefix_steps
            while prefix_episodes in finished and prefix_steps < size:
                prefix_steps += len(finished[prefix_episodes]["rewards"])
                prefix_episodes += 1
            if progress and prefix_steps > before:
                progress(min(prefix_steps, size) - min(before, size))
    finally:
        envs.close()
    return _concatenate([finished[i] for i in range(prefix_episodes)], size)


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
