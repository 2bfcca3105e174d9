"""The benchmark verbs: ``bench`` (run a suite, or list or plan it), ``report`` (a results directory's table) and
``ope`` (FQE estimates of its runs, ranked against their true scores)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from d4rl_lite.cli.arguments import DEVICE_HELP, root_arg
from d4rl_lite.errors import UserInputError


def add_bench(sub: argparse._SubParsersAction) -> None:
    from d4rl_lite.training.offline import TrainConfig

    train_defaults = TrainConfig()
    sp = sub.add_parser("bench", help="run a benchmark suite (skips finished runs) and print its table",
                        description="Run every algorithm x dataset x seed of a suite (the seeds of an algorithm on "
                                    "a dataset together as one population per worker process; local pool, or Ray "
                                    "with --executor ray), building missing datasets first. "
                                    "Results are files: re-running skips finished runs and resumes partial ones "
                                    "(Ctrl-C stops within seconds; running jobs keep their last checkpoint). "
                                    "Each job prints a line at each evaluation: updates done, updates/s, score.")
    from d4rl_lite.benchmark.suite_checks import shipped_suites

    shipped = ", ".join(path.stem for path in shipped_suites())
    sp.add_argument("suite", nargs="?", metavar="SUITE",
                    help=f"a shipped suite ({shipped}; --list describes them) or a suite file's path (./mine.json)")
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


def add_report(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("report", help="the table (md, csv, json, tex) and plots of a results directory",
                        description="Read RESULTS_DIR/*/result.json and write table.md/.csv/.json/.tex and "
                                    "learning_curves.png there; print the markdown table.")
    sp.add_argument("results", metavar="RESULTS_DIR")
    sp.add_argument("--wandb", action="store_true", help="also log the table and plots to W&B (offline without a key)")
    sp.set_defaults(func=cmd_report)


def add_ope(sub: argparse._SubParsersAction) -> None:
    from d4rl_lite.training.fqe import FQEConfig

    defaults = FQEConfig()
    sp = sub.add_parser("ope", help="estimate finished runs' values from their datasets alone (FQE) and rank them",
                        description="Off-policy evaluation: for each finished run under PATH (a run directory or a "
                                    "results directory), fit Fitted Q Evaluation (Le et al. 2019) of its final policy "
                                    "on the dataset it was trained on, print the estimate next to the run's true final "
                                    "score, and the rank correlation (Spearman, Kendall, 95% intervals) per dataset and "
                                    "overall. Estimates are discounted values in the dataset's raw rewards: compare "
                                    "rankings. Writes PATH/ope.json, which `report` shows as a column FQE.")
    sp.add_argument("path", metavar="PATH", help="a run directory (`train`) or a results directory (`bench`)")
    sp.add_argument("--steps", type=int, default=defaults.steps, help=f"FQE updates per run (default {defaults.steps:,})")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="an FQE setting: hidden, lr, batch_size, target_update_every, gamma (default: each run's), "
                         "normalize_states, seed")
    sp.add_argument("--stack", type=int, default=8, help="runs of one dataset fitted together in one process (default 8)")
    sp.add_argument("--device", default="auto", help=DEVICE_HELP)
    sp.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    root_arg(sp)
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_ope)


def cmd_ope(args: argparse.Namespace) -> int:
    import torch

    from d4rl_lite.algorithms.settings import make_config
    from d4rl_lite.benchmark.ope import estimate_runs
    from d4rl_lite.cli.arguments import parse_settings
    from d4rl_lite.device import resolve_device
    from d4rl_lite.training.fqe import FQEConfig

    if args.threads < 1:
        raise UserInputError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    config = make_config(FQEConfig, {"steps": args.steps, **parse_settings(args.set)})
    estimate_runs(args.path, config, root=args.root, device=str(resolve_device(args.device)), stack=args.stack,
                  progress=not args.quiet)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from d4rl_lite.benchmark.runner import run_suite
    from d4rl_lite.benchmark.suites import Suite

    if args.list:
        _list_suites()
        return 0
    if not args.suite:
        raise UserInputError("name a suite (e.g. smoke, lite, d4rl) or a suite file; --list shows them all")
    suite = Suite.load(args.suite)
    results = Path(args.results or Path("results") / suite.name)
    if args.precision:
        suite.precision = args.precision
    if args.plan:
        _print_plan(args, suite, results)
        return 0
    counts = run_suite(suite, results, executor=args.executor, workers=args.workers, address=args.address,
                       root=args.root, device=args.device, wandb=args.wandb, force=args.force,
                       population=args.population == "on", allow_imports=args.allow_imports)
    from d4rl_lite.benchmark.report import print_report

    complete = print_report(results, wandb=args.wandb, suite_name=suite.name)
    return 1 if counts["failed"] or not complete else 0


def _list_suites() -> None:
    from d4rl_lite.benchmark.suites import Suite, budgets_apart, shipped_suites

    suites = [Suite.load(path) for path in shipped_suites()]
    width = max(len(suite.name) for suite in suites)
    for suite in suites:
        apart = budgets_apart({d: suite.steps_on(d) for d in suite.datasets}, suite.steps)
        own = "".join(f", {n:,} on {', '.join(ds)}" for n, ds in apart.items())
        print(f"{suite.name:<{width}} {len(suite.runs()):>4} runs, {suite.steps:,} steps each{own}: {suite.description}")


def _print_plan(args: argparse.Namespace, suite: Any, results: Path) -> None:
    """--plan: the runs still to do, their cost and projected wall time; nothing is trained or imported."""
    from d4rl_lite.benchmark.plan import print_plan
    from d4rl_lite.benchmark.runner import is_finished
    from d4rl_lite.device import resolve_device

    todo = [r for r in suite.runs() if not is_finished(results, suite, *r)]
    if len(todo) < len(suite.runs()):
        print(f"{len(suite.runs()) - len(todo)} of {len(suite.runs())} runs already finished in {results}")
    print_plan(suite, args.workers, args.population == "on", str(resolve_device(args.device)), todo)


def cmd_report(args: argparse.Namespace) -> int:
    from d4rl_lite.benchmark.report import print_report

    complete = print_report(Path(args.results), wandb=args.wandb, suite_name=Path(args.results).name)
    return 0 if complete else 1
