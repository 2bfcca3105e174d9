"""EnvBatch with worker processes: same results as in-process stepping, clear errors."""

import os
import signal

import numpy as np
import pytest

from d4rl_lite.datasets.collect import collect_episodes
from d4rl_lite.envs.policies import UniformRandomPolicy
from d4rl_lite.envs.vector import EnvBatch, default_env_workers
from d4rl_lite.evaluation.evaluate import evaluate
from d4rl_lite.tasks import get_task


@pytest.mark.parametrize("task_name", ["hopper", "pointmaze-umaze"])
def test_results_do_not_depend_on_the_number_of_worker_processes(task_name):
    task = get_task(task_name)
    results = [evaluate(task, UniformRandomPolicy(task, seed=3), episodes=7, num_envs=5, workers=w) for w in (1, 2, 3)]
    for r in results[1:]:
        assert np.array_equal(r.returns, results[0].returns)
        assert np.array_equal(r.lengths, results[0].lengths)
        if task.domain == "maze":
            assert np.array_equal(r.successes, results[0].successes)
    assert len(set(results[0].lengths)) > 1 or task.domain == "maze"  # copies really did finish at different times


def test_collected_bytes_do_not_depend_on_the_number_of_worker_processes():
    task = get_task("hopper")
    a = collect_episodes(task, UniformRandomPolicy(task, seed=1), 400, seed=0, num_envs=4, workers=1)
    b = collect_episodes(task, UniformRandomPolicy(task, seed=1), 400, seed=0, num_envs=4, workers=2)
    for name in ("observations", "actions", "rewards", "terminations", "truncations", "episode_lengths"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_a_failure_inside_a_worker_is_reported_with_its_cause():
    task = get_task("pointmaze-umaze")
    envs = EnvBatch(task, 4, workers=2)
    try:
        envs.reset(0, 0, None)
        with pytest.raises(RuntimeError, match=r"env copies 2-3 failed in their worker process(.|\n)*Error"):
            envs.reset(3, 0, {"goal_cell": np.array([0, 0])})  # a wall cell: gymnasium-robotics refuses it
        envs.reset(2, 2, None)  # the worker survives its error and keeps serving
        assert np.isfinite(envs.obs["observation"][2]).all()
    finally:
        envs.close()


def test_a_dead_worker_gives_a_clear_error():
    task = get_task("hopper")
    envs = EnvBatch(task, 2, workers=2)
    try:
        envs.reset(0, 0, None)
        envs.reset(1, 1, None)
        os.kill(envs._remotes[0].process.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="died.*D4RL_LITE_ENV_WORKERS=1"):
            envs.step(np.zeros((2, task.action_dim), np.float32))
    finally:
        envs.close()


def test_worker_count_setting(monkeypatch):
    monkeypatch.setenv("D4RL_LITE_ENV_WORKERS", "3")
    assert default_env_workers(10) == 3 and default_env_workers(2) == 2
    monkeypatch.setenv("D4RL_LITE_ENV_WORKERS", "two")
    with pytest.raises(ValueError, match="whole number"):
        default_env_workers(4)
    with pytest.raises(ValueError, match="between 1 and num_envs"):
        EnvBatch(get_task("hopper"), 2, workers=3)
