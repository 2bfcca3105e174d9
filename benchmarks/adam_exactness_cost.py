"""What bit-exact populations cost: fused Adam against torch's default (foreach) Adam, in one run.

The algorithms use torch's multi-tensor (foreach) Adam (``algorithms.base.ADAM_OPTIONS``) because
the fused CPU kernel rounds the vectorized tail of a tensor by the tensor's size, so a population
member drifted from its solo run (3e-8 at first, 1.7e-2 after 200 BEAR updates); with foreach,
members equal their solo runs bit for bit. This prints, per algorithm at the `lite` configuration
on one thread, member-updates/s of a solo run and of a 5-member population under both, and
foreach / fused (the fused variant is set here only, through ``ADAM_OPTIONS``).

    python benchmarks/adam_exactness_cost.py [--algos cql iql] [--precision bf16]

Ratios compare (same run); nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from population_speed import bench_config, hopper_sized_data, updates_per_s


def main() -> None:
    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.algorithms import base

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algos", nargs="+", default=sorted(ALGORITHMS))
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per figure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data, obs_dim, act_dim = hopper_sized_data()
    chosen = dict(base.ADAM_OPTIONS)
    print(f"{'algo':<7} {'members':>7} {'fused':>8} {'foreach':>8} {'foreach/fused':>13}   "
          f"(member-updates/s, 1 thread, {args.precision})")
    ratios = []
    for name in args.algos:
        cls = ALGORITHMS[name]
        cfg = bench_config(cls, "lite")
        for members in (1, args.members):
            speed = {}
            for variant in ("fused", "foreach"):
                base.ADAM_OPTIONS.clear()
                base.ADAM_OPTIONS.update({"fused": True} if variant == "fused" else {"foreach": True})
                try:
                    speed[variant] = updates_per_s(cls, cfg, members, args.precision, data, obs_dim, act_dim, args.seconds)
                finally:
                    base.ADAM_OPTIONS.clear()
                    base.ADAM_OPTIONS.update(chosen)
            ratios.append(speed["foreach"] / speed["fused"])
            print(f"{name:<7} {members:>7} {speed['fused']:8.1f} {speed['foreach']:8.1f} {ratios[-1]:12.2f}x", flush=True)
    print(f"foreach / fused: median {np.median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x")


if __name__ == "__main__":
    main()
