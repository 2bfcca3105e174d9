"""What several verbs share on the command line: argument types (counts, seeds, sweeps, KEY=VALUE), --root, the parser class."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from d4rl_lite.errors import UserInputError

DEVICE_HELP = "auto (default: CUDA when present, else CPU), cpu, cuda, cuda:1, ..."
MAX_SEED = 2**32 - 1  # the range every generator here takes (torch's would overflow past 2**63)
MAX_MEMBERS = 1000  # seeds in one --seeds list


class OneLineErrors(argparse.ArgumentParser):
    """A usage error is one line (what is wrong, where to look), not the usage block plus the line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def root_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--root", "--out", dest="root", metavar="DIR",
                    help="datasets directory (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)")


def schedule_args(sp: argparse.ArgumentParser, defaults: Any, unit: str = "steps") -> None:
    """--eval-every, --eval-episodes, --log-every, --checkpoint-every of a verb that trains, with
    ``defaults`` (a TrainConfig) and ``unit`` (what its steps count: updates, env steps)."""
    sp.add_argument("--eval-every", type=int, default=defaults.eval_every,
                    help=f"{unit} between evaluations (default {defaults.eval_every})")
    sp.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes,
                    help="episodes per evaluation (default: the task's)")
    sp.add_argument("--log-every", type=int, default=defaults.log_every,
                    help=f"{unit} between log lines (default {defaults.log_every})")
    sp.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every,
                    help=f"{unit} between checkpoints (default {defaults.checkpoint_every})")


def transition_count(text: str) -> int:
    """A transition count: 20000, 20_000 or 2e4."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of transitions, got {text!r}") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 transition (a whole number), got {text!r}")
    return int(value)


def seed_number(text: str) -> int:
    """A --seed: a whole number in [0, 2**32 - 1]; argparse turns the error into one line."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers from 0 to {MAX_SEED:,}, got {text}")
    return seed


def seed_list(text: str) -> list[int]:
    """"0,1,2" or "0-4" (or a mix, "0-2,7") -> seeds; argparse turns the error into one line."""
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


def sweep_values(text: str) -> tuple[str, list[str]]:
    """"cql_weight=1,5,10" -> ("cql_weight", ["1", "5", "10"]); argparse turns the error into one line."""
    key, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or len(items) < 2 or len(set(items)) != len(items):
        raise argparse.ArgumentTypeError(f"expected KEY=V1,V2,... with at least two distinct values, got {text!r}")
    return key.strip(), items


def parse_settings(items: list[str] | None) -> dict[str, str]:
    """Repeated --set KEY=VALUE -> {KEY: VALUE} (values stay text: the algorithm or builder reads them)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def compile_arg(sp: argparse.ArgumentParser) -> None:
    """--compile, naming the algorithms whose update it compiles (their classes declare it)."""
    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.algorithms.compiled import compile_refusal

    offered = ", ".join(sorted(n for n, cls in ALGORITHMS.items() if not compile_refusal(cls)))
    sp.add_argument("--compile", action="store_true",
                    help=f"compile each update with torch.compile (CUDA graphs on a GPU): the same run within float "
                         f"rounding, recorded in the run's config, not part of its identity; compiling takes tens of "
                         f"seconds at the start. For {offered} (others are refused). On CPU it measured no faster "
                         f"than eager (docs/how-to/compile.md): it is meant for GPUs")
