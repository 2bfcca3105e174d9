"""The dataset-production verbs: ``train-behavior``, ``export-behavior`` (the policy zoo) and ``refs`` (reference scores)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from d4rl_lite.cli.arguments import seed_number


def add_train_behavior(sub: argparse._SubParsersAction) -> None:
    from d4rl_lite.tasks import TASKS

    sp = sub.add_parser("train-behavior", help="train a SAC behaviour policy (resumable) with a checkpoint ladder",
                        description="Train an online SAC behaviour policy for a locomotion task (or ant-goal, the ant mazes' walker). Every 10k steps "
                                    "it evaluates and checkpoints; every 50k steps it adds an actor to the "
                                    "ladder. Re-running the same command resumes after a kill.")
    sp.add_argument("task", metavar="TASK", help=", ".join(t.name for t in TASKS.values() if t.domain in ("locomotion", "skill")))
    sp.add_argument("--steps", type=int, default=1_000_000, help="environment steps in total (default 1,000,000)")
    sp.add_argument("--seed", type=seed_number, default=0)
    sp.add_argument("--run-dir", metavar="DIR",
                    help="run directory (default: $D4RL_LITE_RUNS or ~/.cache/d4rl_lite/runs, /behavior-TASK-seedS)")
    sp.add_argument("--threads", type=int, default=1, help="torch threads (default 1: run one task per core)")
    sp.add_argument("--snapshot-to", metavar="DIR",
                    help="copy the run's weights, ladder and curve to DIR (small, committable) and exit")
    sp.add_argument("--resume-from", metavar="DIR",
                    help="when the run directory has no checkpoint, warm-restart from a snapshot in DIR")
    sp.set_defaults(func=cmd_train_behavior)


def add_export_behavior(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("export-behavior", help="pick expert and medium from a training run's ladder and commit them",
                        description="Measure the best ladder entries over 100 episodes, choose expert (best) and "
                                    "medium (closest to 1/3 of expert), copy the ladder into the package zoo with "
                                    "card.json, and store the expert's return as the task's ref_max.")
    sp.add_argument("task", metavar="TASK")
    sp.add_argument("--seed", type=seed_number, default=0, help="seed of the training run (default 0)")
    sp.add_argument("--run-dir", metavar="DIR", help="training run directory (default: as train-behavior)")
    sp.add_argument("--episodes", type=int, default=100, help="episodes per measurement (default 100)")
    sp.add_argument("--zoo", metavar="DIR", help="export elsewhere than the package zoo (then ref_max is not stored)")
    sp.add_argument("--full-replay", action="store_true",
                    help="commit the run's whole replay up to its expert-level step (the best of its ladder by the "
                         "rule experts are picked with), and that step's actor as the online agent: the source of "
                         "TASK-full-replay-v0; the committed policies stay")
    sp.add_argument("--replay-only", action="store_true",
                    help="commit only the run's replay buffer (the source of medium-replay), e.g. from a re-run "
                         "of the recipe, up to its first evaluation at or above the committed medium "
                         "policy's return; the committed policies stay")
    sp.set_defaults(func=cmd_export_behavior)


def add_refs(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("refs", help="show reference scores and how each was measured; measure ref_min",
                        description="Show every task's ref_min / ref_max with how it was measured. "
                                    "--measure re-runs the uniform random policy (ref_min).")
    sp.add_argument("--measure", nargs="+", metavar="TASK", help="tasks to measure ref_min for, or 'all'")
    sp.add_argument("--measure-max", nargs="+", metavar="MAZE",
                    help="maze tasks to measure ref_max for (the maze controller), or 'all'")
    sp.add_argument("--episodes", type=int, default=100, help="episodes per measurement (default 100)")
    sp.add_argument("--store", action="store_true",
                    help="record the measurement in your reference file ($D4RL_LITE_REFERENCE_SCORES or "
                         "~/.config/d4rl_lite/reference_scores.json), which overrides the shipped scores")
    sp.set_defaults(func=cmd_refs)


def cmd_train_behavior(args: argparse.Namespace) -> int:
    from d4rl_lite.production.behavior_training import (
        LATEST,
        BehaviorConfig,
        default_run_dir,
        snapshot_run,
        train_behavior,
    )

    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.task, args.seed)
    if args.snapshot_to:
        print(f"snapshot of {run_dir} written to {snapshot_run(run_dir, args.snapshot_to)}")
        return 0
    if args.resume_from and not (run_dir / LATEST).exists():
        snapshot_run(args.resume_from, run_dir)  # a fresh machine: continue from the committed snapshot
    cfg = BehaviorConfig(total_steps=args.steps, seed=args.seed, threads=args.threads)
    run = train_behavior(args.task, run_dir, cfg)
    print(f"run directory: {run} (curve.csv, curve.png, ladder.json, ladder/)")
    return 0


def cmd_export_behavior(args: argparse.Namespace) -> int:
    from d4rl_lite.production.behavior_training import default_run_dir
    from d4rl_lite.production.export import export_behavior

    run = args.run_dir or default_run_dir(args.task, args.seed)
    if args.full_replay:
        from d4rl_lite.production.full_replay import export_full_replay

        dest = export_full_replay(args.task, run, zoo_root=args.zoo, episodes=args.episodes)
        block = json.loads((dest / "card.json").read_text())["full_replay"]
        agent = block["online_agent"]
        print(f"full replay of {run}: steps 0-{block['steps']:,} ({block['packed_bytes'] / 2**20:.1f} MB packed) exported "
              f"to {dest / 'full_replay'}; online agent (step {agent['step']:,}): {agent['normalized_score']:.1f} normalized")
        return 0
    if args.replay_only:
        from d4rl_lite.production.export import export_replay

        dest = export_replay(args.task, run, zoo_root=args.zoo)
        steps = json.loads((dest / "card.json").read_text())["training"]["replay_run"]["steps"]
        print(f"replay of {run} up to step {steps:,}, where it reached the medium return, exported to "
              f"{dest / 'replay'} (policies unchanged)")
        return 0
    dest = export_behavior(args.task, run, zoo_root=args.zoo, episodes=args.episodes, store_reference=args.zoo is None)
    card = json.loads((dest / "card.json").read_text())
    for role in ("expert", "medium"):
        e = card[role]
        print(f"{role:<7} step {e['step']:>9,}  return {e['return_mean_100']:.1f} ± {e['return_std_100']:.1f} "
              f"({e['episodes']} episodes)")
    print(f"exported to {dest}")
    return 0


def cmd_refs(args: argparse.Namespace) -> int:
    from d4rl_lite.tasks import TASKS, get_task

    if args.measure_max:
        from d4rl_lite.production.references import measure_controller_reference

        names = [t for t in TASKS if TASKS[t].domain == "maze"] if args.measure_max == ["all"] else args.measure_max
        for name in names:
            rec = measure_controller_reference(get_task(name), episodes=args.episodes, store=args.store)
            print(f"{name:<24} ref_max {rec['value']:.3f}  (std {rec['return_std']:.3f}, success "
                  f"{rec['success_rate']:.0%}, {rec['episodes']} episodes)" + ("  stored" if args.store else ""))
        return 0
    if args.measure:
        from d4rl_lite.production.references import measure_random_reference

        names = list(TASKS) if args.measure == ["all"] else args.measure
        for name in names:
            rec = measure_random_reference(get_task(name), episodes=args.episodes, store=args.store)
            print(f"{name:<24} ref_min {rec['value']:.3f}  (std {rec['return_std']:.3f}, {rec['episodes']} episodes)"
                  + ("  stored" if args.store else ""))
        return 0
    for t in TASKS.values():
        if t.domain == "skill":  # a low-level skill has no benchmark scores
            continue
        for key, r in (("ref_min", t.ref_min), ("ref_max", t.ref_max)):
            value = f"{r.value:.3f}" if r.value is not None else "provisional"
            extra = f"  [{r.details['measured_on']}]" if "measured_on" in r.details else ""
            print(f"{t.name:<24}{key:<9}{value:>13}  {r.how}{extra}")
    return 0
