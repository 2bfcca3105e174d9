"""Shared fixtures: every test writes datasets under its own temporary root, never ~/.minari."""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
import pytest

warnings.filterwarnings("ignore", message=".*Adroit.*")

# The reference scores the tests see are the package's own, not a re-measured file of this
# machine's user (~/.config/d4rl_lite/reference_scores.json): a file that does not exist.
os.environ["D4RL_LITE_REFERENCE_SCORES"] = os.path.join(tempfile.mkdtemp(prefix="d4rl_lite_refs_"), "none.json")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes share two cores: one thread each, or both oversubscribe. The tests' networks
    # are small enough that a second intra-op thread buys nothing.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_test_algorithm():
    """tests/test_new_algorithm.py drops a file into the package (and removes it); remove one a killed
    run left behind. Only a stale one: under pytest-xdist another worker's test may be using a fresh
    one right now (a teardown here once deleted it under that test's feet)."""
    import time
    from pathlib import Path

    import d4rl_lite.algorithms

    leftover = Path(d4rl_lite.algorithms.__file__).parent / "one_file_bc.py"
    try:
        if time.time() - leftover.stat().st_mtime > 600:
            leftover.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    yield


@pytest.fixture(autouse=True)
def _isolated_root(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("minari_root")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    # Env copies step in-process: starting worker processes costs ~2 s per evaluation, far more
    # than the tests' few episodes take. The worker path has its own tests (test_rollout.py),
    # which ask for workers explicitly; results do not depend on the count.
    monkeypatch.setenv("D4RL_LITE_ENV_WORKERS", "1")
    yield root


@pytest.fixture
def root(_isolated_root):
    return _isolated_root


@pytest.fixture(scope="session")
def built_hopper(tmp_path_factory):
    """A small real hopper-random-v0 built once per session; tests copy it before damaging it."""
    from d4rl_lite.datasets.builders import build_dataset

    root = tmp_path_factory.mktemp("session_root")
    path = build_dataset("hopper-random-v0", size=600, seed=0, root=root, num_envs=4)
    return path


@pytest.fixture
def hopper_copy(built_hopper, tmp_path):
    """A private copy of the session's hopper dataset directory, safe to corrupt."""
    import shutil

    dst = tmp_path / "hopper-random-v0"
    shutil.copytree(built_hopper, dst)
    return dst


def hand_made_episodes(task_name: str = "hopper", lengths=(3, 2, 2), ends=("terminal", "timeout", "terminal")):
    """Tiny episodes with known values: observation rows count up, rewards are 1, 2, 3, ..."""
    from d4rl_lite.datasets.episodes import EpisodeArrays
    from d4rl_lite.tasks import get_task

    task = get_task(task_name)
    n, e = sum(lengths), len(lengths)
    obs = np.arange((n + e) * task.observation_dim, dtype=np.float32).reshape(n + e, task.observation_dim)
    terminations = np.zeros(n, bool)
    truncations = np.zeros(n, bool)
    last = np.cumsum(lengths) - 1
    for i, end in zip(last, ends):
        (terminations if end == "terminal" else truncations)[i] = True
    return EpisodeArrays(
        observations=obs,
        actions=np.linspace(-1, 1, n * task.action_dim, dtype=np.float32).reshape(n, task.action_dim),
        rewards=np.arange(1, n + 1, dtype=np.float32),
        terminations=terminations,
        truncations=truncations,
        episode_lengths=np.array(lengths),
    )


TINY_BEHAVIOR = dict(total_steps=1500, start_steps=300, checkpoint_every=250, eval_every=500, ladder_every=500,
                     eval_episodes=2)


def tiny_behavior_config(**overrides):
    from d4rl_lite.algorithms.sac import SACConfig
    from d4rl_lite.production.behavior_training import BehaviorConfig

    return BehaviorConfig(**{**TINY_BEHAVIOR, **overrides}, sac=SACConfig(actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32))


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A real (tiny) SAC training run on hopper, exported into a private zoo: the committed-policy path
    end to end, without touching the package's own zoo or reference scores."""
    from d4rl_lite.production.export import export_behavior
    from d4rl_lite.production.behavior_training import train_behavior

    base = tmp_path_factory.mktemp("zoo_session")
    run = train_behavior("hopper", base / "run", tiny_behavior_config(), log=lambda _: None)
    export_behavior("hopper", run, zoo_root=base / "zoo", episodes=5, store_reference=False, log=lambda _: None)
    return base


@pytest.fixture
def zoo(tiny_zoo, monkeypatch):
    monkeypatch.setenv("D4RL_LITE_ZOO", str(tiny_zoo / "zoo"))
    return tiny_zoo
