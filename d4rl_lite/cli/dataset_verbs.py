"""The dataset verbs: ``list`` (tasks, catalogue, algorithms), ``info`` (a dataset's card) and ``build``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from d4rl_lite.cli.arguments import parse_settings, root_arg, seed_number, transition_count


def add_list(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("list", help="tasks, catalogue datasets (and which are built here), algorithms",
                        description="List tasks with their reference scores, every catalogue dataset with "
                                    "whether it is built under the datasets directory, and the algorithms.")
    root_arg(sp)
    sp.set_defaults(func=cmd_list)


def add_info(sub: argparse._SubParsersAction) -> None:
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


def add_build(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("build", help="generate a catalogue dataset and print its card",
                        description="Generate a catalogue dataset reproducibly (same name, size and seed give "
                                    "the same arrays) and write it atomically in Minari format.")
    sp.add_argument("name", metavar="NAME", help="catalogue name, e.g. hopper-random-v0 (see `d4rl-lite list`)")
    sp.add_argument("--size", type=transition_count, default=None,
                    help="transitions (default: 1,000,000 as D4RL; medium-expert 2M; human 25k; "
                         "medium-replay the whole replay up to medium)")
    sp.add_argument("--seed", type=seed_number, default=0, help="seed of the whole build (default 0)")
    root_arg(sp)
    sp.add_argument("--num-envs", type=int, default=8, help="environment copies stepped together (default 8)")
    sp.add_argument("--force", action="store_true", help="replace an existing dataset of that name")
    sp.add_argument("--mix", metavar="SPEC", help="mixed datasets: weighted kinds, e.g. random:0.5,medium:0.3,expert:0.2")
    sp.add_argument("--subsample", metavar="MODE:SIZE",
                    help="keep whole episodes of NAME by collection order or at random: first:0.1, last:20000, "
                         "random:0.1 (a fraction or a number of transitions); the result has a name of its own, "
                         "e.g. hopper-full-replay-first10pct-v0")
    sp.add_argument("--set", action="append", metavar="KNOB=VALUE",
                    help="builder knobs, e.g. human: --set reaction_delay=5 --set pause_prob=0.02")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_build)


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
        builder = builder_for(d)
        status = ("built" if is_built(d, args.root) else "no builder yet" if builder is None
                  else builder.missing_source(TASKS[d.task]) or "buildable")
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
    from d4rl_lite.datasets.card import compute_card, format_card
    from d4rl_lite.datasets.d4rl_compat import load_dataset
    from d4rl_lite.datasets.locations import datasets_root
    from d4rl_lite.datasets.workspace import remove_stale_temporaries
    from d4rl_lite.tasks import get_task

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
    _print_pictures(ds, task, args.plot)
    return 0


def _print_pictures(ds: Any, task: Any, plot_arg: str | None) -> None:
    """Write the return histogram (and a maze's picture) where --plot says, else beside the dataset."""
    from d4rl_lite.datasets.card import plot_return_histogram
    from d4rl_lite.tasks import GOAL_DOMAINS

    meta = ds.metadata
    plot = Path(plot_arg) if plot_arg else Path(meta["path"]) / "returns.png"
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
    if task.domain in GOAL_DOMAINS:  # point and ant mazes alike
        from d4rl_lite.datasets.maze.certificate import plot_maze_dataset

        maze_png = out.with_name("maze.png") if not plot_arg else out.with_name(out.stem + ".maze.png")
        print(f"{'maze picture':<18} {plot_maze_dataset(ds, task, maze_png, meta.get('name', 'dataset'))}")


def cmd_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from d4rl_lite.datasets.builders import build_dataset, builder_for, built_as_asked, subsample_name
    from d4rl_lite.datasets.card import format_card
    from d4rl_lite.datasets.catalogue import parse_dataset_name
    from d4rl_lite.datasets.locations import dataset_dir_for_id
    from d4rl_lite.datasets.storage import load_from_dir
    from d4rl_lite.tasks import GOAL_DOMAINS, get_task

    options = parse_settings(args.set)
    if args.mix:
        options["mix"] = args.mix
    if args.subsample:  # the subsample's own name from here on
        args.name = subsample_name(args.name, args.subsample).alias
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
    if task.domain in GOAL_DOMAINS:  # point and ant mazes alike
        from d4rl_lite.datasets.maze.certificate import plot_maze_dataset

        print(f"{'maze picture':<18} {plot_maze_dataset(ds, task, path / 'maze.png', ds.metadata['name'])}")
    return 0
