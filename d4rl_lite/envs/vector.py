"""EnvBatch: copies of a task's env stepped in lock-step, shared between worker processes.

Hand-written rather than gymnasium's vector envs: each copy resets with its own seed and options
and copies can idle, which evaluation and builds need for results independent of the number of
copies and workers. Measured against gymnasium's vector envs (benchmarks/vector_env_speed.py, 10
copies, 2 quiet cores, 2026-12-02): AsyncVectorEnv (a process per copy) steps at 0.13-0.33x of
EnvBatch with two processes, SyncVectorEnv at 0.55-0.72x; so EnvBatch stays.
Its step protocol hands each step over with POSIX semaphores, whose post and wait order memory
on every CPU (no reliance on x86's store ordering): it runs in parallel on ARM as on x86.
The batch and its worker protocol stay in one file (about 320 lines): each side is read against the other.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from d4rl_lite.errors import UserInputError
from d4rl_lite.tasks import Task


def default_env_workers(num_envs: int) -> int:
    """How many processes share the stepping of ``num_envs`` env copies: one per CPU core (the
    calling process counts as one), or ``$D4RL_LITE_ENV_WORKERS``; 1 steps every copy in-process."""
    value = os.environ.get("D4RL_LITE_ENV_WORKERS")
    if value is not None:
        try:
            wanted = int(value)
        except ValueError:
            raise UserInputError(f"D4RL_LITE_ENV_WORKERS must be a whole number of processes, got {value!r}") from None
    else:
        wanted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(wanted, num_envs))


class EnvBatch:
    """Independent copies of a task's env stepped in lock-step, each reset with its own seed and
    options (SyncVectorEnv resets every copy with the same options).

    With ``workers`` > 1 the copies are split into that many contiguous shares: the calling
    process steps the first share itself while worker processes step the others, so stepping
    uses every core while the policy still sees one batch. Results do not depend on ``workers``:
    each copy is the same deterministic simulator wherever it runs.
    """

    def __init__(self, task: Task, num_envs: int, max_episode_steps: int | None = None, workers: int | None = None):
        if num_envs < 1:
            raise UserInputError(f"num_envs must be >= 1, got {num_envs}")
        workers = default_env_workers(num_envs) if workers is None else workers
        if not 1 <= workers <= num_envs:
            raise UserInputError(f"workers must be between 1 and num_envs ({num_envs}), got {workers}")
        bounds = np.linspace(0, num_envs, workers + 1).astype(int)
        self.num_envs = num_envs
        self.obs: Any = None
        self.successes = np.zeros(num_envs, bool)
        self._local = int(bounds[1])  # copies [0, _local) are stepped in this process
        self.envs: list = []
        self._remotes: list[_RemoteEnvs] = []
        try:  # the workers make their copies while this process makes its own
            for lo, hi in zip(bounds[1:-1], bounds[2:]):
                self._remotes.append(_RemoteEnvs(task, int(lo), int(hi), max_episode_steps))
            self.envs = [task.make_env(max_episode_steps=max_episode_steps) for _ in range(self._local)]
            for remote in self._remotes:
                remote.wait_ready()
        except BaseException:
            self.close()
            raise

    def _set(self, i: int, obs: Any) -> None:
        if self.obs is None:  # allocate the batch from the first observation
            n = self.num_envs
            self.obs = ({k: np.zeros((n, *np.shape(v))) for k, v in obs.items()} if isinstance(obs, dict)
                        else np.zeros((n, *np.shape(obs))))
        if isinstance(obs, dict):
            for k, v in obs.items():
                self.obs[k][i] = v
        else:
            self.obs[i] = obs

    def reset(self, i: int, seed: int, options: dict[str, Any] | None) -> None:
        if i < self._local:
            obs = self.envs[i].reset(seed=seed, options=options)[0]
        else:
            remote = next(r for r in self._remotes if r.lo <= i < r.hi)
            obs = remote.reset(i - remote.lo, seed, options)
        self._set(i, obs)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        """Step every copy (or only the ``active`` ones); ``self.successes`` holds info["success"] (mazes)."""
        n = self.num_envs
        actions = np.asarray(actions)
        active = np.ones(n, bool) if active is None else np.asarray(active, bool)
        rewards, terms, truncs = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
        self.successes = np.zeros(n, bool)
        if actions.dtype not in (np.float32, np.float64):
            actions = actions.astype(np.float64)
        for remote in self._remotes:  # the workers step while this process steps its own share
            remote.start_step(actions[remote.lo:remote.hi], active[remote.lo:remote.hi])
        try:
            for i, (obs, reward, term, trunc, success) in enumerate(_step_envs(self.envs, actions, active)):
                if obs is not None:
                    rewards[i], terms[i], truncs[i], self.successes[i] = reward, term, trunc, success
                    self._set(i, obs)
        finally:
            # Every worker's answer is taken, even when this share failed: an answer left unread
            # would be taken as the next step's.
            errors = []
            for remote in self._remotes:
                try:
                    remote.wait()
                except RuntimeError as e:
                    errors.append(e)
        if errors:
            raise errors[0]
        for remote in self._remotes:
            shared, share = remote.shared, slice(remote.lo, remote.hi)
            on = active[share]
            rewards[share] = np.where(on, shared.rewards, 0.0)
            terms[share], truncs[share], self.successes[share] = shared.flags & on
            if isinstance(self.obs, dict):
                for k, v in self.obs.items():
                    v[share][on] = shared.obs[k][on]
            else:
                self.obs[share][on] = shared.obs[""][on]
        return self.obs, rewards, terms, truncs

    def close(self) -> None:
        for env in self.envs:
            env.close()
        for remote in self._remotes:
            remote.close()
        self._remotes = []


def _step_envs(envs: list, actions: np.ndarray, active: np.ndarray) -> list[tuple]:
    """Step ``envs`` (zipped with their actions and active flags): (obs, reward, terminated,
    truncated, success) per copy, obs None for an inactive one. Used in-process and by workers."""
    out: list[tuple] = []
    for env, action, on in zip(envs, actions, active):
        if not on:
            out.append((None, 0.0, False, False, False))
            continue
        obs, reward, term, trunc, info = env.step(action)
        out.append((obs, float(reward), bool(term), bool(trunc), bool(info.get("success", False))))
    return out


# Worker protocol. A pipe round trip costs ~200 us on small VMs (the sleeping side must be woken),
# more than stepping one env, so the data of a step goes through shared memory: the parent writes
# the actions and posts the worker's request semaphore; the worker steps its copies, writes the
# results and posts the answer semaphore. A semaphore's post and wait are memory barriers (POSIX
# lists them among the functions that synchronize memory), so what one side wrote before posting
# is what the other reads after waiting, on any CPU. The waiting side first polls the semaphore
# for a moment (a step's answer comes back within microseconds, faster than a sleeping process
# wakes), then blocks on it, so an idle worker (a long policy call, e.g. BCQ's 100 candidates)
# costs no CPU. Resets' arguments, errors and shutdown are rare and use the pipe.
_STEP, _RESET, _CLOSE = 1, 2, 3
_OK, _ERROR = 0, 1
_POLL_S = 0.002  # how long a waiting side polls before it blocks
_BLOCK_S = 0.05  # a blocked side wakes this often to check that its peer is alive


def _acquire(semaphore, alive: Callable[[], bool] | None = None) -> bool:
    """Take ``semaphore``: poll, then block; False if ``alive`` says the other side died first."""
    start = time.perf_counter()
    while not semaphore.acquire(False):
        if time.perf_counter() - start > _POLL_S:
            while not semaphore.acquire(True, _BLOCK_S):
                if alive is not None and not alive():
                    return semaphore.acquire(False)
            break
    return True


class _SharedShare:
    """Shared-memory views of one worker's share of the batch (created before the worker starts)."""

    def __init__(self, ctx: Any, count: int, act_dim: int, obs_shapes: dict[str, tuple[int, ...]]):
        self.raw = {
            "actions": ctx.RawArray("d", count * act_dim), "active": ctx.RawArray("b", count),
            "rewards": ctx.RawArray("d", count), "flags": ctx.RawArray("b", 3 * count),
            **{f"obs:{k}": ctx.RawArray("d", count * int(np.prod(shape))) for k, shape in obs_shapes.items()},
        }
        self.request, self.answer = ctx.Semaphore(0), ctx.Semaphore(0)
        self.command, self.status, self.action_is_f32 = ctx.RawValue("i", 0), ctx.RawValue("i", 0), ctx.RawValue("b", 0)
        self.count, self.act_dim, self.obs_shapes = count, act_dim, obs_shapes
        self.views()

    def views(self) -> None:
        """(Re)build the numpy views (after unpickling in a spawned worker)."""
        n = self.count
        self.actions = np.frombuffer(self.raw["actions"], np.float64).reshape(n, self.act_dim)
        self.active = np.frombuffer(self.raw["active"], np.bool_)
        self.rewards = np.frombuffer(self.raw["rewards"], np.float64)
        self.flags = np.frombuffer(self.raw["flags"], np.bool_).reshape(3, n)  # terminated, truncated, success
        self.obs = {k: np.frombuffer(self.raw[f"obs:{k}"], np.float64).reshape(n, *shape)
                    for k, shape in self.obs_shapes.items()}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k in ("raw", "request", "answer", "command", "status",
                                                                 "action_is_f32", "count", "act_dim", "obs_shapes")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.views()

    def write_obs(self, j: int, obs: Any) -> None:
        if isinstance(obs, dict):
            for k, v in obs.items():
                self.obs[k][j] = v
        else:
            self.obs[""][j] = obs

    def read_obs(self, j: int) -> Any:
        return self.obs[""][j].copy() if "" in self.obs else {k: v[j].copy() for k, v in self.obs.items()}


def _env_worker(conn, shared: _SharedShare, task: Task, max_episode_steps: int | None) -> None:
    """A worker process: owns ``shared.count`` env copies and serves step / reset / close requests."""
    import traceback

    envs: list = []
    parent = os.getppid()
    try:
        envs = [task.make_env(max_episode_steps=max_episode_steps) for _ in range(shared.count)]
        conn.send(("ok", None))
        while True:
            if not _acquire(shared.request, alive=lambda: os.getppid() == parent):
                break  # the parent died without closing us
            command = shared.command.value
            if command == _CLOSE:
                break
            try:
                if command == _STEP:
                    dtype = np.float32 if shared.action_is_f32.value else np.float64
                    actions = shared.actions.astype(dtype)  # exact: float32 -> float64 -> float32
                    for j, (obs, reward, term, trunc, success) in enumerate(_step_envs(envs, actions, shared.active)):
                        if obs is not None:
                            shared.rewards[j] = reward
                            shared.flags[:, j] = (term, trunc, success)
                            shared.write_obs(j, obs)
                else:
                    j, seed, options = conn.recv()
                    shared.write_obs(j, envs[j].reset(seed=seed, options=options)[0])
                shared.status.value, error = _OK, None
            except Exception:
                shared.status.value, error = _ERROR, traceback.format_exc()
            shared.answer.release()
            if error is not None:  # after the answer: the parent reads it once it has the answer
                conn.send(error)
    except (EOFError, KeyboardInterrupt):
        pass
    except Exception:
        conn.send(("error", traceback.format_exc()))
    finally:
        for env in envs:
            env.close()
        conn.close()


class _RemoteEnvs:
    """Env copies ``[lo, hi)`` of an EnvBatch, living in a worker process."""

    def __init__(self, task: Task, lo: int, hi: int, max_episode_steps: int | None):
        # fork starts in milliseconds and needs nothing pickled; elsewhere spawn (Task pickles).
        ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
        space = task.observation_space
        shapes = ({k: tuple(space[k].shape) for k in space.spaces} if isinstance(space, gym.spaces.Dict)
                  else {"": tuple(space.shape)})
        self.lo, self.hi = lo, hi
        self.shared = _SharedShare(ctx, hi - lo, task.action_dim, shapes)
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_env_worker, args=(child, self.shared, task, max_episode_steps), daemon=True)
        self.process.start()
        child.close()

    def wait_ready(self) -> None:
        """Block until the worker has made its env copies (or raise the worker's error)."""
        try:
            status, message = self.conn.recv()
        except (EOFError, OSError) as e:
            raise RuntimeError(self._died()) from e
        if status == "error":
            self.process.join(timeout=5)
            raise RuntimeError(f"making env copies {self.lo}-{self.hi - 1} failed in their worker process:\n{message}")

    def request(self, command: int) -> None:
        self.shared.command.value = command
        self.shared.request.release()

    def wait(self) -> None:
        if not _acquire(self.shared.answer, alive=self.process.is_alive):
            raise RuntimeError(self._died())
        if self.shared.status.value == _ERROR:
            raise RuntimeError(f"env copies {self.lo}-{self.hi - 1} failed in their worker process:\n{self.conn.recv()}")

    def start_step(self, actions: np.ndarray, active: np.ndarray) -> None:
        self.shared.action_is_f32.value = actions.dtype == np.float32
        self.shared.actions[:] = actions
        self.shared.active[:] = active
        self.request(_STEP)

    def reset(self, j: int, seed: int, options: dict[str, Any] | None) -> Any:
        self.conn.send((j, seed, options))
        self.request(_RESET)
        self.wait()
        return self.shared.read_obs(j)

    def _died(self) -> str:
        self.process.join(timeout=1)
        return (f"the worker process stepping env copies {self.lo}-{self.hi - 1} died (exit code "
                f"{self.process.exitcode}); set D4RL_LITE_ENV_WORKERS=1 to step every copy in-process")

    def close(self) -> None:
        if self.process.is_alive():
            self.request(_CLOSE)
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(timeout=5)
        self.conn.close()
