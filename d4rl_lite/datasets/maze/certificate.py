"""Stitching certificates and maze pictures, computed from the data alone.

For each evaluation task (start cell -> goal cell; the five longest pairs of the maze) the
certificate says whether a single episode goes from the start cell to the goal cell, and the
minimum number of episode segments that must be chained to connect them, where a segment runs
forward in time inside one episode and two segments chain where they share a cell. It also
reports the coverage of free cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.envs.maze_grid import MazeGrid
from d4rl_lite.tasks import Task


def _positions(data: Any) -> np.ndarray:
    """x/y of every stored state, T + 1 per episode, from EpisodeArrays or an OfflineDataset."""
    if hasattr(data, "next_observations"):  # flat view: re-insert each episode's final state
        ends = np.cumsum(data.episode_lengths)
        return np.insert(data.observations[:, :2], ends, data.next_observations[ends - 1, :2], axis=0)
    obs = data.observations
    return obs["achieved_goal"] if isinstance(obs, dict) else obs[:, :2]  # the ant's 27 numbers leave x/y out


def episode_cell_sequences(raw: Any, grid: MazeGrid) -> list[np.ndarray]:
    """Per episode, the free cells its positions pass through (all T + 1 states), repeats collapsed."""
    cells = grid.free_index(grid.cell_of(_positions(raw)))
    seqs = []
    for part in np.split(cells, np.cumsum(raw.episode_lengths + 1)[:-1]):
        part = part[part >= 0]
        if len(part):
            keep = np.concatenate([[True], part[1:] != part[:-1]])
            seqs.append(part[keep])
    return seqs


def min_segments(seqs: list[np.ndarray], start: int, goal: int, n_cells: int) -> int | None:
    """Fewest forward-in-time episode segments chained at shared cells from ``start`` to ``goal``.

    Level by level: ``first[e]`` is the earliest position of episode e reachable with the current
    number of segments; everything after it in e is reachable too. None if no chain exists.
    """
    inf = np.iinfo(np.int64).max
    first = np.full(len(seqs), inf, dtype=np.int64)
    reached = np.zeros(n_cells, dtype=bool)
    reached[start] = True
    for level in range(1, n_cells + 2):
        changed = False
        for e, seq in enumerate(seqs):
            hits = np.flatnonzero(reached[seq])
            if len(hits) and hits[0] < first[e]:
                first[e], changed = hits[0], True
        if not changed:
            return None
        for e, seq in enumerate(seqs):
            if first[e] != inf:
                reached[seq[first[e]:]] = True
        if reached[goal]:
            return level
    return None


def stitching_certificate(raw: Any, task: Task, pairs: list | None = None) -> dict[str, Any]:
    grid = MazeGrid.for_task(task)
    seqs = episode_cell_sequences(raw, grid)
    visited = np.zeros(len(grid.free_cells), dtype=bool)
    for s in seqs:
        visited[s] = True
    tasks = []
    for start, goal in pairs or grid.longest_pairs(5):
        s, g = grid.index[tuple(start)], grid.index[tuple(goal)]
        k = min_segments(seqs, s, g, len(grid.free_cells))
        tasks.append({"start": list(start), "goal": list(goal), "shortest_path_cells": int(grid.dist[g, s]),
                      "single_episode": k == 1, "min_segments": k})
    goal_cell = grid.index[tuple(task.eval_goal_cell)]
    return {
        "tasks": tasks,
        "single_episode_solutions": sum(t["single_episode"] for t in tasks),
        "free_cells": len(grid.free_cells),
        "visited_cells": int(visited.sum()),
        "coverage": round(float(visited.mean()), 4),
        "episodes_reaching_eval_goal": int(sum(bool((s == goal_cell).any()) for s in seqs)),
    }


def plot_maze_dataset(raw: Any, task: Task, path: str | Path, title: str, trajectories: int = 5) -> Path:
    """PNG: maze walls, a cell-coverage heat map (log visits) and a few sample trajectories."""
    from matplotlib.colors import LogNorm

    from d4rl_lite.plotting import pyplot, save_figure

    plt = pyplot()
    grid = MazeGrid.for_task(task)
    xy = _positions(raw)
    cells = grid.cell_of(xy)
    counts = np.zeros((grid.rows, grid.cols))
    np.add.at(counts, (cells[:, 0], cells[:, 1]), 1)
    counts[grid.walls] = np.nan
    half_w, half_h = grid.cols * grid.scaling / 2, grid.rows * grid.scaling / 2
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * grid.cols, 0.8 + 0.7 * grid.rows), dpi=100)
    ax.imshow(np.where(grid.walls, 1.0, np.nan), cmap="Greys", vmin=0, vmax=1.3, extent=(-half_w, half_w, -half_h, half_h))
    masked = np.ma.masked_invalid(np.where(counts > 0, counts, np.nan))
    im = ax.imshow(masked, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(2, np.nanmax(counts))),
                   extent=(-half_w, half_w, -half_h, half_h), alpha=0.85)
    fig.colorbar(im, ax=ax, label="visits (log)", fraction=0.046, pad=0.04)
    starts = np.concatenate([[0], np.cumsum(raw.episode_lengths + 1)[:-1]])
    picks = np.linspace(0, len(starts) - 1, min(trajectories, len(starts))).astype(int)
    for i in picks:
        seg = xy[starts[i] : starts[i] + raw.episode_lengths[i] + 1]
        ax.plot(seg[:, 0], seg[:, 1], linewidth=1.2, alpha=0.9)
        ax.plot(seg[0, 0], seg[0, 1], "o", color="white", markersize=4, markeredgecolor="black")
    goal = grid.cell_center(np.array(task.eval_goal_cell))
    ax.plot(goal[0], goal[1], "*", color="red", markersize=16, markeredgecolor="black", label="evaluation goal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=7)
    return save_figure(fig, path)
