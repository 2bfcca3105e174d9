"""Maze geometry: free cells, cell <-> position, BFS shortest paths, and the evaluation start -> goal pairs."""

from __future__ import annotations

from collections import deque
from functools import lru_cache

import numpy as np

from d4rl_lite.tasks import Task

NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


class MazeGrid:
    """A PointMaze map (gymnasium-robotics' row/col indexing, 1 = wall) with shortest-path tables."""

    def __init__(self, maze_map: list[list[int]], scaling: float = 1.0):
        self.walls = np.array([[1 if c == 1 else 0 for c in row] for row in maze_map], dtype=bool)
        self.rows, self.cols = self.walls.shape
        self.scaling = scaling
        self.free_cells: list[tuple[int, int]] = [(r, c) for r in range(self.rows) for c in range(self.cols) if not self.walls[r, c]]
        self.free_cells_array = np.array(self.free_cells, dtype=np.int64).reshape(-1, 2)  # (row, col) per free cell
        self._free_lookup = np.full((self.rows, self.cols), -1, dtype=np.int64)  # row/col -> free-cell index, -1: wall
        self._free_lookup[self.free_cells_array[:, 0], self.free_cells_array[:, 1]] = np.arange(len(self.free_cells))
        self.index = {cell: i for i, cell in enumerate(self.free_cells)}
        n = len(self.free_cells)
        # dist[t, s]: BFS steps from free cell s to free cell t; next_hop[t, s]: first cell on that path.
        self.dist = np.full((n, n), -1, dtype=np.int64)
        self.next_hop = np.arange(n)[None, :].repeat(n, 0)
        for t, target in enumerate(self.free_cells):
            self.dist[t, t] = 0
            queue = deque([target])
            while queue:
                cell = queue.popleft()
                for nb in self.neighbours(cell):
                    j = self.index[nb]
                    if self.dist[t, j] < 0:
                        self.dist[t, j] = self.dist[t, self.index[cell]] + 1
                        self.next_hop[t, j] = self.index[cell]  # from nb, step towards target via cell
                        queue.append(nb)

    @classmethod
    def for_task(cls, task: Task) -> MazeGrid:
        return _grid_for(task.name)

    def neighbours(self, cell: tuple[int, int]) -> list[tuple[int, int]]:
        r, c = cell
        return [(r + dr, c + dc) for dr, dc in NEIGHBOURS
                if 0 <= r + dr < self.rows and 0 <= c + dc < self.cols and not self.walls[r + dr, c + dc]]

    # Positions follow gymnasium-robotics: x grows with col, y shrinks with row, maze centred at 0.
    def cell_center(self, cells: np.ndarray) -> np.ndarray:
        """(..., 2) row/col -> (..., 2) x/y of the cell centres."""
        cells = np.asarray(cells, dtype=np.float64)
        x = (cells[..., 1] + 0.5) * self.scaling - self.cols * self.scaling / 2
        y = self.rows * self.scaling / 2 - (cells[..., 0] + 0.5) * self.scaling
        return np.stack([x, y], axis=-1)

    def cell_of(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) x/y -> (..., 2) integer row/col (clipped into the map)."""
        xy = np.asarray(xy, dtype=np.float64)
        cells = np.empty(xy.shape, np.int64)  # floor division, then clipped: the controllers call it every step
        cells[..., 0] = (self.rows * self.scaling / 2 - xy[..., 1]) // self.scaling
        cells[..., 1] = (xy[..., 0] + self.cols * self.scaling / 2) // self.scaling
        return np.minimum(np.maximum(cells, 0, out=cells), (self.rows - 1, self.cols - 1), out=cells)

    def free_index(self, cells: np.ndarray) -> np.ndarray:
        """Index into ``free_cells`` of each row/col; -1 for walls (a position inside a wall's cell)."""
        cells = np.asarray(cells)
        return self._free_lookup[cells[..., 0], cells[..., 1]]

    def cells_at_distance(self, cell: tuple[int, int], k: int) -> list[tuple[int, int]]:
        row = self.dist[:, self.index[cell]]
        return [self.free_cells[i] for i in np.flatnonzero(row == k)]

    def longest_pairs(self, n: int = 5) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """``n`` start -> goal pairs with the longest shortest paths (the OGBench-style protocol).

        Among pairs at least as long as the ``n``-th longest, starts and goals are first kept
        distinct so the tasks differ; small mazes then fill up with the next longest pairs.
        Deterministic for a given map (ties break by cell order).
        """
        m = len(self.free_cells)
        order = sorted(((int(self.dist[g, s]), s, g) for s in range(m) for g in range(m) if s != g),
                       key=lambda x: (-x[0], x[1], x[2]))
        d_min = order[min(n, len(order)) - 1][0]
        chosen, used_s, used_g = [], set(), set()
        for d, s, g in order:
            if d >= d_min and s not in used_s and g not in used_g:
                chosen.append((d, s, g))
                used_s.add(s)
                used_g.add(g)
        for item in order:
            if len(chosen) >= n:
                break
            if item not in chosen:
                chosen.append(item)
        chosen = sorted(chosen[:n], key=lambda x: (-x[0], x[1], x[2]))
        return [(self.free_cells[s], self.free_cells[g]) for _, s, g in chosen]


@lru_cache(maxsize=None)
def _grid_for(task_name: str) -> MazeGrid:
    from d4rl_lite.tasks import get_task

    env = get_task(task_name).make_env()
    maze = env.unwrapped.maze
    grid = MazeGrid(maze.maze_map, maze.maze_size_scaling)
    env.close()
    return grid
