"""Measuring reference scores: ref_min is the uniform random policy's mean return on the task's protocol."""

from __future__ import annotations

from datetime import date
from typing import Any

from d4rl_lite.evaluation.rollout import UniformRandomPolicy, evaluate
from d4rl_lite.tasks import Task, store_reference_score

REFERENCE_EPISODES = 100
REFERENCE_SEED = 0


def measure_random_reference(task: Task, episodes: int = REFERENCE_EPISODES, store: bool = False) -> dict[str, Any]:
    """Mean return of uniform random actions over ``episodes`` episodes with seeds 0..episodes-1.

    Episodes follow the task's evaluation protocol (fixed goal cell on mazes); actions of episode
    ``i`` come from ``default_rng([0, i])``. With ``store`` the result becomes the task's ref_min.
    """
    result = evaluate(task, UniformRandomPolicy(task, seed=REFERENCE_SEED), episodes=episodes, seed=REFERENCE_SEED)
    summary = result.summary()
    record = {
        "value": summary["return_mean"],
        "how": f"uniform random policy, mean over {episodes} episodes, reset seeds 0..{episodes - 1}",
        "return_std": summary["return_std"],
        "episodes": episodes,
        "measured_on": date.today().isoformat(),
        "command": f"d4rl-lite refs --measure {task.name} --episodes {episodes}",
    }
    if "success_rate" in summary:
        record["success_rate"] = summary["success_rate"]
    if store:
        from d4rl_lite.datasets.builders import package_versions

        record["versions"] = {k: v for k, v in package_versions().items() if k in ("gymnasium", "gymnasium-robotics", "mujoco")}
        store_reference_score(task.name, "ref_min", **record)
    return record
