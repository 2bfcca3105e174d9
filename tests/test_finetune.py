"""Offline-to-online fine-tuning: exact resume (kill -9 included), the buffer's sampling rule, populations
equal to solo runs, refused parents, the behaviour model's likelihoods, the CLI verb."""

import json
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

import d4rl_lite
from d4rl_lite.algorithms import get_algorithm
from d4rl_lite.cli import main
from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.files import load_state, read_record
from d4rl_lite.training.data import prepare_data
from d4rl_lite.training.finetune import finetune, finetune_population
from d4rl_lite.training.finetune_experience import Mix, MixedReplay, OnlineMembers
from d4rl_lite.training.logging import read_log
from d4rl_lite.training.offline import TrainConfig, train

DATASET = "hopper-random-v0"
TINY = {"actor_hidden": (32, 32), "critic_hidden": (32, 32), "batch_size": 64}
SMALL = dict(device="cpu", log_every=50, eval_every=150, eval_episodes=1, checkpoint_every=50)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune_data")
    build_dataset(DATASET, size=3000, seed=0, root=root, num_envs=4)
    return root


@pytest.fixture(scope="session")
def parents(data_root, tmp_path_factory):
    """Finished tiny offline runs: TD3+BC seeds 1 and 2, BEAR seed 1 (past its warm-up)."""
    base = tmp_path_factory.mktemp("finetune_parents")
    dataset = d4rl_lite.load_dataset(DATASET, root=data_root)
    tc = dict(device="cpu", log_every=50, eval_every=100, eval_episodes=1, checkpoint_every=50)
    for seed in (1, 2):
        train("td3_bc", dataset, TrainConfig(steps=100, seed=seed, **tc), TINY, run_dir=base / f"td3_bc_{seed}")
    bear = {**TINY, "vae_hidden": (32, 32), "warmup_steps": 20, "act_samples": 5}
    train("bear", dataset, TrainConfig(steps=100, seed=1, **tc), bear, run_dir=base / "bear_1")
    return base


def _weights(run):
    state = load_state(run / "checkpoint.safetensors")
    out = {}

    def walk(obj, prefix):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{prefix}{k}.")
        elif isinstance(obj, torch.Tensor):
            out[prefix] = obj

    walk(state["algo"], "")
    return out


def _log(run):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_log(run / "log.jsonl")]


def test_a_resumed_population_ends_where_an_uninterrupted_one_ends(parents, data_root, tmp_path):
    runs = [parents / "td3_bc_1", parents / "td3_bc_2"]
    straight = [tmp_path / "a1", tmp_path / "a2"]
    resumed = [tmp_path / "b1", tmp_path / "b2"]
    finetune_population(runs, TrainConfig(steps=300, **SMALL), Mix(), straight, root=data_root)
    finetune_population(runs, TrainConfig(steps=150, **SMALL), Mix(), resumed, root=data_root)
    mid = load_state(resumed[0] / "checkpoint.safetensors")["extra"]
    assert mid["episode_start"] < 150  # the checkpoint falls inside an episode: resume re-steps it
    finetune_population(runs, TrainConfig(steps=300, **SMALL), Mix(), resumed, root=data_root)
    for a, b in zip(straight, resumed):
        wa, wb = _weights(a), _weights(b)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
        assert _log(a) == _log(b)
        ea, eb = load_state(a / "checkpoint.safetensors")["extra"], load_state(b / "checkpoint.safetensors")["extra"]
        assert all(torch.equal(ea["online"][k], eb["online"][k]) for k in ea["online"])


def test_a_killed_finetune_resumes_exactly_from_the_command_line(parents, data_root, tmp_path):
    parent = parents / "td3_bc_1"
    base = ["d4rl-lite", "finetune", str(parent), "--env-steps", "1200", "--device", "cpu", "--log-every", "50",
            "--eval-every", "600", "--eval-episodes", "1", "--checkpoint-every", "100", "--quiet", "--root", str(data_root)]
    straight = subprocess.run(base + ["--run-dir", str(tmp_path / "a")], capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen(base + ["--run-dir", str(tmp_path / "b")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "b" / "checkpoint.safetensors"
    deadline, seen, step = time.time() + 300, None, 0
    while step < 100 and time.time() < deadline:
        time.sleep(0.02)
        stamp = ckpt.stat().st_mtime_ns if ckpt.exists() else None
        if stamp != seen:
            seen, step = stamp, load_state(ckpt)["step"] if stamp else 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_state(ckpt)["step"]
    assert 100 <= killed_at < 1200
    resumed = subprocess.run(base + ["--run-dir", str(tmp_path / "b")], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _log(tmp_path / "a") == _log(tmp_path / "b")
    # The result: a curve over env steps from the parent's offline score, which it records.
    result = read_record(tmp_path / "a" / "result.json")
    offline = read_record(parent / "result.json")["final"]
    assert result["finetune"]["offline_final"] == offline and result["steps"] == 1200
    assert [p["step"] for p in result["curve"]] == [0, 600, 1200]
    assert result["curve"][0]["eval/normalized_score"] == offline["eval/normalized_score"]
    assert "offline -> " in straight.stdout and "after 1,200 env steps" in straight.stdout


@pytest.mark.parametrize("mix", [Mix("uniform"), Mix("online_fraction", 0.3)], ids=["uniform", "online_fraction"])
def test_batches_mix_offline_and_online_data_by_the_documented_rule(data_root, mix):
    dataset = d4rl_lite.load_dataset(DATASET, root=data_root)
    cls = get_algorithm("iql")  # states and rewards normalized: online rows must come out in the same units
    algo = cls.population(11, 3, [cls.Config(**{**TINY, "batch_size": 100})], [0], device="cpu")
    data, _, rewards = prepare_data(dataset, algo)
    replay = MixedReplay(data, algo, rewards, 1000, mix, 100)
    gen = torch.Generator().manual_seed(0)
    online = OnlineMembers(dataset_task(dataset), algo, replay, [0], [gen])
    online.start()
    for step in range(1000):
        online.next_batch(step)
    online.stepper.close()
    raw = replay.online
    as_trained = ((raw["observations"][0] - algo.obs_mean[0]) / algo.obs_std[0]).numpy()
    index = {row.tobytes(): i for i, row in enumerate(as_trained)}
    shares = []
    for _ in range(200):
        batch = replay.sample([gen])
        rows = batch["observations"][0].numpy()
        hits = [index.get(r.tobytes()) for r in rows]
        for i, r in zip(hits, batch["rewards"][0]):
            if i is not None:  # an online row: its reward in the trained units too
                assert float(r) == pytest.approx(float(raw["rewards"][0, i]) * rewards.multiplier + rewards.bias, rel=1e-6)
        shares.append(sum(h is not None for h in hits) / len(hits))
    if mix.sampling == "uniform":  # every transition of the union equally likely
        assert np.mean(shares) == pytest.approx(1000 / (3000 + 1000), abs=0.02)
    else:  # a fixed fraction of every batch
        assert set(shares) == {0.3}


def dataset_task(dataset):
    from d4rl_lite.tasks import get_task

    return get_task(dataset.metadata["task"])


def test_a_population_fine_tunes_each_member_in_its_own_env_as_its_solo_run(parents, data_root, tmp_path):
    runs = [parents / "td3_bc_1", parents / "td3_bc_2"]
    tc = TrainConfig(steps=200, **SMALL)
    pop = finetune_population(runs, tc, Mix("online_fraction", 0.5), [tmp_path / "p1", tmp_path / "p2"], root=data_root)
    solo = [finetune(r, tc, Mix("online_fraction", 0.5), tmp_path / f"s{i}", root=data_root) for i, r in enumerate(runs)]
    for p, s in zip(["p1", "p2"], ["s0", "s1"]):
        wp, ws = _weights(tmp_path / p), _weights(tmp_path / s)
        assert all(torch.equal(wp[k], ws[k]) for k in wp)  # bit for bit on CPU
        ep = load_state(tmp_path / p / "checkpoint.safetensors")["extra"]["online"]
        es = load_state(tmp_path / s / "checkpoint.safetensors")["extra"]["online"]
        assert all(torch.equal(ep[k], es[k]) for k in ep)
    one, two = (load_state(tmp_path / p / "checkpoint.safetensors")["extra"]["online"]["observations"] for p in ("p1", "p2"))
    assert not torch.equal(one, two)  # each member stepped its own env copy (its own episodes' seeds)
    assert [r["final"] for r in pop] == [r["final"] for r in solo]


def _refusal(capsys, args):
    code = main(["finetune", *map(str, args), "--env-steps", "50", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def test_bad_parents_are_refused_in_one_line(parents, data_root, tmp_path, capsys):
    good = tmp_path / "good"
    shutil.copytree(parents / "td3_bc_1", good)
    root = ["--root", data_root]

    corrupt = tmp_path / "corrupt"
    shutil.copytree(good, corrupt)
    blob = bytearray((corrupt / "checkpoint.safetensors").read_bytes())
    blob[-10] ^= 0xFF
    (corrupt / "checkpoint.safetensors").write_bytes(bytes(blob))
    assert "checksum mismatch" in _refusal(capsys, [corrupt, *root])

    foreign = tmp_path / "foreign"  # another run's (valid) checkpoint in this run's directory
    shutil.copytree(good, foreign)
    shutil.copy(parents / "td3_bc_2" / "checkpoint.safetensors", foreign / "checkpoint.safetensors")
    assert "belongs to another run" in _refusal(capsys, [foreign, *root])

    unfinished = tmp_path / "unfinished"
    shutil.copytree(good, unfinished)
    (unfinished / "result.json").unlink()
    assert "is not a finished run" in _refusal(capsys, [unfinished, *root])

    changed = tmp_path / "changed_root"  # the same dataset name, built again with other data
    build_dataset(DATASET, size=2000, seed=5, root=changed, num_envs=4)
    assert "changed since" in _refusal(capsys, [good, "--root", changed])

    assert "are not members of one population" in _refusal(capsys, [good, parents / "bear_1", *root])
    assert not list(tmp_path.glob("*__finetune"))  # nothing was written for a refused parent


def test_bear_logs_its_behaviour_models_likelihood_on_offline_and_online_data(parents, data_root, tmp_path):
    finetune(parents / "bear_1", TrainConfig(steps=100, **SMALL), run_dir=tmp_path / "ft", root=data_root)
    lines = [r for r in read_log(tmp_path / "ft" / "log.jsonl") if "train/critic_loss" in r]
    assert [r["step"] for r in lines] == [50, 100]
    for r in lines:
        assert np.isfinite(r["finetune/behavior_loglik_offline"]) and np.isfinite(r["finetune/behavior_loglik_online"])
        assert r["finetune/behavior_loglik_offline"] != r["finetune/behavior_loglik_online"]
    assert "online/episode_return" in lines[0]


def test_online_settings_are_applied_and_recorded(data_root, tmp_path):
    dataset = d4rl_lite.load_dataset(DATASET, root=data_root)
    tc = dict(device="cpu", log_every=25, eval_every=50, eval_episodes=1, checkpoint_every=25)
    train("iql", dataset, TrainConfig(steps=50, seed=0, **tc), {**TINY, "actor_lr_schedule_steps": 50}, run_dir=tmp_path / "iql")
    offline_lr = load_state(tmp_path / "iql" / "checkpoint.safetensors")["algo"]["actor_opt"]["param_groups"][0]["lr"]
    assert offline_lr == pytest.approx(0.0, abs=1e-12)  # the end of its cosine decay
    record = finetune(tmp_path / "iql", TrainConfig(steps=25, **tc), run_dir=tmp_path / "ft", root=data_root)
    assert record["finetune"]["online_settings"] == {"actor_lr_decay": False} and record["algo"]["actor_lr_decay"] is False
    online_lr = load_state(tmp_path / "ft" / "checkpoint.safetensors")["algo"]["actor_opt"]["param_groups"][0]["lr"]
    assert online_lr == record["algo"]["actor_lr"]
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert config["finetune"]["parent_step"] == 50 and config["train"]["steps"] == 25


def test_a_finetune_run_logs_its_online_curve_to_its_own_offline_wandb_run(parents, data_root, tmp_path, monkeypatch):
    from wandb_reader import read_wandb_offline

    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run = tmp_path / "tuned"
    finetune(parents / "td3_bc_1", TrainConfig(steps=100, wandb=True, **SMALL), run_dir=run, root=data_root)
    (offline,) = run.glob("wandb/offline-run-*")
    logged = [h for h in read_wandb_offline(offline) if "train/critic_loss" in h]
    mine = [r for r in read_log(run / "log.jsonl") if "train/critic_loss" in r]
    assert len(mine) == 2 and [h["train/critic_loss"] for h in logged] == pytest.approx([r["train/critic_loss"] for r in mine])


def test_ope_of_a_finetune_run_names_it_as_its_directory(parents, data_root, tmp_path, capsys):
    tuned = tmp_path / "td3_bc__hopper-random-v0__seed1__finetune"
    finetune(parents / "td3_bc_1", TrainConfig(steps=100, **SMALL), Mix(), tuned, root=data_root)
    assert main(["ope", str(tuned), "--steps", "50", "--set", "hidden=32,32", "--root", str(data_root), "--quiet"]) == 0
    from d4rl_lite.benchmark.ope_file import read_ope

    (entry,) = read_ope(tuned)["runs"]
    assert entry["run_id"] == "td3_bc__hopper-random-v0__seed1__finetune"  # not its parent's name
