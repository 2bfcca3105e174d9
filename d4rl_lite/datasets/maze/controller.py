"""The maze controller: shortest path on the grid, waypoints at cell centres with jitter, PD control.

As D4RL's maze2d generator: waypoint = centre of the next cell on a shortest (BFS) path, with a
small uniform jitter; a = kp * (waypoint - position) - kd * velocity, Gaussian action noise,
clipped to [-1, 1]. In the target cell the waypoint is the target point itself, so the ball
settles there. Degraded variants (medium) add detours and imperfect waypoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from d4rl_lite.envs.maze_grid import MazeGrid


@dataclass
class ControllerConfig:
    kp: float = 10.0
    kd: float = 1.0
    noise_sigma: float = 0.5  # Gaussian action noise (D4RL maze2d regeneration)
    jitter: float = 0.1  # waypoint jitter, uniform +- this many cell widths
    detour_prob: float = 0.0  # chance, at each new waypoint, of heading to a random neighbour cell first
    waypoint_error: float = 0.0  # extra jitter on waypoints (imperfect waypoints), in cell widths


class MazeController:
    """Drives each vector-env copy to its episode's target; the Policy protocol of collect_episodes.

    ``plan(episode_index) -> target cell`` (or an (x, y) point via ``target_point``) decides where
    each episode goes; ``on_arrival(slot, episode_index, arrivals) -> new target cell or None``
    lets navigation pick a new goal when one is reached.
    """

    def __init__(self, grid: MazeGrid, config: ControllerConfig, seed: int,
                 plan: Callable[[int], tuple[int, int]],
                 on_arrival: Callable[[int, int, int, np.random.Generator], tuple[int, int] | None] | None = None,
                 continuing: bool = False):
        self.grid, self.cfg, self.seed = grid, config, seed
        self.plan, self.on_arrival = plan, on_arrival
        self.continuing = continuing  # a continuing run keeps its target and noise stream across episodes
        self.slots: dict[int, dict] = {}

    def start_episode(self, slot: int, episode_index: int) -> None:
        if self.continuing and slot in self.slots:
            self.slots[slot]["episode"] = episode_index
            return
        rng = np.random.default_rng([self.seed, episode_index, 6])
        target = self.plan(episode_index)
        self.slots[slot] = {"rng": rng, "episode": episode_index, "target": self.grid.index[tuple(target)],
                            "wp_cell": -1, "wp": None, "arrivals": 0, "detour": None}

    def _waypoint(self, s: dict, cell: int) -> np.ndarray:
        g, cfg, rng = self.grid, self.cfg, s["rng"]
        if s["detour"] is not None and cell == s["detour"]:
            s["detour"] = None  # detour done: back on the shortest path
        if cell == s["target"] and s["detour"] is None:
            nxt = cell
        elif s["detour"] is not None:
            nxt = int(g.next_hop[s["detour"], cell])
        else:
            nxt = int(g.next_hop[s["target"], cell])
            if nxt != s["wp_cell"] and cfg.detour_prob > 0 and rng.random() < cfg.detour_prob:
                options = [g.index[nb] for nb in g.neighbours(g.free_cells[cell])]
                s["detour"] = int(rng.choice(options))
                nxt = s["detour"]
        if nxt != s["wp_cell"]:
            spread = cfg.jitter + cfg.waypoint_error
            s["wp_cell"] = nxt
            s["wp"] = g.cell_center(np.array(g.free_cells[nxt])) + rng.uniform(-spread, spread, 2) * g.scaling
        return s["wp"]

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        pos, vel, goal = observations[:, 0:2], observations[:, 2:4], observations[:, 4:6]
        cells = self.grid.free_index(self.grid.cell_of(pos))
        goal_cells = self.grid.free_index(self.grid.cell_of(goal))
        waypoints = np.empty_like(pos)
        noise = np.empty_like(pos)
        for slot in range(len(observations)):
            s = self.slots[slot]
            cell = int(cells[slot])
            if cell < 0:  # numerically inside a wall's cell: head back to the last waypoint
                waypoints[slot] = s["wp"] if s["wp"] is not None else pos[slot]
            else:
                if cell == s["target"] and s["detour"] is None and self.on_arrival is not None:
                    target_xy = self.grid.cell_center(np.array(self.grid.free_cells[cell]))
                    if np.linalg.norm(pos[slot] - target_xy) < 0.5 * self.grid.scaling:
                        s["arrivals"] += 1
                        new = self.on_arrival(slot, s["episode"], s["arrivals"], s["rng"])
                        if new is not None:
                            s["target"] = self.grid.index[tuple(new)]
                waypoints[slot] = self._waypoint(s, cell)
                if cell == s["target"] == goal_cells[slot] and s["detour"] is None:
                    waypoints[slot] = goal[slot]  # settle on the env's goal point itself
            noise[slot] = s["rng"].normal(0.0, self.cfg.noise_sigma, 2)
        actions = self.cfg.kp * (waypoints - pos) - self.cfg.kd * vel + noise
        return np.clip(actions, -1.0, 1.0).astype(np.float32)
