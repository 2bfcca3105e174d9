"""EnvBatch's worker hand-over, semaphores (now) against the earlier lock-free counters, in one run.

The earlier protocol (spin on shared counters, correct only under x86's store ordering) is read
from the repository's history (``git show REV:d4rl_lite/envs/vector.py``, default 5e97966, the
last commit with it) and imported beside the current one; both step 10 copies of each task with
2 processes, interleaved, and the median of 3 rounds is printed with the ratio.

    python benchmarks/env_protocol_speed.py [--rev 5e97966] [--tasks hopper halfcheetah pointmaze-medium]

Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def steps_per_s(module, task, copies: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    low, high = task.action_space.low, task.action_space.high
    envs = module.EnvBatch(task, copies, workers=2)
    try:
        for i in range(copies):
            envs.reset(i, i, task.eval_reset_options())
        seed, start = copies, time.perf_counter()
        for _ in range(steps):
            _, _, terms, truncs = envs.step(rng.uniform(low, high, (copies, len(low))).astype(np.float32))
            for i in np.flatnonzero(terms | truncs):
                envs.reset(int(i), seed, task.eval_reset_options())
                seed += 1
        return copies * steps / (time.perf_counter() - start)
    finally:
        envs.close()


def main() -> None:
    import d4rl_lite.envs.vector as current
    from d4rl_lite.tasks import get_task

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="5e97966", help="a commit with the earlier protocol")
    parser.add_argument("--tasks", nargs="+", default=["hopper", "halfcheetah", "pointmaze-medium"])
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "show", f"{args.rev}:d4rl_lite/envs/vector.py"], cwd=repo, check=True,
                            capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "earlier_vector.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("earlier_vector", path)
        earlier = importlib.util.module_from_spec(spec)
        sys.modules["earlier_vector"] = earlier
        spec.loader.exec_module(earlier)
        print(f"{'task':<18} {'counters':>9} {'semaphores':>10} {'ratio':>6}   (env steps/s, 10 copies, 2 processes, median of 3)")
        for name in args.tasks:
            task = get_task(name)
            old, new = [], []
            for _ in range(3):
                old.append(steps_per_s(earlier, task, 10, args.steps))
                new.append(steps_per_s(current, task, 10, args.steps))
            print(f"{name:<18} {np.median(old):9,.0f} {np.median(new):10,.0f} {np.median(new) / np.median(old):5.2f}x")


if __name__ == "__main__":
    main()
