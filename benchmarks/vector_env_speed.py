"""Env stepping: our EnvBatch against gymnasium's vector envs, in one run (architecture issue, item 7).

Steps N copies of a task's env with uniform random actions for a fixed number of batch steps
(copies that finish are reset, autoreset for gymnasium's) and prints env steps per second:

  EnvBatch w=1         every copy in this process
  EnvBatch w=2         the copies shared by this process and a worker (shared memory, steps
                       handed over with semaphores: correct on any CPU)
  SyncVectorEnv        gymnasium, in this process
  AsyncVectorEnv       gymnasium, one process per copy, shared memory, pipes (correct on any CPU)

    python benchmarks/vector_env_speed.py                         # hopper, halfcheetah, pointmaze-medium
    python benchmarks/vector_env_speed.py --tasks ant --envs 10 --steps 2000

Ratios are what compare (same run); nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def time_envbatch(task, num_envs: int, steps: int, workers: int) -> float:
    from d4rl_lite.envs.vector import EnvBatch

    rng = np.random.default_rng(0)
    low, high = task.action_space.low, task.action_space.high
    envs = EnvBatch(task, num_envs, workers=workers)
    try:
        for i in range(num_envs):
            envs.reset(i, i, task.eval_reset_options())
        next_seed = num_envs
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terms, truncs = envs.step(rng.uniform(low, high, (num_envs, len(low))).astype(np.float32))
            for i in np.flatnonzero(terms | truncs):
                envs.reset(int(i), next_seed, task.eval_reset_options())
                next_seed += 1
        elapsed = time.perf_counter() - start
    finally:
        envs.close()
    return num_envs * steps / elapsed


def time_gymnasium(task, num_envs: int, steps: int, asynchronous: bool) -> float:
    import gymnasium as gym

    fns = [lambda: task.make_env() for _ in range(num_envs)]
    envs = gym.vector.AsyncVectorEnv(fns, shared_memory=True) if asynchronous else gym.vector.SyncVectorEnv(fns)
    rng = np.random.default_rng(0)
    low, high = task.action_space.low, task.action_space.high
    try:
        envs.reset(seed=list(range(num_envs)), options=task.eval_reset_options())
        start = time.perf_counter()
        for _ in range(steps):
            envs.step(rng.uniform(low, high, (num_envs, len(low))).astype(np.float32))
        elapsed = time.perf_counter() - start
    finally:
        envs.close()
    return num_envs * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["hopper", "halfcheetah", "pointmaze-medium"])
    parser.add_argument("--envs", type=int, default=10, help="env copies (default 10, as evaluation)")
    parser.add_argument("--steps", type=int, default=1000, help="batch steps per measurement (default 1000)")
    args = parser.parse_args()

    from d4rl_lite.tasks import get_task

    print(f"{args.envs} copies, {args.steps} batch steps, uniform random actions; env steps/s (ratio to EnvBatch w=2)")
    print(f"{'task':<18}{'EnvBatch w=1':>14}{'EnvBatch w=2':>14}{'SyncVectorEnv':>15}{'AsyncVectorEnv':>16}")
    for name in args.tasks:
        task = get_task(name)
        ours1 = time_envbatch(task, args.envs, args.steps, workers=1)
        ours2 = time_envbatch(task, args.envs, args.steps, workers=2)
        sync = time_gymnasium(task, args.envs, args.steps, asynchronous=False)
        asyn = time_gymnasium(task, args.envs, args.steps, asynchronous=True)
        print(f"{name:<18}{ours1:>8.0f} ({ours1 / ours2:.2f}){ours2:>14.0f}{sync:>8.0f} ({sync / ours2:.2f})"
              f"{asyn:>9.0f} ({asyn / ours2:.2f})")


if __name__ == "__main__":
    main()
