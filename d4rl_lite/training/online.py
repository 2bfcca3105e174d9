"""Online experience for the training loop: one environment step per update into a replay buffer.

``OnlineExperience.next_batch`` is the loop's batch source for online training: it steps the
environment once (uniform random actions for the first ``start_steps`` of a run, the policy's
sampled actions after), stores the transition, and returns a replay batch once learning starts.
The buffer is written to disk in chunks at every checkpoint, so a resumed run has the same
experience, in order; the chunks are also the real replay that ``medium-replay`` datasets keep.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4rl_lite.datasets.builders.replay import load_replay_chunk
from d4rl_lite.errors import D4RLLiteError


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
        self._env = task.make_env()
        self._low, self._high = task.action_space.low, task.action_space.high
        # A resumed run starts a new episode: the simulator state is not part of the checkpoint.
        self._obs = self._reset()
        self._episode_return = 0.0

    def _reset(self) -> np.ndarray:
        obs, _ = self._env.reset(seed=int(self.rng.integers(2**31)))
        return self.task.flatten_observation(obs)

    def next_batch(self, step: int) -> dict[str, torch.Tensor] | None:
        if step < self.start_steps and self.first_step == 0:
            action = self.rng.uniform(self._low, self._high).astype(np.float32)
        else:
            action = self.agent.sample_action(torch.from_numpy(self._obs)[None], deterministic=False,
                                              generator=self.gen)[0].numpy()
        next_obs, reward, terminated, truncated, _ = self._env.step(action)
        next_obs = self.task.flatten_observation(next_obs)
        self.replay.add(self._obs, action, reward, next_obs, terminated, truncated and not terminated)
        self._episode_return += float(reward)
        self._obs = next_obs
        if terminated or truncated:
            self.recent_returns = (self.recent_returns + [self._episode_return])[-10:]
            self._episode_return = 0.0
            self._obs = self._reset()
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
