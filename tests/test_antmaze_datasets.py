"""Ant maze datasets: every kind builds, loads with Minari, carries its certificate; rewards are the
environment's for the evaluation goal; goal relabelling; the same bytes whatever the vectorisation.

The builds here use a stand-in walking skill (an untrained actor of the skill's shape, in a zoo of
its own under ``D4RL_LITE_ZOO``): these tests are about the data's plumbing, not the ant's gait.
"""

import json

import minari
import numpy as np
import pytest
import torch

import d4rl_lite
from d4rl_lite.datasets.behavior.policies import write_manifest
from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.datasets.builders.maze import relabel_goal
from d4rl_lite.envs.ant_maze import SUCCESS_RADIUS
from d4rl_lite.nets import TanhGaussianPolicy
from d4rl_lite.tasks import get_task

UMAZE = get_task("antmaze-umaze")


@pytest.fixture
def stand_in_skill(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    folder = tmp_path / "zoo" / "ant-goal"
    (folder / "ladder").mkdir(parents=True)
    torch.manual_seed(0)
    actor = TanhGaussianPolicy(29, 8, (32, 32))
    save_file(actor.state_dict(), str(folder / "ladder" / "step_00000001.safetensors"))
    entry = {"step": 1, "file": "ladder/step_00000001.safetensors"}
    (folder / "card.json").write_text(json.dumps({"task": "ant-goal", "hidden": [32, 32], "expert": entry, "medium": entry}))
    write_manifest(folder)
    monkeypatch.setenv("D4RL_LITE_ZOO", str(tmp_path / "zoo"))


@pytest.mark.parametrize("kind", ["random", "medium", "play", "diverse", "navigate", "stitch", "explore"])
def test_every_ant_maze_kind_builds_and_loads_with_minari(kind, root, stand_in_skill):
    size = 450
    build_dataset(f"antmaze-umaze-{kind}-v0", size=size, seed=0, root=root, num_envs=2)
    ds = d4rl_lite.load_dataset(f"antmaze-umaze-{kind}-v0")
    assert ds.num_transitions == size and ds.observations.shape == (size, 31)
    m = minari.load_dataset(f"d4rl_lite/antmaze-umaze/{kind}-v0")
    assert m.total_steps == size and set(m[0].observations) == {"observation", "achieved_goal", "desired_goal"}
    first = m[0]
    assert np.allclose(ds.observations[0], np.concatenate([first.observations[k][0] for k in
                                                           ("achieved_goal", "observation", "desired_goal")]))
    # Rewards: the environment's for the evaluation goal, on the state after the step; an episode
    # that reaches it ends there.
    distance = np.linalg.norm(ds.next_observations[:, :2] - ds.next_observations[:, -2:], axis=1)
    assert np.array_equal(ds.rewards, (distance <= SUCCESS_RADIUS).astype(np.float32))
    assert np.array_equal(ds.terminals, ds.rewards == 1.0)
    if kind != "random":
        assert "stitching_certificate" in ds.metadata["card"]
        assert ds.metadata["recipe"]["skill_file"].startswith("ladder/")  # which skill walked it


def test_ant_maze_builds_give_the_same_bytes_whatever_the_number_of_env_copies(tmp_path, stand_in_skill):
    for kind in ("stitch", "diverse"):
        a = build_dataset(f"antmaze-umaze-{kind}-v0", size=500, seed=4, root=tmp_path / "a", num_envs=3)
        b = build_dataset(f"antmaze-umaze-{kind}-v0", size=500, seed=4, root=tmp_path / "b", num_envs=1)
        sums = [json.loads((p / "data/metadata.json").read_text())["d4rl_lite"]["checksum"] for p in (a, b)]
        assert sums[0] == sums[1], kind


def test_relabelling_an_ant_transition_moves_the_goal_and_its_reward():
    obs = np.zeros((2, 31), np.float32)
    nxt = np.zeros((2, 31), np.float32)
    nxt[0, :2], nxt[1, :2] = (2.0, 2.3), (5.0, 5.0)
    new_obs, new_next, rewards = relabel_goal(obs, nxt, np.array([2.0, 2.0]), radius=SUCCESS_RADIUS)
    assert np.all(new_obs[:, -2:] == 2.0) and np.all(new_next[:, -2:] == 2.0)
    assert np.array_equal(new_obs[:, :29], obs[:, :29])  # the ant's own numbers untouched
    assert rewards.tolist() == [1.0, 0.0]  # 0.3 m away: reached; 4.2 m away: not


def committed_skill_to_goal(task):
    """The package's own skill (zoo/ant-goal expert) walking the planner's waypoints to ``task``'s
    evaluation goal, deterministic: the controller every ant dataset is collected with, noise-free."""
    from d4rl_lite.datasets.behavior.policies import load_role
    from d4rl_lite.datasets.maze.ant_controller import AntMazeController
    from d4rl_lite.datasets.maze.controller import ControllerConfig
    from d4rl_lite.envs.maze_grid import MazeGrid

    skill, _ = load_role("ant-goal", "expert")
    return AntMazeController(MazeGrid.for_task(task), ControllerConfig(noise_sigma=0.0, jitter=0.0), seed=0,
                             plan=lambda _i: task.eval_goal_cell, skill=skill)


def test_the_committed_skill_walks_the_ant_through_the_umaze_to_its_goal():
    # Under the evaluation protocol, the controller every ant dataset is collected with reaches the goal.
    from d4rl_lite.evaluation.evaluate import evaluate

    result = evaluate(UMAZE, committed_skill_to_goal(UMAZE), episodes=6, workers=1)
    assert result.successes.sum() >= 5  # 98 of 100 episodes reach it (benchmarks/ant_maze_controller.py)
    assert result.lengths[result.successes].max() < UMAZE.horizon  # and ends there


def test_ant_single_task_variants_are_the_mazes_five_longest_pairs_and_their_data_carries_the_tasks_goal(root):
    # OGBench's single-task protocol for the stitch and navigate kinds: antmaze-X-taskK starts in task
    # K's start cell and must reach its goal cell; a dataset built for it has that goal and its rewards.
    from d4rl_lite.envs.maze_grid import MazeGrid
    from d4rl_lite.evaluation.evaluate import evaluate

    for maze in ("umaze", "medium", "large"):
        base = get_task(f"antmaze-{maze}")
        variants = [get_task(f"antmaze-{maze}-task{k}") for k in range(1, 6)]
        assert [(v.eval_reset_cell, v.eval_goal_cell) for v in variants] == MazeGrid.for_task(base).longest_pairs(5)
        assert all(v.variant_of == base.name and v.env_id == base.env_id for v in variants)
    task = get_task("antmaze-umaze-task2")
    grid = MazeGrid.for_task(task)
    assert evaluate(task, committed_skill_to_goal(task), episodes=3, workers=1).successes.sum() >= 2  # own start to own goal
    build_dataset("antmaze-umaze-task2-stitch-v0", size=600, seed=0, root=root, num_envs=2)
    ds = d4rl_lite.load_dataset("antmaze-umaze-task2-stitch-v0")
    goal = grid.cell_center(np.array(task.eval_goal_cell))
    assert np.all(np.abs(ds.observations[:, -2:] - goal) <= 1.5)  # task 2's goal (D4RL's noise: up to 1.5 m an axis)
    _, _, rewards = relabel_goal(ds.observations, ds.next_observations, ds.observations[0, -2:], radius=SUCCESS_RADIUS)
    first = ds.episode_lengths[0]  # each episode has its own goal noise
    assert np.array_equal(rewards[:first], ds.rewards[:first])  # the environment's reward for that goal, on s'


def test_play_cells_are_free_cells_of_their_maze():
    # A wall cell among them fails the first reset that starts there (it did on medium and large).
    from d4rl_lite.datasets.builders.antmaze import PLAY_CELLS
    from d4rl_lite.envs.maze_grid import MazeGrid

    for maze, cells in PLAY_CELLS.items():
        free = {tuple(int(v) for v in c) for c in MazeGrid.for_task(get_task(f"antmaze-{maze}")).free_cells}
        assert set(cells) <= free, (maze, set(cells) - free)
