"""How often the ant-maze controller (planner waypoints + the ant-goal skill) reaches the goal.

Runs ``AntMazeController`` with the skill's deterministic mean (no action noise, no waypoint
jitter: the controller at its best, what a dataset's behaviour degrades) under each maze's
evaluation protocol (D4RL's start, goal and noise; ``--episodes`` episodes, default 100) and prints
the success rate and the mean episode length. The issue's bar: >= 90% on umaze, >= 70% on large.

    python benchmarks/ant_maze_controller.py                       # the committed skill (zoo/ant-goal expert)
    python benchmarks/ant_maze_controller.py --weights RUN/ladder/step_00600000.safetensors --mazes umaze
    python benchmarks/ant_maze_controller.py --max-offset inf --mazes large  # without the offset cap
    python benchmarks/ant_maze_controller.py --write-card          # store the figures in zoo/ant-goal/card.json
"""

from __future__ import annotations

import argparse
import json
import time


def measure(maze: str, skill, episodes: int, max_offset: float) -> dict:
    from d4rl_lite.datasets.maze.ant_controller import AntMazeController
    from d4rl_lite.datasets.maze.controller import ControllerConfig
    from d4rl_lite.envs.maze_grid import MazeGrid
    from d4rl_lite.evaluation.evaluate import evaluate
    from d4rl_lite.tasks import get_task

    task = get_task(f"antmaze-{maze}")
    controller = AntMazeController(MazeGrid.for_task(task), ControllerConfig(noise_sigma=0.0, jitter=0.0), seed=0,
                                   plan=lambda _i: task.eval_goal_cell, skill=skill, max_offset=max_offset)
    result = evaluate(task, controller, episodes=episodes, workers=1)
    return {"success": float(result.successes.mean()), "episodes": episodes,
            "length_mean": float(result.lengths.mean()), "max_offset_m": max_offset,
            "how": "deterministic skill, no jitter, the task's evaluation seeds"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="a skill actor's safetensors (default: the committed zoo/ant-goal expert)")
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--mazes", nargs="+", default=["umaze", "medium", "large"])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--max-offset", type=float, default=None,
                   help="farthest target shown to the skill, metres (default: the controller's MAX_OFFSET; inf: uncapped)")
    p.add_argument("--write-card", action="store_true", help="record the figures in zoo/ant-goal/card.json")
    args = p.parse_args()

    from d4rl_lite.datasets.behavior.policies import load_actor, load_role, write_manifest, zoo_dir
    from d4rl_lite.datasets.maze.ant_controller import MAX_OFFSET
    from d4rl_lite.tasks import get_task

    if args.weights:
        skill = load_actor(get_task("ant-goal"), args.weights, tuple(int(h) for h in args.hidden.split(",")))
        source = args.weights
    else:
        skill, entry = load_role("ant-goal", "expert")
        source = f"zoo/ant-goal expert, step {entry['step']:,}"
    print(f"skill: {source}")
    figures = {}
    for maze in args.mazes:
        t0 = time.perf_counter()
        figures[f"antmaze-{maze}"] = fig = measure(maze, skill, args.episodes,
                                                       MAX_OFFSET if args.max_offset is None else args.max_offset)
        print(f"antmaze-{maze}: success {fig['success']:.0%} over {args.episodes} episodes, "
              f"mean length {fig['length_mean']:.0f} steps ({time.perf_counter() - t0:.0f} s)")
    if args.write_card:
        if args.weights:
            raise SystemExit("--write-card records the committed skill's figures; drop --weights")
        folder = zoo_dir("ant-goal")
        card = json.loads((folder / "card.json").read_text())
        card["maze_controller"] = {**card.get("maze_controller", {}), **figures}
        (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        write_manifest(folder)
        print(f"recorded in {folder / 'card.json'}")


if __name__ == "__main__":
    main()
