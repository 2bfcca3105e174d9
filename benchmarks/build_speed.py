"""Build speed: a policy dataset build against raw stepping of the same vector env, in one run.

For each task it measures
  raw     the builders' batch of env copies stepped with uniform random actions (no policy, no storage)
  build   locomotion: collect_episodes with the task's medium SAC actor (batched inference, sampled
          actions, per-episode noise streams, storage) -- what `d4rl-lite build TASK-medium-v0` runs;
          mazes: the stitch builder (planner + controller, storage, certificate) -- `TASK-stitch-v0`
and prints transitions/s and build/raw. When a task has no committed medium policy yet, an
untrained actor of the same architecture stands in (same inference cost; said in the output).

    python benchmarks/build_speed.py                  # every locomotion task, 20k transitions each
    python benchmarks/build_speed.py --tasks pointmaze-large --size 100000 --repeats 5
    python benchmarks/build_speed.py --full hopper    # also time a full 1M-transition hopper-medium build
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def raw_rate(task, num_envs: int, steps: int, seed: int = 0, clock=time.perf_counter) -> float:
    """Uniform random actions through the same EnvBatch the builders step, resetting finished copies."""
    from d4rl_lite.envs.vector import EnvBatch

    envs = EnvBatch(task, num_envs, workers=1)  # as collect_episodes steps it (in-process by default)
    rng = np.random.default_rng(seed)
    low, high = task.action_space.low, task.action_space.high
    for i in range(num_envs):
        envs.reset(i, seed + i, task.eval_reset_options())
    done_steps = 0
    t0 = clock()
    while done_steps < steps:
        _, _, term, trunc = envs.step(rng.uniform(low, high, size=(num_envs, len(low))).astype(np.float32))
        done_steps += num_envs
        for i in np.flatnonzero(term | trunc):
            envs.reset(int(i), None, task.eval_reset_options())
    rate = done_steps / (clock() - t0)
    envs.close()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["hopper", "halfcheetah", "walker2d", "ant"])
    p.add_argument("--size", type=int, default=20_000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="maze tasks: raw/build pairs measured, median ratio shown")
    p.add_argument("--full", metavar="TASK", help="also time a full 1M-transition TASK-medium-v0 build to disk")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    from d4rl_lite.nets import TanhGaussianPolicy
    from d4rl_lite.datasets.behavior.policies import ActorPolicy, load_role
    from d4rl_lite.datasets.collect import collect_episodes
    from d4rl_lite.errors import D4RLLiteError
    from d4rl_lite.tasks import get_task

    print(f"{'task':<13}{'raw tr/s':>10}{'build tr/s':>12}{'build/raw':>11}  policy")
    for name in args.tasks:
        task = get_task(name)
        if task.domain == "maze":
            from d4rl_lite.datasets.builders.maze import build_stitch

            # Both run in this process on one thread: timed in CPU seconds, and raw and build
            # alternate --repeats times, the median ratio shown (in wall time this VM's speed
            # drifted by 30% between two pairs a minute apart).
            pairs = []
            for _ in range(args.repeats):
                raw = raw_rate(task, args.num_envs, args.size, clock=time.process_time)
                t0 = time.process_time()
                build_stitch(task, size=args.size, seed=0, num_envs=args.num_envs)
                pairs.append((raw, args.size / (time.process_time() - t0)))
            raw, build = (float(np.median([p[i] for p in pairs])) for i in (0, 1))
            ratio = float(np.median([b / r for r, b in pairs]))
            print(f"{name:<13}{raw:>10,.0f}{build:>12,.0f}{ratio:>10.0%}  stitch builder (controller + certificate), "
                  f"per CPU second, median of {args.repeats}: " + " ".join(f"{b / r:.0%}" for r, b in pairs))
            continue
        try:
            actor, entry = load_role(name, "medium")
            source = f"committed medium (step {entry['step']:,})"
        except D4RLLiteError:
            actor = TanhGaussianPolicy(task.observation_dim, task.action_dim, (256, 256)).eval().requires_grad_(False)
            source = "untrained 256-256 actor (no committed medium yet)"
        raw = raw_rate(task, args.num_envs, args.size)
        t0 = time.perf_counter()
        collect_episodes(task, ActorPolicy(actor, seed=0), args.size, seed=0, num_envs=args.num_envs)
        build = args.size / (time.perf_counter() - t0)
        print(f"{name:<13}{raw:>10,.0f}{build:>12,.0f}{build / raw:>10.0%}  {source}")

    if args.full:
        import d4rl_lite

        with tempfile.TemporaryDirectory() as root:
            t0 = time.perf_counter()
            d4rl_lite.build_dataset(f"{args.full}-medium-v0", size=1_000_000, root=root, num_envs=args.num_envs)
            print(f"full build {args.full}-medium-v0, 1,000,000 transitions to disk: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
