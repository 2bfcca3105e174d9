"""Load speed: d4rl_lite's direct-HDF5 path vs iterating episodes through Minari's API.

Builds the dataset first if it is missing (random datasets need no policy), then times, in
one run, three ways of getting the flat transition arrays of the same file:

  minari    minari.load_dataset(id).iterate_episodes(), concatenated into flat arrays
  fast      d4rl_lite.load_dataset(..., verify=False): direct HDF5 reads into flat arrays
  verified  d4rl_lite.load_dataset(...): the same plus full validation and the checksum

    python benchmarks/load_speed.py                         # halfcheetah-random-v0, 1M transitions
    python benchmarks/load_speed.py --name hopper-random-v0 --size 1000000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def minari_to_flat(dataset_id: str) -> dict[str, np.ndarray]:
    import minari

    ds = minari.load_dataset(dataset_id)
    obs, nxt, act, rew, term, trunc = [], [], [], [], [], []
    for ep in ds.iterate_episodes():
        o = ep.observations
        if isinstance(o, dict):
            o = np.concatenate([o["observation"], o["desired_goal"]], axis=-1)
        obs.append(o[:-1])
        nxt.append(o[1:])
        act.append(ep.actions)
        rew.append(ep.rewards)
        term.append(ep.terminations)
        trunc.append(ep.truncations)
    return {"observations": np.concatenate(obs), "next_observations": np.concatenate(nxt),
            "actions": np.concatenate(act), "rewards": np.concatenate(rew),
            "terminals": np.concatenate(term), "timeouts": np.concatenate(trunc)}


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="halfcheetah-random-v0")
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "d4rl_lite_bench"))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import d4rl_lite
    from d4rl_lite.datasets.catalogue import is_built, parse_dataset_name

    name = parse_dataset_name(args.name)
    os.environ["MINARI_DATASETS_PATH"] = args.root
    if is_built(name, args.root) and d4rl_lite.load_dataset(name.alias, root=args.root, verify=False).num_transitions != args.size:
        print(f"existing {name.alias} has another size; rebuilding")
        d4rl_lite.build_dataset(name.alias, size=args.size, root=args.root, overwrite=True)
    elif not is_built(name, args.root):
        t0 = time.perf_counter()
        d4rl_lite.build_dataset(name.alias, size=args.size, root=args.root)
        print(f"built {name.alias} ({args.size:,} transitions) in {time.perf_counter() - t0:.1f} s")

    t_minari, ref = best_of(lambda: minari_to_flat(name.dataset_id), args.repeats)
    t_fast, fast = best_of(lambda: d4rl_lite.load_dataset(name.alias, root=args.root, verify=False), args.repeats)
    t_verified, _ = best_of(lambda: d4rl_lite.load_dataset(name.alias, root=args.root), args.repeats)
    for key, arr in ref.items():
        assert np.array_equal(arr, getattr(fast, key)), f"{key} differs between the two load paths"
    n, e = fast.num_transitions, fast.num_episodes
    print(f"dataset   {name.alias}: {n:,} transitions in {e:,} episodes (best of {args.repeats})")
    print(f"minari    {t_minari:8.3f} s   {n / t_minari / 1e6:6.2f} M transitions/s")
    print(f"fast      {t_fast:8.3f} s   {n / t_fast / 1e6:6.2f} M transitions/s   {t_minari / t_fast:5.1f}x minari")
    print(f"verified  {t_verified:8.3f} s   {n / t_verified / 1e6:6.2f} M transitions/s   {t_minari / t_verified:5.1f}x minari")


if __name__ == "__main__":
    main()
