"""The ``d4rl-lite`` command: list, info, build, train, bench, report, eval, train-behavior, export-behavior, refs.

One file for the whole command line (about 450 lines): the parser and one short function per verb,
each handing its work to the layers below; splitting it would scatter the verbs' help, which is
read as one piece.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

DEVICE_HELP = "auto (default: CUDA when present, else CPU), cpu, cuda, cuda:1, ..."
EPILOG = """\
examples:
  d4rl-lite list
  d4rl-lite build hopper-random-v0 --size 10000
  d4rl-lite info hopper-random-v0
  d4rl-lite info ./path/to/d4rl_lite/hopper/random-v0
  d4rl-lite refs

Datasets live under --root, else $MINARI_DATASETS_PATH, else ~/.minari/datasets (as Minari),
so minari.load_dataset("d4rl_lite/hopper/random-v0") reads what d4rl-lite builds.
"""


def _quiet_third_party() -> None:
    # gymnasium-robotics announces Adroit reward changes on import; not relevant to our tasks.
    warnings.filterwarnings("ignore", message=".*Adroit.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def cmd_list(args: argparse.Namespace) -> int:
    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.datasets.builders import builder_for
    from d4rl_lite.datasets.catalogue import catalogue, is_built
    from d4rl_lite.datasets.locations import datasets_root
    from d4rl_lite.tasks import TASKS

    def ref(r: Any) -> str:
        return f"{r.value:.1f}" if r.value is not None else "provisional"

    print("Tasks")
    print(f"  {'name':<24}{'env':<26}{'horizon':>8}{'obs':>5}{'act':>5}  {'ref_min':>9}  {'ref_max':>11}  eval")
    variants: dict[str, list[str]] = {}  # single-task variants, shown as one line per maze
    for t in TASKS.values():
        if t.variant_of:
            variants.setdefault(t.variant_of, []).append(t.name)
            continue
        proto = f"{t.eval_episodes} eps" + (f", goal {t.eval_goal_cell}" if t.eval_goal_cell else "")
        print(f"  {t.name:<24}{t.env_id:<26}{t.horizon:>8}{t.observation_dim:>5}{t.action_dim:>5}  "
              f"{ref(t.ref_min):>9}  {ref(t.ref_max):>11}  {proto}")
    for base, names in variants.items():
        print(f"  {base}-task1 .. task{len(names)}: OGBench single-task protocol, each its own start and goal "
              f"(`d4rl-lite refs` lists them)")
    root = datasets_root(args.root)
    print(f"\nDatasets (catalogue; 'built' = found under {root})")
    rows = [d for d in catalogue() if not TASKS[d.task].variant_of]
    width = max(len(d.alias) for d in rows) + 2
    for d in rows:
        status = "built" if is_built(d, args.root) else ("buildable" if builder_for(d) else "no builder yet")
        print(f"  {d.alias:<{width}}{status}")
    if variants:
        print("  and every maze kind for each single-task variant: pointmaze-medium-task3-stitch-v0 is built "
              "by the stitch recipe with task 3's goal and rewards")
    print("\nAlgorithms")
    if ALGORITHMS:
        for name in sorted(ALGORITHMS):
            print(f"  {name}")
    else:
        print("  none registered yet")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from d4rl_lite.datasets.card import compute_card, format_card, plot_return_histogram
    from d4rl_lite.datasets.d4rl_compat import load_dataset
    from d4rl_lite.tasks import get_task

    from d4rl_lite.datasets.locations import datasets_root

    from d4rl_lite.datasets.workspace import remove_stale_temporaries

    remove_stale_temporaries(datasets_root(args.root))  # half-written builds a kill -9 left behind
    ds = load_dataset(args.name, root=args.root, verify=not args.no_verify)
    meta = ds.metadata
    task = get_task(meta["task"])
    # Fresh statistics with today's reference scores; builder-specific facts from the stored card.
    card = {**meta.get("card", {}), **compute_card(ds, task)}
    if not card.get("normalized_return"):
        card.pop("normalized_return", None)
    if args.json:
        print(json.dumps({"metadata": meta, "card": card}, indent=2, default=str))
        return 0
    recipe = meta.get("recipe", {})
    header = {
        "name": meta.get("name"),
        "minari id": meta.get("dataset_id"),
        "path": meta.get("path"),
        "kind": meta.get("kind"),
        "recipe": ", ".join(f"{k}={recipe[k]}" for k in ("builder", "size", "seed") if k in recipe),
        "checksum": meta.get("checksum", "")[:23] + ("... verified" if not args.no_verify else "... NOT verified"),
        "created": meta.get("created"),
    }
    print(format_card(card, header))
    plot = Path(args.plot) if args.plot else Path(meta["path"]) / "returns.png"
    if plot.is_dir():  # --plot DIR: the picture goes inside it
        plot = plot / "returns.png"
    try:
        out = plot_return_histogram(ds, task, plot, meta.get("name", "dataset"))
    except OSError as e:
        from d4rl_lite.paths import path_name

        fallback = Path.cwd() / f"{path_name(meta.get('name', 'dataset'), 'the name in its metadata')}-returns.png"
        print(f"(cannot write {plot}: {e.strerror}; writing {fallback} instead)", file=sys.stderr)
        out = plot_return_histogram(ds, task, fallback, meta.get("name", "dataset"))
    print(f"{'return histogram':<18} {out}")
    from d4rl_lite.tasks import GOAL_DOMAINS

    if task.domain in GOAL_DOMAINS:  # point and ant mazes alike
        from d4rl_lite.datasets.maze.certificate import plot_maze_dataset

        maze_png = out.with_name("maze.png") if not args.plot else out.with_name(out.stem + ".maze.png")
        print(f"{'maze picture':<18} {plot_maze_dataset(ds, task, maze_png, meta.get('name', 'dataset'))}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from d4rl_lite.datasets.builders import build_dataset, builder_for, built_as_asked
    from d4rl_lite.datasets.card import format_card
    from d4rl_lite.datasets.locations import dataset_dir_for_id
    from d4rl_lite.datasets.catalogue import parse_dataset_name
    from d4rl_lite.datasets.storage import load_from_dir
    from d4rl_lite.tasks import get_task

    options = _parse_settings(args.set)
    if args.mix:
        options["mix"] = args.mix
    builder = builder_for(parse_dataset_name(args.name))
    if not args.force and built_as_asked(args.name, args.size, args.seed, options, args.root):
        path = dataset_dir_for_id(parse_dataset_name(args.name).dataset_id, args.root)
        print(f"already built (every array verified just now): {path}")
    else:
        total = args.size if args.size is not None else (builder.default_size if builder else None)
        with tqdm(total=total, unit="tr", unit_scale=True, desc=f"build {args.name}",
                  disable=args.quiet, dynamic_ncols=True, delay=0.5) as bar:  # no bar for a build refused at once
            path = build_dataset(args.name, size=args.size, seed=args.seed, root=args.root,
                                 overwrite=args.force, num_envs=args.num_envs, progress=bar.update, **options)
        print(f"wrote {path}")
    ds = load_from_dir(path / "data", verify=False)  # verified when written, or just above
    print(format_card(ds.metadata["card"], {"name": ds.metadata["name"], "minari id": ds.metadata["dataset_id"]}))
    task = get_task(ds.metadata["task"])
    from d4rl_lite.tasks import GOAL_DOMAINS

    if task.domain in GOAL_DOMAINS:  # point and ant mazes alike
        from d4rl_lite.datasets.maze.certificate import plot_maze_dataset

        print(f"{'maze picture':<18} {plot_maze_dataset(ds, task, path / 'maze.png', ds.metadata['name'])}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    import dataclasses
    import textwrap

    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.base import setting_docs

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


def _count(text: str) -> int:
    """A transition count: 20000, 20_000 or 2e4."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of transitions, got {text!r}") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 transition (a whole number), got {text!r}")
    return int(value)


def _parse_settings(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def cmd_export_behavior(args: argparse.Namespace) -> int:
    from d4rl_lite.production.export import export_behavior
    from d4rl_lite.production.behavior_training import default_run_dir

    run = args.run_dir or default_run_dir(args.task, args.seed)
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


MAX_SEED = 2**32 - 1  # the range every generator here takes (torch's would overflow past 2**63)
MAX_MEMBERS = 1000  # seeds in one --seeds list


def _seed(text: str) -> int:
    """A --seed: a whole number in [0, 2**32 - 1]; argparse turns the error into one line."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers from 0 to {MAX_SEED:,}, got {text}")
    return seed


def _parse_seeds(text: str) -> list[int]:
    """"0,1,2" or "0-4" (or a mix, "0-2,7") -> seeds; argparse turns the ValueError into one line."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            if sep and int(hi) - int(lo) >= MAX_MEMBERS:
                raise argparse.ArgumentTypeError(f"{part.strip()} is more than {MAX_MEMBERS:,} seeds; a population "
                                                 "that large does not fit in memory")
            seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2 or 0-4, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise argparse.ArgumentTypeError(f"seeds must be distinct whole numbers from 0 to {MAX_SEED:,}, got {text!r}")
    return seeds


def _parse_sweep(text: str) -> tuple[str, list[str]]:
    """"cql_weight=1,5,10" -> ("cql_weight", ["1", "5", "10"]); argparse turns the error into one line."""
    key, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or len(items) < 2 or len(set(items)) != len(items):
        raise argparse.ArgumentTypeError(f"expected KEY=V1,V2,... with at least two distinct values, got {text!r}")
    return key.strip(), items


def cmd_train(args: argparse.Namespace) -> int:
    import itertools

    from d4rl_lite.datasets.d4rl_compat import load_dataset
    from d4rl_lite.training.offline import TrainConfig, default_run_dir, member_label, train_population

    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.base import make_config

    sweeps = dict(args.sweep or [])
    if len(sweeps) != len(args.sweep or []):
        raise ValueError("each setting can be swept once (one --sweep KEY=... per key)")
    algo_cls = get_algorithm(args.algo)
    for key, values in sweeps.items():  # an unknown key is refused here; values as numbers, as run directories name them
        configs = [make_config(algo_cls.Config, {key: v}) for v in values]
        if key in algo_cls.sweepable:
            sweeps[key] = [getattr(c, key) for c in configs]
    settings = _parse_settings(args.set)
    both = sorted(set(sweeps) & set(settings))
    if both:
        raise ValueError(f"{', '.join(both)} is given by both --set and --sweep; keep one")
    dataset = load_dataset(args.dataset, root=args.root)
    # Members: every combination of the swept values, each with every seed.
    combos = [dict(zip(sweeps, values)) for values in itertools.product(*sweeps.values())]
    seeds = args.seeds or [args.seed]
    member_seeds = [s for _ in combos for s in seeds]
    member_settings = [c for c in combos for _ in seeds]
    tc = TrainConfig(steps=args.steps, seed=seeds[0], device=args.device, log_every=args.log_every,
                     eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                     checkpoint_every=args.checkpoint_every, wandb=args.wandb, precision=args.precision)
    if (args.seeds or sweeps) and args.run_dir:
        name = dataset.metadata.get("name", "dataset")
        run_dirs = [Path(args.run_dir) / default_run_dir(args.algo, name, s, m).name
                    for s, m in zip(member_seeds, member_settings)]
    else:
        run_dirs = [args.run_dir] if args.run_dir else None
    records = train_population(args.algo, dataset, tc, settings, member_seeds, run_dirs, progress=not args.quiet,
                               member_settings=member_settings if sweeps else None)
    for seed, swept, record in zip(member_seeds, member_settings, records):
        member = member_label(seed, swept)
        if "diverged" in record:
            print(f"{args.algo} {member}: DIVERGED ({record['diverged']}); recorded in {record['run_dir']}/diverged.json")
            continue
        final, best = record["final"], record["best"]
        key = "eval/normalized_score" if "eval/normalized_score" in final else "eval/return_mean"
        label = "normalized score" if key == "eval/normalized_score" else "return (raw; no reference scores yet)"
        who = f"{args.algo} on {record['dataset']}" + (f" {member}" if len(member_seeds) > 1 else "")
        print(f"{who}: final {label} {final.get(key, float('nan')):.1f} "
              f"(step {final.get('step', 0):,}), best {best.get(key, float('nan')):.1f} (step {best.get('step', 0):,})")
        print(f"run directory: {record['run_dir']} (log.jsonl, result.json, checkpoint.safetensors)")
    return 1 if any("diverged" in r for r in records) else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from d4rl_lite.benchmark.runner import run_suite
    from d4rl_lite.benchmark.suites import Suite, budgets_apart, shipped_suites

    if args.list:
        for path in shipped_suites():
            suite = Suite.load(path)
            apart = budgets_apart({d: suite.steps_on(d) for d in suite.datasets}, suite.steps)
            own = "".join(f", {n:,} on {', '.join(ds)}" for n, ds in apart.items())
            print(f"{suite.name:<7} {len(suite.runs()):>4} runs, {suite.steps:,} steps each{own}: {suite.description}")
        return 0
    if not args.suite:
        raise ValueError("name a suite (smoke, lite, d4rl) or a suite file; --list shows them")
    suite = Suite.load(args.suite)
    results = Path(args.results or Path("results") / suite.name)
    if args.precision:
        suite.precision = args.precision
    if args.plan:
        from d4rl_lite.benchmark.plan import print_plan
        from d4rl_lite.benchmark.runner import is_finished
        from d4rl_lite.device import resolve_device

        todo = [r for r in suite.runs() if not is_finished(results, suite, *r)]
        if len(todo) < len(suite.runs()):
            print(f"{len(suite.runs()) - len(todo)} of {len(suite.runs())} runs already finished in {results}")
        print_plan(suite, args.workers, args.population == "on", str(resolve_device(args.device)), todo)
        return 0
    counts = run_suite(suite, results, executor=args.executor, workers=args.workers, address=args.address,
                       root=args.root, device=args.device, wandb=args.wandb, force=args.force,
                       population=args.population == "on", allow_imports=args.allow_imports)
    from d4rl_lite.benchmark.report import print_report

    complete = print_report(results, wandb=args.wandb, suite_name=suite.name)
    return 1 if counts["failed"] or not complete else 0


def cmd_report(args: argparse.Namespace) -> int:
    from d4rl_lite.benchmark.report import print_report

    complete = print_report(Path(args.results), wandb=args.wandb, suite_name=Path(args.results).name)
    return 0 if complete else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from d4rl_lite.training.checkpoints import evaluate_checkpoint

    summary = evaluate_checkpoint(args.checkpoint, episodes=args.episodes, root=args.root)
    for k, v in summary.items():
        print(f"{k:<20} {v:.3f}" if isinstance(v, float) else f"{k:<20} {v}")
    return 0


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


class _OneLineErrors(argparse.ArgumentParser):
    """A usage error is one line (what is wrong, where to look), not the usage block plus the line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineErrors(
        prog="d4rl-lite",
        description="Offline RL, reproducible on one machine: build D4RL-style datasets locally (Minari format), "
                    "train offline RL algorithms on them (one seed, or several as one population), run "
                    "benchmark suites and report their tables.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import d4rl_lite

    p.add_argument("--version", action="version", version=f"d4rl-lite {d4rl_lite.__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    # Defaults and names come from where they are declared: the training config and the registry.
    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.training.offline import TrainConfig

    from d4rl_lite.tasks import TASKS

    train_defaults = TrainConfig()

    def root_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--root", "--out", dest="root", metavar="DIR",
                        help="datasets directory (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)")

    sp = sub.add_parser("list", help="tasks, catalogue datasets (and which are built here), algorithms",
                        description="List tasks with their reference scores, every catalogue dataset with "
                                    "whether it is built under the datasets directory, and the algorithms.")
    root_arg(sp)
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("settings", help="an algorithm's settings: name, default, what each does",
                        description="Print every setting of an algorithm with its default and its documentation "
                                    "(the docstring under the field in the algorithm's config).")
    sp.add_argument("algo", choices=sorted(ALGORITHMS), metavar="ALGO", help=", ".join(sorted(ALGORITHMS)))
    sp.set_defaults(func=cmd_settings)

    sp = sub.add_parser("info", help="a dataset's card: counts, returns (raw and normalized), histogram PNG",
                        description="Load a dataset (validating every array and its checksum) and print its "
                                    "card: episodes, transitions, return mean/min/max raw and normalized. "
                                    "Writes a return histogram PNG.")
    sp.add_argument("name", metavar="NAME|PATH", help="catalogue name (hopper-random-v0), Minari id or path")
    root_arg(sp)
    sp.add_argument("--plot", metavar="PNG", help="where to write the histogram (default: DATASET_DIR/returns.png)")
    sp.add_argument("--json", action="store_true", help="print metadata and card as JSON instead")
    sp.add_argument("--no-verify", action="store_true", help="skip validation and checksum (faster, unsafe)")
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("build", help="generate a catalogue dataset and print its card",
                        description="Generate a catalogue dataset reproducibly (same name, size and seed give "
                                    "the same arrays) and write it atomically in Minari format.")
    sp.add_argument("name", metavar="NAME", help="catalogue name, e.g. hopper-random-v0 (see `d4rl-lite list`)")
    sp.add_argument("--size", type=_count, default=None,
                    help="transitions (default: 1,000,000 as D4RL; medium-expert 2M; human 25k; "
                         "medium-replay the whole replay up to medium)")
    sp.add_argument("--seed", type=_seed, default=0, help="seed of the whole build (default 0)")
    root_arg(sp)
    sp.add_argument("--num-envs", type=int, default=8, help="environment copies stepped together (default 8)")
    sp.add_argument("--force", action="store_true", help="replace an existing dataset of that name")
    sp.add_argument("--mix", metavar="SPEC", help="mixed datasets: weighted kinds, e.g. random:0.5,medium:0.3,expert:0.2")
    sp.add_argument("--set", action="append", metavar="KNOB=VALUE",
                    help="builder knobs, e.g. human: --set reaction_delay=5 --set pause_prob=0.02")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_build)

    sp = sub.add_parser("train", help="train an offline RL algorithm on a dataset (resumable, logged)",
                        description="Train ALGO on DATASET: batches sampled on the device, periodic evaluation "
                                    "under the task's protocol, JSONL log (and W&B with --wandb), atomic "
                                    "checkpoints. Re-running the same command resumes exactly where it stopped.")
    sp.add_argument("algo", metavar="ALGO", help=", ".join(sorted(ALGORITHMS)))
    sp.add_argument("dataset", metavar="DATASET", help="dataset name (hopper-medium-v0), Minari id or path")
    root_arg(sp)
    sp.add_argument("--steps", type=int, default=train_defaults.steps,
                    help=f"gradient steps (default {train_defaults.steps:,})")
    sp.add_argument("--seed", type=_seed, default=train_defaults.seed)
    sp.add_argument("--precision", choices=("fp32", "bf16"), default=train_defaults.precision,
                    help="bf16: the updates' matrix products under bf16 autocast (weights, optimizer state and "
                         "losses stay fp32); pays for populations on CPUs with AVX-512 BF16, and on GPUs")
    sp.add_argument("--seeds", metavar="LIST", type=_parse_seeds,
                    help="train several seeds together as one population, e.g. 0,1,2 or 0-4: each member writes "
                         "the run directory its solo run (--seed) would, and ends with the same weights")
    sp.add_argument("--sweep", action="append", metavar="KEY=V1,V2", type=_parse_sweep,
                    help="train one member per value (per seed; several --sweep: every combination) in one "
                         "population, e.g. --sweep cql_weight=1,5,10; only scalar settings the algorithm lists as "
                         "sweepable (d4rl-lite settings ALGO); each member's run directory and config hold its values")
    sp.add_argument("--device", default=train_defaults.device, help=DEVICE_HELP)
    sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="algorithm settings, e.g. --set cql_weight=10 --set hidden=256,256")
    sp.add_argument("--eval-every", type=int, default=train_defaults.eval_every,
                    help=f"steps between evaluations (default {train_defaults.eval_every})")
    sp.add_argument("--eval-episodes", type=int, default=train_defaults.eval_episodes,
                    help="episodes per evaluation (default: the task's)")
    sp.add_argument("--log-every", type=int, default=train_defaults.log_every,
                    help=f"steps between log lines (default {train_defaults.log_every})")
    sp.add_argument("--checkpoint-every", type=int, default=train_defaults.checkpoint_every,
                    help=f"steps between checkpoints (default {train_defaults.checkpoint_every})")
    sp.add_argument("--run-dir", metavar="DIR", help="default: runs/ALGO-DATASET-seedS (with --seeds or --sweep: the "
                                                        "folder holding the members' ALGO-DATASET[-KEYVALUE]-seedS "
                                                        "directories)")
    sp.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (offline without a key)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("bench", help="run a benchmark suite (skips finished runs) and print its table",
                        description="Run every algorithm x dataset x seed of a suite (the seeds of an algorithm on "
                                    "a dataset together as one population per worker process; local pool, or Ray "
                                    "with --executor ray), building missing datasets first. "
                                    "Results are files: re-running skips finished runs and resumes partial ones "
                                    "(Ctrl-C stops within seconds; running jobs keep their last checkpoint). "
                                    "Each job prints a line at each evaluation: updates done, updates/s, score.")
    sp.add_argument("suite", nargs="?", metavar="SUITE", help="smoke, lite, d4rl, or a suite file's path (./mine.json)")
    sp.add_argument("--list", action="store_true", help="list the shipped suites")
    sp.add_argument("--executor", choices=["local", "ray"], default="local")
    sp.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    sp.add_argument("--workers", type=int, default=2, help="runs in parallel (default 2)")
    sp.add_argument("--results", metavar="DIR", help="results directory (default results/SUITE)")
    sp.add_argument("--device", default=train_defaults.device, help=DEVICE_HELP)
    root_arg(sp)
    sp.add_argument("--wandb", action="store_true", help="log every run to W&B (offline without a key)")
    sp.add_argument("--population", choices=("on", "off"), default="on",
                    help="on (default): the seeds of an algorithm on a dataset train together as one population "
                         "(one process, same results); off: one process per run")
    sp.add_argument("--precision", choices=("fp32", "bf16"),
                    help="override the suite's precision (default: the suite's, fp32 unless it says bf16)")
    sp.add_argument("--force", action="store_true",
                    help="rebuild a dataset built with another size or seed than the suite names (else an error)")
    sp.add_argument("--plan", action="store_true",
                    help="run nothing: print the suite's jobs, updates, evaluation steps and projected wall time on "
                         "this machine (each job calibrated for a few seconds; with populations and as solo runs)")
    sp.add_argument("--allow-imports", action="store_true",
                    help="run the suite's \"imports\" (Python modules registering your algorithms: their code runs, "
                         "here and in every worker); without it such a suite is refused. --plan never imports")
    sp.set_defaults(func=cmd_bench)

    sp = sub.add_parser("report", help="the table (md, csv, json, tex) and plots of a results directory",
                        description="Read RESULTS_DIR/*/result.json and write table.md/.csv/.json/.tex and "
                                    "learning_curves.png there; print the markdown table.")
    sp.add_argument("results", metavar="RESULTS_DIR")
    sp.add_argument("--wandb", action="store_true", help="also log the table and plots to W&B (offline without a key)")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("eval", help="evaluate a trained run's checkpoint under its task's protocol",
                        description="Load CHECKPOINT (a run directory or its checkpoint.safetensors) and evaluate the "
                                    "deterministic policy: raw and normalized return, success rate on mazes.")
    sp.add_argument("checkpoint", metavar="CHECKPOINT")
    sp.add_argument("--episodes", type=int, default=None, help="episodes (default: the task's protocol)")
    root_arg(sp)
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("train-behavior", help="train a SAC behaviour policy (resumable) with a checkpoint ladder",
                        description="Train an online SAC behaviour policy for a locomotion task (or ant-goal, the ant mazes' walker). Every 10k steps "
                                    "it evaluates and checkpoints; every 50k steps it adds an actor to the "
                                    "ladder. Re-running the same command resumes after a kill.")
    sp.add_argument("task", metavar="TASK", help=", ".join(t.name for t in TASKS.values() if t.domain in ("locomotion", "skill")))
    sp.add_argument("--steps", type=int, default=1_000_000, help="environment steps in total (default 1,000,000)")
    sp.add_argument("--seed", type=_seed, default=0)
    sp.add_argument("--run-dir", metavar="DIR",
                    help="run directory (default: $D4RL_LITE_RUNS or ~/.cache/d4rl_lite/runs, /behavior-TASK-seedS)")
    sp.add_argument("--threads", type=int, default=1, help="torch threads (default 1: run one task per core)")
    sp.add_argument("--snapshot-to", metavar="DIR",
                    help="copy the run's weights, ladder and curve to DIR (small, committable) and exit")
    sp.add_argument("--resume-from", metavar="DIR",
                    help="when the run directory has no checkpoint, warm-restart from a snapshot in DIR")
    sp.set_defaults(func=cmd_train_behavior)

    sp = sub.add_parser("export-behavior", help="pick expert and medium from a training run's ladder and commit them",
                        description="Measure the best ladder entries over 100 episodes, choose expert (best) and "
                                    "medium (closest to 1/3 of expert), copy the ladder into the package zoo with "
                                    "card.json, and store the expert's return as the task's ref_max.")
    sp.add_argument("task", metavar="TASK")
    sp.add_argument("--seed", type=_seed, default=0, help="seed of the training run (default 0)")
    sp.add_argument("--run-dir", metavar="DIR", help="training run directory (default: as train-behavior)")
    sp.add_argument("--episodes", type=int, default=100, help="episodes per measurement (default 100)")
    sp.add_argument("--zoo", metavar="DIR", help="export elsewhere than the package zoo (then ref_max is not stored)")
    sp.add_argument("--replay-only", action="store_true",
                    help="commit only the run's replay buffer (the source of medium-replay), e.g. from a re-run "
                         "of the recipe, up to its first evaluation at or above the committed medium "
                         "policy's return; the committed policies stay")
    sp.set_defaults(func=cmd_export_behavior)

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
    return p


def main(argv: list[str] | None = None) -> int:
    _quiet_third_party()
    args = build_parser().parse_args(argv)
    from d4rl_lite.errors import D4RLLiteError

    try:
        return args.func(args)
    except (D4RLLiteError, FileExistsError, ValueError) as e:
        print(f"d4rl-lite {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine said no (read-only directory, a file where a directory goes, a name too long)
        where = f"{e.filename}: " if e.filename else ""
        print(f"d4rl-lite {args.verb}: error: {where}{e.strerror or e} (nothing half-written was kept; "
              "check the path and its permissions)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"d4rl-lite {args.verb}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
