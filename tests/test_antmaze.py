"""The ant mazes under D4RL's antmaze evaluation protocol, on gymnasium-robotics' AntMaze v5."""

from __future__ import annotations

import numpy as np
import pytest

from d4rl_lite.envs.ant_maze import SUCCESS_RADIUS
from d4rl_lite.evaluation.evaluate import evaluate
from d4rl_lite.tasks import get_task


@pytest.mark.parametrize("maze, horizon, goal", [("umaze", 700, (3, 1)), ("medium", 1000, (6, 6)), ("large", 1000, (7, 9))])
def test_d4rl_start_goal_and_noise(maze, horizon, goal):
    task = get_task(f"antmaze-{maze}")
    assert (task.horizon, task.eval_goal_cell, task.eval_reset_cell, task.observation_dim) == (horizon, goal, (1, 1), 31)
    env = task.make_env()
    grid = env.unwrapped.maze
    offsets, starts = [], []
    for seed in range(20):
        obs, _ = env.reset(seed=seed, options=task.eval_reset_options())
        assert obs["observation"].shape == (27,)  # no contact forces
        flat = task.flatten_observation(obs)  # where the ant is, its 27 numbers, the goal
        assert np.array_equal(flat, np.concatenate([obs["achieved_goal"], obs["observation"], obs["desired_goal"]]).astype(np.float32))
        offsets.append(obs["desired_goal"] - grid.cell_rowcol_to_xy(np.array(goal)))
        starts.append(obs["achieved_goal"] - grid.cell_rowcol_to_xy(np.array([1, 1])))
    offsets, starts = np.array(offsets), np.array(starts)
    # D4RL: U(0, 1) + U(0, 0.5) along its x (v5's x) and its y (v5's -y); the start within 0.1.
    assert (offsets[:, 0] >= 0).all() and (offsets[:, 0] <= 1.5).all()
    assert (offsets[:, 1] <= 0).all() and (offsets[:, 1] >= -1.5).all()
    assert np.abs(starts).max() <= 0.1 + 1e-9 and np.abs(starts).max() > 0.0


def test_reward_success_and_termination_within_half_a_metre():
    task = get_task("antmaze-umaze")
    env = task.make_env()
    env.reset(seed=0, options=task.eval_reset_options())
    ant = env.unwrapped
    for distance, reached in ((SUCCESS_RADIUS - 0.02, True), (SUCCESS_RADIUS + 0.02, False)):
        ant.goal = ant.data.qpos[:2] + np.array([distance, 0.0])  # the torso barely moves in one step of zeros
        obs, reward, terminated, _, info = env.step(np.zeros(8, dtype=np.float32))
        true_distance = np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"])
        assert (true_distance <= SUCCESS_RADIUS) == reached
        assert reward == float(reached) and terminated == reached and info["success"] == reached


def test_an_idle_ant_scores_zero_and_a_success_scores_one():
    task = get_task("antmaze-umaze")
    idle = evaluate(task, lambda obs: np.zeros((len(obs), 8), np.float32), episodes=2, seed=0)
    assert idle.returns.tolist() == [0.0, 0.0] and not idle.successes.any() and (idle.lengths == 700).all()
    assert task.normalized_score(idle.returns.mean()) == 0.0 and task.normalized_score(1.0) == 100.0
