"""Behaviour training, export, and every locomotion dataset kind at small size."""

import json
import shutil
from dataclasses import asdict

import minari
import numpy as np
import pytest
import torch

import d4rl_lite
from conftest import tiny_behavior_config
from d4rl_lite.production.behavior_training import train_behavior
from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.datasets.builders.human import HumanProfile
from d4rl_lite.datasets.builders.mixed import parse_mix, split_sizes
from d4rl_lite.tasks import get_task


def checksum(path):
    return json.loads((path / "data/metadata.json").read_text())["d4rl_lite"]["checksum"]


def test_training_resumes_from_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    train_behavior("hopper", run, tiny_behavior_config(total_steps=1000), log=lambda _: None)
    first = json.loads((run / "ladder.json").read_text())
    assert [e["step"] for e in first] == [500, 1000]
    lines = []
    threads = torch.get_num_threads()
    try:  # the resumed run may be extended, and takes the thread count it is given now
        train_behavior("hopper", run, tiny_behavior_config(total_steps=1500, threads=2), log=lines.append)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert lines[0].startswith("resumed hopper at step 1,000")
    ladder = json.loads((run / "ladder.json").read_text())
    assert [e["step"] for e in ladder] == [500, 1000, 1500]
    assert ladder[:2] == first  # the resumed run kept what was there
    chunks = sorted(p.name for p in (run / "replay").glob("chunk_*.npz"))
    assert chunks[0] == "chunk_00000000_00000250.npz" and chunks[-1] == "chunk_00001250_00001500.npz" and len(chunks) == 6
    rows = (run / "curve.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["500", "1000", "1500"]
    assert (run / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_export_card_picks_expert_and_medium(zoo):
    card = json.loads((zoo / "zoo/hopper/card.json").read_text())
    measured = [e for e in card["ladder"] if "return_mean_100" in e]
    best = max(e["return_mean_100"] for e in measured)
    assert card["expert"]["return_mean_100"] == best
    target = best / 3
    assert abs(card["medium"]["return_mean_100"] - target) == min(abs(e["return_mean_100"] - target) for e in measured)
    assert card["training"]["command"] == "d4rl-lite train-behavior hopper --seed 0"
    for e in card["ladder"]:
        assert (zoo / "zoo/hopper" / e["file"]).is_file()


@pytest.mark.parametrize("kind", ["medium", "expert"])
def test_policy_kinds_build_load_and_reproduce(kind, zoo, tmp_path):
    a = build_dataset(f"hopper-{kind}-v0", size=400, seed=1, root=tmp_path / "a", num_envs=4)
    b = build_dataset(f"hopper-{kind}-v0", size=400, seed=1, root=tmp_path / "b", num_envs=4)
    assert checksum(a) == checksum(b)
    ds = d4rl_lite.load_dataset(a)
    assert ds.num_transitions == 400 and ds.observations.shape == (400, 11)
    assert ds.metadata["recipe"]["policy_step"] == json.loads((zoo / "zoo/hopper/card.json").read_text())[kind]["step"]
    assert np.abs(ds.actions).max() <= 1.0 and ds.actions.std() > 0.05  # sampled, not deterministic
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path / "a"))
        assert minari.load_dataset(f"d4rl_lite/hopper/{kind}-v0").total_steps == 400


def test_medium_expert_is_medium_then_expert(zoo, root):
    build_dataset("hopper-medium-expert-v0", size=600, seed=2, root=root, num_envs=3)
    ds = d4rl_lite.load_dataset("hopper-medium-expert-v0")
    parts = ds.metadata["recipe"]["parts"]
    assert [p["kind"] for p in parts] == ["medium", "expert"] and [p["size"] for p in parts] == [300, 300]
    assert minari.load_dataset("d4rl_lite/hopper/medium-expert-v0").total_steps == 600


def test_medium_replay_uses_the_real_replay(zoo, root):
    build_dataset("hopper-medium-replay-v0", root=root)
    ds = d4rl_lite.load_dataset("hopper-medium-replay-v0")
    card = json.loads((zoo / "zoo/hopper/card.json").read_text())
    assert ds.metadata["recipe"]["source"].startswith("real replay")
    assert ds.num_transitions == card["medium"]["step"]
    replay = np.load(zoo / "run/replay/chunk_00000000_00000250.npz")
    assert np.array_equal(ds.actions[:250], replay["actions"]) and np.array_equal(ds.observations[:250], replay["observations"])
    # Episode boundaries come from the replay's flags; the last, unfinished one ends as a timeout.
    assert ds.terminals.sum() == replay["terminals"].sum() + sum(
        np.load(p)["terminals"].sum() for p in sorted((zoo / "run/replay").glob("chunk_*.npz"))[1:]
        if int(p.stem.split("_")[2]) <= card["medium"]["step"])
    assert ds.timeouts[-1] or ds.terminals[-1]
    # Export committed exactly the chunks up to medium, no more.
    committed = sorted(p.name for p in (zoo / "zoo/hopper/replay").glob("chunk_*.npz"))
    assert committed and card["training"]["replay_to_medium_committed"]
    assert all(int(n.split("_")[1]) < card["medium"]["step"] for n in committed)
    assert int(committed[-1].split("_")[2].split(".")[0]) >= card["medium"]["step"]


def test_medium_replay_falls_back_to_ladder_rollouts(zoo, root, tmp_path, monkeypatch):
    from d4rl_lite.datasets.behavior.policies import write_manifest

    moved = tmp_path / "zoo_copy"
    shutil.copytree(zoo / "zoo", moved)
    card_file = moved / "hopper/card.json"
    card = json.loads(card_file.read_text())
    card["training"]["run_dir"] = str(tmp_path / "gone")  # a fresh machine: the run is not here
    card_file.write_text(json.dumps(card))
    write_manifest(moved / "hopper")  # as an export on that machine would
    monkeypatch.setenv("D4RL_LITE_ZOO", str(moved))
    # The replay up to medium was committed with the policies: still the real one.
    build_dataset("hopper-medium-replay-v0", size=300, root=root, num_envs=2)
    recipe = d4rl_lite.load_dataset("hopper-medium-replay-v0").metadata["recipe"]
    assert recipe["source"].startswith("real replay") and recipe["replay_from"] == "committed with the policies"
    shutil.rmtree(moved / "hopper/replay")  # as for a task whose replay was too large to commit
    build_dataset("hopper-medium-replay-v0", size=300, root=root, num_envs=2, overwrite=True)
    rollouts = d4rl_lite.load_dataset("hopper-medium-replay-v0")
    recipe = rollouts.metadata["recipe"]
    assert recipe["source"].startswith("ladder rollouts")
    assert len(rollouts.rewards) == 300  # split over the ladder's actors, not 300 from each
    assert recipe["ladder_steps"] == [e["step"] for e in card["ladder"] if e["step"] <= card["medium"]["step"]]


def test_mixed_follows_its_weights(zoo, root):
    build_dataset("hopper-mixed-v0", size=1000, seed=0, root=root, num_envs=2, mix="random:0.5,medium:0.3,expert:0.2")
    recipe = d4rl_lite.load_dataset("hopper-mixed-v0").metadata["recipe"]
    assert [(p["kind"], p["size"]) for p in recipe["parts"]] == [("random", 500), ("medium", 300), ("expert", 200)]
    build_dataset("hopper-mixed-mostly_random-v0", size=100, root=root, mix="random:9,expert:1")
    assert d4rl_lite.load_dataset("hopper-mixed-mostly_random-v0").num_transitions == 100


def test_mix_specs_and_sizes():
    assert parse_mix("random:1, expert:3") == [("random", 0.25), ("expert", 0.75)]
    assert split_sizes(10, [1 / 3] * 3) == [4, 3, 3] == split_sizes(10, [1.0] * 3)
    for bad in ["random", "random:-1", "random:x", "", "random:1,random:2"]:
        with pytest.raises(ValueError, match="mixture"):
            parse_mix(bad)


def test_mixed_errors(zoo, root):
    with pytest.raises(ValueError, match="needs its mixture"):
        build_dataset("hopper-mixed-v0", size=100, root=root)
    with pytest.raises(ValueError, match="'stitch' cannot be built for hopper"):
        build_dataset("hopper-mixed-v0", size=100, root=root, mix="stitch:1")
    with pytest.raises(ValueError, match="take no option"):
        build_dataset("hopper-random-v0", size=100, root=root, mix="random:1")


def _human(root, name, **knobs):
    off = dict(reaction_delay=0, smoothing=0.0, noise_sigma=0.0, pause_prob=0.0, mistake_prob=0.0, skill_spread=0.0)
    build_dataset("hopper-human-v0", size=1500, seed=0, root=root / name, num_envs=3, **{**off, **knobs})
    return d4rl_lite.load_dataset("hopper-human-v0", root=root / name)


def test_human_knobs_have_their_measured_effect(zoo, root):
    base = _human(root, "off")
    fx = base.metadata["card"]["human_effects"]
    assert fx["paused_share"] == 0 and fx["measured_reaction_delay"] == 0

    delayed = _human(root, "delay", reaction_delay=4)
    assert delayed.metadata["card"]["human_effects"]["measured_reaction_delay"] == 4

    # White action noise, then the same noise through 0.9 inertia: autocorrelation must rise.
    noisy = _human(root, "noisy", noise_sigma=0.3, noise_correlation=0.0)
    smooth = _human(root, "smooth", noise_sigma=0.3, noise_correlation=0.0, smoothing=0.9)
    white = noisy.metadata["card"]["human_effects"]["action_autocorr_lag1"]
    assert smooth.metadata["card"]["human_effects"]["action_autocorr_lag1"] > white + 0.1

    paused = _human(root, "pause", pause_prob=0.05, pause_length=10)
    share = paused.metadata["card"]["human_effects"]["paused_share"]
    assert 0.15 < share < 0.5  # stationary share of a 5%-per-step, 10-step-mean pause process is 1/3

    mistakes = _human(root, "mistakes", mistake_prob=0.05, mistake_length=10)
    assert mistakes.metadata["card"]["human_effects"]["anti_aligned_share"] > fx["anti_aligned_share"] + 0.02

    skill = _human(root, "skill", skill_spread=0.9, noise_sigma=0.3)
    assert skill.metadata["recipe"]["injected"]["skill_min"] < 0.5


def test_human_profile_has_task_defaults_under_explicit_knobs():
    from d4rl_lite.datasets.builders.human import TASK_DEFAULTS

    assert HumanProfile.from_options({}) == HumanProfile()  # no task: the class defaults
    hopper = HumanProfile.from_options({"pause_prob": 0.02}, "hopper")
    assert hopper.reaction_delay == TASK_DEFAULTS["hopper"]["reaction_delay"] != HumanProfile().reaction_delay
    assert hopper.pause_prob == 0.02  # an explicit knob beats the task default


@pytest.mark.parametrize("task", ["hopper", "walker2d", "halfcheetah", "ant"])
def test_default_human_data_is_imperfect_but_capable(task, tmp_path):
    """With the committed expert, TASK-human at its defaults must be neither a pile of falls or a
    crawl (the class defaults gave hopper 30-step episodes at ~1 normalized, halfcheetah ~3) nor
    expert data."""
    build_dataset(f"{task}-human-v0", size=4000, seed=0, root=tmp_path)
    data = d4rl_lite.load_dataset(f"{task}-human-v0", root=tmp_path)
    assert data.metadata["recipe"]["profile"] == asdict(HumanProfile.from_options({}, task))
    if get_task(task).can_terminate:
        assert data.episode_lengths.mean() > 100
    scores = get_task(task).normalized_score(data.episode_returns())
    assert 10 < scores.mean() < 80


def test_human_rejects_unknown_knobs(zoo, root):
    with pytest.raises(ValueError, match="take no option.*reaction_delay"):
        build_dataset("hopper-human-v0", size=100, root=root, reaction_dleay=2)
    with pytest.raises(ValueError, match="invalid smoothing=1.5"):
        build_dataset("hopper-human-v0", size=100, root=root, smoothing=1.5)


def test_warm_restart_from_a_committed_snapshot(tmp_path):
    from d4rl_lite.production.behavior_training import snapshot_run

    run = tmp_path / "run"
    train_behavior("hopper", run, tiny_behavior_config(total_steps=1000), log=lambda _: None)
    snap = snapshot_run(run, tmp_path / "snapshot")
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "curve.csv", "curve.png", "ladder", "ladder.json",
                                                       "snapshot.json", "weights.safetensors"]
    fresh = tmp_path / "fresh_machine"
    snapshot_run(snap, fresh)
    lines = []
    train_behavior("hopper", fresh, tiny_behavior_config(total_steps=2000), log=lines.append)
    assert lines[0].startswith("warm restart of hopper at step 1,000")
    ladder = json.loads((fresh / "ladder.json").read_text())
    assert [e["step"] for e in ladder] == [500, 1000, 1500, 2000]
    # The replay restarted at step 1000: its chunks are indexed from there.
    assert sorted(p.name for p in (fresh / "replay").glob("*.npz"))[0] == "chunk_00000000_00000250.npz"
    assert json.loads((fresh / "snapshot.json").read_text()) == {"step": 2000, "replay_starts_at_step": 1000}


def test_behaviour_training_shares_the_loops_divergence_guard(tmp_path):
    # Behaviour training runs through the one training loop, so a run that blows up stops with the
    # metric and the step, as offline training does, instead of writing NaN weights to its ladder.
    from d4rl_lite.training.loop import DivergenceError

    cfg = tiny_behavior_config(total_steps=1000)
    cfg.sac.critic_lr = cfg.sac.actor_lr = 1e30
    with pytest.raises(DivergenceError, match="training diverged: .* at step 500"):
        train_behavior("hopper", tmp_path / "run", cfg, log=lambda _: None)
    assert not (tmp_path / "run/ladder").exists()


def test_committed_replay_is_packed_losslessly_and_a_rerun_can_supply_it(zoo, root, tmp_path, monkeypatch):
    from d4rl_lite.datasets.builders.replay import load_replay_chunk
    from d4rl_lite.production.export import export_replay

    # Committed chunks leave out the next observations that are the next row's observation ...
    for packed in sorted((zoo / "zoo/hopper/replay").glob("chunk_*.npz")):
        assert "next_observations" not in np.load(packed).files
        original = dict(np.load(zoo / "run/replay" / packed.name))
        restored = load_replay_chunk(packed)  # ... and give back every array exactly
        assert restored.keys() == original.keys() and all(np.array_equal(restored[k], original[k]) for k in original)
    # A later run's replay replaces the committed one, up to that run's first evaluation at or above
    # the medium policy's return (D4RL: "until the policy reaches medium"); the policies stay; the
    # card says where it came from. The re-run's curve is rewritten so that this happens at a known step.
    shutil.copytree(zoo / "zoo", tmp_path / "zoo2")
    rerun = tmp_path / "rerun"
    shutil.copytree(zoo / "run", rerun)
    medium_return = json.loads((tmp_path / "zoo2/hopper/card.json").read_text())["medium"]["return_mean_100"]
    lines = (rerun / "curve.csv").read_text().splitlines()
    column = lines[0].split(",").index("eval_sto_mean")
    steps = [int(line.split(",")[0]) for line in lines[1:]]
    reached = steps[-2]

    def write_curve(reached_at):
        rows = [line.split(",") for line in lines[1:]]
        for row in rows:
            row[column] = str(medium_return + (1.0 if int(row[0]) >= reached_at else -1.0))
        (rerun / "curve.csv").write_text("\n".join([lines[0]] + [",".join(r) for r in rows]) + "\n")

    write_curve(reached)
    dest = export_replay("hopper", rerun, zoo_root=tmp_path / "zoo2")
    card = json.loads((dest / "card.json").read_text())
    assert card["training"]["replay_run"]["steps"] == reached and card["training"]["replay_to_medium_committed"]
    assert max(int(f.stem.split("_")[2]) for f in (dest / "replay").glob("chunk_*.npz")) == reached
    assert (dest / card["medium"]["file"]).read_bytes() == (zoo / "zoo/hopper" / card["medium"]["file"]).read_bytes()
    monkeypatch.setenv("D4RL_LITE_ZOO", str(tmp_path / "zoo2"))  # its manifest checks out when a builder uses it
    build_dataset("hopper-medium-replay-v0", size=None, root=root, num_envs=2)
    data = d4rl_lite.load_dataset("hopper-medium-replay-v0")
    assert data.metadata["recipe"]["source"] == "real replay buffer of the training run (a re-run, see the card)"
    assert data.metadata["recipe"]["up_to_step"] == reached and data.num_transitions == reached
    write_curve(steps[-1] + 1)  # a re-run that never reaches medium is refused, the zoo untouched
    with pytest.raises(ValueError, match="never reach the medium policy's return"):
        export_replay("hopper", rerun, zoo_root=tmp_path / "zoo2")
    assert json.loads((dest / "card.json").read_text()) == card
    with pytest.raises(ValueError, match="trained 'hopper', not walker2d"):
        export_replay("walker2d", rerun, zoo_root=tmp_path / "zoo2")
