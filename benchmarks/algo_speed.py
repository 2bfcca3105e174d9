"""Update speed of every algorithm: updates/s, FLOPs per update, and the fraction of this machine's
measured fp32 matmul throughput that it reaches -- at the reference configuration and at a small
one (2x64 networks) where framework overhead dominates. All figures from one run.

    python benchmarks/algo_speed.py                     # every algorithm, 1 thread, walker2d-shaped data
    python benchmarks/algo_speed.py --algos cql iql --threads 2 --seconds 10

The matmul ceiling is measured here first (square fp32 GEMMs, best of a few sizes); an update's
FLOPs are counted by torch.utils.flop_counter (matmuls, which dominate every update). The
"GEMMs alone" columns replay one update's matmuls at their own shapes with nothing else around
them: a bound on what the update could reach if autograd, Python and elementwise ops were free.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

warnings.filterwarnings("ignore")


def matmul_ceiling(threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(3):
            a @ b
        reps = max(3, int(2e10 / (2 * n**3)))
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    return best


READY_BATCHES = 64  # drawn before the timing, as many as peer_speed's d3rlpy side draws


def small_overrides(config_cls) -> dict:
    return {k: (64, 64) for k in config_cls.__dataclass_fields__ if k.endswith("hidden")}


def bench_setup(name: str, overrides: dict, obs_dim: int, act_dim: int):
    """(algorithm past its warm-up phases, a function cycling through batches drawn from 100k random
    transitions before any timing)."""
    import torch

    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import make_config

    cls = get_algorithm(name)
    cfg = make_config(cls.Config, overrides)
    algo = cls(obs_dim, act_dim, cfg, device="cpu", seed=0)
    # Past warm-up phases, so the timed update is the algorithm's main one.
    for key in ("warmup_steps", "behavior_pretrain_steps"):
        if hasattr(cfg, key):
            setattr(cfg, key, 0)
    b = cfg.batch_size
    n = 100_000
    data = {"observations": torch.randn(n, obs_dim), "actions": torch.rand(n, act_dim) * 2 - 1, "rewards": torch.randn(n),
            "next_observations": torch.randn(n, obs_dim), "terminals": (torch.rand(n) < 0.01).float()}
    gen = torch.Generator().manual_seed(0)
    # Batches drawn before any timing and cycled (peer_speed's d3rlpy side does the same): the figures
    # are of the update alone, not of drawing its batch (~0.1 ms of index ops, 5% of a 2 ms BC update).
    ready = []
    for _ in range(READY_BATCHES):
        idx = torch.randint(0, n, (b,), generator=gen)
        ready.append({k: v[idx] for k, v in data.items()})
    batches = itertools.cycle(ready)

    def batch():
        return next(batches)

    for _ in range(5):
        algo.update(batch())
    return algo, batch


GEMM_OPS = ("mm", "addmm", "bmm", "baddbmm")


def gemm_only_seconds(algo, batch, reps: int = 20) -> float:
    """Time one update's GEMMs alone: every mm/addmm/bmm/baddbmm it dispatches (forward and
    backward), replayed on fresh tensors of the same shapes and strides, without autograd or any
    other op. The algorithm's share of the ceiling cannot exceed FLOPs / (this time x ceiling)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    calls = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func._schema.name.split("::")[-1] in GEMM_OPS:
                calls.append((func, [(a.shape, a.stride()) if isinstance(a, torch.Tensor) else a for a in args],
                              dict(kwargs or {})))
            return func(*args, **(kwargs or {}))

    with Recorder():
        algo.update(batch())
    def fresh(shape, stride):  # same layout, transposed and broadcast (stride-0) views included
        extent = 1 + sum((n - 1) * st for n, st in zip(shape, stride))
        return torch.randn(extent).as_strided(shape, stride)

    replay = [(func, [fresh(*s) if isinstance(s, tuple) and isinstance(s[0], torch.Size) else s for s in specs], kwargs)
              for func, specs, kwargs in calls]
    with torch.no_grad():
        for func, args, kwargs in replay:  # warm-up
            func(*args, **kwargs)
        t0 = time.perf_counter()
        for _ in range(reps):
            for func, args, kwargs in replay:
                func(*args, **kwargs)
    return (time.perf_counter() - t0) / reps


def bench(name: str, overrides: dict, obs_dim: int, act_dim: int, seconds: float,
          precision: str = "fp32", compile: bool = False) -> tuple[float, float, float]:
    """(updates/s, FLOPs per update, seconds per update of its GEMMs alone); ``precision="bf16"``
    times the updates under bf16 autocast, as ``train --precision bf16`` runs them; ``compile``
    times the compiled update (``train --compile``; FLOPs and GEMMs counted on the eager one,
    compilation done before the timing)."""
    import contextlib

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    algo, batch = bench_setup(name, overrides, obs_dim, act_dim)
    with FlopCounterMode(display=False) as counter:
        algo.update(batch())
    flops = counter.get_total_flops()
    gemm_s = gemm_only_seconds(algo, batch)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    if compile:
        from d4rl_lite.algorithms.compiled import compile_update

        compile_update(algo, quiet=True)
        with cast:
            for _ in range(3):  # compiled before the timing, both branches of an update that alternates
                algo.update(batch())
                algo.step += 1
    with cast:
        algo.update(batch())  # (a first bf16 update packs its weights)
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            algo.update(batch())
            done += 1
    return done / (time.perf_counter() - t0), flops, gemm_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0, help="timing window per algorithm and configuration")
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    args = p.parse_args()

    import torch

    from d4rl_lite.algorithms import ALGORITHMS, get_algorithm

    torch.set_num_threads(args.threads)
    peak = matmul_ceiling(args.threads)
    print(f"fp32 matmul ceiling, {args.threads} thread(s): {peak / 1e9:.1f} GFLOP/s "
          f"(obs {args.obs_dim}, act {args.act_dim})")
    print("'GEMMs alone': the same update's matmuls replayed without anything else, as a share of the ceiling")
    print(f"{'algorithm':<9}{'ref upd/s':>10}{'GFLOP/upd':>10}{'of peak':>9}{'GEMMs alone':>12}"
          f"{'small upd/s':>12}{'of peak':>9}{'GEMMs alone':>12}")
    for name in args.algos or sorted(ALGORITHMS):
        ref_rate, ref_flops, ref_gemm = bench(name, {}, args.obs_dim, args.act_dim, args.seconds)
        small_rate, small_flops, small_gemm = bench(name, small_overrides(get_algorithm(name).Config), args.obs_dim,
                                                    args.act_dim, args.seconds)
        print(f"{name:<9}{ref_rate:>10.1f}{ref_flops / 1e9:>10.3f}{ref_rate * ref_flops / peak:>9.0%}"
              f"{ref_flops / ref_gemm / peak:>12.0%}{small_rate:>12.1f}{small_rate * small_flops / peak:>9.1%}"
              f"{small_flops / small_gemm / peak:>12.0%}", flush=True)


if __name__ == "__main__":
    main()
