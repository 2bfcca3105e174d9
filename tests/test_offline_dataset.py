import numpy as np
import pytest
import torch

from conftest import hand_made_episodes
from d4rl_lite.tasks import get_task


@pytest.fixture
def small():
    return hand_made_episodes().to_offline(get_task("hopper"))


def test_flat_view_pairs_each_step_with_its_true_successor(small):
    # Episode e's observation rows start at (transitions before it) + e.
    assert small.num_transitions == 7 and small.num_episodes == 3
    first_col = small.observations[:, 0] / 11
    next_col = small.next_observations[:, 0] / 11
    assert first_col.tolist() == [0, 1, 2, 4, 5, 7, 8]
    assert next_col.tolist() == [1, 2, 3, 5, 6, 8, 9]


def test_episode_views_and_returns(small):
    eps = list(small.episodes())
    assert [e.length for e in eps] == [3, 2, 2]
    assert [e.terminated for e in eps] == [True, False, True]
    assert small.episode_returns().tolist() == [6.0, 9.0, 13.0]
    assert small.episode(-1).episode_return == 13.0
    with pytest.raises(IndexError, match="3 episodes"):
        small.episode(3)


def test_select_episodes_keeps_boundaries(small):
    sub = small.select_episodes([2, 0])
    assert sub.episode_lengths.tolist() == [2, 3]
    assert sub.rewards.tolist() == [6, 7, 1, 2, 3]
    assert sub.terminals.tolist() == [False, True, False, False, True]


def test_normalization_statistics(small):
    stats = small.observation_stats()
    assert np.allclose(stats.mean, small.observations.mean(0))
    assert np.allclose(stats.normalize(small.observations).mean(0), 0, atol=1e-5)
    assert small.reward_stats()["return_max"] == 13.0
    assert small.return_range_scale(1000.0) == pytest.approx(1000.0 / 7.0)


def test_to_torch_samples_on_the_device(small):
    tt = small.to_torch("cpu")
    g = torch.Generator().manual_seed(0)
    batch = tt.sample(64, generator=g)
    assert batch["observations"].shape == (64, 11) and batch["actions"].shape == (64, 3)
    assert batch["observations"].device.type == "cpu" and batch["terminals"].dtype == torch.float32
    # Sampled rows are real transitions: each reward identifies its row.
    rows = batch["rewards"].long() - 1
    assert torch.equal(batch["next_observations"], tt.tensors["next_observations"][rows])


def test_device_auto_and_explicit_cuda(small):
    tt = small.to_torch("auto")
    assert tt.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert small.to_torch("cuda").tensors["rewards"].is_cuda
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            small.to_torch("cuda")
