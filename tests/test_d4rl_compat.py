import numpy as np
import pytest

import d4rl_lite
from conftest import hand_made_episodes
from d4rl_lite.datasets.storage import write_dataset
from d4rl_lite.tasks import get_task


@pytest.fixture
def written(root):
    # Episodes of 3, 2, 2 steps ending terminal, timeout, terminal; rewards 1..7.
    write_dataset("d4rl_lite/hopper/medium-v0", get_task("hopper"), hand_made_episodes(),
                  {"name": "hopper-medium-v0"}, root=root)
    return root


def test_qlearning_dataset_matches_hand_computation(written):
    env = d4rl_lite.make("hopper-medium-v0")
    q = d4rl_lite.qlearning_dataset(env)
    # The timeout transition (reward 5, the last step of episode 1) is dropped; terminals kept.
    assert q["rewards"].tolist() == [1, 2, 3, 4, 6, 7]
    assert q["terminals"].tolist() == [0, 0, 1, 0, 0, 1]
    assert q["terminals"].dtype == np.float32
    # Observation rows: episode e's step t sits at row (steps before e) + e + t; row value = 11 * row.
    rows = np.array([0, 1, 2, 4, 7, 8])
    assert np.array_equal(q["observations"][:, 0], rows * 11.0)
    # True successors, also at episode ends: after the terminal step 2 comes row 3 (its own final
    # observation), not row 4 (the next episode's start, which D4RL's loop would pair it with).
    assert np.array_equal(q["next_observations"][:, 0], (rows + 1) * 11.0)

    full = d4rl_lite.qlearning_dataset("hopper-medium-v0", terminate_on_end=True)
    assert full["rewards"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert full["terminals"].tolist() == [0, 0, 1, 0, 0, 0, 1]
    assert full["timeouts"].tolist() == [0, 0, 0, 0, 1, 0, 0]
    assert full["next_observations"][4, 0] == 6 * 11.0


def test_qlearning_dataset_accepts_every_kind_of_source(written):
    path = written / "d4rl_lite/hopper/medium-v0"
    sources = ["hopper-medium-v0", "d4rl_lite/hopper/medium-v0", path, str(path)]
    results = [d4rl_lite.qlearning_dataset(s) for s in sources]
    results.append(d4rl_lite.qlearning_dataset(dataset=d4rl_lite.load_dataset(path)))
    results.append(d4rl_lite.qlearning_dataset(dataset=d4rl_lite.make("hopper-medium-v0").get_dataset()))
    for r in results:
        assert r["rewards"].tolist() == [1, 2, 3, 4, 6, 7]
    with pytest.raises(TypeError, match="needs an env from d4rl_lite.make"):
        d4rl_lite.qlearning_dataset(42)


def test_make_returns_a_gymnasium_env_with_d4rl_methods(written):
    env = d4rl_lite.make("hopper-medium-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (11,)
    env.step(env.action_space.sample())
    data = env.get_dataset()
    assert set(data) >= {"observations", "actions", "rewards", "terminals", "timeouts"}
    assert data["terminals"].sum() == 2 and data["timeouts"].sum() == 1
    assert env.ref_min_score == pytest.approx(get_task("hopper").ref_min.value)
    if env.ref_max_score is None:
        with pytest.raises(d4rl_lite.ReferenceScoreUnavailable):
            env.get_normalized_score(100.0)
    else:
        lo, hi = env.ref_min_score, env.ref_max_score
        assert env.get_normalized_score(hi) == pytest.approx(1.0)  # a fraction, as in D4RL
        assert d4rl_lite.get_normalized_score("hopper", lo) == pytest.approx(0.0)
