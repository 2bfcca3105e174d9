"""Ant maze datasets: D4RL's play and diverse, OGBench's navigate, stitch and explore, and medium
(random and mixed are generic).

Every one is driven by ``AntMazeController``: the maze planner's waypoints walked by the committed
ant-goal skill (``zoo/ant-goal``: ``expert`` is the skill, ``medium`` an earlier, weaker entry of
its ladder). As for PointMaze, every dataset is stored for its task's evaluation goal: the env
is reset with that goal, ``desired_goal`` is it, and rewards are the environment's for it on the
state after the step (1 within 0.5 m). The evaluation env ends an episode there (D4RL's
``eval=True``), so does the data: a data episode that passes through the goal ends there with a
terminal reward of 1, the same MDP the evaluation scores. The behaviour's own targets are part of
the recipe, not of the observation.

D4RL collected 1000-step episodes with the goal changed on arrival; so do ``play``, ``diverse``
and ``navigate``, with the task's own horizon (700 steps on umaze). A tour whose target is the
goal's cell walks to the goal point itself, where its episode ends (``ends_at_goal``). Per 50k
transitions (seed 0): large-play 13 of 56 episodes end at the goal, large-diverse 3 of 52,
umaze-diverse 85 of 120; before, turning away on entering the goal's cell, large-play had 1 in 1M.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from d4rl_lite.datasets.behavior.policies import load_role
from d4rl_lite.datasets.builders.maze import (
    STITCH_DISTANCE, STITCH_EPISODE_STEPS, _certify, random_heading, start_in, stitch_plan,
)
from d4rl_lite.datasets.collect import collect_episodes
from d4rl_lite.datasets.maze.ant_controller import AntMazeController
from d4rl_lite.datasets.maze.controller import ControllerConfig, episode_rng
from d4rl_lite.envs.maze_grid import MazeGrid
from d4rl_lite.tasks import Task

SKILL_TASK = "ant-goal"
# The skill's mean action plus Gaussian noise; waypoints jittered within 0.1 cell as PointMaze's.
NAVIGATE = ControllerConfig(noise_sigma=0.2)
# Degraded: the medium skill, sloppy waypoints and frequent detours towards the evaluation goal.
MEDIUM = ControllerConfig(noise_sigma=0.4, waypoint_error=0.2, detour_prob=0.5)
EXPLORE_SIGMA, EXPLORE_HOLD = 0.6, 40.0  # action noise, mean steps a heading is held

# D4RL's play datasets head for a few hand-picked cells; ours: the maze's corners and junctions.
PLAY_CELLS = {
    "umaze": [(1, 1), (1, 3), (2, 3), (3, 3), (3, 1)],
    "medium": [(1, 1), (1, 6), (3, 4), (4, 2), (5, 6), (6, 1), (6, 6)],
    "large": [(1, 1), (1, 10), (3, 4), (4, 6), (5, 1), (5, 10), (7, 4), (7, 9)],
}


def _maze_of(task: Task) -> str:
    return task.name.split("-", 1)[1]


def _controller(task: Task, role: str, cfg: ControllerConfig, seed: int, plan, on_arrival=None,
                cls: type[AntMazeController] = AntMazeController):
    """The ant driven by the committed skill's ``role`` entry, and what the recipe says of it."""
    skill, entry = load_role(SKILL_TASK, role)
    ctrl = cls(MazeGrid.for_task(task), cfg, seed, plan=plan, on_arrival=on_arrival, skill=skill)
    return ctrl, {"skill": f"committed {SKILL_TASK} {role} (step {entry['step']:,})", "skill_file": entry["file"],
                  "controller": {**asdict(cfg), "max_offset_m": ctrl.max_offset}}


def _random_cells(grid: MazeGrid, seed: int):
    """Episode index -> a free cell drawn from the episode's own stream (the same for every call)."""
    drawn: dict[int, tuple[int, int]] = {}
    return lambda i: drawn.setdefault(i, grid.free_cells[episode_rng(seed, i, 11).integers(len(grid.free_cells))])


def _goal_tours(task: Task, cells: list[tuple[int, int]], *, size: int, seed: int, num_envs: int, progress,
                description: str) -> tuple[Any, dict[str, Any]]:
    """Episodes from a random cell of ``cells`` to another, a new one on each arrival."""
    def pick(rng: np.random.Generator, avoid: tuple[int, int] | None = None) -> tuple[int, int]:
        options = [c for c in cells if c != avoid]
        return options[rng.integers(len(options))]

    starts = {}

    def start_of(i: int) -> tuple[int, int]:
        return starts.setdefault(i, pick(episode_rng(seed, i, 11)))

    ctrl, recipe = _controller(task, "expert", NAVIGATE, seed, plan=lambda i: pick(episode_rng(seed, i, 12), start_of(i)),
                               on_arrival=lambda _slot, _i, _n, rng: pick(rng))
    raw = collect_episodes(task, ctrl, size, seed, num_envs, reset_options=start_in(task, start_of), progress=progress)
    return raw, {**recipe, "cells": [list(c) for c in cells], "num_envs": num_envs, "description": description,
                 "card": _certify(raw, task)}


def build_play(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    """D4RL antmaze play: starts and goals from a few hand-picked cells, a new goal on arrival."""
    return _goal_tours(task, PLAY_CELLS[_maze_of(task)], size=size, seed=seed, num_envs=num_envs, progress=progress,
                       description="D4RL-style play: hand-picked start and goal cells, a new goal on arrival")


def build_diverse(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    """D4RL antmaze diverse: random start and goal cells, a new random goal on arrival."""
    return _goal_tours(task, MazeGrid.for_task(task).free_cells, size=size, seed=seed, num_envs=num_envs,
                       progress=progress, description="D4RL-style diverse: random start and goal cells, a new goal on arrival")


def build_navigate(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    """OGBench navigate: from a random cell, a random goal cell at a time, each at least half the
    maze's longest shortest path away (long walks rather than hops to neighbours)."""
    grid = MazeGrid.for_task(task)
    far = max(1, int(grid.dist.max()) // 2)

    def far_from(cell: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
        column = grid.dist[:, grid.index[cell]]
        options = np.flatnonzero(column >= far)
        return grid.free_cells[int(options[rng.integers(len(options))])]

    start_of = _random_cells(grid, seed)

    def on_arrival(slot: int, _i: int, _n: int, rng: np.random.Generator) -> tuple[int, int]:
        return far_from(grid.free_cells[int(ctrl.target[slot])], rng)  # from the target just reached

    def plan(i: int) -> tuple[int, int]:
        return far_from(start_of(i), episode_rng(seed, i, 12))

    ctrl, recipe = _controller(task, "expert", NAVIGATE, seed, plan=plan, on_arrival=on_arrival)
    raw = collect_episodes(task, ctrl, size, seed, num_envs, reset_options=start_in(task, start_of), progress=progress)
    return raw, {**recipe, "min_goal_distance_cells": far, "num_envs": num_envs,
                 "description": "OGBench-style navigate: random far goal cells, a new one on arrival",
                 "card": _certify(raw, task)}


def build_stitch(task: Task, *, size: int, seed: int, num_envs: int, progress=None,
                 distance: int = STITCH_DISTANCE, episode_steps: int = STITCH_EPISODE_STEPS):
    """OGBench stitch: from a random cell to a cell exactly ``distance`` BFS steps away, in short episodes."""
    grid = MazeGrid.for_task(task)
    plan_of = stitch_plan(grid, seed, int(distance))
    ctrl, recipe = _controller(task, "expert", NAVIGATE, seed, plan=lambda i: plan_of(i)[1])
    raw = collect_episodes(task, ctrl, size, seed, num_envs, reset_options=start_in(task, lambda i: plan_of(i)[0]),
                           progress=progress, max_episode_steps=int(episode_steps))
    return raw, {**recipe, "distance": int(distance), "episode_steps": int(episode_steps), "num_envs": num_envs,
                 "description": f"OGBench-style stitch ({episode_steps}-step episodes, k = {distance})",
                 "card": _certify(raw, task)}


def build_medium(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    """A degraded controller to the evaluation goal: the medium skill, sloppy waypoints, detours."""
    ctrl, recipe = _controller(task, "medium", MEDIUM, seed, plan=lambda _i: task.eval_goal_cell)
    raw = collect_episodes(task, ctrl, size, seed, num_envs, reset_options=lambda _i: task.eval_reset_options(),
                           progress=progress)
    return raw, {**recipe, "num_envs": num_envs, "starts": "the task's start cell",
                 "description": "degraded controller (medium skill, noise, sloppy waypoints, detours) to the evaluation goal",
                 "card": _certify(raw, task)}


class _AntExplorer(AntMazeController):
    """OGBench explore: the skill heads for a point ``max_offset`` m away in a random direction,
    held for a geometric number of steps (mean ``EXPLORE_HOLD``), with heavy action noise; it knows
    nothing of the maze."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.heading: dict[int, np.ndarray] = {}  # per copy: the current direction, steps left to hold it
        self.hold: dict[int, int] = {}

    def start_episode(self, slot: int, episode_index: int) -> None:
        super().start_episode(slot, episode_index)
        self.heading[slot], self.hold[slot] = np.zeros(2), 0

    def waypoints(self, pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
        out = np.empty_like(pos)
        for slot in range(len(pos)):
            if self.hold[slot] == 0:
                self.heading[slot], self.hold[slot] = random_heading(self.rngs[slot], EXPLORE_HOLD)
            self.hold[slot] -= 1
            out[slot] = pos[slot] + self.max_offset * self.heading[slot]
        return out


def build_explore(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    ctrl, recipe = _controller(task, "expert", ControllerConfig(noise_sigma=EXPLORE_SIGMA), seed,
                               plan=lambda _i: task.eval_goal_cell, cls=_AntExplorer)
    start_of = _random_cells(MazeGrid.for_task(task), seed)
    raw = collect_episodes(task, ctrl, size, seed, num_envs, reset_options=start_in(task, start_of), progress=progress)
    return raw, {**recipe, "heading_hold_mean": EXPLORE_HOLD,
                 "num_envs": num_envs, "description": "OGBench-style explore: random headings, heavy action noise",
                 "card": _certify(raw, task)}
