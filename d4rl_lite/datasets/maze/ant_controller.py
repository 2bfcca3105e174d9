"""The ant mazes' controller: the maze planner's waypoints, walked by the ant's committed skill.

D4RL collected its antmaze data the same way: a goal-reaching ant policy, trained online, fed the
waypoints of a planner on the maze grid. Ours is ``WaypointPlanner`` (shared with PointMaze) and the
``ant-goal`` skill (``d4rl_lite/envs/ant_goal.py``): its observation is the ant's 27 numbers and the
waypoint's offset in the torso's heading frame, exactly what it was trained on. Actions are the
skill's mean (tanh) plus Gaussian noise of ``noise_sigma``, clipped to the action box.
"""

from __future__ import annotations

import numpy as np

from d4rl_lite.datasets.behavior.policies import NumpyActor
from d4rl_lite.datasets.maze.controller import MazeController
from d4rl_lite.envs.ant_goal import goal_in_heading_frame

ANT_STATE = slice(2, 29)  # AntMaze's flat view: [x, y, 27 ant numbers, goal_x, goal_y]


class AntMazeController(MazeController):
    action_dim = 8

    def __init__(self, *args, skill, **kwargs):
        self.skill = NumpyActor(skill)
        super().__init__(*args, **kwargs)

    def position_and_goal(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return observations[:, 0:2], observations[:, -2:]

    def drive(self, observations: np.ndarray, waypoints: np.ndarray) -> np.ndarray:
        state = observations[:, ANT_STATE]
        heading = goal_in_heading_frame(state, waypoints - observations[:, 0:2])
        mean, _ = self.skill(np.concatenate([state, heading], axis=1).astype(np.float32))
        return np.tanh(mean)
