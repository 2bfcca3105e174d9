"""AntMaze with D4RL's antmaze evaluation conventions, on gymnasium-robotics' AntMaze v5.

gymnasium-robotics ports D4RL's maps but not its protocol (docs/antmaze_protocol_notes.md).
What this class changes, each as D4RL's antmaze does:

- success and the sparse reward within 0.5 of the goal (v5: 0.45), and the episode ends there
  (D4RL's ``eval=True``), so an episode's return is 1 on success and 0 otherwise;
- the goal is its cell's centre plus a positive offset of U(0, 1) + U(0, 0.5) along each of D4RL's
  axes (x with the column, y with the row; v5's y axis points the other way);
- the ant starts at its cell's centre and, as D4RL's AntEnv, every joint position gets U(-0.1, 0.1)
  and every velocity 0.1 N(0, 1) (v5: U(-1, 1) metres on x/y and no joint noise);
- no contact forces in the observation: 27 numbers, as D4RL's ant state without x/y.

Physics stay gymnasium's Ant-v5 (dt 0.05, gear 150), not D4RL's older ant (dt 0.1): scores are
comparable in kind, not to D4RL's published numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium_robotics.envs.maze.ant_maze_v5 import AntMazeEnv

SUCCESS_RADIUS = 0.5
D4RL_JOINT_NOISE = 0.1


class D4RLAntMazeEnv(AntMazeEnv):
    def __init__(self, maze_map: list[list[Any]], **kwargs: Any):
        super().__init__(maze_map=maze_map, continuing_task=False, include_cfrc_ext_in_observation=False, **kwargs)
        self.ant_env._reset_noise_scale = D4RL_JOINT_NOISE  # v5 builds its ant with 0.0
        self._next_noise = "goal"

    def reset(self, *, seed: int | None = None, **kwargs: Any):
        self._next_noise = "goal"  # MazeEnv.reset places the goal, then the start
        return super().reset(seed=seed, **kwargs)

    def add_xy_position_noise(self, xy_pos: np.ndarray) -> np.ndarray:
        if self._next_noise == "goal":
            self._next_noise = "start"
            offset = self.np_random.uniform(0.0, 1.0, 2) + self.np_random.uniform(0.0, 0.5, 2)
            return xy_pos + np.array([offset[0], -offset[1]])  # D4RL's +y is v5's -y
        return xy_pos  # the start: the cell centre; the joint noise moves the torso by up to 0.1

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> Any:
        return (np.linalg.norm(achieved_goal - desired_goal, axis=-1) <= SUCCESS_RADIUS).astype(np.float64)

    def compute_terminated(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> bool:
        return bool(np.linalg.norm(achieved_goal - desired_goal) <= SUCCESS_RADIUS)

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = super().step(action)
        info["success"] = bool(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]) <= SUCCESS_RADIUS)
        return obs, reward, terminated, truncated, info
