"""Online experience for the training loop: one environment step per update into a replay buffer.

``EpisodeStepper`` is the online stepping both online runs share: env copies (one ``EnvBatch``)
whose episodes run one step at a time, each step's transitions, episode returns, and a reset
with the caller's seed when an episode ends. Behaviour training (``OnlineExperience``, one copy)
and offline-to-online fine-tuning (``training/finetune_experience.py``, one copy per member)
both step through it.

``OnlineExperience.next_batch`` is the loop's batch source for online training: it steps the
environment once (uniform random actions for the first ``start_steps`` of a run, the policy's
sampled actions after), stores the transition, and returns a replay batch once learning starts.
The buffer is written to disk in chunks at every checkpoint, so a resumed run has the same
experience, in order; the chunks are also the real replay that ``medium-replay`` datasets keep.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4rl_lite.datasets.builders.replay import load_replay_chunk
from d4rl_lite.envs.vector import EnvBatch
from d4rl_lite.errors import D4RLLiteError


@dataclass
class Steps:
    """What one step of every copy gave: flat observations before and after, rewards, and how
    episodes ended (``timeouts``: truncated without terminating). ``finished``: the copies whose
    episode ended at this step, with its return and length (they were reset since)."""

    obs: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    finished: list[tuple[int, float, int]]


class EpisodeStepper:
    """``copies`` env copies of ``task`` (stepped in this process) running episode after episode.

    ``reset_seed(i)`` gives the seed of copy i's next episode, asked for when it starts (at
    construction, and after each end): the caller decides whether seeds come from a random
    stream (behaviour training) or from the episode's number (fine-tuning, whose resume rests on it).
    ``obs`` holds each copy's current flat observation (float32, as the task flattens it).
    """

    def __init__(self, task: Any, copies: int, reset_seed: Callable[[int], int]):
        self.task, self.reset_seed = task, reset_seed
        self.envs = EnvBatch(task, copies, workers=1)
        self.obs = np.zeros((copies, task.observation_dim), np.float32)
        self.episode_return = np.zeros(copies)
        self.episode_length = np.zeros(copies, np.int64)
        for i in range(copies):
            self.reset(i)

    def reset(self, i: int) -> None:
        """Start copy i's next episode (seed from ``reset_seed``)."""
        self.envs.reset(i, self.reset_seed(i), None)
        self.obs[i] = self.task.flatten_observation(self.envs.obs)[i]
        self.episode_return[i], self.episode_length[i] = 0.0, 0

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> Steps:
        """Step every copy (or the ``active`` ones) with ``actions`` (copies, A); finished episodes restart."""
        obs = self.obs.copy()
        _, rewards, terminated, truncated = self.envs.step(actions, active)
        next_obs = self.task.flatten_observation(self.envs.obs).copy()
        on = np.ones(len(obs), bool) if active is None else np.asarray(active, bool)
        self.obs[on] = next_obs[on]
        self.episode_return[on] += rewards[on]
        self.episode_length[on] += 1
        finished = []
        for i in np.flatnonzero((terminated | truncated) & on):
            finished.append((int(i), float(self.episode_return[i]), int(self.episode_length[i])))
            self.reset(int(i))
        return Steps(obs, rewards, next_obs, terminated, truncated & ~terminated, finished)

    def close(self) -> None:
        self.envs.close()


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        self.obs = torch.zeros(capacity, obs_dim)
        self.actions = torch.zeros(capacity, act_dim)
        self.rewards = torch.zeros(capacity)
        self.next_obs = torch.zeros(capacity, obs_dim)
        self.terminals = torch.zeros(capacity)
        self.timeouts = torch.zeros(capacity)
        self.size = 0

    @property
    def capacity(self) -> int:
        return self.obs.shape[0]

    def fields(self) -> dict[str, torch.Tensor]:
        return {"observations": self.obs, "actions": self.actions, "rewards": self.rewards,
                "next_observations": self.next_obs, "terminals": self.terminals, "timeouts": self.timeouts}

    def add(self, obs, action, reward, next_obs, terminal, timeout) -> None:
        i = self.size
        self.obs[i] = torch.from_numpy(obs)
        self.actions[i] = torch.from_numpy(action)
        self.rewards[i] = float(reward)
        self.next_obs[i] = torch.from_numpy(next_obs)
        self.terminals[i] = float(terminal)
        self.timeouts[i] = float(timeout)
        self.size = i + 1

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch_size,), generator=generator)
        return {k: v[idx] for k, v in self.fields().items() if k != "timeouts"}

    def save_chunk(self, directory: Path, start: int, end: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"chunk_{start:08d}_{end:08d}.npz"
        tmp = final.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: v[start:end].numpy() for k, v in self.fields().items()})
        os.replace(tmp, final)

    def load_chunks(self, directory: Path, up_to: int) -> None:
        """Refill from the chunks of ``directory`` up to transition ``up_to`` (a checkpoint's)."""
        for f in sorted(directory.glob("chunk_*.npz")):
            start, end = (int(x) for x in f.stem.split("_")[1:3])
            if start != self.size:
                raise D4RLLiteError(f"replay chunk {f} starts at {start}, expected {self.size}: the run directory is "
                                    "inconsistent; continue from a snapshot (--resume-from) in a new run directory")
            if end > up_to:
                break  # written after the checkpoint we resume from
            data = load_replay_chunk(f)  # as written, or packed as committed (a staged run on a fresh machine)
            for k, v in self.fields().items():
                v[start:end] = torch.from_numpy(data[k])
            self.size = end
        if self.size != up_to:
            raise D4RLLiteError(f"replay chunks in {directory} cover {self.size} steps, the checkpoint is at {up_to}")


class OnlineExperience:
    """The loop's batch source for online training (see the module docstring).

    ``first_step`` is the global step of the buffer's first transition (not 0 after a warm
    restart from a weights-only snapshot, whose buffer refills before updates resume).
    """

    def __init__(self, task: Any, agent: Any, replay: ReplayBuffer, start_steps: int, batch_size: int,
                 generator: torch.Generator, rng: np.random.Generator, first_step: int = 0):
        self.task, self.agent, self.replay = task, agent, replay
        self.start_steps, self.batch_size, self.first_step = start_steps, batch_size, first_step
        self.gen, self.rng = generator, rng
        self.saved_up_to = replay.size  # transitions already in the chunks on disk
        self.recent_returns: list[float] = []  # the last 10 finished training episodes' returns
        self._low, self._high = task.action_space.low, task.action_space.high
        # A resumed run starts a new episode: the simulator state is not part of the checkpoint.
        self._env = EpisodeStepper(task, 1, lambda _: int(self.rng.integers(2**31)))

    def next_batch(self, step: int) -> dict[str, torch.Tensor] | None:
        if step < self.start_steps and self.first_step == 0:
            action = self.rng.uniform(self._low, self._high).astype(np.float32)
        else:
            action = self.agent.sample_action(torch.from_numpy(self._env.obs[0])[None], deterministic=False,
                                              generator=self.gen)[0].numpy()
        out = self._env.step(action[None])
        self.replay.add(out.obs[0], action, out.rewards[0], out.next_obs[0], out.terminals[0], out.timeouts[0])
        for _, episode_return, _ in out.finished:
            self.recent_returns = (self.recent_returns + [episode_return])[-10:]
        if step >= self.start_steps and self.replay.size >= min(self.start_steps, self.replay.capacity):
            return self.replay.sample(self.batch_size, self.gen)
        return None

    def save(self, directory: Path) -> None:
        """Write the transitions gathered since the last save as one replay chunk."""
        if self.replay.size > self.saved_up_to:
            self.replay.save_chunk(directory, self.saved_up_to, self.replay.size)
            self.saved_up_to = self.replay.size

    def close(self) -> None:
        self._env.close()
