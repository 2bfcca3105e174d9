"""What a CUDA GPU does for d4rl_lite, in one table, in under 10 minutes: run it the day a GPU is lent.

    python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --peer-python /opt/d3rlpy-venv/bin/python   # d3rlpy's figures too

For every algorithm, at the `lite` configuration (2x128 networks, batch 256, hopper-sized random
data on the GPU, warm-up phases over), updates per second:

  solo        one run, fp32
  pop5        a 5-member population, member-updates/s (5 x its updates/s), fp32
  bf16        the same population under bf16 autocast (--precision bf16)
  compiled    a compiled update: not available (d4rl-lite has no --compile yet); the column stays so
              the table's shape does not change when it comes
  d3rlpy      d3rlpy's update on the same GPU and shapes (benchmarks/peer_speed.py runs it in its own
              venv), where --peer-python is given, every d3rlpy network at the lite 2x128; its sample
              counts differ (see peer_speed.py), and our BCQ and BEAR keep their 750x750 VAE at lite

then the projected wall time of the `lite` and `d4rl` suites on this GPU (as `d4rl-lite bench SUITE
--plan --device cuda`). Nothing is downloaded or installed. Without CUDA it says so in one line and
exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # population_speed, peer_speed

MEMBERS = 5
NOT_AVAILABLE = "not available"


def updates_per_s(name: str, members: int, precision: str, seconds: float) -> float:
    """Member-updates/s of ``name`` on the GPU at the lite configuration (``members`` 1: one run)."""
    import contextlib

    import torch
    from population_speed import bench_config

    from d4rl_lite.algorithms import get_algorithm

    cls = get_algorithm(name)
    cfg = bench_config(cls, "lite")
    obs_dim, act_dim, batch_size = 11, 3, cfg.batch_size
    if cls.supports_population:
        algo, lead = cls.population(obs_dim, act_dim, cfg, list(range(members)), device="cuda"), (members,)
    elif members == 1:
        algo, lead = cls(obs_dim, act_dim, cfg, device="cuda"), ()
    else:
        raise NotImplementedError("no population")
    gen = torch.Generator(device="cuda").manual_seed(0)

    def batch() -> dict[str, torch.Tensor]:
        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*lead, batch_size, *shape, generator=gen, device="cuda")

        return {"observations": rand(obs_dim), "actions": rand(act_dim) * 2 - 1, "rewards": rand(),
                "next_observations": rand(obs_dim), "terminals": torch.zeros(*lead, batch_size, device="cuda")}

    batches = [batch() for _ in range(8)]
    cast = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def step(i: int) -> None:
        with cast:
            algo.update(batches[i % len(batches)])
        algo.step += 1

    for i in range(3):  # kernels chosen, allocator warm
        step(i)
    torch.cuda.synchronize()
    count, start = 0, time.perf_counter()
    while count < 5 or time.perf_counter() - start < seconds:
        step(count)
        count += 1
        if count % 20 == 0:
            torch.cuda.synchronize()  # the clock sees finished work, not queued launches
    torch.cuda.synchronize()
    return max(1, members) * count / (time.perf_counter() - start)


def cell(measure, *args) -> str:
    """A figure, or why there is none (one algorithm's failure leaves the rest of the table)."""
    return cell_text(lambda: f"{measure(*args):.1f}", detail=False)


def cell_text(produce, *args, detail: bool = True) -> str:
    try:
        return produce(*args)
    except NotImplementedError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 (reported where the figure would be, the check goes on)
        return f"failed: {type(exc).__name__}" + (f": {exc}" if detail else "")


def projected_wall(suite_name: str, workers: int) -> str:
    from d4rl_lite.benchmark.plan import duration, plan_suite
    from d4rl_lite.benchmark.suites import Suite

    suite = Suite.load(suite_name)
    _, wall = plan_suite(suite, workers, population=True, device="cuda")  # as `bench SUITE --plan --device cuda`
    return f"{duration(wall)} ({len(suite.runs())} runs, {workers} workers, {suite.precision})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", help="python of a virtual environment with d3rlpy (optional)")
    parser.add_argument("--algos", nargs="+", help="algorithms to measure (default: all)")
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per figure (default 1.5)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the suites' projection (default 2)")
    parser.add_argument("--no-plan", action="store_true", help="leave out the suites' projected wall times")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(f"no CUDA device here (torch {torch.__version__}): nothing to measure; run this on a machine with a GPU")
        return 0
    if args.peer_python and not os.path.exists(args.peer_python):
        print(f"no python at {args.peer_python}: give the d3rlpy venv's python (see benchmarks/peer_speed.py)")
        return 2

    from peer_speed import PEERS, peer
    from population_speed import LITE

    from d4rl_lite.algorithms import ALGORITHMS

    started = time.perf_counter()
    names = args.algos or sorted(ALGORITHMS)
    unknown = sorted(set(names) - set(ALGORITHMS))
    if unknown:
        print(f"unknown algorithm(s): {', '.join(unknown)}; known: {', '.join(sorted(ALGORITHMS))}")
        return 2
    bf16 = torch.cuda.is_bf16_supported()
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}; lite configuration "
          f"({'x'.join(map(str, LITE['hidden']))} networks, batch {LITE['batch_size']}), hopper-sized random data; "
          f"updates/s (pop{MEMBERS}, bf16: member-updates/s of a {MEMBERS}-member population)")
    print(f"{'algorithm':<10}{'solo':>10}{f'pop{MEMBERS}':>10}{'bf16':>10}{'compiled':>15}{'d3rlpy':>12}")
    for name in names:
        solo = cell(updates_per_s, name, 1, "fp32", args.seconds)
        pop = cell(updates_per_s, name, MEMBERS, "fp32", args.seconds)
        half = cell(updates_per_s, name, MEMBERS, "bf16", args.seconds) if bf16 else "no bf16"
        if args.peer_python and name in PEERS:
            theirs = cell(lambda algo: peer(args.peer_python, algo, args.seconds, "cuda:0", list(LITE["hidden"]))["updates_per_s"],
                          name)
        else:
            theirs = "-"
        print(f"{name:<10}{solo:>10}{pop:>10}{half:>10}{NOT_AVAILABLE:>15}{theirs:>12}", flush=True)
    if not args.no_plan:
        for suite_name in ("lite", "d4rl"):
            print(f"projected wall time of {suite_name}: {cell_text(projected_wall, suite_name, args.workers)}", flush=True)
    print(f"(measured in {time.perf_counter() - started:.0f} s; compiled: d4rl-lite has no --compile yet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
