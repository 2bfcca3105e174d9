"""Environments of our own, registered with Gymnasium under the ``d4rl_lite/`` namespace."""

from __future__ import annotations

import gymnasium as gym

_registered = False


def register_envs() -> None:
    """Register our environments once per process (worker processes call it through ``Task.make_env``)."""
    global _registered
    if not _registered:
        gym.register(id="d4rl_lite/AntGoal-v0", entry_point="d4rl_lite.envs.ant_goal:AntGoalEnv")
        _registered = True
