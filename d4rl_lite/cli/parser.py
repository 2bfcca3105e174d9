"""The ``d4rl-lite`` argument parser: the program's own help and its verbs, in the order ``--help`` lists them."""

from __future__ import annotations

import argparse

from d4rl_lite.cli.arguments import OneLineErrors
from d4rl_lite.cli.benchmark_verbs import add_bench, add_ope, add_report
from d4rl_lite.cli.dataset_verbs import add_build, add_info, add_list
from d4rl_lite.cli.finetune_verbs import add_finetune
from d4rl_lite.cli.production_verbs import add_export_behavior, add_refs, add_train_behavior
from d4rl_lite.cli.training_verbs import add_eval, add_settings, add_train

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

# Each adds one verb (its arguments, help and command function); this order is the order of --help.
VERBS = (add_list, add_settings, add_info, add_build, add_train, add_finetune, add_bench, add_report, add_ope, add_eval,
         add_train_behavior, add_export_behavior, add_refs)


def build_parser() -> argparse.ArgumentParser:
    import d4rl_lite

    p = OneLineErrors(
        prog="d4rl-lite",
        description="Offline RL, reproducible on one machine: build D4RL-style datasets locally (Minari format), "
                    "train offline RL algorithms on them (one seed, or several as one population), run "
                    "benchmark suites and report their tables.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"d4rl-lite {d4rl_lite.__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for add_verb in VERBS:
        add_verb(sub)
    return p
