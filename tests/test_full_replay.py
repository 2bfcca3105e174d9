"""Full replays and subsamples: collection order kept, whole episodes, reproducible, named apart."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import hand_made_episodes
from d4rl_lite.datasets.subsample import Subsample, select_episodes, split_kind
from d4rl_lite.errors import UserInputError


@pytest.mark.parametrize("spec, label", [("first:0.1", "first10pct"), ("last:20000", "last20000"),
                                         ("random:0.05", "random5pct"), ("first:1.0", "first100pct")])
def test_a_subsample_names_itself(spec, label):
    sub = Subsample.parse(spec)
    assert sub.label == label and Subsample.from_label(label) == sub and Subsample.parse(sub.spec) == sub
    assert split_kind(f"full-replay-{label}") == ("full-replay", sub)


@pytest.mark.parametrize("spec", ["first", "middle:0.1", "first:0", "first:-3", "first:1.5", "first:0.125", "last:abc"])
def test_a_bad_subsample_is_one_clear_error(spec):
    with pytest.raises(UserInputError, match="--subsample"):
        Subsample.parse(spec)


def test_subsamples_keep_whole_episodes_in_collection_order():
    raw = hand_made_episodes(lengths=(3, 2, 4, 1, 5, 2), ends=("terminal", "timeout", "terminal", "terminal",
                                                                "timeout", "terminal"))
    lengths = raw.episode_lengths
    assert list(Subsample.parse("first:5").episodes(lengths, 0)) == [0, 1]  # 3 + 2 reaches 5
    assert list(Subsample.parse("first:6").episodes(lengths, 0)) == [0, 1, 2]  # one episode more, never cut
    assert list(Subsample.parse("last:6").episodes(lengths, 0)) == [4, 5]  # 2 + 5 from the end
    picked = Subsample.parse("random:0.5").episodes(lengths, seed=3)
    assert list(picked) == sorted(picked) and lengths[picked].sum() >= 9  # half of 17, rounded
    assert np.array_equal(picked, Subsample.parse("random:0.5").episodes(lengths, seed=3))  # same seed, same episodes
    assert any(not np.array_equal(picked, Subsample.parse("random:0.5").episodes(lengths, seed=s)) for s in range(4, 12))
    kept, facts = Subsample.parse("last:6").apply(raw, seed=0)
    assert list(kept.episode_lengths) == [5, 2] and facts["kept_transitions"] == 7 and facts["first_episode"] == 4
    # Episode 4's rows, whole: its 5 actions and rewards and its 6 stored observations.
    assert np.array_equal(kept.rewards, raw.rewards[10:17]) and np.array_equal(kept.actions, raw.actions[10:17])
    assert np.array_equal(kept.observations[:6], raw.observations[14:20])
    assert list(kept.truncations) == [False] * 4 + [True, False, False] and kept.terminations[-1]
    same = select_episodes(raw, np.arange(len(lengths)))
    assert all(np.array_equal(a, b) for a, b in zip(same.leaves().values(), raw.leaves().values()))
    with pytest.raises(UserInputError, match="fewer than"):
        Subsample.parse("first:18").episodes(lengths, 0)


def test_the_full_replay_is_the_runs_experience_in_collection_order(tmp_path, capsys, monkeypatch):
    import minari

    from d4rl_lite.cli import main
    from d4rl_lite.datasets.behavior.policies import zoo_dir
    from d4rl_lite.datasets.builders import build_dataset
    from d4rl_lite.datasets.builders.replay import load_replay_chunk
    from d4rl_lite.datasets.d4rl_compat import load_dataset

    path = build_dataset("hopper-full-replay-v0", size=3000, root=tmp_path)
    ds = load_dataset("hopper-full-replay-v0", root=tmp_path)
    first = load_replay_chunk(sorted((zoo_dir("hopper") / "full_replay" / "replay").glob("chunk_*.npz"))[0])
    n = ds.num_transitions
    assert n == 3000 and np.array_equal(ds.actions, first["actions"][:n]) and np.array_equal(ds.rewards, first["rewards"][:n])
    assert np.array_equal(ds.observations, first["observations"][:n])  # the run's first steps come first
    assert "online agent" in ds.metadata["card"] and ds.metadata["recipe"]["online_agent"]["step"] > 0
    # A subsample of it: its own name, in the card and the recipe, read by Minari, the same bytes again.
    assert main(["build", "hopper-full-replay-v0", "--size", "3000", "--subsample", "random:0.5", "--root", str(tmp_path),
                 "--seed", "1", "--quiet"]) == 0
    assert "subsample          random:0.5:" in capsys.readouterr().out
    sub = load_dataset("hopper-full-replay-random50pct-v0", root=tmp_path)
    assert sub.metadata["recipe"]["subsample"]["subsample"] == "random:0.5" and 1500 <= sub.num_transitions < 3000
    again = build_dataset("hopper-full-replay-v0", size=3000, subsample="random:0.5", seed=1, root=tmp_path / "again")
    assert load_dataset(again).metadata["checksum"] == sub.metadata["checksum"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert minari.load_dataset("d4rl_lite/hopper/full-replay-random50pct-v0").total_steps == sub.num_transitions
    assert path.name == "full-replay-v0"
    # A run on the subsample records the online agent's score: the table's column and full_replay's line.
    import torch

    from d4rl_lite.training.data import data_facts
    from d4rl_lite.tasks import get_task

    facts = data_facts(sub, get_task("hopper"), torch.as_tensor(sub.rewards), 0.99)
    assert facts["online_agent"] == sub.metadata["recipe"]["online_agent"]["normalized_score"] > 90


def test_a_task_without_a_full_replay_says_so(tmp_path, capsys):
    from d4rl_lite.cli import main

    import re

    assert main(["build", "ant-full-replay-v0", "--root", str(tmp_path)]) == 2
    assert "ant has no full replay committed" in capsys.readouterr().err
    assert main(["list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "hopper-full-replay-v0" in out and re.search(r"\n +ant-full-replay-v0 +no full replay committed yet", out)


def test_a_replay_that_a_resume_cut_ends_its_episode_there(tmp_path):
    # walker2d's full-replay run was resumed at step 300,000: the step before it carries no end flag,
    # and the next transition starts a new episode. Without the cut, 1035 steps became one episode.
    from d4rl_lite.datasets.builders.replay import replay_to_episodes

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(13, 3)).astype(np.float32)
    chain = {"observations": obs[:-1].copy(), "next_observations": obs[1:].copy(), "actions": np.zeros((12, 1), np.float32),
             "rewards": np.arange(12, dtype=np.float32), "terminals": np.zeros(12, np.float32),
             "timeouts": np.zeros(12, np.float32)}
    chain["terminals"][3] = 1.0  # a real end at step 3; a new episode starts at 4 from a reset
    chain["observations"][4] = rng.normal(size=3)
    chain["observations"][8] = rng.normal(size=3)  # the resume: step 7 has no flag, step 8 does not continue it
    np.savez(tmp_path / "chunk_00000000_00000012.npz", **chain)
    episodes = replay_to_episodes([tmp_path / "chunk_00000000_00000012.npz"], 12, None)
    assert episodes.episode_lengths.tolist() == [4, 4, 4]
    assert episodes.terminations.tolist() == [False] * 3 + [True] + [False] * 8
    assert np.flatnonzero(episodes.truncations).tolist() == [7, 11]
    # Each stored episode ends with its own last next observation, not the next episode's first.
    assert np.array_equal(episodes.observations[9], chain["next_observations"][7])
