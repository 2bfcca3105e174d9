"""The ``d4rl-lite`` command: ``main`` runs one verb and turns user mistakes into one line and exit 2.

The verbs live by subject, each module holding a verb's arguments and help next to the function that runs
it: ``dataset_verbs`` (list, info, build), ``training_verbs`` (settings, train, eval), ``benchmark_verbs``
(bench, report), ``production_verbs`` (train-behavior, export-behavior, refs); ``parser`` puts them in order
and ``arguments`` holds what they share.

Error policy: a ``D4RLLiteError`` (which ``UserInputError`` and every dataset and file error are), a path that
already exists, or an OS refusal is the user's to fix: one line on stderr, exit 2. Anything else is a bug in
d4rl_lite or below it and propagates with its full traceback (exit 1 from the console script), so a NumPy or
torch ValueError is never shown as bad input.
"""

from __future__ import annotations

import sys
import warnings

from d4rl_lite.cli.parser import build_parser
from d4rl_lite.errors import D4RLLiteError

__all__ = ["build_parser", "main"]


def _quiet_third_party() -> None:
    # gymnasium-robotics announces Adroit reward changes on import; not relevant to our tasks.
    warnings.filterwarnings("ignore", message=".*Adroit.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    _quiet_third_party()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (D4RLLiteError, FileExistsError) as e:
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
