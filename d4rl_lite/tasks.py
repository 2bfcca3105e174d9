"""Task registry: each task's environment factory, horizon, evaluation protocol and reference scores.

About 360 lines: the Task record (its env factory, spaces and protocol, ~100 lines), the table of
tasks, and the two things every task leans on, env registration and reference scores.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import gymnasium as gym
import numpy as np

from d4rl_lite.errors import ReferenceScoreUnavailable, UnknownNameError
from d4rl_lite.references import ReferenceScore, reference_scores

@dataclass(frozen=True)
class Task:
    """A task: an environment plus the protocol every score on it follows."""

    name: str
    domain: str  # "locomotion", "maze" (PointMaze), "antmaze", or "skill" (a low-level skill; no datasets of its own)
    env_id: str
    horizon: int
    # False when the environment never terminates (HalfCheetah; mazes are continuing tasks):
    # a terminal flag in such a task's data is a bug in the data.
    can_terminate: bool
    eval_episodes: int
    eval_seed: int
    description: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    # Maze evaluation (D4RL maze2d protocol): fixed goal cell (row, col), random start cell.
    eval_goal_cell: tuple[int, int] | None = None
    # Ant mazes (D4RL antmaze protocol) and single-task maze variants: the start cell is fixed too.
    eval_reset_cell: tuple[int, int] | None = None
    # A single-task variant (OGBench's protocol, e.g. pointmaze-medium-task3) names its maze's task
    # here: same environment, its own start and goal; a table averages a maze's five tasks.
    variant_of: str | None = None

    # -- environments -------------------------------------------------------------------
    def make_env(self, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
        """A fresh single environment of this task (Gymnasium API, time limit = horizon unless given)."""
        if self.domain in GOAL_DOMAINS:
            _register_robotics_envs()
        if self.env_id.startswith("d4rl_lite/"):
            _register_own_envs()
        steps = self.horizon if max_episode_steps is None else max_episode_steps
        with _without_settotalmass_notice():
            return gym.make(self.env_id, max_episode_steps=steps, **{**self.env_kwargs, **kwargs})

    def eval_reset_options(self) -> dict[str, Any] | None:
        """Reset options of an evaluation episode (the fixed goal cell on mazes)."""
        if self.eval_goal_cell is None:
            return None
        options = {"goal_cell": np.array(self.eval_goal_cell)}
        if self.eval_reset_cell is not None:
            options["reset_cell"] = np.array(self.eval_reset_cell)
        return options

    # -- spaces ---------------------------------------------------------------------------
    @cached_property
    def _spaces(self) -> tuple[gym.Space, gym.spaces.Box]:
        env = self.make_env()
        try:
            return env.observation_space, env.action_space
        finally:
            env.close()

    @property
    def observation_space(self) -> gym.Space:
        """The environment's native observation space (a Dict on mazes)."""
        return self._spaces[0]

    @property
    def action_space(self) -> gym.spaces.Box:
        return self._spaces[1]

    @property
    def observation_dim(self) -> int:
        """Size of the flat observation used for training (see ``flatten_observation``)."""
        space = self.observation_space
        if isinstance(space, gym.spaces.Dict):
            return sum(int(np.prod(space[k].shape)) for k in self.flat_observation_keys)
        return int(np.prod(space.shape))

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.action_space.shape))

    @property
    def flat_observation_keys(self) -> tuple[str, ...]:
        """The keys of a maze's dict observation, in the order the flat view joins them."""
        return FLAT_OBSERVATION_KEYS[self.domain] if self.domain in FLAT_OBSERVATION_KEYS else ()

    def flatten_observation(self, obs: Any) -> np.ndarray:
        """Native observation (single or batched) -> flat float32 array.

        Maze observations are dicts; the flat view holds the position, the rest of the state and
        the goal (``flat_observation_keys``), so one policy serves every goal: PointMaze's
        ``[x, y, vx, vy, goal_x, goal_y]``; AntMaze's ``[x, y, 27 ant numbers, goal_x, goal_y]``
        (its ``observation`` leaves x/y out: they are the ``achieved_goal``; D4RL's antmaze
        observation also starts with x/y).
        """
        if isinstance(obs, dict):
            obs = np.concatenate([np.asarray(obs[k]) for k in self.flat_observation_keys], axis=-1)
        return np.asarray(obs, dtype=np.float32)

    # -- reference scores -----------------------------------------------------------------
    @property
    def ref_min(self) -> ReferenceScore:
        return reference_scores(self.name)["ref_min"]

    @property
    def ref_max(self) -> ReferenceScore:
        return reference_scores(self.name)["ref_max"]

    def normalized_score(self, returns: Any) -> np.ndarray | float:
        """D4RL normalized score in percent: 100 * (return - ref_min) / (ref_max - ref_min)."""
        lo, hi = self.ref_min, self.ref_max
        for label, ref in (("ref_min", lo), ("ref_max", hi)):
            if ref.value is None:
                raise ReferenceScoreUnavailable(
                    f"task {self.name!r} has no measured {label} yet ({ref.how}). Raw returns are "
                    f"still valid; normalized scores need that reference measured first."
                )
        scores = 100.0 * (np.asarray(returns, dtype=np.float64) - lo.value) / (hi.value - lo.value)
        return float(scores) if scores.ndim == 0 else scores


FLAT_OBSERVATION_KEYS = {"maze": ("observation", "desired_goal"),
                         "antmaze": ("achieved_goal", "observation", "desired_goal")}
GOAL_DOMAINS = ("maze", "antmaze")  # dict observations with a goal; success is part of the protocol

_LOCOMOTION = {
    # name: (env id, can terminate, description)
    "hopper": ("Hopper-v5", True, "MuJoCo Hopper, one-legged hopping forward"),
    "halfcheetah": ("HalfCheetah-v5", False, "MuJoCo HalfCheetah, running forward"),
    "walker2d": ("Walker2d-v5", True, "MuJoCo Walker2d, bipedal walking forward"),
    "ant": ("Ant-v5", True, "MuJoCo Ant, quadruped walking forward"),
}

# D4RL maze2d evaluation goals (row, col) in gymnasium-robotics' maze-map indexing: the 'G'
# cells of the maps gymnasium-robotics ported from D4RL for dataset generation.
_MAZES = {
    # name: (map name, horizon (as D4RL maze2d and gymnasium-robotics), goal cell)
    "umaze": ("UMaze", 300, (3, 1)),
    "medium": ("Medium", 600, (6, 6)),
    "large": ("Large", 800, (7, 9)),
}

# OGBench's single-task protocol on our mazes: task k of a maze starts in one cell and must reach
# another, the five pairs with the longest shortest paths (MazeGrid.longest_pairs(5); kept here as
# data so the registry needs no environment, and tests/test_mazes.py checks them against the BFS).
# A policy trained on a dataset of task k (its goal and rewards relabelled to that task's goal) is
# evaluated on task k only; a table row is the mean over the five tasks.
_MAZE_TASK_PAIRS = {
    # maze: [(start cell, goal cell)] for tasks 1..5
    "umaze": [((1, 1), (3, 1)), ((3, 1), (1, 1)), ((1, 1), (3, 2)), ((1, 2), (3, 1)), ((3, 1), (1, 2))],
    "medium": [((1, 1), (6, 5)), ((6, 5), (1, 1)), ((1, 6), (6, 1)), ((5, 1), (6, 6)), ((6, 1), (1, 6))],
    "large": [((3, 10), (7, 1)), ((5, 4), (7, 1)), ((7, 1), (3, 10)), ((7, 1), (5, 4)), ((7, 1), (7, 10))],
}


# D4RL antmaze evaluation: start (1, 1), goal cell, episode steps (docs/antmaze_protocol_notes.md).
_ANTMAZES = {
    # name: (gymnasium-robotics map, env name, horizon, goal cell)
    "umaze": ("U_MAZE", "UMaze", 700, (3, 1)),
    "medium": ("MEDIUM_MAZE", "Medium", 1000, (6, 6)),
    "large": ("LARGE_MAZE", "Large", 1000, (7, 9)),
}


def _build_registry() -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for name, (env_id, can_terminate, text) in _LOCOMOTION.items():
        tasks[name] = Task(
            name=name,
            domain="locomotion",
            env_id=env_id,
            horizon=1000,
            can_terminate=can_terminate,
            eval_episodes=10,
            eval_seed=1_000_000,
            description=f"{text} (Gymnasium {env_id})",
        )
    tasks["ant-goal"] = Task(
        name="ant-goal",
        domain="skill",
        env_id="d4rl_lite/AntGoal-v0",
        horizon=1000,
        can_terminate=True,
        eval_episodes=10,
        eval_seed=1_000_000,
        description="MuJoCo Ant walking to target points 1-6 m away (AntMaze's ant; the ant mazes' low-level skill)",
    )
    for maze, (map_name, horizon, goal) in _MAZES.items():
        for dense in (False, True):
            name = f"pointmaze-{maze}" + ("-dense" if dense else "")
            env_id = f"PointMaze_{map_name}{'Dense' if dense else ''}-v3"
            tasks[name] = Task(
                name=name,
                domain="maze",
                env_id=env_id,
                horizon=horizon,
                can_terminate=False,
                eval_episodes=100,
                eval_seed=1_000_000,
                description=(
                    f"PointMaze {maze}, {'dense' if dense else 'sparse'} reward, goal cell {goal}, "
                    f"random start (D4RL maze2d protocol; gymnasium-robotics {env_id})"
                ),
                env_kwargs={"continuing_task": True, "reset_target": False},
                eval_goal_cell=goal,
            )
        tasks.update(_single_task_variants(tasks[f"pointmaze-{maze}"], maze, f"PointMaze {maze}, sparse reward"))
    for maze, (_, env_name, horizon, goal) in _ANTMAZES.items():
        tasks[f"antmaze-{maze}"] = Task(
            name=f"antmaze-{maze}",
            domain="antmaze",
            env_id=f"d4rl_lite/AntMaze_{env_name}-v0",
            horizon=horizon,
            can_terminate=True,  # the episode ends at the goal (D4RL's evaluation)
            eval_episodes=100,
            eval_seed=1_000_000,
            description=(f"AntMaze {maze}, D4RL antmaze protocol: start cell (1, 1), goal cell {goal} with D4RL's "
                         "goal noise, success within 0.5 ends the episode, score = 100 x success rate"),
            eval_goal_cell=goal,
            eval_reset_cell=(1, 1),
        )
        tasks.update(_single_task_variants(tasks[f"antmaze-{maze}"], maze, f"AntMaze {maze}",
                                           ", success within 0.5 ends the episode"))  # the point mazes' maps
    return tasks


def _single_task_variants(base: Task, maze: str, what: str, ending: str = "") -> dict[str, Task]:
    """``base``'s five OGBench single-task variants: the same task, each evaluated from its own start
    cell to its own goal cell (``_MAZE_TASK_PAIRS``)."""
    return {f"{base.name}-task{k}": replace(
        base, name=f"{base.name}-task{k}", eval_goal_cell=task_goal, eval_reset_cell=start, variant_of=base.name,
        description=(f"{what}, task {k} of 5 (OGBench single-task protocol): start cell {start}, "
                     f"goal cell {task_goal}{ending}"))
        for k, (start, task_goal) in enumerate(_MAZE_TASK_PAIRS[maze], start=1)}


TASKS: dict[str, Task] = _build_registry()


def get_task(name: str) -> Task:
    """The registered task called ``name``; unknown names get a "did you mean"."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownNameError("task", name, TASKS, "See `d4rl-lite list`.") from None


def list_tasks() -> list[str]:
    return list(TASKS)


_robotics_registered = False


@contextlib.contextmanager
def _without_settotalmass_notice() -> Iterator[None]:
    """Gymnasium's HalfCheetah XML uses ``settotalmass``, which MuJoCo >= 4 flags as deprecated on
    every model compile (once per env copy, printed by MuJoCo's C code). The model it compiles is
    what Gymnasium specifies, and it is not ours to edit: that one notice is dropped while an env is
    made; any other MuJoCo warning still prints."""
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def forward(message: str) -> None:
        if "settotalmass" in message:
            return
        if previous is not None:
            previous(message)
        else:
            print(f"WARNING: {message}", file=sys.stderr)

    mujoco.set_mju_user_warning(forward)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def _register_robotics_envs() -> None:
    global _robotics_registered
    if not _robotics_registered:
        import io

        # On import it prints a notice about Adroit environments, which we don't use.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import gymnasium_robotics
        gym.register_envs(gymnasium_robotics)
        _robotics_registered = True


def _register_own_envs() -> None:
    """Our environments (``d4rl_lite.envs``), registered by entry-point string: nothing is imported
    until one is made (this module sits below the envs layer)."""
    if "d4rl_lite/AntGoal-v0" not in gym.registry:
        gym.register(id="d4rl_lite/AntGoal-v0", entry_point="d4rl_lite.envs.ant_goal:AntGoalEnv")
        for map_name, env_name, _, _ in _ANTMAZES.values():
            gym.register(id=f"d4rl_lite/AntMaze_{env_name}-v0", entry_point="d4rl_lite.envs.ant_maze:D4RLAntMazeEnv",
                         kwargs={"maze_map": _maze_map(map_name)})


def _maze_map(name: str) -> list[list[Any]]:
    _register_robotics_envs()  # imports gymnasium_robotics quietly first
    from gymnasium_robotics.envs.maze import maps

    return getattr(maps, name)
