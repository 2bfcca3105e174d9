"""Evaluation speed: N episodes in a batch of env copies (stepped by one process per core) with
batched policy calls vs the same N episodes one after another in a single env (same seeds, same
policy), in one run.

    python benchmarks/eval_speed.py                       # halfcheetah, 10 episodes, bc/td3_bc/iql/cql
    python benchmarks/eval_speed.py --tasks hopper ant pointmaze-medium --algos td3_bc bcq

On 2 cores the speed-up is bounded by 2 x (env step + batch-1 policy call) / env step: policies
whose cost is compute (BCQ scores 100 candidates per state) gain little from batching.
Untrained policies end hopper/walker2d episodes within tens of steps; `expert` (the committed
behaviour policy, called through torch like an algorithm's actor) runs them to full length.
The last column compares returns: torch's float32 kernels round differently at batch 1 and
batch 10, which chaotic tasks (ant) amplify; the vector path itself is exact (tests/test_rollout.py).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def sequential(task, policy, episodes: int, seed: int) -> np.ndarray:
    env = task.make_env()
    returns = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i, options=task.eval_reset_options())
        done = False
        while not done:
            obs, r, term, trunc, _ = env.step(policy(task.flatten_observation(obs)[None])[0])
            returns[i] += r
            done = term or trunc
    env.close()
    return returns


class TorchExpert:
    """The task's committed expert actor, deterministic, called through torch as algorithms act."""

    def __init__(self, task_name: str):
        from d4rl_lite.datasets.behavior.policies import load_role

        self.actor = load_role(task_name, "expert")[0]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return torch.tanh(self.actor(torch.as_tensor(obs, dtype=torch.float32))[0]).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["halfcheetah"])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="time each side this many times, keep the fastest "
                                                           "(shared VMs are noisy: single timings vary by 30%%)")
    p.add_argument("--algos", nargs="+", default=["bc", "td3_bc", "iql", "cql"],
                   help="algorithms (untrained, reference networks) and/or `expert` (committed behaviour policy)")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.errors import D4RLLiteError
    from d4rl_lite.envs.vector import default_env_workers
    from d4rl_lite.evaluation.evaluate import evaluate
    from d4rl_lite.tasks import get_task

    workers = default_env_workers(args.episodes)
    print(f"{args.episodes} episodes, reference-size untrained policies, 1 torch thread, "
          f"{workers} process(es) stepping the vector env, fastest of {args.repeats} timings")
    print(f"{'task':<18}{'policy':<8}{'steps':>8}{'sequential s':>14}{'vector s':>10}{'speed-up':>10}  max return diff (rel.)")
    for task_name in args.tasks:
        task = get_task(task_name)
        for name in args.algos:
            if name == "expert":
                try:
                    algo = TorchExpert(task_name)
                except D4RLLiteError as e:  # no committed policy for this task yet
                    print(f"{task_name:<18}{name:<8}  skipped: {e}")
                    continue
            else:
                algo = get_algorithm(name)(task.observation_dim, task.action_dim, device="cpu", seed=0)
            t_seq = t_vec = float("inf")
            for _ in range(args.repeats):  # alternate the two sides so drifts hit both
                t0 = time.perf_counter()
                seq = sequential(task, algo, args.episodes, task.eval_seed)
                t_seq = min(t_seq, time.perf_counter() - t0)
                t0 = time.perf_counter()
                vec_result = evaluate(task, algo, episodes=args.episodes, num_envs=args.episodes)
                t_vec = min(t_vec, time.perf_counter() - t0)
            steps = int(sum(vec_result.lengths))
            diff = f"{np.abs(seq - vec_result.returns).max() / max(1.0, np.abs(seq).max()):.1e}"
            print(f"{task_name:<18}{name:<8}{steps:>8}{t_seq:>14.2f}{t_vec:>10.2f}{t_seq / t_vec:>9.1f}x  {diff}", flush=True)


if __name__ == "__main__":
    main()
