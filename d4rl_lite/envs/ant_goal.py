"""AntGoal: the MuJoCo ant walking to a target point, the low-level skill behind the ant maze datasets.

The ant is Gymnasium's Ant-v5 with the model AntMaze v5 embeds in its mazes (same XML, frame
skip, actuators), so a policy trained here drives the ant in the mazes unchanged. The policy
sees what AntMaze's ``observation`` holds (27 numbers: the torso's height and orientation, the
joint angles, all velocities; no x/y, no contact forces) followed by the target's offset from
the torso in world coordinates (2 numbers): 29 in all. A maze planner feeds it waypoints.

Reward: the speed towards the target, ``(d_before - d_after) / dt``, plus Ant-v5's healthy bonus,
minus its control and contact costs. A target is reached within ``REACH_RADIUS``; a new one is
then drawn around the ant, so one episode practises many targets (``info["targets_reached"]``).
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


class AntGoalEnv(AntEnv):
    def __init__(self, **kwargs: Any):
        super().__init__(exclude_current_positions_from_observation=False, include_cfrc_ext_in_observation=False,
                         **kwargs)
        self.observation_space = Box(-np.inf, np.inf, shape=(29,), dtype=np.float64)
        self.target = np.zeros(2)
        self.targets_reached = 0

    def _new_target(self, xy: np.ndarray) -> None:
        angle = self.np_random.uniform(0.0, 2 * np.pi)
        distance = self.np_random.uniform(*TARGET_DISTANCE)
        self.target = xy + distance * np.array([np.cos(angle), np.sin(angle)])

    def _goal_observation(self, ant_obs: np.ndarray) -> np.ndarray:
        return np.concatenate([ant_obs[2:], self.target - ant_obs[:2]])

    def reset_model(self) -> np.ndarray:
        ant_obs = super().reset_model()
        self.targets_reached = 0
        self._new_target(ant_obs[:2])
        return self._goal_observation(ant_obs)

    def step(self, action: np.ndarray):
        distance_before = float(np.linalg.norm(self.target - self.data.qpos[:2]))
        ant_obs, _, terminated, truncated, info = super().step(action)
        distance_after = float(np.linalg.norm(self.target - ant_obs[:2]))
        progress = (distance_before - distance_after) / self.dt
        reward = progress + info["reward_survive"] + info["reward_ctrl"] + info["reward_contact"]
        if distance_after < REACH_RADIUS:
            self.targets_reached += 1
            self._new_target(ant_obs[:2])
        info.update(reward_progress=progress, targets_reached=self.targets_reached, target_distance=distance_after)
        return self._goal_observation(ant_obs), reward, terminated, truncated, info
