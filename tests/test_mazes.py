"""Maze controller, every maze kind, stitching certificates and pictures."""

import json

import minari
import numpy as np
import pytest

import d4rl_lite
from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.datasets.builders.maze import relabel_goal
from d4rl_lite.datasets.maze.certificate import min_segments, stitching_certificate
from d4rl_lite.datasets.maze.controller import ControllerConfig, MazeController
from d4rl_lite.envs.maze_grid import MazeGrid
from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.evaluation.evaluate import evaluate
from d4rl_lite.tasks import get_task

UMAZE = get_task("pointmaze-umaze")


def test_grid_geometry_matches_the_environment():
    grid = MazeGrid.for_task(UMAZE)
    assert len(grid.free_cells) == 7 and grid.dist[grid.index[(1, 1)], grid.index[(3, 1)]] == 6
    env = UMAZE.make_env()
    assert np.allclose(grid.cell_center(np.array((3, 1))), env.unwrapped.maze.cell_rowcol_to_xy(np.array((3, 1))))
    assert tuple(grid.cell_of(grid.cell_center(np.array((1, 3))))) == (1, 3)
    pairs = grid.longest_pairs(5)
    assert pairs[0] == ((1, 1), (3, 1)) and all(grid.dist[grid.index[g], grid.index[s]] >= 5 for s, g in pairs)


def test_controller_reaches_the_goal_on_umaze():
    grid = MazeGrid.for_task(UMAZE)
    ctrl = MazeController(grid, ControllerConfig(), seed=0, plan=lambda _i: UMAZE.eval_goal_cell)
    result = evaluate(UMAZE, ctrl, episodes=20, seed=0)
    assert result.successes.mean() >= 0.95
    assert result.returns.mean() > 5 * UMAZE.ref_min.value


def _episodes_through(cell_paths, task=UMAZE):
    """EpisodeArrays whose positions visit the given cell sequences (one state per cell)."""
    grid = MazeGrid.for_task(task)
    obs = np.concatenate([grid.cell_center(np.array(p)) for p in cell_paths])
    n = sum(len(p) - 1 for p in cell_paths)
    lengths = np.array([len(p) - 1 for p in cell_paths])
    truncations = np.zeros(n, bool)
    truncations[np.cumsum(lengths) - 1] = True
    return EpisodeArrays(
        observations={"observation": np.concatenate([obs, np.zeros_like(obs)], 1), "desired_goal": np.zeros_like(obs),
                      "achieved_goal": obs},
        actions=np.zeros((n, 2)), rewards=np.zeros(n), terminations=np.zeros(n, bool), truncations=truncations,
        episode_lengths=lengths)


def test_certificate_on_hand_made_data():
    a = [(1, 1), (1, 2), (1, 3)]
    b = [(1, 3), (2, 3), (3, 3)]
    c = [(3, 3), (3, 2), (3, 1)]
    pairs = [((1, 1), (3, 1)), ((3, 1), (1, 1)), ((1, 2), (2, 3))]
    cert = stitching_certificate(_episodes_through([a, b, c]), UMAZE, pairs)
    assert [t["min_segments"] for t in cert["tasks"]] == [3, None, 2]  # time only runs forward
    assert cert["single_episode_solutions"] == 0 and cert["coverage"] == 1.0
    whole = stitching_certificate(_episodes_through([a + b[1:] + c[1:]]), UMAZE, pairs)
    assert [t["min_segments"] for t in whole["tasks"]] == [1, None, 1] and whole["single_episode_solutions"] == 2
    partial = stitching_certificate(_episodes_through([a]), UMAZE, pairs)
    assert partial["coverage"] == pytest.approx(3 / 7, abs=1e-4) and partial["tasks"][0]["min_segments"] is None


def test_min_segments_prefers_fewer_switches():
    # 0 -> 1 -> 2 -> 3 in one episode, or via two episodes with a shortcut: one segment wins.
    seqs = [np.array([0, 1, 2, 3]), np.array([0, 3])]
    assert min_segments(seqs, 0, 3, 4) == 1
    assert min_segments([np.array([0, 1]), np.array([2, 3]), np.array([1, 2])], 0, 3, 4) == 3


@pytest.mark.parametrize("kind, size", [("random", 400), ("expert", 700), ("medium", 700), ("navigate", 700),
                                        ("stitch", 600), ("human", 700), ("explore", 700)])
def test_every_maze_kind_builds_and_loads_with_minari(kind, size, root):
    build_dataset(f"pointmaze-umaze-{kind}-v0", size=size, seed=0, root=root, num_envs=2)
    ds = d4rl_lite.load_dataset(f"pointmaze-umaze-{kind}-v0")
    assert ds.num_transitions == size and ds.observations.shape == (size, 6)
    assert not ds.terminals.any() and ds.timeouts[-1]
    goal = MazeGrid.for_task(UMAZE).cell_center(np.array(UMAZE.eval_goal_cell))
    assert np.all(np.abs(ds.observations[:, 4:6] - goal) <= 0.26)  # the evaluation goal (+ the env's noise)
    m = minari.load_dataset(f"d4rl_lite/pointmaze-umaze/{kind}-v0")
    assert m.total_steps == size and set(m[0].observations) == {"observation", "achieved_goal", "desired_goal"}
    if kind != "random":
        assert "stitching_certificate" in ds.metadata["card"]


def test_navigate_is_a_continuing_run(root):
    build_dataset("pointmaze-umaze-navigate-v0", size=900, seed=0, root=root, num_envs=1)
    ds = d4rl_lite.load_dataset("pointmaze-umaze-navigate-v0")
    assert ds.episode_lengths.tolist() == [300, 300, 300]
    # Each episode starts where the previous one ended: the env was never reset.
    ends = np.cumsum(ds.episode_lengths)[:-1]
    assert np.array_equal(ds.observations[ends], ds.next_observations[ends - 1])


def test_stitch_data_needs_stitching(root):
    build_dataset("pointmaze-medium-stitch-v0", size=10_000, seed=0, root=root, num_envs=4)
    ds = d4rl_lite.load_dataset("pointmaze-medium-stitch-v0")
    cert = ds.metadata["card"]["stitching_certificate"]
    assert set(ds.episode_lengths.tolist()) == {200}
    assert cert["single_episode_solutions"] == 0
    assert any(t["min_segments"] and t["min_segments"] >= 2 for t in cert["tasks"])
    # 200-step segments are not the 600-step protocol: the metadata says 200, and the card refuses
    # to normalize them against the protocol's references (it used to print about -2.6).
    assert ds.metadata["max_episode_steps"] == 200
    assert ds.metadata["card"]["normalized_return"] is None
    assert "no episode follows the task's protocol" in ds.metadata["card"]["normalized_return_unavailable"]


def test_medium_is_worse_than_expert_and_better_than_random(root):
    for kind in ("expert", "medium"):
        build_dataset(f"pointmaze-umaze-{kind}-v0", size=3000, seed=0, root=root, num_envs=5)
    exp = d4rl_lite.load_dataset("pointmaze-umaze-expert-v0").episode_returns().mean()
    med = d4rl_lite.load_dataset("pointmaze-umaze-medium-v0").episode_returns().mean()
    assert UMAZE.ref_min.value < med < exp


def test_relabel_goal_recomputes_rewards_on_the_next_state():
    obs = np.zeros((2, 6), np.float32)
    nxt = np.array([[1.0, 1.0, 0, 0, 0, 0], [3.0, 3.0, 0, 0, 0, 0]], np.float32)
    o, n, r = relabel_goal(obs, nxt, np.array([1.2, 1.0]))
    assert r.tolist() == [1.0, 0.0] and np.allclose(o[:, 4:6], [1.2, 1.0]) and np.allclose(n[:, 4:6], [1.2, 1.0])
    _, _, dense = relabel_goal(obs, nxt, np.array([1.0, 1.0]), "dense")
    assert dense[0] == pytest.approx(1.0)


def test_info_shows_certificate_and_writes_the_maze_picture(root):
    import subprocess

    build_dataset("pointmaze-umaze-stitch-v0", size=1000, seed=0, root=root, num_envs=2)
    out = subprocess.run(["d4rl-lite", "info", "pointmaze-umaze-stitch-v0", "--root", str(root)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "stitching" in out.stdout and "(1, 1) -> (3, 1)" in out.stdout
    assert "return (norm.)     n/a: no episode follows the task's protocol" in out.stdout  # 200-step segments
    png = root / "d4rl_lite/pointmaze-umaze/stitch-v0/maze.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_single_task_variants_are_the_five_longest_pairs_each_evaluated_from_its_start():
    """OGBench's single-task protocol: pointmaze-X-taskK starts in task K's start cell and must
    reach its goal cell; the registry's pairs are the BFS's five longest."""
    from d4rl_lite.tasks import TASKS

    for maze in ("umaze", "medium", "large"):
        base = get_task(f"pointmaze-{maze}")
        variants = [get_task(f"pointmaze-{maze}-task{k}") for k in range(1, 6)]
        assert [(v.eval_reset_cell, v.eval_goal_cell) for v in variants] == MazeGrid.for_task(base).longest_pairs(5)
        assert all(v.variant_of == base.name and v.env_id == base.env_id for v in variants)
    assert "pointmaze-umaze-task6" not in TASKS
    grid = MazeGrid.for_task(UMAZE)
    for k in (1, 3):
        task = get_task(f"pointmaze-umaze-task{k}")
        ctrl = MazeController(grid, ControllerConfig(), seed=0, plan=lambda _i, t=task: t.eval_goal_cell)
        reached = evaluate(task, ctrl, episodes=4, seed=0)
        assert reached.successes.mean() == 1.0
        still = evaluate(task, lambda obs: np.zeros((len(obs), 2), np.float32), episodes=2, seed=0)
        assert still.successes.mean() == 0.0 and still.returns.max() == 0.0  # its start is far from its goal


def test_a_single_task_dataset_carries_its_tasks_goal_and_rewards(root):
    task = get_task("pointmaze-umaze-task2")
    build_dataset("pointmaze-umaze-task2-stitch-v0", size=1000, seed=0, root=root, num_envs=2)
    ds = d4rl_lite.load_dataset("pointmaze-umaze-task2-stitch-v0")
    goal = MazeGrid.for_task(task).cell_center(np.array(task.eval_goal_cell))
    assert np.all(np.abs(ds.observations[:, 4:6] - goal) <= 0.26)  # task 2's goal, not the base task's
    _, _, rewards = relabel_goal(ds.observations, ds.next_observations, ds.observations[:, 4:6][0])
    first = ds.episode_lengths[0]
    assert np.array_equal(rewards[:first], ds.rewards[:first])  # the environment's reward for that goal, on s'


@pytest.mark.parametrize("kind", ["stitch", "medium", "human"])
def test_maze_builds_give_the_same_bytes_whatever_the_number_of_env_copies(kind, tmp_path):
    """The vectorised controller draws from per-episode streams: which copy runs an episode does not matter."""
    a = build_dataset(f"pointmaze-umaze-{kind}-v0", size=700, seed=3, root=tmp_path / "a", num_envs=4)
    b = build_dataset(f"pointmaze-umaze-{kind}-v0", size=700, seed=3, root=tmp_path / "b", num_envs=1)
    sums = [json.loads((p / "data/metadata.json").read_text())["d4rl_lite"]["checksum"] for p in (a, b)]
    assert sums[0] == sums[1]


@pytest.mark.parametrize("ends_at_goal", [False, True])
def test_a_tour_to_the_goals_cell_walks_to_the_goal_point_when_episodes_end_there(ends_at_goal):
    # Navigation tours pick a new target on reaching the current one's cell. When the body's episodes
    # end at the goal (the ant mazes), a tour whose target is the goal's cell must instead walk to the
    # goal point, or it turns away up to 1.5 m from it and the data almost never reaches the goal.
    grid = MazeGrid.for_task(UMAZE)
    goal_cell = UMAZE.eval_goal_cell
    arrivals = []

    class Tour(MazeController):
        pass

    Tour.ends_at_goal = ends_at_goal
    ctrl = Tour(grid, ControllerConfig(jitter=0.0), seed=0, plan=lambda _i: goal_cell,
                on_arrival=lambda slot, _i, _n, _rng: arrivals.append(slot) or (1, 1))
    ctrl.start_episode(0, 0)
    goal = grid.cell_center(np.array(goal_cell)) + np.array([0.25, -0.2]) * grid.scaling  # noise on the goal point
    near_centre = grid.cell_center(np.array(goal_cell)) + 0.05 * grid.scaling
    waypoint = ctrl.waypoints(near_centre[None], goal[None])[0]
    if ends_at_goal:
        assert arrivals == [] and np.allclose(waypoint, goal)
    else:
        assert arrivals == [0] and not np.allclose(waypoint, goal)  # a new target, (1, 1): away from the goal
