"""The maze controller: shortest path on the grid, waypoints at cell centres with jitter, PD control.

As D4RL's maze2d generator: waypoint = centre of the next cell on a shortest (BFS) path, with a
small uniform jitter; a = kp * (waypoint - position) - kd * velocity, Gaussian action noise,
clipped to [-1, 1]. In the target cell the waypoint is the target point itself, so the ball
settles there. Degraded variants (medium) add detours and imperfect waypoints.

Split in two so that the ant mazes reuse the first half: ``WaypointPlanner`` keeps, for every
vector-env copy, its episode's target, detour and current waypoint, and returns the waypoints
of all copies at once; ``MazeController`` turns them into point-mass forces. The state lives in
arrays and every step is a few array operations: Python only runs for the copies that enter a new
cell (a new waypoint, maybe a detour) or arrive at their target, a few percent of the steps.
(A first version looped over the copies in Python at every step: the stitch build ran at 49% of
raw env stepping on pointmaze-large; ``benchmarks/build_speed.py`` measures it.)
Random draws come from per-episode streams, so the bytes never depend on which copy runs an
episode: jitter and detours from one stream, action noise from another, drawn in blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from d4rl_lite.envs.maze_grid import MazeGrid

NOISE_BLOCK = 256  # action-noise draws per refill of a copy's block


@dataclass
class ControllerConfig:
    kp: float = 10.0
    kd: float = 1.0
    noise_sigma: float = 0.5  # Gaussian action noise (D4RL maze2d regeneration)
    jitter: float = 0.1  # waypoint jitter, uniform +- this many cell widths
    detour_prob: float = 0.0  # chance, at each new waypoint, of heading to a random neighbour cell first
    waypoint_error: float = 0.0  # extra jitter on waypoints (imperfect waypoints), in cell widths


def episode_rng(seed: int, episode: int, stream: int) -> np.random.Generator:
    """The random stream ``stream`` of episode ``episode`` of a build with ``seed``."""
    return np.random.default_rng([seed, episode, stream])


class WaypointPlanner:
    """Where each vector-env copy heads next: a waypoint near the centre of the next cell on a
    shortest path to its episode's target cell (the target point itself once in the target cell
    and that cell holds the env's goal).

    ``plan(episode_index) -> target cell`` decides where each episode goes; ``on_arrival(slot,
    episode_index, arrivals, rng) -> new target cell or None`` lets navigation pick a new target
    when one is reached (within half a cell of its centre). ``continuing``: a copy keeps its
    target and random streams across episodes (one continuing run per copy).

    ``ends_at_goal`` (class attribute): the body's episodes end at the env's goal point, as the ant
    mazes' do. A target in the goal's cell is then not "reached" at half a cell from its centre but
    walked to the goal point itself, where the episode ends. Without it, a tour whose target was the
    goal's cell turned away on entering the cell, up to 1.5 m from the (noisy) goal point: on
    antmaze-large-play, 1 of 1,001 episodes ended at the goal.
    """

    ends_at_goal = False

    def __init__(self, grid: MazeGrid, config: ControllerConfig, seed: int,
                 plan: Callable[[int], tuple[int, int]],
                 on_arrival: Callable[[int, int, int, np.random.Generator], tuple[int, int] | None] | None = None,
                 continuing: bool = False):
        self.grid, self.cfg, self.seed = grid, config, seed
        self.plan, self.on_arrival, self.continuing = plan, on_arrival, continuing
        self.rngs: list[np.random.Generator | None] = []  # per copy: jitter, detours, arrivals
        self.episode = np.zeros(0, np.int64)
        self.target = np.zeros(0, np.int64)  # free-cell index of the target
        self.detour = np.zeros(0, np.int64)  # free-cell index of a detour under way, -1: none
        self.wp_cell = np.zeros(0, np.int64)  # free-cell index the waypoint belongs to, -1: none yet
        self.wp = np.zeros((0, 2))
        self.arrivals = np.zeros(0, np.int64)

    def _grow(self, slots: int) -> None:
        more = slots - len(self.episode)
        if more > 0:
            self.rngs += [None] * more
            self.episode = np.concatenate([self.episode, np.zeros(more, np.int64)])
            self.target = np.concatenate([self.target, np.zeros(more, np.int64)])
            self.detour = np.concatenate([self.detour, np.full(more, -1)])
            self.wp_cell = np.concatenate([self.wp_cell, np.full(more, -1)])
            self.wp = np.concatenate([self.wp, np.full((more, 2), np.nan)])
            self.arrivals = np.concatenate([self.arrivals, np.zeros(more, np.int64)])

    def start_episode(self, slot: int, episode_index: int) -> None:
        self._grow(slot + 1)
        if self.continuing and self.rngs[slot] is not None:
            self.episode[slot] = episode_index
            return
        self.rngs[slot] = episode_rng(self.seed, episode_index, 6)
        self.episode[slot] = episode_index
        self.target[slot] = self.grid.index[tuple(self.plan(episode_index))]
        self.detour[slot], self.wp_cell[slot], self.wp[slot], self.arrivals[slot] = -1, -1, np.nan, 0

    def waypoints(self, pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """(n, 2) waypoints of copies 0..n-1 at positions ``pos`` with env goals ``goal``.

        Every copy is computed at once (a handful of array operations on n rows, each costing about
        as much as for one row); a copy numerically inside a wall's cell keeps its last waypoint.
        """
        g, cfg, n = self.grid, self.cfg, len(pos)
        cells, goal_cells = g.free_index(g.cell_of(np.concatenate([pos, goal]))).reshape(2, n)
        inside = cells >= 0
        c = np.where(inside, cells, 0)
        target, detour = self.target[:n], self.detour[:n]  # views: writes land in the state
        if self.on_arrival is not None:
            near = inside & (c == target) & (detour < 0)
            if self.ends_at_goal:
                near &= target != goal_cells
            if near.any():
                slots = np.flatnonzero(near)
                close = np.linalg.norm(pos[slots] - g.cell_center(g.free_cells_array[c[slots]]), axis=1) < 0.5 * g.scaling
                for slot in slots[close]:
                    self.arrivals[slot] += 1
                    new = self.on_arrival(int(slot), int(self.episode[slot]), int(self.arrivals[slot]), self.rngs[slot])
                    if new is not None:
                        target[slot] = g.index[tuple(new)]
        detour[inside & (detour == c)] = -1  # detour done: back on the shortest path
        home = (c == target) & (detour < 0)
        nxt = np.where(home, c, np.where(detour >= 0, g.next_hop[detour, c], g.next_hop[target, c]))
        changed = inside & (nxt != self.wp_cell[:n])
        if changed.any():
            spread = cfg.jitter + cfg.waypoint_error
            for slot in np.flatnonzero(changed):  # a new cell ahead: a new waypoint (and maybe a detour first)
                rng, cell = self.rngs[slot], int(nxt[slot])
                if detour[slot] < 0 and not home[slot] and cfg.detour_prob > 0 and rng.random() < cfg.detour_prob:
                    options = [g.index[nb] for nb in g.neighbours(g.free_cells[c[slot]])]
                    detour[slot] = cell = int(rng.choice(options))
                self.wp_cell[slot] = cell
                self.wp[slot] = g.cell_center(g.free_cells_array[cell]) + rng.uniform(-spread, spread, 2) * g.scaling
        out = self.wp[:n].copy()
        unset = np.isnan(out[:, 0])
        if unset.any():
            out[unset] = pos[unset]  # never had a waypoint (started inside a wall's cell): hold still
        settle = inside & home & (target == goal_cells)
        out[settle] = goal[settle]  # settle on the env's goal point itself
        return out


class MazeController(WaypointPlanner):
    """Drives each point-mass copy to its episode's target; the Policy protocol of collect_episodes.

    Subclasses drive another body along the same waypoints (``AntMazeController``): they say where
    the body and the goal are in the flat observation and how to head for a waypoint.
    """

    action_dim = 2

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.noise_rngs: list[np.random.Generator | None] = []
        self.noise = np.zeros((0, NOISE_BLOCK, self.action_dim))
        self.noise_t = np.zeros(0, np.int64)

    def start_episode(self, slot: int, episode_index: int) -> None:
        kept = self.continuing and slot < len(self.noise_rngs) and self.noise_rngs[slot] is not None
        super().start_episode(slot, episode_index)
        more = slot + 1 - len(self.noise_rngs)
        if more > 0:
            self.noise_rngs += [None] * more
            self.noise = np.concatenate([self.noise, np.zeros((more, NOISE_BLOCK, self.action_dim))])
            self.noise_t = np.concatenate([self.noise_t, np.zeros(more, np.int64)])
        if not kept:
            self.noise_rngs[slot] = episode_rng(self.seed, episode_index, 10)
            self._refill(slot)

    def _refill(self, slot: int) -> None:
        self.noise[slot] = self.noise_rngs[slot].normal(0.0, self.cfg.noise_sigma, (NOISE_BLOCK, self.action_dim))
        self.noise_t[slot] = 0

    def position_and_goal(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return observations[:, 0:2], observations[:, 4:6]  # [x, y, vx, vy, goal_x, goal_y]

    def drive(self, observations: np.ndarray, waypoints: np.ndarray) -> np.ndarray:
        """Noise-free actions heading for ``waypoints``: PD control of the point mass."""
        pos, vel = observations[:, 0:2], observations[:, 2:4]
        return self.cfg.kp * (waypoints - pos) - self.cfg.kd * vel

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        n = len(observations)
        waypoints = self.waypoints(*self.position_and_goal(observations))
        noise = self.noise[np.arange(n), self.noise_t[:n]]
        self.noise_t[:n] += 1
        for slot in np.flatnonzero(self.noise_t[:n] == NOISE_BLOCK):
            self._refill(int(slot))
        return np.clip(self.drive(observations, waypoints) + noise, -1.0, 1.0).astype(np.float32)
