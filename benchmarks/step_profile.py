"""Where an update's time goes, per algorithm, and whether it ever waits on the host.

For every algorithm at its reference configuration (random data with obs 17 and act 6, as in
algo_speed.py; 1 thread; past warm-up) it profiles a few updates with torch.profiler and splits
their CPU time into
  matmul     mm / addmm / bmm / baddbmm, forward and backward
  elementw.  everything else in ATen: activations and their gradients, copies, reductions
  optimizer  Adam steps, zero_grad, target-network updates
  other      the rest of the wall time: the update's Python, autograd bookkeeping, the profiler's
             own overhead (which also makes the profiled updates/s lower than algo_speed's)
and counts host readbacks per update (d4rl_lite.profiling.HostReadbacks: .item(), bool(t),
nonzero, boolean masks). A readback inside a step would stall a GPU; the count must be 0.

    python benchmarks/step_profile.py                       # every algorithm
    python benchmarks/step_profile.py --algos cql --top 15  # and CQL's most expensive ops
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # algo_speed.bench_setup builds each algorithm

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"}
OPTIMIZER = ("Optimizer.", "aten::_fused_adam", "aten::_foreach", "aten::lerp")


def profile(name: str, updates: int, top: int, obs_dim: int, act_dim: int) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from algo_speed import bench_setup
    from d4rl_lite.profiling import HostReadbacks

    import torch

    algo, batch = bench_setup(name, {}, obs_dim, act_dim)
    optimizers = [v for v in algo._state_items().values() if isinstance(v, torch.optim.Optimizer)]
    with HostReadbacks(optimizers) as readbacks:  # (Adam's host-side step counters are not readbacks)
        for _ in range(3):
            algo.update(batch())
    t0 = time.perf_counter()
    with torch_profiler_quiet(), torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(updates):
            algo.update(batch())
    wall = time.perf_counter() - t0
    events = prof.key_averages()
    self_us = lambda keep: sum(e.self_cpu_time_total for e in events if keep(e.key))  # noqa: E731
    matmul = self_us(lambda k: k in MATMUL)
    optimizer = self_us(lambda k: k.startswith(OPTIMIZER))
    elementwise = self_us(lambda k: k.startswith("aten::") and k not in MATMUL and not k.startswith(OPTIMIZER))
    wall_us = wall * 1e6
    if top:
        print(f"\n{name}: most expensive ops over {updates} updates (self CPU time)")
        print(events.table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=40))
    return {"updates_per_s": updates / wall, "matmul": matmul / wall_us, "elementwise": elementwise / wall_us,
            "optimizer": optimizer / wall_us, "other": 1 - (matmul + elementwise + optimizer) / wall_us,
            "readbacks_per_update": len(readbacks.seen) / 3}


class torch_profiler_quiet:
    """The CPU profiler prints start/stop lines on stderr; keep the table readable."""

    def __enter__(self):
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=None)
    p.add_argument("--updates", type=int, default=None, help="profiled updates (default: about 3 s per algorithm)")
    p.add_argument("--top", type=int, default=0, help="also print each algorithm's N most expensive ops")
    p.add_argument("--obs-dim", type=int, default=17, help="as algo_speed.py")
    p.add_argument("--act-dim", type=int, default=6)
    args = p.parse_args()

    import torch

    from d4rl_lite.algorithms import ALGORITHMS

    torch.set_num_threads(1)
    print(f"{'algorithm':<9}{'upd/s':>8}{'matmul':>9}{'elementw.':>10}{'optimizer':>10}{'other':>8}{'readbacks/upd':>15}")
    for name in args.algos or sorted(ALGORITHMS):
        updates = args.updates or {"cql": 10, "bear": 20, "awac": 20, "bcq": 30}.get(name, 100)
        r = profile(name, updates, args.top, args.obs_dim, args.act_dim)
        print(f"{name:<9}{r['updates_per_s']:>8.1f}{r['matmul']:>9.0%}{r['elementwise']:>10.0%}{r['optimizer']:>10.0%}"
              f"{r['other']:>8.0%}{r['readbacks_per_update']:>15.0f}", flush=True)


if __name__ == "__main__":
    main()
