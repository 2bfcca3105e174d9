"""AntGoal-v0, the ant mazes' walking skill: observation layout, heading frame, reward, new targets."""

from __future__ import annotations

import numpy as np

from d4rl_lite.envs.ant_goal import REACH_RADIUS, goal_in_heading_frame
from d4rl_lite.tasks import get_task


def test_the_target_is_seen_in_the_torsos_heading_frame():
    state = np.zeros(27)
    state[1], state[4] = np.cos(np.pi / 4), np.sin(np.pi / 4)  # yawed 90 degrees: facing world +y
    assert np.allclose(goal_in_heading_frame(state, np.array([0.0, 2.0])), [2.0, 0.0])  # straight ahead
    assert np.allclose(goal_in_heading_frame(state, np.array([1.0, 0.0])), [0.0, -1.0])  # to its right
    env = get_task("ant-goal").make_env()
    obs, _ = env.reset(seed=3)
    ant = env.unwrapped
    assert obs.shape == (29,) and np.allclose(obs[1:5], ant.data.qpos[3:7])  # AntMaze's 27 numbers first
    assert np.isclose(np.linalg.norm(obs[-2:]), np.linalg.norm(ant.target - ant.data.qpos[:2]))


def test_reward_is_speed_towards_the_target_and_a_reached_target_is_replaced():
    env = get_task("ant-goal").make_env()
    env.reset(seed=0)
    ant = env.unwrapped
    before = np.linalg.norm(ant.target - ant.data.qpos[:2])
    _, reward, _, _, info = env.step(np.zeros(8, dtype=np.float32))
    after = np.linalg.norm(ant.target - ant.data.qpos[:2])
    assert np.isclose(info["reward_progress"], (before - after) / ant.dt)
    assert np.isclose(reward, info["reward_progress"] + info["reward_ctrl"] + info["reward_contact"])
    assert info["reward_survive"] == 0.0  # no bonus for standing: the skill is paid for walking only
    ant.target = ant.data.qpos[:2] + np.array([REACH_RADIUS / 10, 0.0])  # as good as there
    old = ant.target.copy()
    _, _, _, _, info = env.step(np.zeros(8, dtype=np.float32))
    assert info["targets_reached"] == 1 and not np.allclose(ant.target, old)
    assert 1.0 - 0.1 <= np.linalg.norm(ant.target - ant.data.qpos[:2]) <= 6.0 + 0.1


def test_an_ant_on_its_back_ends_the_episode_while_an_upright_one_walks_on():
    env = get_task("ant-goal").make_env()
    env.reset(seed=1)
    ant = env.unwrapped
    _, _, terminated, _, info = env.step(np.zeros(8, dtype=np.float32))
    assert not terminated and not info["fallen"]
    qpos, qvel = ant.data.qpos.copy(), ant.data.qvel.copy()
    qpos[2], qpos[3:7] = 0.3, [0.0, 1.0, 0.0, 0.0]  # rolled 180 degrees about x: on its back, at a healthy height
    ant.set_state(qpos, qvel)
    _, _, terminated, _, info = env.step(np.zeros(8, dtype=np.float32))
    assert terminated and info["fallen"]
