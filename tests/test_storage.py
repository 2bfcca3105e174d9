import json
import os

import minari
import numpy as np
import pytest

import d4rl_lite
from conftest import hand_made_episodes
from d4rl_lite.datasets import storage
from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.datasets.storage import write_dataset
from d4rl_lite.tasks import get_task


def test_written_dataset_loads_with_minari_and_matches(root):
    path = build_dataset("hopper-random-v0", size=300, seed=1, root=root, num_envs=3)
    ours = d4rl_lite.load_dataset("hopper-random-v0")
    theirs = minari.load_dataset("d4rl_lite/hopper/random-v0")
    assert theirs.total_steps == ours.num_transitions == 300
    assert theirs.total_episodes == ours.num_episodes
    ep = theirs[1]
    mine = ours.episode(1)
    assert np.array_equal(ep.observations[:-1], mine.observations)
    assert np.array_equal(ep.observations[1:], mine.next_observations)
    assert np.array_equal(ep.actions, mine.actions) and np.array_equal(ep.rewards, mine.rewards)
    assert np.array_equal(ep.terminations, mine.terminals) and np.array_equal(ep.truncations, mine.timeouts)
    meta = theirs.storage.metadata
    assert meta["d4rl_lite"]["recipe"]["seed"] == 1 and meta["d4rl_lite"]["checksum"].startswith("sha256:")
    assert meta["ref_min_score"] == pytest.approx(get_task("hopper").ref_min.value)
    assert theirs.recover_environment().spec.id == "Hopper-v5"
    assert "d4rl_lite/hopper/random-v0" in minari.list_local_datasets()
    assert path == root / "d4rl_lite/hopper/random-v0"


def test_maze_dataset_keeps_dict_observations_for_minari(root):
    build_dataset("pointmaze-umaze-random-v0", size=350, seed=0, root=root, num_envs=2)
    theirs = minari.load_dataset("d4rl_lite/pointmaze-umaze/random-v0")
    assert set(theirs[0].observations) == {"observation", "achieved_goal", "desired_goal"}
    ours = d4rl_lite.load_dataset("pointmaze-umaze-random-v0")
    assert ours.observations.shape == (350, 6)
    goal = theirs[0].observations["desired_goal"][0]
    assert np.allclose(ours.observations[0, 4:], goal)
    assert ours.num_episodes == 2 and ours.timeouts.sum() == 2 and not ours.terminals.any()


def test_same_seed_same_bytes_any_vectorization(root, tmp_path):
    a = build_dataset("hopper-random-v0", size=400, seed=7, root=tmp_path / "a", num_envs=4)
    b = build_dataset("hopper-random-v0", size=400, seed=7, root=tmp_path / "b", num_envs=1)
    c = build_dataset("hopper-random-v0", size=400, seed=8, root=tmp_path / "c", num_envs=4)
    sums = [json.loads((p / "data/metadata.json").read_text())["d4rl_lite"]["checksum"] for p in (a, b, c)]
    assert sums[0] == sums[1] != sums[2]


def test_size_budget_cuts_last_episode_as_timeout(root):
    build_dataset("halfcheetah-random-v0", size=1500, seed=0, root=root, num_envs=2)
    ds = d4rl_lite.load_dataset("halfcheetah-random-v0")
    assert ds.episode_lengths.tolist() == [1000, 500]
    assert ds.timeouts.sum() == 2 and not ds.terminals.any()


def test_existing_dataset_is_kept_unless_forced(root):
    build_dataset("hopper-random-v0", size=200, seed=0, root=root)
    with pytest.raises(FileExistsError, match="--force"):
        build_dataset("hopper-random-v0", size=200, seed=1, root=root)
    assert d4rl_lite.load_dataset("hopper-random-v0").metadata["recipe"]["seed"] == 0
    build_dataset("hopper-random-v0", size=200, seed=1, root=root, overwrite=True)
    assert d4rl_lite.load_dataset("hopper-random-v0").metadata["recipe"]["seed"] == 1


def test_crash_during_write_leaves_old_dataset_and_no_half_dataset(root, monkeypatch):
    task = get_task("hopper")
    write_dataset("d4rl_lite/hopper/random-v0", task, hand_made_episodes(), {"name": "hopper-random-v0"}, root=root)
    before = d4rl_lite.load_dataset("hopper-random-v0").metadata["checksum"]

    def crash(_path):
        raise RuntimeError("simulated crash after the data was written, before the swap")

    monkeypatch.setattr(storage, "_fsync_tree", crash)
    bigger = hand_made_episodes(lengths=(4, 4), ends=("terminal", "timeout"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_dataset("d4rl_lite/hopper/random-v0", task, bigger, {"name": "hopper-random-v0"}, root=root, overwrite=True)
    with pytest.raises(RuntimeError):
        write_dataset("d4rl_lite/hopper/medium-v0", task, bigger, {"name": "hopper-medium-v0"}, root=root)
    assert d4rl_lite.load_dataset("hopper-random-v0").metadata["checksum"] == before
    assert not (root / "d4rl_lite/hopper/medium-v0").exists()
    # temp dirs cleaned up (.locks holds the build locks, which outlive builds)
    assert [p for p in os.listdir(root) if p.startswith(".") and p != ".locks"] == []
    assert os.listdir(root / ".locks") == []
    assert list(minari.list_local_datasets()) == ["d4rl_lite/hopper/random-v0"]


def test_bad_data_is_refused_before_anything_is_written(root):
    task = get_task("hopper")
    good = hand_made_episodes()
    write_dataset("d4rl_lite/hopper/random-v0", task, good, {"name": "hopper-random-v0"}, root=root)
    bad = hand_made_episodes()
    bad.rewards[4] = np.nan
    with pytest.raises(d4rl_lite.DatasetError, match=r"not written.*field 'rewards'.*index 4.*non-finite.*nothing was written"):
        write_dataset("d4rl_lite/hopper/random-v0", task, bad, {"name": "hopper-random-v0"}, root=root, overwrite=True)
    assert np.array_equal(d4rl_lite.load_dataset("hopper-random-v0").rewards, good.rewards)
