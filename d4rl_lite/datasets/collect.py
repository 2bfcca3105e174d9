"""Vectorized data collection: run a behaviour policy in a vector env and gather whole episodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from d4rl_lite.datasets.storage import EpisodeArrays
from d4rl_lite.evaluation.rollout import Policy
from d4rl_lite.tasks import Task


def episode_seed(seed: int, episode_index: int) -> int:
    """Reset seed of episode ``episode_index`` of a build with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, episode_index, 1]).generate_state(1)[0])


class _SlotBuffer:
    """Preallocated storage for the episode one vector-env copy is running."""

    def __init__(self, task: Task, obs_example: Any):
        h = task.horizon
        self.dict_obs = isinstance(obs_example, dict)
        if self.dict_obs:
            self.obs = {k: np.empty((h + 1, *np.shape(v)), np.float32) for k, v in obs_example.items()}
        else:
            self.obs = np.empty((h + 1, *np.shape(obs_example)), np.float32)
        self.actions = np.empty((h, task.action_dim), np.float32)
        self.rewards = np.empty(h, np.float32)
        self.terminations = np.zeros(h, bool)
        self.truncations = np.zeros(h, bool)
        self.t = 0

    def start(self, obs: Any) -> None:
        self.t = 0
        self._put_obs(0, obs)

    def _put_obs(self, row: int, obs: Any) -> None:
        if self.dict_obs:
            for k, v in obs.items():
                self.obs[k][row] = v
        else:
            self.obs[row] = obs

    def step(self, action, reward, terminated, truncated, next_obs) -> None:
        t = self.t
        self.actions[t], self.rewards[t] = action, reward
        self.terminations[t], self.truncations[t] = terminated, truncated
        self._put_obs(t + 1, next_obs)
        self.t = t + 1

    def finish(self) -> dict[str, Any]:
        t = self.t
        obs = {k: v[: t + 1].copy() for k, v in self.obs.items()} if self.dict_obs else self.obs[: t + 1].copy()
        terminations = self.terminations[:t].copy()
        truncations = self.truncations[:t].copy() & ~terminations  # a real termination wins
        return {"observations": obs, "actions": self.actions[:t].copy(), "rewards": self.rewards[:t].copy(),
                "terminations": terminations, "truncations": truncations}


def _slot_obs(obs: Any, slot: int) -> Any:
    return {k: v[slot] for k, v in obs.items()} if isinstance(obs, dict) else obs[slot]


def collect_episodes(
    task: Task,
    policy: Policy,
    size: int,
    seed: int,
    num_envs: int = 8,
    reset_options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> EpisodeArrays:
    """Collect exactly ``size`` transitions: episodes 0, 1, 2, ... in index order.

    Episode ``i`` is reset with ``episode_seed(seed, i)`` and the policy is told which episode
    each copy runs (``start_episode``), so the bytes do not depend on ``num_envs``. The last
    episode is cut at ``size`` and marked as a timeout, as D4RL cut its datasets.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1 transition, got {size}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    start_episode = getattr(policy, "start_episode", None)
    envs = task.make_vector_env(num_envs)
    finished: dict[int, dict[str, Any]] = {}
    prefix_episodes = prefix_steps = 0  # episodes 0..prefix_episodes-1 are all finished
    try:
        slot_episode = np.arange(num_envs)
        obs, _ = envs.reset(seed=[episode_seed(seed, i) for i in range(num_envs)], options=reset_options)
        buffers = [_SlotBuffer(task, _slot_obs(obs, 0)) for _ in range(num_envs)]
        for slot in range(num_envs):
            buffers[slot].start(_slot_obs(obs, slot))
            if start_episode:
                start_episode(slot, slot)
        next_episode = num_envs
        while prefix_steps < size:
            actions = np.asarray(policy(task.flatten_observation(obs)), dtype=np.float32)
            obs, rewards, terms, truncs, _ = envs.step(actions)
            for slot in range(num_envs):
                buffers[slot].step(actions[slot], rewards[slot], terms[slot], truncs[slot], _slot_obs(obs, slot))
            ended = terms | truncs
            if not ended.any():
                continue
            seeds: list[int | None] = [None] * num_envs
            for slot in np.flatnonzero(ended):
                finished[int(slot_episode[slot])] = buffers[slot].finish()
                slot_episode[slot] = next_episode
                seeds[slot] = episode_seed(seed, next_episode)
                if start_episode:
                    start_episode(int(slot), next_episode)
                next_episode += 1
            obs, _ = envs.reset(seed=seeds, options={**(reset_options or {}), "reset_mask": ended})
            for slot in np.flatnonzero(ended):
                buffers[slot].start(_slot_obs(obs, slot))
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
