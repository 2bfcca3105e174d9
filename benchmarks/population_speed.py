"""Populations and bf16: member-updates per second against solo runs, in one run.

For every algorithm, at the `lite` suite's configuration (2x128 networks, batch 256) and at the
reference one (each algorithm's defaults), on one thread:

  solo        updates/s of one run (a population of one, what `train --seed S` runs)
  pop5        member-updates/s of a 5-member population (5 x its updates/s)
  bf16        the same two under --precision bf16 (matrix products in bf16)

and the ratios to the solo fp32 figure. Warm-up phases are skipped so every update is a full one.
The last line is the smallest bf16-population ratio over the algorithms at the `lite` configuration.

    python benchmarks/population_speed.py                  # all algorithms, both configurations
    python benchmarks/population_speed.py --algos cql iql --configs lite

Ratios compare (same run); nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

LITE = {"hidden": (128, 128), "batch_size": 256}
NO_WARMUP = {"warmup_steps": 0, "behavior_pretrain_steps": 0}


def updates_per_s(cls, cfg, members: int, precision: str, data, obs_dim: int, act_dim: int, seconds: float) -> float:
    algo = cls.population(obs_dim, act_dim, cfg, list(range(members)), device="cpu")
    gens = [torch.Generator().manual_seed(m) for m in range(members)]
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def step() -> None:
        with cast:
            algo.update(data.sample_members(cfg.batch_size, gens))
        algo.step += 1

    for _ in range(3):  # allocator and kernels warm
        step()
    count, start = 0, time.perf_counter()
    while count < 3 or time.perf_counter() - start < seconds:
        step()
        count += 1
    return members * count / (time.perf_counter() - start)


def hopper_sized_data(n: int = 100_000) -> tuple[object, int, int]:
    """(random transitions on the CPU, obs_dim 11, act_dim 3): speed does not depend on values."""
    from d4rl_lite.datasets.offline import TorchTransitions

    rng = np.random.default_rng(0)
    obs_dim, act_dim = 11, 3
    data = TorchTransitions({
        "observations": torch.as_tensor(rng.standard_normal((n, obs_dim)), dtype=torch.float32),
        "actions": torch.as_tensor(rng.uniform(-1, 1, (n, act_dim)), dtype=torch.float32),
        "rewards": torch.as_tensor(rng.standard_normal(n), dtype=torch.float32),
        "next_observations": torch.as_tensor(rng.standard_normal((n, obs_dim)), dtype=torch.float32),
        "terminals": torch.zeros(n), "timeouts": torch.zeros(n)}, torch.device("cpu"))
    return data, obs_dim, act_dim


def bench_config(cls, config: str):
    """``cls``'s config at the ``lite`` or the reference configuration, warm-up phases off."""
    from d4rl_lite.algorithms.settings import make_config

    fields = cls.Config.__dataclass_fields__
    settings = {**(LITE if config == "lite" else {}), **NO_WARMUP}
    return make_config(cls.Config, {k: v for k, v in settings.items() if k in fields or k == "hidden"})


def main() -> None:
    from d4rl_lite.algorithms import ALGORITHMS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algos", nargs="+", default=sorted(ALGORITHMS))
    parser.add_argument("--configs", nargs="+", default=["lite", "reference"], choices=["lite", "reference"])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per figure")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data, obs_dim, act_dim = hopper_sized_data()

    print(f"{'config':<10} {'algo':<7} {'solo':>8} {'pop5':>8} {'ratio':>6} {'bf16 solo':>9} {'ratio':>6} "
          f"{'bf16 pop5':>9} {'ratio':>6}   (member-updates/s, 1 thread)")
    lite_bf16_pop = {}
    for config in args.configs:
        for name in args.algos:
            cls = ALGORITHMS[name]
            cfg = bench_config(cls, config)
            figures = {(m, p): updates_per_s(cls, cfg, m, p, data, obs_dim, act_dim, args.seconds)
                       for p in ("fp32", "bf16") for m in (1, args.members)}
            solo = figures[(1, "fp32")]
            pop, bf_solo, bf_pop = figures[(args.members, "fp32")], figures[(1, "bf16")], figures[(args.members, "bf16")]
            print(f"{config:<10} {name:<7} {solo:8.1f} {pop:8.1f} {pop / solo:5.2f}x {bf_solo:9.1f} {bf_solo / solo:5.2f}x "
                  f"{bf_pop:9.1f} {bf_pop / solo:5.2f}x", flush=True)
            if config == "lite":
                lite_bf16_pop[name] = bf_pop / solo
    if lite_bf16_pop:
        worst = min(lite_bf16_pop, key=lite_bf16_pop.get)
        print(f"smallest bf16 population ratio at the lite configuration: {lite_bf16_pop[worst]:.2f}x ({worst})")


if __name__ == "__main__":
    main()
