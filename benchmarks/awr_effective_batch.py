"""How many of a batch's samples IQL's actor effectively learns from, at a trained run's checkpoint.

IQL's actor regresses on the data's actions weighted by w = min(exp(beta * A), max_weight), with
A = min_i Q'_i(s, a) - V(s). A sharp temperature (beta = 10 on ant mazes) puts most of a batch's
weight on a few samples. This prints, over ``--batches`` random batches of the run's batch size
drawn from its dataset, the effective sample size (sum w)^2 / sum w^2 (equal to the batch size
for behaviour cloning), the share of weights at the clip, the largest weight's share of the sum
and the advantage's quantiles.

    python benchmarks/awr_effective_batch.py RESULTS/iql__antmaze-umaze-diverse-v0__seed0 [RUN ...]
"""

from __future__ import annotations

import argparse


def measure(run: str, batches: int, root: str | None) -> str:
    import torch

    from d4rl_lite.datasets.d4rl_compat import load_dataset
    from d4rl_lite.training.checkpoints import load_run
    from d4rl_lite.training.offline import prepare_data

    algo, record = load_run(run)
    if record["algorithm"] != "iql":
        raise SystemExit(f"{run}: an {record['algorithm']} run; this measures IQL's advantage weights")
    data, _, _ = prepare_data(load_dataset(record["dataset"], root=root, verify=False), algo)
    obs, act = data.tensors["observations"], data.tensors["actions"]
    cfg = algo.config
    gen = torch.Generator().manual_seed(0)
    ess, clipped, top, advantages = [], [], [], []
    with torch.no_grad():
        for _ in range(batches):
            idx = torch.randint(obs.shape[0], (cfg.batch_size,), generator=gen)
            adv = (algo.critic_target(obs[idx], act[idx]).min(0).values - algo.value(obs[idx])).float().flatten()
            w = torch.exp(cfg.beta * adv).clamp(max=cfg.max_weight)
            ess.append(float(w.sum() ** 2 / (w ** 2).sum()))
            clipped.append(float((w >= cfg.max_weight).float().mean()))
            top.append(float(w.max() / w.sum()))
            advantages.append(adv)
    q10, q50, q90 = torch.cat(advantages).quantile(torch.tensor([0.1, 0.5, 0.9])).tolist()
    mean = sum(ess) / batches
    return (f"{record['dataset']} seed {record['train']['seed']}, step {record['step']}, beta {cfg.beta:g}: "
            f"effective batch {mean:.1f} of {cfg.batch_size} ({100 * mean / cfg.batch_size:.0f}%, lowest {min(ess):.1f}); "
            f"at the clip {100 * sum(clipped) / batches:.1f}%; largest weight {100 * sum(top) / batches:.0f}% of a batch's sum; "
            f"advantage 10/50/90%: {q10:+.2f} / {q50:+.2f} / {q90:+.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="IQL run directories (config.json + checkpoint.safetensors)")
    parser.add_argument("--batches", type=int, default=40, help="random batches to average over (default 40)")
    parser.add_argument("--root", default=None, help="datasets directory (default: $MINARI_DATASETS_PATH)")
    args = parser.parse_args()
    for run in args.runs:
        print(measure(run, args.batches, args.root), flush=True)


if __name__ == "__main__":
    main()
