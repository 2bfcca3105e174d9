"""Maze datasets: expert, medium, navigate, stitch, human, explore (random and mixed are generic).

Every maze dataset is stored for its task's evaluation goal (D4RL protocol, as D4RL's antmaze
data): ``desired_goal`` is the evaluation goal and rewards are the environment's for that goal,
computed on the state after the step (s'). Where the behaviour aims elsewhere (navigate,
stitch, human, explore), its own target is part of the recipe, not of the observation;
``relabel_goal`` recomputes rewards for any other goal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from d4rl_lite.datasets.collect import collect_episodes
from d4rl_lite.datasets.maze.certificate import stitching_certificate
from d4rl_lite.datasets.maze.controller import ControllerConfig, MazeController, episode_rng
from d4rl_lite.envs.maze_grid import MazeGrid
from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.tasks import Task

EXPERT = ControllerConfig(noise_sigma=0.1)
# Degraded: heavy noise, sloppy waypoints, frequent detours; tuned so that the normalized return
# is about a third of the expert's (measured: see the data card).
MEDIUM = ControllerConfig(noise_sigma=1.5, waypoint_error=0.3, detour_prob=0.72, kp=3.0, kd=0.5)
NAVIGATE = ControllerConfig()  # the D4RL regeneration's controller: sigma 0.5
STITCH = ControllerConfig()
STITCH_DISTANCE = 4  # OGBench: targets exactly 4 BFS steps away
STITCH_EPISODE_STEPS = 200  # OGBench: 200-step episodes
# Human teleoperation: loose gains (overshoot), wandering waypoints, wrong turns later corrected.
HUMAN = ControllerConfig(kp=6.0, kd=0.3, noise_sigma=0.3, jitter=0.3, detour_prob=0.15)
HUMAN_PAUSE_PROB, HUMAN_PAUSE_LENGTH = 0.01, 20.0


def _eval_goal_options(task: Task) -> Callable[[int], dict[str, Any]]:
    return lambda _i: task.eval_reset_options()


def start_in(task: Task, cell_of: Callable[[int], tuple[int, int]]) -> Callable[[int], dict[str, Any]]:
    """Reset options of episode i: the task's evaluation goal, the start cell ``cell_of(i)``."""
    return lambda i: {**task.eval_reset_options(), "reset_cell": np.array(cell_of(i))}


def random_heading(rng: np.random.Generator, mean_hold: float) -> tuple[np.ndarray, int]:
    """A unit direction drawn uniformly and how many steps to hold it (geometric, mean ``mean_hold``)."""
    angle = rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(angle), np.sin(angle)]), int(rng.geometric(1 / mean_hold))


def _certify(raw: EpisodeArrays, task: Task) -> dict[str, Any]:
    return {"stitching_certificate": stitching_certificate(raw, task)}


def _controller_dataset(task: Task, cfg: ControllerConfig, *, size: int, seed: int, num_envs: int,
                        progress, description: str) -> tuple[EpisodeArrays, dict[str, Any]]:
    grid = MazeGrid.for_task(task)
    ctrl = MazeController(grid, cfg, seed, plan=lambda _i: task.eval_goal_cell)
    raw = collect_episodes(task, ctrl, size, seed, num_envs, reset_options=_eval_goal_options(task), progress=progress)
    return raw, {"policy": "BFS waypoints + PD controller to the evaluation goal", "controller": asdict(cfg),
                 "starts": "random free cell (the env's reset)", "num_envs": num_envs, "description": description,
                 "card": _certify(raw, task)}


def build_expert(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    return _controller_dataset(task, EXPERT, size=size, seed=seed, num_envs=num_envs, progress=progress,
                               description="controller with small noise to the evaluation goal")


def build_medium(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    return _controller_dataset(task, MEDIUM, size=size, seed=seed, num_envs=num_envs, progress=progress,
                               description="degraded controller (heavy noise, sloppy waypoints, detours)")


def build_navigate(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    """D4RL maze2d: continuing runs (one per env copy), a new random goal cell on each arrival."""
    grid = MazeGrid.for_task(task)
    first_targets = {}

    def plan(i: int) -> tuple[int, int]:
        return first_targets.setdefault(i, grid.free_cells[episode_rng(seed, i, 7).integers(len(grid.free_cells))])

    def on_arrival(_slot: int, _episode: int, _n: int, rng: np.random.Generator) -> tuple[int, int]:
        return grid.free_cells[rng.integers(len(grid.free_cells))]

    ctrl = MazeController(grid, NAVIGATE, seed, plan=plan, on_arrival=on_arrival, continuing=True)
    raw = collect_episodes(task, ctrl, size, seed, num_envs, reset_options=_eval_goal_options(task),
                           progress=progress, continuing=True)
    return raw, {"policy": "BFS waypoints + PD controller, new random goal cell on arrival", "controller": asdict(NAVIGATE),
                 "runs": f"{num_envs} continuing runs (one per env copy), cut into {task.horizon}-step episodes",
                 "num_envs": num_envs, "description": "D4RL maze2d-style navigation", "card": _certify(raw, task)}


def stitch_plan(grid: MazeGrid, seed: int, distance: int) -> Callable[[int], tuple[tuple[int, int], tuple[int, int]]]:
    """Episode index -> (start cell, target cell): a random free cell and a cell exactly ``distance``
    BFS steps away (small mazes: the farthest cells short of it), drawn from the episode's stream."""
    plans: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}

    def plan_of(i: int) -> tuple[tuple[int, int], tuple[int, int]]:
        if i not in plans:
            rng = episode_rng(seed, i, 8)
            start = grid.free_cells[rng.integers(len(grid.free_cells))]
            targets = grid.cells_at_distance(start, distance)
            if not targets:
                targets = grid.cells_at_distance(start, int(grid.dist[:, grid.index[start]].max()))
            plans[i] = (start, targets[rng.integers(len(targets))])
        return plans[i]

    return plan_of


def build_stitch(task: Task, *, size: int, seed: int, num_envs: int, progress=None,
                 distance: int = STITCH_DISTANCE, episode_steps: int = STITCH_EPISODE_STEPS):
    """OGBench stitch: from a random free cell to a cell exactly ``distance`` BFS steps away, then hold."""
    grid = MazeGrid.for_task(task)
    distance, episode_steps = int(distance), int(episode_steps)
    plan_of = stitch_plan(grid, seed, distance)
    ctrl = MazeController(grid, STITCH, seed, plan=lambda i: plan_of(i)[1])
    raw = collect_episodes(task, ctrl, size, seed, num_envs, reset_options=start_in(task, lambda i: plan_of(i)[0]),
                           progress=progress, max_episode_steps=episode_steps)
    return raw, {"policy": f"controller from a random free cell to a cell {distance} BFS steps away, then hold",
                 "controller": asdict(STITCH), "distance": distance, "episode_steps": episode_steps,
                 "num_envs": num_envs, "description": f"OGBench-style stitch ({episode_steps}-step episodes, k = {distance})",
                 "card": _certify(raw, task)}


class _HumanDriver(MazeController):
    """Teleoperation-like: the controller's loose variant, plus pauses (hands off) and a skill per episode."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skill: dict[int, float] = {}  # per copy: this episode's skill, and steps left of a pause
        self.pause: dict[int, int] = {}

    def start_episode(self, slot: int, episode_index: int) -> None:
        super().start_episode(slot, episode_index)
        self.skill[slot] = 1.0 - 0.6 * self.rngs[slot].random()
        self.pause[slot] = 0

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        actions = super().__call__(observations)
        for slot in range(len(observations)):
            rng, clumsy = self.rngs[slot], 2.0 - self.skill[slot]
            if self.pause[slot] == 0 and rng.random() < HUMAN_PAUSE_PROB * clumsy:
                self.pause[slot] = int(rng.geometric(1.0 / HUMAN_PAUSE_LENGTH))
            if self.pause[slot] > 0:
                self.pause[slot] -= 1
                actions[slot] = 0.0
            else:  # less skilled episodes push harder and steer worse
                actions[slot] = np.clip(actions[slot] + rng.normal(0, 0.2 * (clumsy - 1), 2), -1, 1)
        return actions


def build_human(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    grid = MazeGrid.for_task(task)
    driver = _HumanDriver(grid, HUMAN, seed, plan=lambda _i: task.eval_goal_cell)
    raw = collect_episodes(task, driver, size, seed, num_envs, reset_options=_eval_goal_options(task), progress=progress)
    flat = raw.to_offline(task)
    returns = flat.episode_returns()
    return raw, {"policy": "human-like teleoperation to the evaluation goal", "controller": asdict(HUMAN),
                 "pause_prob": HUMAN_PAUSE_PROB, "pause_length": HUMAN_PAUSE_LENGTH, "skill": "U[0.4, 1] per episode",
                 "num_envs": num_envs, "description": "human-like teleoperation (overshoot, wandering, pauses, wrong turns)",
                 "card": {"human_effects": {"paused_share": round(float(np.all(flat.actions == 0, axis=1).mean()), 4),
                                            "return_spread": {"std": round(float(returns.std()), 2),
                                                              "min": float(returns.min()), "max": float(returns.max())}},
                          **_certify(raw, task)}}


class _Explorer:
    """Random-direction wandering: a heading held for a random while, plus heavy noise."""

    def __init__(self, seed: int, sigma: float = 1.0, mean_hold: float = 20.0):
        self.seed, self.sigma, self.mean_hold = seed, sigma, mean_hold
        self.slots: dict[int, dict[str, Any]] = {}

    def start_episode(self, slot: int, episode_index: int) -> None:
        self.slots[slot] = {"rng": episode_rng(self.seed, episode_index, 9), "hold": 0, "heading": np.zeros(2)}

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        out = np.empty((len(observations), 2), np.float32)
        for slot in range(len(observations)):
            s = self.slots[slot]
            if s["hold"] == 0:
                s["heading"], s["hold"] = random_heading(s["rng"], self.mean_hold)
            s["hold"] -= 1
            out[slot] = np.clip(s["heading"] + s["rng"].normal(0, self.sigma, 2), -1, 1)
        return out


def build_explore(task: Task, *, size: int, seed: int, num_envs: int, progress=None):
    raw = collect_episodes(task, _Explorer(seed), size, seed, num_envs, reset_options=_eval_goal_options(task),
                           progress=progress)
    return raw, {"policy": "random headings held ~20 steps, Gaussian noise sigma 1.0", "num_envs": num_envs,
                 "description": "random-direction wandering with high noise", "card": _certify(raw, task)}


def relabel_goal(observations: np.ndarray, next_observations: np.ndarray, goal_xy: np.ndarray,
                 reward_type: str = "sparse", radius: float = 0.45) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat maze transitions re-targeted to ``goal_xy``: (observations, next_observations, rewards).

    A flat maze observation starts with x/y and ends with the goal (PointMaze and AntMaze alike).
    Rewards follow the environment on the state after the step: sparse 1 within ``radius`` of the
    goal (PointMaze 0.45; AntMaze, as D4RL, 0.5), dense exp(-distance).
    """
    obs, nxt = observations.copy(), next_observations.copy()
    obs[:, -2:] = goal_xy
    nxt[:, -2:] = goal_xy
    d = np.linalg.norm(nxt[:, 0:2] - np.asarray(goal_xy), axis=1)
    rewards = (d <= radius).astype(np.float32) if reward_type == "sparse" else np.exp(-d).astype(np.float32)
    return obs, nxt, rewards

