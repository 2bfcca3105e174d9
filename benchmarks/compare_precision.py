"""fp32 against bf16 at the same budget: final scores per algorithm and dataset, with the seed spread.

Reads two results directories of the same suite, one run with --precision fp32 and one with
bf16 (e.g. benchmarks/suites/bf16_accuracy.json), and prints per algorithm and dataset the final
normalized score of each seed, mean and std over seeds, and whether the bf16 mean lies within
the fp32 seed spread (|mean difference| <= the larger of the two seed standard deviations).

    d4rl-lite bench benchmarks/suites/bf16_accuracy.json --precision fp32 --results R/fp32
    d4rl-lite bench benchmarks/suites/bf16_accuracy.json --precision bf16 --results R/bf16
    python benchmarks/compare_precision.py R/fp32 R/bf16
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def finals(results: Path) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for path in sorted(results.glob("*/result.json")):
        record = json.loads(path.read_text())
        final = record["final"]
        score = final.get("eval/normalized_score", final.get("eval/return_mean"))
        out[(record["algorithm"], record["dataset"])].append(float(score))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fp32", type=Path)
    parser.add_argument("bf16", type=Path)
    args = parser.parse_args()
    a, b = finals(args.fp32), finals(args.bf16)
    print(f"{'algorithm':<6} {'dataset':<28} {'fp32 seeds':<22} {'mean±std':>12} {'bf16 seeds':<22} {'mean±std':>12}  within spread")
    for key in sorted(a):
        x, y = np.array(a[key]), np.array(b.get(key, []))
        if not len(y):
            print(f"{key[0]:<6} {key[1]:<28} bf16 results missing")
            continue
        spread = max(x.std(), y.std())
        ok = abs(x.mean() - y.mean()) <= spread
        print(f"{key[0]:<6} {key[1]:<28} {' '.join(f'{v:6.1f}' for v in x):<22} {x.mean():6.1f}±{x.std():4.1f} "
              f"{' '.join(f'{v:6.1f}' for v in y):<22} {y.mean():6.1f}±{y.std():4.1f}  {'yes' if ok else 'NO'} "
              f"(|diff| {abs(x.mean() - y.mean()):.1f}, spread {spread:.1f})")


if __name__ == "__main__":
    main()
