"""MOPO: the uncertainty penalty, rollouts that end at terminals, the dynamics ensemble and its elites."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from d4rl_lite.algorithms import get_algorithm
from d4rl_lite.algorithms.mopo import choose_elites, imagined_step, in_holdout, uncertainty_penalty
from d4rl_lite.algorithms.settings import make_config
from d4rl_lite.envs.termination import TERMINATION_RULES


def mopo(obs_dim=3, act_dim=2, seed=0, **settings):
    cls = get_algorithm("mopo")
    config = make_config(cls.Config, {"hidden": (16, 16), "ensemble_size": 3, "elites": 2, "batch_size": 64, **settings})
    return cls(obs_dim, act_dim, config, device="cpu", seed=seed)


# -- the penalty, on hand-made model outputs -----------------------------------------------------------
def test_the_penalty_is_lambda_times_the_largest_norm_of_the_models_standard_deviations():
    # 3 models, one run (G = 1), 2 rows, outputs (delta s1, delta s2, r).
    mean = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]],
                         [[4.0, 5.0, 6.0], [1.0, 1.0, 2.0]],
                         [[7.0, 8.0, 9.0], [2.0, 2.0, 3.0]]]).unsqueeze(1)
    std = torch.tensor([[[1.0, 2.0, 2.0], [0.1, 0.1, 0.1]],     # norms 3 and 0.173
                        [[0.0, 0.0, 4.0], [0.3, 0.4, 0.0]],     # 4 and 0.5
                        [[1.0, 1.0, 1.0], [0.0, 0.0, 0.2]]]).unsqueeze(1)  # 1.732 and 0.2
    logvar = 2 * torch.log(std.clamp_min(1e-30))
    torch.testing.assert_close(uncertainty_penalty(logvar), torch.tensor([[4.0, 0.5]]))
    obs = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]])
    model = torch.tensor([[2, 0]])  # row 0 steps through model 2, row 1 through model 0
    for lam in (1.0, 2.5):
        next_obs, reward, penalty = imagined_step(obs, mean, logvar, model, torch.zeros(1, 2, 3), lam)
        torch.testing.assert_close(next_obs, torch.tensor([[[17.0, 28.0], [30.0, 40.0]]]))
        torch.testing.assert_close(reward, torch.tensor([[9.0 - lam * 4.0, 1.0 - lam * 0.5]]))
        torch.testing.assert_close(penalty, torch.tensor([[4.0, 0.5]]))
    # A sample is the chosen model's mean plus its standard deviation times the draw.
    _, reward, _ = imagined_step(obs, mean, logvar, model, torch.ones(1, 2, 3), 0.0)
    torch.testing.assert_close(reward, torch.tensor([[9.0 + 1.0, 1.0 + 0.1]]))


# -- rollouts end at terminals ---------------------------------------------------------------------------
class FallingModel(nn.Module):
    """Every model: the torso height falls by 0.1 per step, reward 1, (almost) no variance."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, x):
        out = torch.zeros(self.n, *x.shape[1:-1], 12)
        out[..., 0], out[..., -1] = -0.1, 1.0
        return out, torch.full_like(out, -30.0)


def test_a_rollout_never_continues_past_a_terminal_state():
    algo = mopo(11, 3, termination="hopper", rollout_batch=5, rollout_horizon=5, retain_rollouts=2, penalty=1.0)
    algo.dynamics = FallingModel(3)
    heights = [2.0, 1.04, 0.93, 0.82, 0.76]  # hopper ends once z <= 0.7: after 5 (no end), 4, 3, 2, 1 steps
    with torch.no_grad():
        algo.start_states[:, 0] = torch.tensor(heights)
    algo._rollout(available=5)
    stored = int(algo.model_filled)
    assert stored == 5 + 4 + 3 + 2 + 1
    rows = algo.model_data[:stored]
    obs_z, reward, next_z, done = rows[:, 0], rows[:, 11 + 3], rows[:, 11 + 3 + 1], rows[:, -1]
    assert (obs_z > 0.7).all()  # no transition starts from a terminal state
    assert torch.equal(done.bool(), next_z <= 0.7) and int(done.sum()) == 4  # each ending row's last step is terminal
    for z0, steps in zip(heights, (5, 4, 3, 2, 1)):  # each row's steps, in order, and none after its end
        mine = torch.isclose(obs_z.unsqueeze(1), z0 - 0.1 * torch.arange(steps).float()).any(1)
        assert int(mine.sum()) == steps
    torch.testing.assert_close(reward, torch.ones(stored), atol=1e-5, rtol=0)  # r - lambda * ~0
    assert not algo.model_data[stored:].any()  # the rest of the ring (and its spare row) untouched
    assert float(algo.rollout_length) == pytest.approx(stored / 5)


def test_the_ring_keeps_the_latest_transitions_when_it_wraps():
    algo = mopo(11, 3, termination="none", rollout_batch=4, rollout_horizon=2, retain_rollouts=1)  # holds 8
    algo.dynamics = FallingModel(3)
    with torch.no_grad():
        algo.start_states[:, 0] = torch.tensor([5.0, 6.0, 7.0, 8.0])
    algo._rollout(available=4)
    algo._rollout(available=3)  # 6 more: the ring's first 6 places are overwritten
    assert int(algo.model_filled) == 8 and int(algo.model_next) == (8 + 6) % 8
    z = algo.model_data[:8, 0]
    torch.testing.assert_close(z[:6], torch.tensor([5.0, 6.0, 7.0, 4.9, 5.9, 6.9]))
    torch.testing.assert_close(z[6:], torch.tensor([6.9, 7.9]))  # the first rollout's last two


@pytest.mark.parametrize("env_id,rule", [("Hopper-v5", "hopper"), ("Walker2d-v5", "walker2d"), ("Ant-v5", "ant")])
def test_each_termination_rule_agrees_with_its_environment(env_id, rule):
    env = gym.make(env_id)
    env.action_space.seed(0)
    seen = ends = 0
    for episode in range(30 if rule != "ant" else 2):
        env.reset(seed=episode)
        for _ in range(200):
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            assert bool(TERMINATION_RULES[rule](torch.as_tensor(obs, dtype=torch.float32))) == terminated
            seen, ends = seen + 1, ends + terminated
            if terminated or truncated:
                break
    assert seen > 100 and (ends > 10 or rule == "ant")  # random hoppers and walkers fall: both answers were checked


# -- the dynamics ensemble -------------------------------------------------------------------------
def known_batch(g, size=128):
    """s' = s + 0.1 (a1, a2, a1 a2) + 0.05 s and r = s1 - a2^2, for s ~ N(0, 1), a ~ U(-1, 1)."""
    s = torch.randn(size, 3, generator=g)
    a = torch.rand(size, 2, generator=g) * 2 - 1
    delta = 0.1 * torch.stack([a[:, 0], a[:, 1], a[:, 0] * a[:, 1]], 1) + 0.05 * s
    return {"observations": s, "actions": a, "rewards": s[:, 0] - a[:, 1] ** 2, "next_observations": s + delta,
            "terminals": torch.zeros(size)}


def test_the_dynamics_ensemble_learns_a_known_transition_and_picks_its_best_models_as_elites():
    algo = mopo(ensemble_size=5, elites=3, dynamics_hidden=(64, 64), model_train_steps=10_000, batch_size=128)
    g = torch.Generator().manual_seed(0)
    history = []
    for _ in range(1500):
        history.append({k: float(v) for k, v in algo.update(known_batch(g)).items()})
        algo.step += 1
    first, last = np.mean([h["train/model_loss"] for h in history[:20]]), np.mean([h["train/model_loss"] for h in history[-20:]])
    assert last < first - 3.0  # Gaussian NLL per output: the fit tightens the variances by orders of magnitude
    test = known_batch(torch.Generator().manual_seed(99), 2000)
    x = torch.cat([test["observations"], test["actions"]], -1)
    y = torch.cat([test["next_observations"] - test["observations"], test["rewards"].unsqueeze(-1)], -1)
    with torch.no_grad():
        mean, _ = algo._models(algo._standardise(x.unsqueeze(0)).unsqueeze(0).expand(5, 1, -1, -1))
    errors = (mean[:, 0] - y).pow(2).mean((1, 2))  # each model's mean squared error on fresh data
    assert float(errors.max()) < 0.02 * float(y.var(0).mean())
    # The elites are the models with the lowest averaged hold-out error, and that error tracks the real one.
    elites = algo.elite_index.tolist()
    assert sorted(elites) == sorted(torch.argsort(algo.holdout_error)[:3].tolist())
    assert float(algo.holdout_error.max()) < 0.05 * float(y.var(0).mean())


def test_elites_are_the_k_lowest_errors_per_run():
    errors = torch.tensor([[0.5, 0.1, 0.9, 0.3, 0.2, 0.7, 0.4],
                           [0.0, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]])
    assert [sorted(row) for row in choose_elites(errors, 5).tolist()] == [[0, 1, 3, 4, 6], [0, 3, 4, 5, 6]]


def test_the_hold_out_is_a_fixed_fifth_of_the_transitions_never_trained_on():
    g = torch.Generator().manual_seed(1)
    batch = known_batch(g, 20_000)
    held = in_holdout(batch["observations"], batch["actions"], 0.2)
    assert abs(float(held.float().mean()) - 0.2) < 0.015
    assert torch.equal(held.flip(0), in_holdout(batch["observations"].flip(0), batch["actions"].flip(0), 0.2))
    # Only held-out rows in a batch: no model loss and no input statistics from them.
    algo = mopo(model_train_steps=10)
    only_held = {k: v[held][:64] for k, v in batch.items()}
    metrics = algo.update(only_held)
    assert float(metrics["train/model_loss"]) == 0.0 and float(algo.input_count) == 0.0
    assert float(metrics["train/model_holdout_mse"]) > 0.0


# -- settings per task ------------------------------------------------------------------------------
def test_each_locomotion_task_gets_its_reference_termination_rule():
    from d4rl_lite.algorithms.settings import domain_settings

    assert [domain_settings("mopo", "locomotion", t)["termination"] for t in ("hopper", "walker2d", "ant", "halfcheetah")] == \
        ["hopper", "walker2d", "ant", "none"]
    assert domain_settings("mopo", "maze", "pointmaze-umaze") == {}  # the default, none: a continuing task
    with pytest.raises(ValueError, match="termination must be one of none, hopper, walker2d, ant"):
        mopo(termination="cheetah")
    with pytest.raises(ValueError, match="elites \\(6\\) cannot exceed ensemble_size \\(3\\)"):
        mopo(elites=6)


def test_a_hopper_run_ends_its_rollouts_with_hoppers_rule(built_hopper, tmp_path):
    import d4rl_lite
    from d4rl_lite.training.offline import TrainConfig, train

    data = d4rl_lite.load_dataset(built_hopper)
    tc = TrainConfig(steps=30, seed=0, device="cpu", log_every=10, eval_every=30, eval_episodes=1, checkpoint_every=10)
    record = train("mopo", data, tc, {"hidden": (16, 16), "model_train_steps": 10, "rollout_every": 10,
                                      "rollout_batch": 64, "batch_size": 32}, run_dir=tmp_path / "run")
    assert record["domain_settings"] == {"termination": "hopper"} and record["algo"]["termination"] == "hopper"
    assert math.isfinite(record["final"]["eval/return_mean"])


def test_the_plan_times_model_fitting_rollouts_and_sac_updates_each_for_its_share_of_the_run(tmp_path):
    import json

    from d4rl_lite.benchmark.plan import plan_suite
    from d4rl_lite.benchmark.suites import Suite

    cls = get_algorithm("mopo")
    cfg = make_config(cls.Config, {"model_train_steps": 30, "rollout_every": 20, "batch_size": 256, "rollout_batch": 256})
    # (step timed from, updates like it, longest window): fitting, rollouts at 30, 50, 70, 90 (one timed), SAC
    assert cls.cost_phases(cfg, 0, 100) == ((0, 30, 30), (30, 4, 1), (31, 66, 19))
    assert cls.cost_phases(cfg, 0, 20) == ((0, 20, 20),)  # a run that never gets past fitting its models
    assert cls.cost_phases(cfg, 100, 200) == ((110, 5, 1), (111, 95, 19))  # fine-tuning after 100 offline updates
    assert cls.cost_phases(cfg, 35, 40) == ((35, 5, 5),)  # SAC updates between two rollouts
    # The rollout timed is the first whose 50,000 start states were all seen (at 256 a step: step 195 on).
    full = make_config(cls.Config, {"model_train_steps": 0, "rollout_every": 1000, "rollout_batch": 50_000})
    assert cls.cost_phases(full, 0, 150_000)[0] == (1000, 150, 1)

    def projected(rollout_batch):
        spec = {"name": "mopo_plan", "algorithms": ["mopo"], "datasets": {"hopper-random-v0": {}}, "seeds": [0],
                "steps": 600, "eval_every": 600, "eval_episodes": 1,
                "settings": {"all": {"hidden": [32, 32], "batch_size": 64},
                             "mopo": {"dynamics_hidden": [32, 32], "model_train_steps": 500, "rollout_every": 1,
                                      "rollout_batch": rollout_batch, "retain_rollouts": 1}}}
        path = tmp_path / f"plan_{rollout_batch}.json"
        path.write_text(json.dumps(spec))
        (cost,), _ = plan_suite(Suite.load(path), workers=1, population=True, device="cpu")
        return cost.update_s

    # A rollout after every one of the last 100 updates, each from the 32,000-38,400 states seen by then (not
    # 100): they cost far more than the 600 updates themselves, and the plan counts them.
    big, small = projected(50_000), projected(100)
    assert big > 3 * small
