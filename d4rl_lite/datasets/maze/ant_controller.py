"""The ant mazes' controller: the maze planner's waypoints, walked by the ant's committed skill.

D4RL collected its antmaze data the same way: a goal-reaching ant policy, trained online, fed the
waypoints of a planner on the maze grid. Ours is ``WaypointPlanner`` (shared with PointMaze) and the
``ant-goal`` skill (``d4rl_lite/envs/ant_goal.py``): its observation is the ant's 27 numbers and the
waypoint's offset in the torso's heading frame, exactly what it was trained on. Actions are the
skill's mean (tanh) plus Gaussian noise of ``noise_sigma``, clipped to the action box.

The offset the skill sees is shortened to at most ``MAX_OFFSET`` metres (same direction). Towards a
far target the skill runs at full speed, and a waypoint that jumps round a corner then flips it:
with the 950k-step skill and the full offset, 32% of the large maze's evaluation episodes failed,
31 of them by a fall; with the offset capped at 1.5 m, 3% failed (umaze 17% -> 2%; 100 episodes each,
``benchmarks/ant_maze_controller.py``). A nearby point is also what the skill mostly practised
(targets 1-6 m away, walked down to 0.5 m).
"""

from __future__ import annotations

import numpy as np

from d4rl_lite.datasets.behavior.policies import NumpyActor
from d4rl_lite.datasets.maze.controller import MazeController
from d4rl_lite.envs.ant_goal import goal_in_heading_frame

ANT_STATE = slice(2, 29)  # AntMaze's flat view: [x, y, 27 ant numbers, goal_x, goal_y]
MAX_OFFSET = 1.5  # metres: the farthest target the skill is shown (see above)


class AntMazeController(MazeController):
    action_dim = 8
    ends_at_goal = True  # AntMaze ends an episode at its goal (D4RL's evaluation MDP)

    def __init__(self, *args, skill, max_offset: float = MAX_OFFSET, **kwargs):
        self.skill = NumpyActor(skill)
        self.max_offset = max_offset
        super().__init__(*args, **kwargs)

    def position_and_goal(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return observations[:, 0:2], observations[:, -2:]

    def drive(self, observations: np.ndarray, waypoints: np.ndarray) -> np.ndarray:
        state = observations[:, ANT_STATE]
        offset = waypoints - observations[:, 0:2]
        distance = np.linalg.norm(offset, axis=1, keepdims=True)
        offset = offset * np.minimum(1.0, self.max_offset / np.maximum(distance, 1e-9))
        heading = goal_in_heading_frame(state, offset)
        mean, _ = self.skill(np.concatenate([state, heading], axis=1).astype(np.float32))
        return np.tanh(mean)
