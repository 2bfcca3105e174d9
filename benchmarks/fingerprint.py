"""Fingerprints of what the package produces, to show a refactoring changed nothing.

Builds one small dataset of every buildable kind on one task per domain (hopper, pointmaze-medium)
and prints each dataset's array checksum, then runs the shipped ``smoke`` suite and prints the
SHA-256 of its table (about 5 minutes on 2 cores). Run it before and after a restructuring and diff the outputs:

    python benchmarks/fingerprint.py > before.txt   # ... restructure ...
    python benchmarks/fingerprint.py > after.txt && diff before.txt after.txt

medium-replay of hopper reads the committed replay if present, else rolls out the ladder.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("D4RL_LITE_ENV_WORKERS", "1")

SIZE = 3000
TASKS = ("hopper", "pointmaze-medium")


def main() -> None:
    from d4rl_lite.datasets.builders import BUILDERS, build_dataset
    from d4rl_lite.datasets.d4rl_compat import load_dataset
    from d4rl_lite.tasks import get_task

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        for task in TASKS:
            for kind in sorted(BUILDERS[get_task(task).domain]):
                options = {"mix": "random:0.5,expert:0.5"} if kind == "mixed" else {}
                name = f"{task}-{kind}-v0"
                build_dataset(name, size=SIZE, seed=0, root=root, num_envs=4, **options)
                print(f"{name:<34} {load_dataset(name, root=root).metadata['checksum']}", flush=True)
        from d4rl_lite.benchmark.runner import run_suite
        from d4rl_lite.benchmark.suites import Suite
        from d4rl_lite.benchmark.results import read_results
        from d4rl_lite.benchmark.table import score_table
        from d4rl_lite.benchmark.table_formats import to_json

        run_suite(Suite.load("smoke"), Path(tmp) / "res", workers=2, root=Path(tmp) / "smoke_root", log=lambda _: None)
        table = to_json(score_table(read_results(Path(tmp) / "res")))
        print(f"{'smoke suite table':<34} sha256:{hashlib.sha256(table.encode()).hexdigest()}")


if __name__ == "__main__":
    sys.exit(main())
