"""The learning-curves figure of a results table: one panel per dataset, each algorithm's curve."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.records import RunResult, count_label


def plot_learning_curves(results: list[RunResult], path: str | Path) -> Path:
    """``learning_curves_figure`` saved to ``path``."""
    from d4rl_lite.plotting import save_figure

    return save_figure(learning_curves_figure(results), path)


def learning_curves_figure(results: list[RunResult]) -> Any:
    """One panel per dataset in a grid of at most three columns (readable at paper size): each
    algorithm's evaluation curve, mean over seeds, with a band from the lowest to the highest seed."""
    from d4rl_lite.plotting import pyplot

    plt = pyplot()
    datasets = sorted({r.spec.dataset for r in results})
    # One colour per algorithm across panels: an algorithm that runs on some datasets only (only_on)
    # keeps its colour in every panel it is in.
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {a: cycle[i % len(cycle)] for i, a in enumerate(sorted({r.spec.algorithm for r in results}))}
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 0.4), dpi=100, squeeze=False)
    for ax in axes.flat[len(datasets):]:
        ax.set_visible(False)
    for ax, d in zip(axes.flat, datasets):
        by_algo: dict[str, list[RunResult]] = defaultdict(list)
        for r in results:
            if r.spec.dataset == d:
                by_algo[r.spec.algorithm].append(r)
        for algo, runs in sorted(by_algo.items()):
            normalized = runs[0].final.normalized  # the curve's score is the final evaluation's
            steps = [p.step for p in runs[0].curve]
            values = np.array([[p.score for p in r.curve][: len(steps)] for r in runs if len(r.curve) >= len(steps)])
            ax.plot(steps, values.mean(0), label=f"{algo} ({count_label(len(values), 'seed')})", color=colour[algo])
            if len(values) > 1:
                ax.fill_between(steps, values.min(0), values.max(0), alpha=0.2, color=colour[algo])
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("normalized score" if normalized else "return")
        ax.legend(fontsize=7)  # what this panel shows, and nothing else
    fig.suptitle("evaluation score: line = mean over seeds, band = lowest to highest seed", fontsize=9)
    fig.tight_layout()
    return fig
