"""Update speed side by side with a peer library (d3rlpy), in one run, on the same CPU thread.

d3rlpy is never a dependency of ours: it lives in its own virtual environment, and this script
drives it there through a subprocess. Set it up once:

    python -m venv /opt/d3rlpy-venv && /opt/d3rlpy-venv/bin/pip install torch==2.13.0 d3rlpy
    python benchmarks/peer_speed.py --peer-python /opt/d3rlpy-venv/bin/python

Both sides get the same shapes (hopper-sized random data, batch 256, every network 2x256) and
are timed for the same window, alternating so machine drift hits both, each on 64 batches drawn
before the timing and cycled (the update alone, not the drawing of its batch). The two libraries'
versions of an algorithm differ in details (sample counts, extra heads), so besides updates/s
the script counts each side's FLOPs per update with torch.utils.flop_counter and compares the
achieved GFLOP/s as well. d3rlpy returns its losses as Python floats every update (a host sync
per step); ours reads metrics back only at log intervals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # algo_speed.bench times our side

OBS_DIM, ACT_DIM, BATCH, HIDDEN = 11, 3, 256, [256, 256]

# our name -> (d3rlpy config class, its settings); every encoder is set to HIDDEN below.
PEERS = {
    "bc": ("BCConfig", {"policy_type": "deterministic"}),
    "td3_bc": ("TD3PlusBCConfig", {}),
    "iql": ("IQLConfig", {}),
    "awac": ("AWACConfig", {}),
    "cql": ("CQLConfig", {"alpha_learning_rate": 0.0}),  # fixed alpha, as our gym default
    "bcq": ("BCQConfig", {"n_action_samples": 10}),  # 10 samples per next state in the target, as ours
    "bear": ("BEARConfig", {"warmup_steps": 0}),
    "crr": ("CRRConfig", {}),  # both: one critic, 4 sampled actions, exp filter, hard target copy every 100
}

PEER_SCRIPT = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch
from torch.utils.flop_counter import FlopCounterMode
import d3rlpy
from d3rlpy.models.encoders import VectorEncoderFactory

cls_name, settings, obs_dim, act_dim, batch, hidden, seconds, device = json.loads(sys.argv[1])
torch.set_num_threads(1)
rng = np.random.default_rng(0)
n = 20_000
dataset = d3rlpy.dataset.MDPDataset(
    rng.standard_normal((n, obs_dim)).astype(np.float32), rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
    rng.standard_normal(n).astype(np.float32), (np.arange(n) % 1000 == 999).astype(np.float32))
cfg_cls = getattr(d3rlpy.algos, cls_name)
fields = set(cfg_cls.__dataclass_fields__)
enc = {k: VectorEncoderFactory(hidden_units=hidden) for k in fields if k.endswith("encoder_factory")}
algo = cfg_cls(batch_size=batch, **enc, **settings).create(device=device)
algo.build_with_dataset(dataset)
batches = [dataset.sample_transition_batch(batch) for _ in range(64)]
for i in range(5):
    algo.update(batches[i])
with FlopCounterMode(display=False) as counter:
    algo.update(batches[5])
done, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    algo.update(batches[done % 64])
    done += 1
print(json.dumps({"updates_per_s": done / (time.perf_counter() - t0), "flops": counter.get_total_flops(),
                  "version": d3rlpy.__version__}))
'''


def ours(name: str, seconds: float, precision: str = "fp32", compile: bool = False) -> tuple[float, float]:
    from algo_speed import bench

    from d4rl_lite.algorithms import get_algorithm

    fields = get_algorithm(name).Config.__dataclass_fields__
    overrides = {k: tuple(HIDDEN) for k in fields if k.endswith("hidden")}
    overrides["batch_size"] = BATCH
    updates_per_s, flops, _ = bench(name, overrides, OBS_DIM, ACT_DIM, seconds, precision, compile)
    return updates_per_s, flops


def peer(python: str, name: str, seconds: float, device: str = "cpu:0", hidden: list[int] = HIDDEN) -> dict:
    """d3rlpy's updates/s and FLOPs per update for our algorithm ``name``, run by ``python`` (its venv) on
    ``device`` ("cpu:0", "cuda:0") with every network ``hidden``. (Each update returns its losses as
    floats, a host sync per step, so its timing is complete on a GPU too.)"""
    cls_name, settings = PEERS[name]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PEER_SCRIPT)
    try:
        out = subprocess.run([python, f.name, json.dumps([cls_name, settings, OBS_DIM, ACT_DIM, BATCH, hidden, seconds, device])],
                             capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(f.name)
    if out.returncode:
        raise RuntimeError(f"d3rlpy side of {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer-python", default=os.environ.get("D3RLPY_PYTHON", "/opt/d3rlpy-venv/bin/python"),
                   help="python of the virtual environment that has d3rlpy")
    p.add_argument("--algos", nargs="+", default=list(PEERS), choices=list(PEERS))
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="our side under bf16 autocast (train --precision bf16); d3rlpy stays fp32")
    p.add_argument("--compile", action="store_true",
                   help="our side's compiled update (train --compile; algorithms it does not compile are skipped); "
                        "d3rlpy stays eager")
    args = p.parse_args()
    if not os.path.exists(args.peer_python):
        sys.exit(f"no python at {args.peer_python}: create the d3rlpy venv first (see this script's docstring)")

    import torch

    torch.set_num_threads(1)
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.compiled import compile_refusal

    if args.compile:
        skipped = [name for name in args.algos if compile_refusal(get_algorithm(name))]
        args.algos = [name for name in args.algos if name not in skipped]
        if skipped:
            print(f"not compiled (train --compile refuses them): {', '.join(skipped)}")
    print(f"1 thread, obs {OBS_DIM}, act {ACT_DIM}, batch {BATCH}, networks {HIDDEN}, ours in {args.precision}"
          + (", compiled" if args.compile else ""))
    print(f"{'algorithm':<10}{'ours upd/s':>11}{'d3rlpy upd/s':>13}{'ratio':>8}{'ours GFLOP/s':>14}{'d3rlpy GFLOP/s':>16}{'ratio':>8}")
    version = "?"
    for name in args.algos:
        ups, flops = ours(name, args.seconds, args.precision, args.compile)
        other = peer(args.peer_python, name, args.seconds)
        version = other["version"]
        g_ours, g_peer = ups * flops / 1e9, other["updates_per_s"] * other["flops"] / 1e9
        print(f"{name:<10}{ups:>11.1f}{other['updates_per_s']:>13.1f}{ups / other['updates_per_s']:>7.2f}x"
              f"{g_ours:>14.1f}{g_peer:>16.1f}{g_ours / g_peer:>7.2f}x", flush=True)
    print(f"d3rlpy {version}")


if __name__ == "__main__":
    main()
