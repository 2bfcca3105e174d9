"""Measuring reference scores: ref_min is the uniform random policy's mean return on the task's protocol."""

from __future__ import annotations

from datetime import date
from typing import Any

from d4rl_lite.envs.policies import UniformRandomPolicy
from d4rl_lite.errors import UserInputError
from d4rl_lite.evaluation.evaluate import evaluate
from d4rl_lite.references import store_reference_score
from d4rl_lite.tasks import Task

REFERENCE_EPISODES = 100
REFERENCE_SEED = 0


def measure_controller_reference(task: Task, episodes: int = REFERENCE_EPISODES, store: bool = False) -> dict[str, Any]:
    """Maze ref_max: the maze controller (BFS waypoints + PD, action noise sigma 0.5) over ``episodes``
    evaluation episodes with reset seeds 0..episodes-1 (fixed goal cell, random start)."""
    from d4rl_lite.datasets.maze.controller import ControllerConfig, MazeController
    from d4rl_lite.envs.maze_grid import MazeGrid

    if task.domain != "maze":
        raise UserInputError(f"{task.name} is not a maze: its ref_max comes from `d4rl-lite export-behavior`")
    cfg = ControllerConfig()
    controller = MazeController(MazeGrid.for_task(task), cfg, seed=REFERENCE_SEED, plan=lambda _i: task.eval_goal_cell)
    result = evaluate(task, controller, episodes=episodes, seed=REFERENCE_SEED)
    summary = result.summary()
    record = {
        "value": summary["return_mean"],
        "how": f"maze controller (BFS waypoints, PD kp {cfg.kp} kd {cfg.kd}, noise sigma {cfg.noise_sigma}), "
               f"mean over {episodes} episodes, reset seeds 0..{episodes - 1}",
        "return_std": summary["return_std"],
        "success_rate": summary["success_rate"],
        "episodes": episodes,
        "measured_on": date.today().isoformat(),
        "command": f"d4rl-lite refs --measure-max {task.name} --episodes {episodes}",
    }
    if store:
        store_reference_score(task.name, "ref_max", **record)
    return record


def measure_random_reference(task: Task, episodes: int = REFERENCE_EPISODES, store: bool = False) -> dict[str, Any]:
    """Mean return of uniform random actions over ``episodes`` episodes with seeds 0..episodes-1.

    Episodes follow the task's evaluation protocol (fixed goal cell on mazes); actions of episode
    ``i`` come from ``default_rng([0, i])``. With ``store`` the result becomes the task's ref_min.
    """
    result = evaluate(task, UniformRandomPolicy(task, seed=REFERENCE_SEED), episodes=episodes, seed=REFERENCE_SEED)
    summary = result.summary()
    record = {
        "value": summary["return_mean"],
        "how": f"uniform random policy, mean over {episodes} episodes, reset seeds 0..{episodes - 1}",
        "return_std": summary["return_std"],
        "episodes": episodes,
        "measured_on": date.today().isoformat(),
        "command": f"d4rl-lite refs --measure {task.name} --episodes {episodes}",
    }
    if "success_rate" in summary:
        record["success_rate"] = summary["success_rate"]
    if store:
        from d4rl_lite.datasets.builders import package_versions

        record["versions"] = {k: v for k, v in package_versions().items() if k in ("gymnasium", "gymnasium-robotics", "mujoco")}
        store_reference_score(task.name, "ref_min", **record)
    return record
