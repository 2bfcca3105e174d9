"""The ``finetune`` verb: offline-to-online fine-tuning of finished ``train`` runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from d4rl_lite.cli.arguments import DEVICE_HELP, compile_arg, root_arg, schedule_args
from d4rl_lite.errors import UserInputError


def env_step_count(text: str) -> int:
    """An --env-steps: a whole number from 1 to 2**53 (``run_files.MAX_STEP``); argparse makes the error one line."""
    from d4rl_lite.training.run_files import MAX_STEP

    try:
        steps = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of env steps, got {text!r}") from None
    if not 1 <= steps <= MAX_STEP:
        raise argparse.ArgumentTypeError(f"env steps are whole numbers from 1 to {MAX_STEP:,}, got {text}")
    return steps


def add_finetune(sub: argparse._SubParsersAction) -> None:
    from d4rl_lite.training.finetune_experience import SAMPLING, Mix
    from d4rl_lite.training.offline import TrainConfig

    defaults, mix = TrainConfig(), Mix()
    sp = sub.add_parser(
        "finetune", help="fine-tune finished offline runs with online interaction (offline-to-online)",
        description="Continue finished offline runs (RUN_DIR: what `d4rl-lite train` wrote) with interaction in their "
                    "task's environment: every env step adds a transition to a buffer that also holds the offline "
                    "dataset, then the algorithm takes one update. It starts from the run's weights, optimizers and "
                    "settings, with the changes its paper makes for the online phase (recorded in the new run's "
                    "config). Several RUN_DIRs (seeds or sweep members of one algorithm and dataset) fine-tune together "
                    "as one population, each in its own environment. Each fine-tuning run is a run directory of its "
                    "own (default RUN_DIR__finetune beside it) with log.jsonl, checkpoints and result.json, whose "
                    "curve starts at the offline score (step 0) and counts env steps. Re-running the same command "
                    "resumes exactly where it stopped.")
    sp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished offline run directories (result.json written)")
    sp.add_argument("--env-steps", type=env_step_count, required=True,
                    help="environment steps of online interaction (one update per step)")
    sp.add_argument("--sampling", choices=SAMPLING, default=mix.sampling,
                    help="how batches mix offline and online data: uniform over their union (AWAC's and IQL's "
                         "fine-tuning; default), or a fixed online_fraction of each batch from the online data")
    sp.add_argument("--online-fraction", type=float, default=mix.online_fraction,
                    help=f"with --sampling online_fraction: the share of each batch from online data (default "
                         f"{mix.online_fraction}, RLPD/Cal-QL's symmetric sampling)")
    sp.add_argument("--run-dir", action="append", metavar="DIR",
                    help="where a fine-tuning run writes, one per RUN_DIR in order (default RUN_DIR__finetune)")
    root_arg(sp)
    schedule_args(sp, defaults, unit="env steps")
    sp.add_argument("--device", default=defaults.device, help=DEVICE_HELP)
    sp.add_argument("--precision", choices=("fp32", "bf16"), default=defaults.precision,
                    help="bf16: the updates' matrix products under bf16 autocast")
    sp.add_argument("--threads", type=int, default=defaults.threads,
                    help=f"CPU threads for the updates (default {defaults.threads}; not part of a run's identity)")
    compile_arg(sp)
    sp.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (offline without a key)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    from d4rl_lite.training.finetune import finetune_population
    from d4rl_lite.training.finetune_experience import Mix
    from d4rl_lite.training.offline import TrainConfig

    if args.run_dir and len(args.run_dir) != len(args.runs):
        raise UserInputError(f"give one --run-dir per RUN_DIR ({len(args.runs)}), or none for the default names")
    tc = TrainConfig(steps=args.env_steps, device=args.device, log_every=args.log_every, eval_every=args.eval_every,
                     eval_episodes=args.eval_episodes, checkpoint_every=args.checkpoint_every, wandb=args.wandb,
                     precision=args.precision, threads=args.threads, compile=args.compile)
    records = finetune_population(args.runs, tc, Mix(args.sampling, args.online_fraction), args.run_dir,
                                  progress=not args.quiet, root=args.root)
    for parent, record in zip(args.runs, records):
        final, offline = record["final"], record["finetune"]["offline_final"]
        key = "eval/normalized_score" if "eval/normalized_score" in final else "eval/return_mean"
        label = "normalized score" if key == "eval/normalized_score" else "return"
        before, after = offline.get(key, float("nan")), final.get(key, float("nan"))
        print(f"{record['algorithm']} on {record['dataset']} seed {record['train']['seed']} ({Path(parent).name}): "
              f"{label} {before:.1f} offline -> {after:.1f} after {record['steps']:,} env steps ({after - before:+.1f})")
        print(f"run directory: {record['run_dir']} (log.jsonl, result.json, checkpoint.safetensors)")
    return 0
