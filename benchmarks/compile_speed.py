"""The compiled update (train --compile) against eager: updates/s ratio per algorithm, in one run.

For each algorithm whose update --compile compiles, two instances (eager, compiled) from one seed
are timed in alternating windows on one thread, and the median of the per-window ratios is printed
(so machine drift hits both sides). Configurations:

  solo    every network 2x256, batch 256, fp32, one run (peer_speed.py's shapes)
  lite    the lite suite's 2x128, batch 256, a 5-member population under bf16 autocast

    python benchmarks/compile_speed.py                       # every compiled algorithm, both configurations
    python benchmarks/compile_speed.py --algos td3_bc --configs solo --windows 7

Compilation (tens of seconds per algorithm on a CPU) is done before timing and not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings

import torch
import torch._dynamo

warnings.filterwarnings("ignore")

OBS_DIM, ACT_DIM = 11, 3
CONFIGS = {"solo": ((256, 256), 0, "fp32"), "lite": ((128, 128), 5, "bf16")}


def _batches(members: int, batch: int, n: int = 16) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    lead = (members,) if members else ()
    return [{"observations": torch.randn(*lead, batch, OBS_DIM, generator=g),
             "actions": torch.rand(*lead, batch, ACT_DIM, generator=g) * 2 - 1,
             "rewards": torch.randn(*lead, batch, generator=g),
             "next_observations": torch.randn(*lead, batch, OBS_DIM, generator=g),
             "terminals": torch.zeros(*lead, batch)} for _ in range(n)]


def compiled_over_eager(name: str, config: str, windows: int, seconds: float) -> tuple[float, float, float]:
    """(eager updates/s, compiled updates/s, median per-window ratio) of ``name`` at ``config``."""
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.compiled import compile_update
    from d4rl_lite.algorithms.settings import make_config

    hidden, members, precision = CONFIGS[config]
    cls = get_algorithm(name)
    fields = cls.Config.__dataclass_fields__
    cfg = make_config(cls.Config, {**{k: hidden for k in fields if k.endswith("hidden")}, "batch_size": 256,
                                   **{k: 0 for k in ("warmup_steps",) if k in fields}})
    make = ((lambda: cls.population(OBS_DIM, ACT_DIM, cfg, list(range(members)), device="cpu")) if members else
            (lambda: cls(OBS_DIM, ACT_DIM, cfg, device="cpu", seed=0)))
    eager, compiled = make(), make()
    torch._dynamo.reset()  # each figure compiles afresh (shared frames such as optimize() hit the recompile limit)
    compile_update(compiled, quiet=True)
    batches = _batches(members, 256)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def rate(algo) -> float:
        done, t0 = 0, time.perf_counter()
        while done < 3 or time.perf_counter() - t0 < seconds:
            with cast:
                algo.update(batches[done % len(batches)])
            algo.step += 1
            done += 1
        return done / (time.perf_counter() - t0)

    for algo in (eager, compiled):  # compile every branch (e.g. TD3+BC's actor step), warm the allocator
        for _ in range(4):
            with cast:
                algo.update(batches[0])
            algo.step += 1
    figures = [(rate(eager), rate(compiled)) for _ in range(windows)]
    return (statistics.median(e for e, _ in figures), statistics.median(c for _, c in figures),
            statistics.median(c / e for e, c in figures))


def main() -> None:
    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.algorithms.compiled import compile_refusal

    offered = sorted(n for n, cls in ALGORITHMS.items() if not compile_refusal(cls))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=offered, choices=offered)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--windows", type=int, default=5, help="alternating timing windows per side")
    p.add_argument("--seconds", type=float, default=2.0, help="length of each window")
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"1 thread, obs {OBS_DIM}, act {ACT_DIM}, batch 256; solo: 2x256 fp32; lite: 2x128 5-member population bf16")
    print(f"{'config':<7}{'algorithm':<10}{'eager upd/s':>12}{'compiled upd/s':>16}{'compiled/eager':>16}")
    for config in args.configs:
        for name in args.algos:
            eager, compiled, ratio = compiled_over_eager(name, config, args.windows, args.seconds)
            print(f"{config:<7}{name:<10}{eager:>12.1f}{compiled:>16.1f}{ratio:>15.2f}x", flush=True)


if __name__ == "__main__":
    main()
