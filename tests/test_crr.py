"""CRR: its filters and advantage baselines against hand-computed values, and what its filtered regression learns."""

import math

import pytest
import torch

import d4rl_lite
from d4rl_lite.algorithms import get_algorithm
from d4rl_lite.algorithms.crr import advantage_baseline, filter_weights, sample_index
from d4rl_lite.algorithms.settings import make_config
from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.datasets.offline import TorchTransitions
from d4rl_lite.errors import UserInputError
from d4rl_lite.nets import QEnsemble
from d4rl_lite.training.data import prepare_data

CRR = get_algorithm("crr")


def crr(obs_dim, act_dim, seed=0, **settings):
    return CRR(obs_dim, act_dim, make_config(CRR.Config, {"hidden": (16, 16), **settings}), device="cpu", seed=seed)


def test_the_two_filters_give_the_hand_computed_weights():
    adv = torch.tensor([-1.0, 0.0, 0.5, 4.0])
    assert filter_weights(adv, "binary", 1.0, 20.0).tolist() == [0.0, 0.0, 1.0, 1.0]  # strictly positive advantage only
    exp = filter_weights(adv, "exp", 1.0, 20.0)
    torch.testing.assert_close(exp, torch.tensor([math.exp(-1.0), 1.0, math.exp(0.5), 20.0]))  # e^4 = 54.6 clipped at 20
    torch.testing.assert_close(filter_weights(adv, "exp", 2.0, 20.0),
                               torch.tensor([math.exp(-0.5), 1.0, math.exp(0.25), math.exp(2.0)]))
    # A swept beta arrives as one value per member, shaped to broadcast over the member's batch.
    swept = filter_weights(adv.expand(2, 4), "exp", torch.tensor([[1.0], [2.0]]), 20.0)
    torch.testing.assert_close(swept, torch.stack([exp, filter_weights(adv, "exp", 2.0, 20.0)]))


def test_the_two_baselines_give_the_hand_computed_advantages():
    q_data = torch.tensor([2.0, 0.0])
    q_samples = torch.tensor([[1.0, 2.0, 3.0, 6.0], [-1.0, -1.0, 0.5, -2.5]])  # m = 4 policy actions per state
    assert (q_data - advantage_baseline(q_samples, "mean")).tolist() == [-1.0, 1.0]
    assert (q_data - advantage_baseline(q_samples, "max")).tolist() == [-4.0, -0.5]


def _linear_critic(weights, bias):
    """A critic computing exactly Q(s, a) = weights . a + bias: relu(a) - relu(-a) = a through one hidden layer."""
    act_dim = len(weights)
    critic = QEnsemble(3, act_dim, (2 * act_dim,), num_q=1)
    w = torch.tensor(weights)
    with torch.no_grad():
        first, last = critic.net[0], critic.net[2]
        first.weight.zero_(), first.bias.zero_()
        first.weight[0, 3:, :act_dim] = torch.eye(act_dim)
        first.weight[0, 3:, act_dim:] = -torch.eye(act_dim)
        last.weight[0, :, 0] = torch.cat([w, -w])
        last.bias.fill_(bias)
    return critic


@pytest.mark.parametrize("how", ["mean", "max"])
def test_the_updates_advantage_samples_m_policy_actions_per_state(how):
    """CRR.advantage, which update calls, with a critic whose values are known: the baseline is the mean
    (max) of Q over action_samples actions drawn from the policy at each state, clipped to the bounds."""
    algo = crr(3, 2, advantage=how)
    algo.critic = _linear_critic([1.0, -2.0], 0.5)
    obs, act = torch.randn(5, 3), torch.rand(5, 2) * 2 - 1
    torch.manual_seed(11)
    got = algo.advantage(obs, act)

    torch.manual_seed(11)  # the same draws, by hand: N(tanh mean, std), 4 per state, clipped
    dist = algo.actor.distribution(obs)
    eps = torch.randn(5 * 4, 2)
    samples = (dist.loc.repeat_interleave(4, 0) + eps * dist.scale.repeat_interleave(4, 0)).clamp(-1, 1).view(5, 4, 2)
    q_samples = samples[..., 0] - 2.0 * samples[..., 1] + 0.5
    baseline = q_samples.mean(1) if how == "mean" else q_samples.max(1).values
    want = act[:, 0] - 2.0 * act[:, 1] + 0.5 - baseline
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_critic_weighted_acting_draws_each_candidate_by_its_softmax_probability():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    picks = [int(sample_index(probs, torch.tensor([[u]]))) for u in (0.0, 0.09, 0.1, 0.29, 0.31, 0.59, 0.61, 0.999)]
    assert picks == [0, 0, 1, 1, 2, 2, 3, 3]
    # Acting by "cwp" returns one of the policy's candidate actions: with a critic that prefers the first action
    # dimension high, the chosen action beats the candidates' average.
    algo = crr(3, 2)
    algo.critic = _linear_critic([50.0, 0.0], 0.0)
    obs = torch.randn(400, 3)
    torch.manual_seed(3)
    cwp = algo.act(obs.numpy())
    torch.manual_seed(3)
    candidates, _ = algo.sampled_values(obs, 4, None)
    assert all(any(torch.equal(torch.as_tensor(cwp[i]), c) for c in candidates[i]) for i in range(len(obs)))
    assert cwp[:, 0].mean() > candidates[..., 0].mean() + 0.1


def test_the_targets_are_copied_every_target_update_interval_updates():
    algo = crr(3, 2, target_update_interval=3)
    batch = {"observations": torch.randn(8, 3), "actions": torch.rand(8, 2) * 2 - 1, "rewards": torch.randn(8),
             "next_observations": torch.randn(8, 3), "terminals": torch.zeros(8)}
    same = []
    for _ in range(5):
        algo.update(batch)
        same.append(all(torch.equal(t, o) for t, o in zip(algo.critic_target.parameters(), algo.critic.parameters()))
                    and all(torch.equal(t, o) for t, o in zip(algo.actor_target.parameters(), algo.actor.parameters())))
        algo.step += 1
    assert same == [True, False, False, True, False]  # after the updates at steps 0 and 3


def test_bad_settings_are_refused_in_one_line():
    for bad in ({"filter": "softmax"}, {"advantage": "median"}, {"act_by": "best"}, {"beta": 0}):
        with pytest.raises(UserInputError):
            make_config(CRR.Config, bad)


@pytest.mark.parametrize("how", ["binary", "exp"])
def test_crr_imitates_the_better_data_actions_where_bc_would_imitate_all(how):
    """A one-step bandit: uniform random actions in [-1, 1], reward -4 (a - 0.5)^2. BC's mean action is the
    data's, about 0; CRR's filter keeps (weights up) the actions the critic rates above the policy's, so its
    policy moves to the best action, 0.5."""
    g = torch.Generator().manual_seed(0)
    obs, act = torch.randn(4096, 2, generator=g), torch.rand(4096, 1, generator=g) * 2 - 1
    data = TorchTransitions({"observations": obs, "actions": act, "rewards": -4 * (act[:, 0] - 0.5).pow(2),
                             "next_observations": obs, "terminals": torch.ones(4096)}, torch.device("cpu"))
    algo = crr(2, 1, hidden=(32, 32), batch_size=256, filter=how, actor_lr=1e-3, critic_lr=1e-3, beta=0.1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(800):
        algo.update(data.sample(256, gen))
        algo.step += 1
    with torch.no_grad():
        mean = float(algo.actor.deterministic(obs).mean())
    assert abs(float(act.mean())) < 0.05 and abs(mean - 0.5) < 0.25, mean


def test_training_raises_the_likelihood_of_expert_data_actions(tmp_path):
    build_dataset("pointmaze-umaze-dense-expert-v0", size=5000, seed=0, root=tmp_path, num_envs=5)
    dataset = d4rl_lite.load_dataset("pointmaze-umaze-dense-expert-v0", root=tmp_path)
    algo = crr(dataset.observations.shape[1], dataset.actions.shape[1], hidden=(64, 64), batch_size=128)
    data, _, _ = prepare_data(dataset, algo)
    held = data.sample(2000, torch.Generator().manual_seed(9))

    def likelihood():
        with torch.no_grad():
            return float(algo.actor.log_prob(held["observations"], held["actions"]).mean())

    before, gen = likelihood(), torch.Generator().manual_seed(0)
    for _ in range(600):
        algo.update(data.sample(128, gen))
        algo.step += 1
    assert likelihood() > before + 0.35, (before, likelihood())  # about +0.5 here, with seeds 0 and 1
