"""Critic ensembles (sac_n, edac): the target's aggregations, REM's mixtures and EDAC's diversity term."""

import math
import subprocess

import numpy as np
import pytest
import torch

from d4rl_lite.algorithms import get_algorithm
from d4rl_lite.algorithms.sac_n import aggregate, gradient_diversity, random_mixture
from d4rl_lite.algorithms.settings import make_config


def ensemble(name="sac_n", seed=0, **settings):
    cls = get_algorithm(name)
    config = make_config(cls.Config, {"hidden": (16, 16), "num_critics": 3, **settings})
    return cls(4, 2, config, device="cpu", seed=seed)


def tiny_batch(seed=0, size=8):
    g = torch.Generator().manual_seed(seed)
    return {"observations": torch.randn(size, 4, generator=g), "actions": torch.rand(size, 2, generator=g) * 2 - 1,
            "rewards": torch.randn(size, generator=g), "next_observations": torch.randn(size, 4, generator=g),
            "terminals": (torch.arange(size) % 3 == 0).float()}


# -- the pieces, against hand-made tensors -------------------------------------------------------
def test_each_aggregation_of_three_critics_against_hand_computed_values():
    q = torch.tensor([[1.0, 4.0], [3.0, 2.0], [2.0, 6.0]])  # 3 critics, 2 states
    assert torch.equal(aggregate(q, "min"), torch.tensor([1.0, 2.0]))
    assert torch.equal(aggregate(q, "mean"), torch.tensor([2.0, 4.0]))
    w = torch.tensor([[0.5], [0.25], [0.25]])
    assert torch.equal(aggregate(q, "rem", w), torch.tensor([0.5 + 0.75 + 0.5, 2.0 + 0.5 + 1.5]))


def test_the_diversity_term_is_n_for_identical_gradients_and_0_for_orthogonal_ones():
    same = torch.tensor([[1.0, 2.0], [3.0, -1.0]]).expand(3, 2, 2) * torch.tensor([1.0, 2.0, 0.5]).view(3, 1, 1)
    assert gradient_diversity(same).item() == pytest.approx(3.0)  # (N(N - 1) pairs of cosine 1) / (N - 1)
    orthogonal = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 5.0, 0.0]], [[0.0, 0.0, -2.0]]])
    assert gradient_diversity(orthogonal).item() == pytest.approx(0.0, abs=1e-7)
    opposed = torch.tensor([[[1.0, 0.0]], [[-2.0, 0.0]]])
    assert gradient_diversity(opposed).item() == pytest.approx(-2.0)
    # Two critics at 60 degrees (cosine 1/2) in one state, orthogonal in the other: (2 x 1/2 + 0) / 2 states.
    mixed = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.5, math.sqrt(3) / 2], [0.0, 3.0]]])
    assert gradient_diversity(mixed).item() == pytest.approx(0.5)
    # A population (N, M, B, A): one value per member, each its own.
    both = torch.stack([same[:2], torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])], dim=1)
    torch.testing.assert_close(gradient_diversity(both), torch.tensor([2.0, 0.0]))


def test_a_rem_mixture_is_convex_and_new_for_every_batch():
    like = torch.zeros(())
    torch.manual_seed(0)
    first, second = random_mixture(5, 0, like, None), random_mixture(5, 0, like, None)
    assert first.shape == (5, 1) and (first >= 0).all() and (second >= 0).all()
    assert first.sum().item() == pytest.approx(1.0) and second.sum().item() == pytest.approx(1.0)
    assert not torch.allclose(first, second)
    # A population: (N, M, 1), member m's weights drawn from its own stream as its solo run draws them.
    from d4rl_lite.nets.members import MemberGenerators

    states = [torch.Generator().manual_seed(s).get_state() for s in (3, 4)]
    pop = random_mixture(5, 2, like, MemberGenerators(states, torch.device("cpu")))
    assert pop.shape == (5, 2, 1)
    torch.testing.assert_close(pop.sum(0), torch.ones(2, 1))
    for m, seed in enumerate((3, 4)):
        torch.manual_seed(seed)
        assert torch.equal(pop[:, m], random_mixture(5, 0, like, None))


# -- update uses them: its critic loss, recomputed by hand ------------------------------------------
@pytest.mark.parametrize("how,eta", [("min", 0.0), ("mean", 0.0), ("rem", 0.0), ("min", 0.7), ("rem", 2.0)])
def test_the_critic_loss_of_an_update_matches_the_equations(how, eta):
    algo = ensemble(target_aggregation=how, diversity_weight=eta, gamma=0.9)
    batch = tiny_batch()
    obs, act, rew = batch["observations"], batch["actions"], batch["rewards"]
    with torch.no_grad():  # make the target's entropy term matter
        algo.log_alpha.fill_(math.log(0.3))
    draws = torch.get_rng_state()
    # By hand, from the same draws (the mixture first, then the next actions) and the weights before the step.
    with torch.no_grad():
        u = torch.rand(3) if how == "rem" else torch.ones(3)  # only rem draws a mixture
        w = (u / u.sum()).view(3, 1)
        next_act, next_logp = algo.actor(batch["next_observations"])
        q_next = algo.critic_target(batch["next_observations"], next_act)  # (3 critics, 8 states)
        agg = {"min": q_next.min(0).values, "mean": q_next.mean(0), "rem": (w * q_next).sum(0)}[how]
        y = rew + 0.9 * (1 - batch["terminals"]) * (agg - 0.3 * next_logp)
        q = algo.critic(obs, act)
        td = 3 * ((w * q).sum(0) - y).pow(2).mean() if how == "rem" else sum((q[k] - y).pow(2).mean() for k in range(3))
    grads = []
    for k in range(3):
        a = act.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(algo.critic(obs, a)[k].sum(), a)[0])
    unit = [g / g.norm(dim=-1, keepdim=True) for g in grads]
    es = sum((unit[i] * unit[j]).sum(-1) for i in range(3) for j in range(3) if i != j).mean() / 2
    torch.set_rng_state(draws)
    metrics = algo.update(batch)
    assert metrics["train/critic_loss"].item() == pytest.approx((td + eta * es).item(), rel=1e-5)
    if eta:
        assert metrics["train/diversity"].item() == pytest.approx(es.item(), rel=1e-5)
    else:
        assert "train/diversity" not in metrics


def test_eta_adds_eta_times_the_diversity_gradient_to_the_critics_and_leaves_the_actor():
    weights, grads = {}, {}
    for eta in (0.0, 1.0, 2.0):
        algo = ensemble(diversity_weight=eta)
        algo.update(tiny_batch())
        grads[eta] = torch.cat([p.grad.flatten() for p in algo.critic.parameters()])
        weights[eta] = torch.cat([p.detach().flatten() for p in algo.actor.parameters()])
    extra = grads[1.0] - grads[0.0]
    assert extra.abs().max() > 1e-3 * grads[0.0].abs().max()  # the term reaches the critics' gradients ...
    torch.testing.assert_close(grads[2.0] - grads[0.0], 2 * extra, rtol=1e-3, atol=1e-6)  # ... linearly in eta
    assert torch.equal(weights[0.0], weights[1.0])  # the actor steps against the critics before theirs


def test_the_actor_and_the_predicted_value_use_the_aggregation():
    obs = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    for how, reduce in (("min", lambda q: q.min(0).values), ("mean", lambda q: q.mean(0)), ("rem", lambda q: q.mean(0))):
        algo = ensemble(target_aggregation=how)
        algo.update(tiny_batch())
        with torch.no_grad():
            x = torch.as_tensor(obs)
            q = algo.critic(x, algo.policy_action(x).clamp(-1, 1))
        np.testing.assert_allclose(algo.predicted_values(obs), reduce(q).numpy(), rtol=1e-6)
        assert not np.allclose(q.min(0).values.numpy(), q.mean(0).numpy())  # the two really differ here


def test_edac_is_sac_n_with_edacs_defaults_and_bad_settings_are_refused():
    sac_n, edac = get_algorithm("sac_n"), get_algorithm("edac")
    assert issubclass(edac, sac_n) and not sac_n.naive_baseline
    assert (sac_n.Config().diversity_weight, edac.Config().diversity_weight) == (0.0, 1.0)
    assert sac_n.Config().num_critics == edac.Config().num_critics == 10
    assert sac_n.Config().critic_hidden == (256, 256, 256) and sac_n.Config().target_aggregation == "min"
    with pytest.raises(ValueError, match="target_aggregation must be one of min, rem, mean, got 'max'"):
        make_config(sac_n.Config, {"target_aggregation": "max"})
    for algo in (sac_n, edac):  # one critic is no ensemble (its spread, train/q_std, would be NaN)
        with pytest.raises(ValueError, match="num_critics must be >= 2 for an ensemble, got 1"):
            make_config(algo.Config, {"num_critics": 1})
    with pytest.raises(ValueError, match="diversity_weight=-1: a weight must be >= 0"):
        make_config(edac.Config, {"diversity_weight": -1})
    with pytest.raises(ValueError, match="num_critics=0: a count must be >= 1"):
        make_config(sac_n.Config, {"num_critics": 0})


def test_the_settings_command_documents_the_ensemble():
    out = subprocess.run(["d4rl-lite", "settings", "edac"], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "  diversity_weight = 1.0" in out.stdout and "  num_critics = 10" in out.stdout
    assert "hopper" in out.stdout and "(undocumented)" not in out.stdout
