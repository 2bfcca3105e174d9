"""Populations (member-batched networks): a population computes what each member's solo network computes."""

import json

import numpy as np
import pytest
import torch

from d4rl_lite.nets import DeterministicActor, GaussianPolicy, QEnsemble, TanhGaussianPolicy
from d4rl_lite.nets.members import MemberGenerators, member_tensor, stack_members, stack_tensors


def solos(factory, seeds):
    out = []
    for s in seeds:
        torch.manual_seed(s)
        out.append(factory())
    return out


@pytest.mark.parametrize("factory", [lambda: DeterministicActor(5, 3, (16, 8)), lambda: GaussianPolicy(5, 3, (16,))])
def test_a_stacked_network_computes_each_members_output(factory):
    nets = solos(factory, [0, 1, 2])
    pop = stack_members(nets)
    obs = torch.randn(3, 7, 5)
    out = pop(obs) if not isinstance(pop, GaussianPolicy) else pop.distribution(obs).stddev
    for m, net in enumerate(nets):
        want = net(obs[m]) if not isinstance(net, GaussianPolicy) else net.distribution(obs[m]).stddev
        torch.testing.assert_close(out[m], want, rtol=1e-6, atol=1e-6)


def test_stacked_critics_give_critic_major_q_values():
    nets = solos(lambda: QEnsemble(4, 2, (8, 8), num_q=2), [3, 4, 5])
    pop = stack_members(nets)
    obs, act = torch.randn(3, 6, 4), torch.randn(3, 6, 2)
    q = pop(obs, act)
    assert q.shape == (2, 3, 6)
    for m, net in enumerate(nets):
        torch.testing.assert_close(q[:, m], net(obs[m], act[m]), rtol=1e-6, atol=1e-6)


def test_member_tensors_round_trip_exactly():
    nets = solos(lambda: QEnsemble(4, 2, (8,), num_q=2), [0, 1])
    nets += solos(lambda: TanhGaussianPolicy(4, 2, (8,)), [0, 1])
    for group in (nets[:2], nets[2:]):
        pop = stack_members(group)
        state = pop.state_dict()
        for m, net in enumerate(group):
            for key, value in net.state_dict().items():
                assert torch.equal(member_tensor(state[key], pop.member_kinds[key], m, len(group)), value), key
        for key in state:
            kind = pop.member_kinds[key]
            assert torch.equal(stack_tensors([n.state_dict()[key] for n in group], kind), state[key])


def test_each_member_draws_its_solo_stream():
    states = []
    for seed in (7, 8):
        torch.manual_seed(seed)
        states.append(torch.get_rng_state())
    draws = MemberGenerators(states, torch.device("cpu")).randn((2, 4, 3), like=torch.zeros(()))
    for m, seed in enumerate((7, 8)):
        torch.manual_seed(seed)
        assert torch.equal(draws[m], torch.randn(4, 3))


# -- algorithms: each member of a population is the solo run of its seed --------------------------
def _flat(state, prefix=""):
    out = {}
    if isinstance(state, dict):
        for k, v in state.items():
            out.update(_flat(v, f"{prefix}/{k}"))
    elif isinstance(state, torch.Tensor):
        out[prefix] = state
    return out


def train_solo_and_population(name, dataset, seeds, steps, tmp_path, **settings):
    """(each seed's checkpointed state after ``steps`` updates of ``train``, each member's checkpointed
    state after the same updates as one population)."""
    from d4rl_lite.files import load_state
    from d4rl_lite.training.run_files import CHECKPOINT
    from d4rl_lite.training.offline import TrainConfig, train, train_population

    solo_states = []
    for seed in seeds:
        tc = TrainConfig(steps=steps, seed=seed, device="cpu", log_every=steps, eval_every=steps, eval_episodes=1,
                         checkpoint_every=steps)
        train(name, dataset, tc, settings, run_dir=tmp_path / f"{name}-seed{seed}")
        solo_states.append(load_state(tmp_path / f"{name}-seed{seed}" / CHECKPOINT)["algo"])
    train_population(name, dataset, tc, settings, seeds, [tmp_path / f"pop-seed{s}" for s in seeds])
    return solo_states, [load_state(tmp_path / f"pop-seed{s}" / CHECKPOINT)["algo"] for s in seeds]


@pytest.fixture(scope="module")
def maze_root(tmp_path_factory):
    from d4rl_lite.datasets.builders import build_dataset

    root = tmp_path_factory.mktemp("population_data")
    build_dataset("pointmaze-umaze-dense-expert-v0", size=3000, seed=0, root=root, num_envs=4)
    return root


@pytest.fixture(scope="module")
def maze_data(maze_root):
    import d4rl_lite

    return d4rl_lite.load_dataset("pointmaze-umaze-dense-expert-v0", root=maze_root)


# Settings that take every branch within 200 updates (warm-ups end at step 50; CQL's Lagrange form).
POPULATION_CASES = {"bc": {}, "td3_bc": {}, "iql": {}, "awac": {}, "sac": {}, "cql": {"warmup_steps": 50},
                    "cql-lagrange": {"warmup_steps": 50, "lagrange": True},
                    "cql-mean-target": {"warmup_steps": 50, "target_action": "mean"},
                    "brac_p": {"behavior_pretrain_steps": 50, "warmup_steps": 50},
                    "brac_v": {"behavior_pretrain_steps": 50, "warmup_steps": 50},
                    "bcq": {"vae_hidden": (32, 32)},
                    "bear": {"warmup_steps": 50},
                    "crr": {}, "crr-binary-max": {"filter": "binary", "advantage": "max", "num_critics": 2},
                    "sac_n": {}, "sac_n-rem": {"target_aggregation": "rem", "num_critics": 5}, "edac": {},
                    "mopo": {"model_train_steps": 50, "rollout_every": 50, "rollout_batch": 128}}
# With torch's multi-tensor (foreach) Adam (algorithms.base.adam) every member is bit for bit its solo run here (0.0 after 200
# updates). Fused Adam rounds the vectorized tail of a tensor differently by the tensor's size, so
# stacked and solo weights drifted apart by 3e-8, which BEAR's VAE amplified to 1.7e-2.


@pytest.mark.parametrize("case", sorted(POPULATION_CASES))
def test_each_member_ends_where_its_solo_run_ends(case, maze_data, tmp_path):
    name = case.split("-")[0]
    solo, members = train_solo_and_population(name, maze_data, [0, 1, 2], 200, tmp_path, hidden=(32, 32), batch_size=64,
                                              **POPULATION_CASES[case])
    worst = {"weights": 0.0, "optimizer moments": 0.0}
    for s, p in zip(solo, members):
        fs, fp = _flat(s), _flat(p)
        assert fs.keys() == fp.keys()
        for k in fs:
            assert fs[k].shape == fp[k].shape, k
            if fs[k].is_floating_point():
                part = "optimizer moments" if "_opt/" in k else "weights"
                worst[part] = max(worst[part], float((fs[k] - fp[k]).abs().max()))
    print(f"{case}: largest difference between a member and its solo run after 200 updates: {worst}")
    assert worst["weights"] <= 1e-4


def test_a_resumed_population_ends_with_the_weights_of_an_uninterrupted_one(maze_data, tmp_path):
    from d4rl_lite.files import load_state
    from d4rl_lite.training.run_files import CHECKPOINT
    from d4rl_lite.training.offline import TrainConfig, train_population

    settings = {"hidden": (32, 32), "batch_size": 64, "warmup_steps": 10}
    config = dict(seed=0, device="cpu", log_every=4, eval_every=20, eval_episodes=1, checkpoint_every=4)
    straight = [tmp_path / f"straight{s}" for s in (3, 5)]
    resumed = [tmp_path / f"resumed{s}" for s in (3, 5)]
    train_population("cql", maze_data, TrainConfig(steps=20, **config), settings, [3, 5], straight)
    train_population("cql", maze_data, TrainConfig(steps=12, **config), settings, [3, 5], resumed)
    records = train_population("cql", maze_data, TrainConfig(steps=20, **config), settings, [3, 5], resumed)
    assert [r["train"]["seed"] for r in records] == [3, 5] and all(r["steps"] == 20 for r in records)
    for a, b in zip(straight, resumed):
        fa, fb = _flat(load_state(a / CHECKPOINT)["algo"]), _flat(load_state(b / CHECKPOINT)["algo"])
        assert all(torch.equal(fa[k], fb[k]) for k in fa)


def test_members_at_different_steps_continue_separately_and_end_as_their_solo_runs(maze_data, tmp_path, capsys):
    # Seed 1 trained alone for 10 steps (or a kill fell between two members' checkpoint writes).
    from d4rl_lite.files import load_state
    from d4rl_lite.training.run_files import CHECKPOINT
    from d4rl_lite.training.offline import TrainConfig, train, train_population

    config = dict(device="cpu", log_every=5, eval_every=10, eval_episodes=1, checkpoint_every=5)
    settings = {"hidden": (16,)}
    train("bc", maze_data, TrainConfig(steps=10, seed=1, **config), settings, run_dir=tmp_path / "a")
    records = train_population("bc", maze_data, TrainConfig(steps=20, **config), settings, [1, 2],
                               [tmp_path / "a", tmp_path / "b"])
    assert "stopped at different steps (seed 1: step 10, seed 2: step 0)" in capsys.readouterr().err
    assert [r["steps"] for r in records] == [20, 20] and [r["train"]["seed"] for r in records] == [1, 2]
    for seed, run in ((1, tmp_path / "a"), (2, tmp_path / "b")):
        train("bc", maze_data, TrainConfig(steps=20, seed=seed, **config), settings, run_dir=tmp_path / f"solo{seed}")
        want, got = _flat(load_state(tmp_path / f"solo{seed}" / CHECKPOINT)["algo"]), _flat(load_state(run / CHECKPOINT)["algo"])
        assert all(torch.equal(want[k], got[k]) for k in want)


def test_bf16_runs_the_matrix_products_in_bf16_and_keeps_the_rest_fp32():
    from d4rl_lite.nets import EnsembleLinear

    layer = EnsembleLinear(64, 32, 3)
    x = torch.randn(3, 16, 64)
    exact = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = layer(x)
    assert cast.dtype == torch.float32 and layer.weight.dtype == torch.float32
    rounded = torch.baddbmm(layer.bias, x.bfloat16().float(), layer.weight.bfloat16().float())
    assert not torch.equal(cast, exact)  # the product really ran on bf16 inputs ...
    torch.testing.assert_close(cast, rounded, rtol=1e-2, atol=1e-2)  # ... and nothing else changed


def test_bf16_is_part_of_a_runs_identity(maze_data, tmp_path):
    from d4rl_lite.files import read_record
    from d4rl_lite.training.offline import TrainConfig, train

    config = dict(steps=10, seed=0, device="cpu", log_every=5, eval_every=10, eval_episodes=1, checkpoint_every=5)
    record = train("td3_bc", maze_data, TrainConfig(precision="bf16", **config), {"hidden": (16,)}, run_dir=tmp_path / "r")
    assert record["train"]["precision"] == "bf16" and read_record(tmp_path / "r/config.json")["train"]["precision"] == "bf16"
    with pytest.raises(ValueError, match=r"another configuration \(train.precision: bf16 -> fp32\)"):
        train("td3_bc", maze_data, TrainConfig(**config), {"hidden": (16,)}, run_dir=tmp_path / "r")
    with pytest.raises(ValueError, match="precision must be fp32 or bf16"):
        train("td3_bc", maze_data, TrainConfig(precision="fp16", **config), {}, run_dir=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_a_run_recorded_before_a_setting_existed_resumes_at_its_default(maze_data, tmp_path):
    """CQL's target_action came after CQL runs were recorded: at its default (their behaviour) it is
    not part of the identity, so such a run resumes; another value is another run."""
    from d4rl_lite.files import read_record, write_record
    from d4rl_lite.training.offline import TrainConfig, train
    from d4rl_lite.training.run_files import run_identity

    config = dict(seed=0, device="cpu", log_every=5, eval_every=5, eval_episodes=1, checkpoint_every=5)
    settings = {"hidden": (16,), "warmup_steps": 0, "num_sampled_actions": 2}
    train("cql", maze_data, TrainConfig(steps=5, **config), settings, run_dir=tmp_path / "r")
    path = tmp_path / "r/config.json"
    recorded = read_record(path, "run config")
    older = {**recorded, "algo": {k: v for k, v in recorded["algo"].items() if k != "target_action"}}
    older.pop("checksum", None)
    assert recorded["algo"]["target_action"] == "sampled" and run_identity(older) == run_identity(recorded)
    write_record(path, older)  # as a run written before the setting existed
    with pytest.raises(ValueError, match=r"another configuration \(algo.target_action: \(none\) -> mean\)"):
        train("cql", maze_data, TrainConfig(steps=10, **config), {**settings, "target_action": "mean"},
              run_dir=tmp_path / "r")
    assert train("cql", maze_data, TrainConfig(steps=10, **config), settings, run_dir=tmp_path / "r")["steps"] == 10


def test_a_populations_evaluation_gives_each_member_its_own_results(maze_data):
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import make_config
    from d4rl_lite.evaluation.evaluate import evaluate, evaluate_population
    from d4rl_lite.tasks import get_task

    cls = get_algorithm("td3_bc")
    task = get_task(maze_data.metadata["task"])
    pop = cls.population(task.observation_dim, task.action_dim, make_config(cls.Config, {"hidden": (16,)}), [0, 1, 2],
                         device="cpu")
    calls = []
    act = pop.act
    pop.act = lambda obs: calls.append(obs.shape) or act(obs)  # count the policy calls and their shapes
    together = evaluate_population(task, pop, episodes=3)
    assert calls and all(shape[:2] == (3, 3) for shape in calls)  # (members, copies per member, obs)
    assert len(calls) == max(int(r.lengths.max()) for r in together)  # one call per step for everyone
    pop.act = act
    for m, result in enumerate(together):
        alone = evaluate(task, pop.member_policy(m), episodes=3)
        assert np.array_equal(result.returns, alone.returns) and np.array_equal(result.successes, alone.successes)


def test_diverging_members_stop_and_the_others_finish_as_their_solo_runs(maze_data, tmp_path, monkeypatch, capsys):
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.benchmark.results import collect_results
    from d4rl_lite.files import load_state, read_record
    from d4rl_lite.training.offline import TrainConfig, train, train_population
    from d4rl_lite.training.run_files import CHECKPOINT

    bc = get_algorithm("bc")
    update = bc.update

    def update_that_breaks_members_1_and_3(self, batch):  # fault injection
        if self.members == 4 and self.step == 25:  # member 1: its next loss is NaN (seen at the log, step 30)
            with torch.no_grad():
                self.actor.net[0].weight[1] = float("nan")
        metrics = update(self, batch)
        if self.members >= 3 and self.step == 29:  # member 3: finite metrics at step 30, NaN weights after it
            with torch.no_grad():
                self.actor.net[0].weight[-1] = float("nan")
        return metrics

    monkeypatch.setattr(bc, "update", update_that_breaks_members_1_and_3)
    config = dict(steps=60, device="cpu", log_every=10, eval_every=30, eval_episodes=1, checkpoint_every=10)
    seeds = [0, 1, 2, 3]
    runs = [tmp_path / f"bc__{maze_data.metadata['name']}__seed{s}" for s in seeds]
    records = train_population("bc", maze_data, TrainConfig(**config), {"hidden": (16,)}, seeds, runs)
    err = capsys.readouterr().err
    assert "member seed 1: train/actor_loss = nan at step 30" in err and "member seed 3: non-finite weights" in err
    assert [r["steps"] for r in records] == [60, 30, 60, 30] and "diverged" in records[1] and "diverged" in records[3]
    for lost in (1, 3):
        assert read_record(runs[lost] / "diverged.json", "divergence record")["steps"] == 30
        assert load_state(runs[lost] / CHECKPOINT)["step"] == 20  # its last good checkpoint
        assert not (runs[lost] / "result.json").exists()
    refused = collect_results(tmp_path).refused
    assert len(refused) == 2 and any("member seed 1: train/actor_loss = nan" in r.reason for r in refused)
    monkeypatch.setattr(bc, "update", update)
    for seed in (0, 2):  # the others: as if trained alone, log lines included
        solo = tmp_path / f"solo{seed}"
        train("bc", maze_data, TrainConfig(seed=seed, **config), {"hidden": (16,)}, run_dir=solo)
        want, got = _flat(load_state(solo / CHECKPOINT)["algo"]), _flat(load_state(runs[seed] / CHECKPOINT)["algo"])
        assert max(float((want[k] - got[k]).abs().max()) for k in want if want[k].is_floating_point()) <= 1e-5
        steps = [[row["step"] for row in map(json.loads, (run / "log.jsonl").read_text().splitlines())]
                 for run in (solo, runs[seed])]
        assert steps[0] == steps[1]


def test_acting_draws_come_from_each_members_own_stream():
    # BCQ acts on VAE samples: member m of a population must draw what its solo run draws.
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import make_config

    cls = get_algorithm("bcq")
    cfg = make_config(cls.Config, {"hidden": (16,), "act_samples": 5})
    pop = cls.population(6, 2, cfg, [0, 1, 2], device="cpu")
    obs = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    actions = pop.act(np.repeat(obs[None], 3, axis=0))
    for m, seed in enumerate((0, 1, 2)):
        solo = cls.population(6, 2, cfg, [seed], device="cpu")
        np.testing.assert_allclose(actions[m], solo.act(obs[None])[0], atol=1e-5)
        assert torch.equal(pop.eval_noise.generators[m].get_state(), solo.eval_noise.generators[0].get_state())


def test_each_member_logs_its_own_offline_wandb_run(maze_data, tmp_path, monkeypatch):
    from wandb_reader import read_wandb_offline

    from d4rl_lite.training.offline import TrainConfig, train_population
    from d4rl_lite.training.logging import read_log

    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    tc = TrainConfig(steps=20, device="cpu", log_every=10, eval_every=20, eval_episodes=1, checkpoint_every=10, wandb=True)
    runs = [tmp_path / "m0", tmp_path / "m1"]
    train_population("td3_bc", maze_data, tc, {"hidden": (16,)}, [0, 1], runs)
    for run in runs:
        (offline,) = run.glob("wandb/offline-run-*")
        logged = [h for h in read_wandb_offline(offline) if "train/critic_loss" in h]
        mine = [r for r in read_log(run / "log.jsonl") if "train/critic_loss" in r]
        assert [h["train/critic_loss"] for h in logged] == pytest.approx([r["train/critic_loss"] for r in mine])
    # Two runs, not one run logged twice: their losses differ.
    first, second = (read_log(run / "log.jsonl")[0]["train/critic_loss"] for run in runs)
    assert first != second


# -- sweeps: members that differ in a scalar setting ------------------------------------------------
# Two values of every setting an algorithm can sweep, with settings that take every branch in 40 updates.
SWEEP_CASES = {"iql": ({"expectile": 0.6, "beta": 1.0}, {"expectile": 0.9, "beta": 10.0}, {}),
               "td3_bc": ({"rl_weight": 1.0}, {"rl_weight": 5.0}, {}),
               "awac": ({"beta": 0.3}, {"beta": 3.0}, {}),
               "cql": ({"cql_weight": 1.0}, {"cql_weight": 10.0}, {"warmup_steps": 10}),
               "cql-lagrange": ({"cql_weight": 1.0, "target_action_gap": 2.0}, {"cql_weight": 5.0, "target_action_gap": 8.0},
                                {"warmup_steps": 10, "lagrange": True}),
               "bcq": ({"lmbda": 0.5}, {"lmbda": 0.9}, {"vae_hidden": (32, 32)}),
               "bear": ({"lmbda": 0.5, "mmd_threshold": 0.02}, {"lmbda": 0.9, "mmd_threshold": 0.1},
                        {"warmup_steps": 10, "vae_hidden": (32, 32)}),
               "brac_p": ({"divergence_weight": 0.1}, {"divergence_weight": 1.0},
                          {"behavior_pretrain_steps": 10, "warmup_steps": 10}),
               "brac_v": ({"divergence_weight": 0.1}, {"divergence_weight": 1.0},
                          {"behavior_pretrain_steps": 10, "warmup_steps": 10}),
               "crr": ({"beta": 0.5}, {"beta": 2.0}, {}),
               "sac_n": ({"diversity_weight": 0.0}, {"diversity_weight": 1.0}, {}),
               "edac": ({"diversity_weight": 0.5}, {"diversity_weight": 5.0}, {"target_aggregation": "mean"}),
               "mopo": ({"penalty": 0.5}, {"penalty": 2.0}, {"model_train_steps": 10, "rollout_every": 10, "rollout_batch": 128})}


def test_every_sweepable_setting_has_a_sweep_case():
    from d4rl_lite.algorithms import ALGORITHMS

    for name, cls in ALGORITHMS.items():
        covered = {key for case, (a, b, _) in SWEEP_CASES.items() if case.split("-")[0] == name for key in a}
        assert covered == set(cls.sweepable), name


@pytest.mark.parametrize("case", sorted(SWEEP_CASES))
def test_each_swept_member_ends_where_its_solo_run_with_that_value_ends(case, maze_data, tmp_path):
    from d4rl_lite.files import load_state, read_record
    from d4rl_lite.training.offline import TrainConfig, train, train_population
    from d4rl_lite.training.run_files import CHECKPOINT

    name = case.split("-")[0]
    first, second, common = SWEEP_CASES[case]
    common = {"hidden": (32, 32), "batch_size": 64, **common}
    tc = TrainConfig(steps=40, seed=4, device="cpu", log_every=40, eval_every=40, eval_episodes=1, checkpoint_every=40)
    pop = [tmp_path / "pop0", tmp_path / "pop1"]
    train_population(name, maze_data, tc, common, [4, 4], pop, member_settings=[first, second])
    worst = 0.0
    for values, run in zip((first, second), pop):
        train(name, maze_data, tc, {**common, **values}, run_dir=tmp_path / "solo")
        assert {k: read_record(run / "config.json")["algo"][k] for k in values} == values  # its own values recorded
        want, got = _flat(load_state(tmp_path / "solo" / CHECKPOINT)["algo"]), _flat(load_state(run / CHECKPOINT)["algo"])
        worst = max([worst] + [float((want[k] - got[k]).abs().max()) for k in want if want[k].is_floating_point()])
        import shutil

        shutil.rmtree(tmp_path / "solo")
    print(f"{case}: largest weight difference between a swept member and its solo run after 40 updates: {worst:.2g}")
    assert worst <= 1e-4
    # The two values really were used: the members differ.
    a, b = _flat(load_state(pop[0] / CHECKPOINT)["algo"]), _flat(load_state(pop[1] / CHECKPOINT)["algo"])
    assert any(not torch.equal(a[k], b[k]) for k in a if "actor" in k or "critic" in k)


def test_a_swept_value_that_blows_up_stops_its_member_and_the_others_finish(maze_data, tmp_path, capsys):
    from d4rl_lite.files import load_state, read_record
    from d4rl_lite.training.offline import TrainConfig, train_population
    from d4rl_lite.training.run_files import CHECKPOINT

    # divergence_weight 1e30: BRAC-v's target is -1e30 x divergence, the critic's squared error overflows.
    tc = TrainConfig(steps=60, device="cpu", log_every=10, eval_every=30, eval_episodes=1, checkpoint_every=10)
    runs = [tmp_path / "calm0", tmp_path / "blows", tmp_path / "calm1"]
    records = train_population("brac_v", maze_data, tc, {"hidden": (16,), "behavior_pretrain_steps": 10, "warmup_steps": 10},
                               [0, 0, 1], runs, member_settings=[{"divergence_weight": 0.1}, {"divergence_weight": 1e30},
                                                                 {"divergence_weight": 0.1}])
    assert "member divergence_weight=1e+30 seed 0: train/critic_loss = inf" in capsys.readouterr().err
    assert [r["steps"] for r in records] == [60, 20, 60] and "diverged" in records[1]
    assert read_record(runs[1] / "diverged.json", "divergence record")["algo"]["divergence_weight"] == 1e30
    assert load_state(runs[1] / CHECKPOINT)["step"] == 10 and not (runs[1] / "result.json").exists()
    assert all((runs[i] / "result.json").is_file() for i in (0, 2))


def test_a_sweep_refuses_what_it_cannot_vary(maze_data, tmp_path):
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import make_config
    from d4rl_lite.training.offline import TrainConfig, train_population

    tc = TrainConfig(steps=10, device="cpu", log_every=5, eval_every=10, eval_episodes=1, checkpoint_every=5)
    with pytest.raises(ValueError, match=r"actor_lr cannot differ between the members of a iql population \(it can sweep: "
                                         r"expectile, beta\)"):
        train_population("iql", maze_data, tc, {}, [0, 0], [tmp_path / "a", tmp_path / "b"],
                         member_settings=[{"actor_lr": 1e-3}, {"actor_lr": 3e-4}])
    with pytest.raises(ValueError, match="must differ; given twice: beta=5 seed 0"):
        train_population("iql", maze_data, tc, {}, [0, 0], [tmp_path / "a", tmp_path / "b"],
                         member_settings=[{"beta": "5"}, {"beta": 5.0}])
    assert not (tmp_path / "a").exists()
    # A member's config read as a plain number in update() fails loudly rather than giving every member one value.
    cls = get_algorithm("iql")
    configs = [make_config(cls.Config, {"hidden": (8,), "beta": b}) for b in (1.0, 2.0)]
    pop = cls.population(4, 2, configs, [0, 1], device="cpu")
    with pytest.raises(TypeError, match=r"setting beta differs between the members .* self.setting\('beta'"):
        pop.config.beta * 2.0


def test_the_train_command_sweeps_every_combination_with_every_seed(maze_root, tmp_path, capsys):
    from d4rl_lite.cli import main
    from d4rl_lite.files import read_record

    base = ["train", "iql", "pointmaze-umaze-dense-expert-v0", "--root", str(maze_root), "--steps", "10", "--log-every", "5",
            "--eval-every", "10", "--eval-episodes", "1", "--checkpoint-every", "5", "--device", "cpu", "--quiet",
            "--set", "hidden=8", "--run-dir", str(tmp_path / "runs")]
    assert main(base + ["--seeds", "0,1", "--sweep", "expectile=0.6,0.8", "--sweep", "beta=1,3"]) == 0
    out = capsys.readouterr().out
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 8 and "iql__pointmaze-umaze-dense-expert-v0__beta=1__expectile=0.6__seed0" in runs
    assert "iql on pointmaze-umaze-dense-expert-v0 beta=3 expectile=0.8 seed 1: final" in out
    for run in runs:
        algo = read_record(tmp_path / "runs" / run / "config.json")["algo"]
        assert f"__beta={algo['beta']:g}__expectile={algo['expectile']:g}__" in run
    # A table of the sweep keeps its members apart: one column per combination, each with its 2 seeds.
    from d4rl_lite.benchmark.results import read_results
    from d4rl_lite.benchmark.table import is_summary, score_table

    cells = {r["algorithm"]: r["seeds"] for r in score_table(read_results(tmp_path / "runs")) if r["metric"] != "data"
             and not is_summary(r)}
    assert cells == {f"iql[beta={b},expectile={e}]": 2 for b in (1.0, 3.0) for e in (0.6, 0.8)}
    # What cannot be swept, or is given twice, is one line and exit 2 before any run directory is made.
    for extra, says in ((["--sweep", "actor_lr=1e-3,3e-4"], "actor_lr cannot differ between the members"),
                        (["--sweep", "beta=1", ], "at least two distinct values"),
                        (["--sweep", "beta=1,2", "--set", "beta=3"], "beta is given by both --set and --sweep")):
        code = None
        try:
            code = main(base[:-1] + [str(tmp_path / "refused")] + extra)
        except SystemExit as e:  # argparse's own errors
            code = e.code
        err = capsys.readouterr().err
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "refused").exists()
