"""The training verbs: ``settings`` (an algorithm's settings), ``train`` (one seed or a population) and ``eval``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from d4rl_lite.cli.arguments import (DEVICE_HELP, compile_arg, parse_settings, root_arg, schedule_args, seed_list, seed_number,
                                     sweep_values)
from d4rl_lite.errors import UserInputError


def add_settings(sub: argparse._SubParsersAction) -> None:
    from d4rl_lite.algorithms import ALGORITHMS

    sp = sub.add_parser("settings", help="an algorithm's settings: name, default, what each does",
                        description="Print every setting of an algorithm with its default and its documentation "
                                    "(the docstring under the field in the algorithm's config).")
    sp.add_argument("algo", choices=sorted(ALGORITHMS), metavar="ALGO", help=", ".join(sorted(ALGORITHMS)))
    sp.set_defaults(func=cmd_settings)


def add_train(sub: argparse._SubParsersAction) -> None:
    # Defaults and names come from where they are declared: the training config and the registry.
    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.training.offline import TrainConfig

    train_defaults = TrainConfig()
    sp = sub.add_parser("train", help="train an offline RL algorithm on a dataset (resumable, logged)",
                        description="Train ALGO on DATASET: batches sampled on the device, periodic evaluation "
                                    "under the task's protocol, JSONL log (and W&B with --wandb), atomic "
                                    "checkpoints. Re-running the same command resumes exactly where it stopped.")
    sp.add_argument("algo", metavar="ALGO", help=", ".join(sorted(ALGORITHMS)))
    sp.add_argument("dataset", metavar="DATASET", help="dataset name (hopper-medium-v0), Minari id or path")
    root_arg(sp)
    sp.add_argument("--steps", type=int, default=train_defaults.steps,
                    help=f"gradient steps (default {train_defaults.steps:,})")
    sp.add_argument("--seed", type=seed_number, default=train_defaults.seed)
    sp.add_argument("--precision", choices=("fp32", "bf16"), default=train_defaults.precision,
                    help="bf16: the updates' matrix products under bf16 autocast (weights, optimizer state and "
                         "losses stay fp32); pays for populations on CPUs with AVX-512 BF16, and on GPUs")
    sp.add_argument("--seeds", metavar="LIST", type=seed_list,
                    help="train several seeds together as one population, e.g. 0,1,2 or 0-4: each member writes "
                         "the run directory its solo run (--seed) would, and ends with the same weights")
    sp.add_argument("--sweep", action="append", metavar="KEY=V1,V2", type=sweep_values,
                    help="train one member per value (per seed; several --sweep: every combination) in one "
                         "population, e.g. --sweep cql_weight=1,5,10; only scalar settings the algorithm lists as "
                         "sweepable (d4rl-lite settings ALGO); each member's run directory and config hold its values")
    sp.add_argument("--device", default=train_defaults.device, help=DEVICE_HELP)
    sp.add_argument("--threads", type=int, default=train_defaults.threads,
                    help=f"CPU threads for the updates (default {train_defaults.threads}: small networks gain nothing "
                         "from more, and lose much when another process shares the cores; recorded in the run's "
                         "config, not part of its identity)")
    compile_arg(sp)
    sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="algorithm settings, e.g. --set cql_weight=10 --set hidden=256,256")
    schedule_args(sp, train_defaults)
    sp.add_argument("--run-dir", metavar="DIR", help="default: runs/ALGO__DATASET__seedS, the run id bench gives it (with --seeds "
                                                        "or --sweep: the folder holding the members' "
                                                        "ALGO__DATASET[__KEY=VALUE]__seedS directories)")
    sp.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (offline without a key)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_train)


def add_eval(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("eval", help="evaluate a trained run's checkpoint under its task's protocol",
                        description="Load CHECKPOINT (a run directory or its checkpoint.safetensors) and evaluate the "
                                    "deterministic policy: raw and normalized return, success rate on mazes.")
    sp.add_argument("checkpoint", metavar="CHECKPOINT")
    sp.add_argument("--episodes", type=int, default=None, help="episodes (default: the task's protocol)")
    root_arg(sp)
    sp.set_defaults(func=cmd_eval)


def cmd_settings(args: argparse.Namespace) -> int:
    import dataclasses
    import textwrap

    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import setting_docs

    cls = get_algorithm(args.algo)
    docs = setting_docs(cls.Config)
    defaults = cls.Config()
    print(f"{args.algo} settings (change any with train/--set KEY=VALUE; suites: \"settings\"):")
    for field in dataclasses.fields(cls.Config):
        value = getattr(defaults, field.name)
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        print(f"  {field.name} = {shown}" + ("   (sweepable: train --sweep)" if field.name in cls.sweepable else ""))
        for line in textwrap.wrap(docs[field.name] or "(undocumented)", 92):
            print(f"      {line}")
    return 0


def _sweeps_and_settings(args: argparse.Namespace) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """--sweep (values read as the setting's type, as run directories name them) and --set, checked together."""
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import make_config

    sweeps: dict[str, list[Any]] = dict(args.sweep or [])
    if len(sweeps) != len(args.sweep or []):
        raise UserInputError("each setting can be swept once (one --sweep KEY=... per key)")
    algo_cls = get_algorithm(args.algo)
    for key, values in sweeps.items():  # an unknown key is refused here; values as numbers, as run directories name them
        configs = [make_config(algo_cls.Config, {key: v}) for v in values]
        if key in algo_cls.sweepable:
            sweeps[key] = [getattr(c, key) for c in configs]
    settings = parse_settings(args.set)
    both = sorted(set(sweeps) & set(settings))
    if both:
        raise UserInputError(f"{', '.join(both)} is given by both --set and --sweep; keep one")
    return sweeps, settings


def cmd_train(args: argparse.Namespace) -> int:
    import itertools

    from d4rl_lite.datasets.d4rl_compat import load_dataset
    from d4rl_lite.training.offline import TrainConfig, default_run_dir, train_population

    sweeps, settings = _sweeps_and_settings(args)
    if args.compile:  # before the dataset is read
        from d4rl_lite.algorithms import get_algorithm
        from d4rl_lite.algorithms.compiled import check_compilable

        check_compilable(get_algorithm(args.algo))
    dataset = load_dataset(args.dataset, root=args.root)
    # Members: every combination of the swept values, each with every seed.
    combos = [dict(zip(sweeps, values)) for values in itertools.product(*sweeps.values())]
    seeds = args.seeds or [args.seed]
    member_seeds = [s for _ in combos for s in seeds]
    member_settings = [c for c in combos for _ in seeds]
    tc = TrainConfig(steps=args.steps, seed=seeds[0], device=args.device, log_every=args.log_every,
                     eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                     checkpoint_every=args.checkpoint_every, wandb=args.wandb, precision=args.precision,
                     threads=args.threads, compile=args.compile)
    if (args.seeds or sweeps) and args.run_dir:
        name = dataset.metadata.get("name", "dataset")
        run_dirs = [Path(args.run_dir) / default_run_dir(args.algo, name, s, m).name
                    for s, m in zip(member_seeds, member_settings)]
    else:
        run_dirs = [args.run_dir] if args.run_dir else None
    records = train_population(args.algo, dataset, tc, settings, member_seeds, run_dirs, progress=not args.quiet,
                               member_settings=member_settings if sweeps else None)
    _print_outcomes(args.algo, member_seeds, member_settings, records)
    return 1 if any("diverged" in r for r in records) else 0


def _print_outcomes(algo: str, member_seeds: list[int], member_settings: list[dict[str, Any]],
                    records: list[dict[str, Any]]) -> None:
    """One line per member: its final and best score (or that it diverged), and where its run lives."""
    from d4rl_lite.training.offline import member_label

    for seed, swept, record in zip(member_seeds, member_settings, records):
        member = member_label(seed, swept)
        if "diverged" in record:
            print(f"{algo} {member}: DIVERGED ({record['diverged']}); recorded in {record['run_dir']}/diverged.json")
            continue
        final, best = record["final"], record["best"]
        key = "eval/normalized_score" if "eval/normalized_score" in final else "eval/return_mean"
        label = "normalized score" if key == "eval/normalized_score" else "return (raw; no reference scores yet)"
        who = f"{algo} on {record['dataset']}" + (f" {member}" if len(member_seeds) > 1 else "")
        print(f"{who}: final {label} {final.get(key, float('nan')):.1f} "
              f"(step {final.get('step', 0):,}), best {best.get(key, float('nan')):.1f} (step {best.get('step', 0):,})")
        print(f"run directory: {record['run_dir']} (log.jsonl, result.json, checkpoint.safetensors)")


def cmd_eval(args: argparse.Namespace) -> int:
    from d4rl_lite.training.checkpoints import evaluate_checkpoint

    summary = evaluate_checkpoint(args.checkpoint, episodes=args.episodes, root=args.root)
    for k, v in summary.items():
        print(f"{k:<20} {v:.3f}" if isinstance(v, float) else f"{k:<20} {v}")
    return 0
