"""AntGoal: the MuJoCo ant walking to a target point, the low-level skill behind the ant maze datasets.

The ant is Gymnasium's Ant-v5 with the model AntMaze v5 embeds in its mazes (same XML, frame
skip, actuators), so a policy trained here drives the ant in the mazes unchanged. The policy
sees what AntMaze's ``observation`` holds (27 numbers: the torso's height and orientation, the
joint angles, all velocities; no x/y, no contact forces) followed by the target's offset from
the torso in the torso's heading frame (2 numbers, ``goal_in_heading_frame``): 29 in all. The
heading frame spares the network from learning the rotation by the torso's yaw, which the
world-frame offset needed (a first run with it walked ~2 m in 1000 steps after 150k steps).
A maze planner feeds it waypoints, through the same function.

Reward: the speed towards the target, ``(d_before - d_after) / dt``, minus Ant-v5's control and
contact costs; no healthy bonus (OGBench's walking skill is trained the same way, on the speed
along a direction). With Ant-v5's +1 per healthy step, two runs learned to stand nearly still:
about 0.5 m towards the target per 1000 steps after 250k steps.
The episode ends when the ant falls on its back (``fallen``: the torso's up axis points below
the horizon). Ant-v5's own test, the torso's height, misses it: an ant on its back rests at
0.27 m, inside the healthy range (0.2, 1.0). Without this end, the run walked 1 m/s while
upright at 350k steps yet spent half its evaluation episodes on its back from step ~100 on
(``benchmarks/ant_skill_check.py``); the end turns a fall into a lost future the critic sees. A target is reached within
``REACH_RADIUS``; a new one is then drawn around the ant, so one episode practises many targets
(``info["targets_reached"]``).
Targets lie ``TARGET_DISTANCE`` metres away in a uniformly random direction: a maze cell of
AntMaze is 4 m wide, so waypoints are 4 m apart and the ant can be up to ~6 m from the next one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.spaces import Box

REACH_RADIUS = 0.5
TARGET_DISTANCE = (1.0, 6.0)


def fallen(ant_state: np.ndarray) -> np.ndarray | bool:
    """Whether the torso's up axis points below the horizon (the ant lies on its back or side).

    ``ant_state`` is AntMaze's 27-number observation (or a batch): index 1..4 hold the torso's
    orientation quaternion (w, x, y, z); the world-z component of the torso's up axis is
    ``1 - 2 (x^2 + y^2)``.
    """
    x, y = ant_state[..., 2], ant_state[..., 3]
    return 1.0 - 2.0 * (x * x + y * y) < 0.0


def goal_in_heading_frame(ant_state: np.ndarray, offset_xy: np.ndarray) -> np.ndarray:
    """The world-frame offset (target - torso x/y) rotated into the torso's heading frame.

    ``ant_state`` is AntMaze's 27-number observation (or a batch): index 1..4 hold the torso's
    orientation quaternion (w, x, y, z); the yaw is its rotation about the vertical axis.
    """
    w, x, y, z = (ant_state[..., i] for i in range(1, 5))
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = offset_xy[..., 0], offset_xy[..., 1]
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)


class AntGoalEnv(AntEnv):
    def __init__(self, **kwargs: Any):
        super().__init__(exclude_current_positions_from_observation=False, include_cfrc_ext_in_observation=False,
                         healthy_reward=0.0, terminate_when_unhealthy=False, **kwargs)
        self.observation_space = Box(-np.inf, np.inf, shape=(29,), dtype=np.float64)
        self.target = np.zeros(2)
        self.targets_reached = 0

    def _new_target(self, xy: np.ndarray) -> None:
        angle = self.np_random.uniform(0.0, 2 * np.pi)
        distance = self.np_random.uniform(*TARGET_DISTANCE)
        self.target = xy + distance * np.array([np.cos(angle), np.sin(angle)])

    def _goal_observation(self, ant_obs: np.ndarray) -> np.ndarray:
        state = ant_obs[2:]
        return np.concatenate([state, goal_in_heading_frame(state, self.target - ant_obs[:2])])

    def reset_model(self) -> np.ndarray:
        ant_obs = super().reset_model()
        self.targets_reached = 0
        self._new_target(ant_obs[:2])
        return self._goal_observation(ant_obs)

    def step(self, action: np.ndarray):
        distance_before = float(np.linalg.norm(self.target - self.data.qpos[:2]))
        ant_obs, _, _, truncated, info = super().step(action)
        distance_after = float(np.linalg.norm(self.target - ant_obs[:2]))
        progress = (distance_before - distance_after) / self.dt
        reward = progress + info["reward_survive"] + info["reward_ctrl"] + info["reward_contact"]
        if distance_after < REACH_RADIUS:
            self.targets_reached += 1
            self._new_target(ant_obs[:2])
        terminated = bool(fallen(ant_obs[2:]))
        info.update(reward_progress=progress, targets_reached=self.targets_reached, target_distance=distance_after,
                    fallen=terminated)
        return self._goal_observation(ant_obs), reward, terminated, truncated, info
