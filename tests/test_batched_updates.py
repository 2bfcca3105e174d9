"""CQL's, BCQ's and BEAR's updates evaluate each network once per phase on concatenated inputs
(issue 35); they must compute what the one-call-per-input updates computed before.

The reference updates below are that earlier math, frozen (one network call per input, the MMD
from explicit differences). Each case runs both on the same fixed batches from the same seed,
solo and as a population, and compares every loss, every weight and optimizer moment, and the
actions chosen afterwards. Same draws, same order: any change to the math, to which random
numbers are drawn, or to their order fails here.
"""

from __future__ import annotations

import math
import types

import pytest
import torch

from d4rl_lite import nets
from d4rl_lite.algorithms import get_algorithm
from d4rl_lite.algorithms.base import frozen, optimize
from d4rl_lite.algorithms.settings import make_config
from d4rl_lite.nets import rand_uniform, soft_update

# Running a network once per state instead of once per repeated row, and concatenating rows, change
# how a product's backward sums over rows (and which kernel a matrix product picks): CQL and BEAR
# agree with the old math to rounding (2e-7 at most here). BCQ's arithmetic is unchanged (the same
# rows through the same products; Q_1 alone is a slice of the critics' batched product): bit for bit.
TOLERANCE = 1e-6
BIT_EXACT = {"bcq"}
OBS_DIM, ACT_DIM, BATCH, UPDATES = 11, 3, 16, 4


def reference_cql(self, batch):
    cfg = self.config
    obs, act, rew, next_obs, done = (batch[k] for k in ("observations", "actions", "rewards", "next_observations", "terminals"))
    b, n = obs.shape[-2], cfg.num_sampled_actions
    new_act, logp = self.actor(obs, generator=self.noise)
    alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean(-1)
    optimize(self.alpha_opt, alpha_loss)
    alpha = self.log_alpha.exp().detach()
    if self.step < cfg.warmup_steps:
        actor_loss = (alpha * logp - self.actor.log_prob(obs, act)).mean(-1)
    else:
        with frozen(self.critic):
            actor_loss = (alpha * logp - self.critic(obs, new_act).min(0).values).mean(-1)
    optimize(self.actor_opt, actor_loss)
    with torch.no_grad():
        next_act, next_logp = self.actor(next_obs, generator=self.noise)
        q_next = self.critic_target(next_obs, next_act).min(0).values
        if cfg.backup_entropy:
            q_next = q_next - alpha * next_logp
        target = rew + cfg.gamma * (1.0 - done) * q_next
    q = self.critic(obs, act)
    bellman = (q - target).pow(2).mean(-1).sum(0)
    obs_rep = obs.repeat_interleave(n, -2)
    rand = rand_uniform((*obs_rep.shape[:-1], self.act_dim), like=obs, generator=self.noise) * 2 - 1
    q_rand = self.critic(obs_rep, rand).unflatten(-1, (b, n)) - self.act_dim * math.log(0.5)

    def policy_q(act_obs_rep):
        with torch.no_grad():
            a, logp_a = self.actor(act_obs_rep, generator=self.noise)
        return (self.critic(obs_rep, a) - logp_a).unflatten(-1, (b, n))

    q_cur = policy_q(obs_rep)
    q_nxt = policy_q(next_obs.repeat_interleave(n, -2))
    cat = torch.cat([q_rand, q_nxt, q_cur], dim=-1)
    gap = (torch.logsumexp(cat / cfg.cql_temperature, dim=-1) * cfg.cql_temperature - q).mean(-1)
    metrics = {}
    if cfg.lagrange:
        alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6).flatten()
        weight, tau = self.setting("cql_weight", like=alpha_prime), self.setting("target_action_gap", like=alpha_prime)
        cql = (alpha_prime.detach() * weight * (gap - tau)).sum(0)
        prime_loss = -(alpha_prime * weight * (gap.detach() - tau)).mean(0)
        optimize(self.alpha_prime_opt, prime_loss)
        metrics = {"train/alpha_prime": alpha_prime.detach(), "train/alpha_prime_loss": prime_loss.detach()}
    else:
        cql = self.setting("cql_weight", like=gap.sum(0)) * gap.sum(0)
    critic_loss = bellman + cql
    optimize(self.critic_opt, critic_loss)
    soft_update(self.critic_target, self.critic, cfg.tau)
    return {"train/critic_loss": critic_loss.detach(), "train/bellman_loss": bellman.detach(),
            "train/cql_gap": gap.detach().mean(0), "train/actor_loss": actor_loss.detach(), "train/alpha": alpha,
            "train/q_mean": q.detach().mean((0, -1)), "train/q_max": q.detach().amax((0, -1)), **metrics}


def reference_bcq(self, batch):
    cfg = self.config
    obs, act, rew, next_obs, done = (batch[k] for k in ("observations", "actions", "rewards", "next_observations", "terminals"))
    b = obs.shape[-2]
    vae_loss = self.vae.loss(obs, act, generator=self.noise)
    optimize(self.vae_opt, vae_loss)
    with torch.no_grad():
        nxt = next_obs.repeat_interleave(cfg.target_samples, -2)
        q_t = self.critic_target(nxt, self.actor_target(nxt, self.vae.decode(nxt, generator=self.noise)))
        q_min, q_max = q_t.min(0).values, q_t.max(0).values
        lmbda = self.setting("lmbda", like=q_min)
        q_t = (lmbda * q_min + (1.0 - lmbda) * q_max).unflatten(-1, (b, cfg.target_samples)).max(-1).values
        target = rew + cfg.gamma * (1.0 - done) * q_t
    q = self.critic(obs, act)
    critic_loss = (q - target).pow(2).mean(-1).sum(0)
    optimize(self.critic_opt, critic_loss)
    with torch.no_grad():
        sampled = self.vae.decode(obs, generator=self.noise)
    with frozen(self.critic):
        actor_loss = -self.critic(obs, self.actor(obs, sampled))[0].mean(-1)
    optimize(self.actor_opt, actor_loss)
    soft_update(self.critic_target, self.critic, cfg.tau)
    soft_update(self.actor_target, self.actor, cfg.tau)
    return {"train/vae_loss": vae_loss.detach(), "train/critic_loss": critic_loss.detach(),
            "train/actor_loss": actor_loss.detach(), "train/q_mean": q.detach().mean((0, -1)),
            "train/q_max": q.detach().amax((0, -1))}


def reference_mmd(x, y, kernel, sigma):
    def k(a, b):
        d = a.unsqueeze(-2) - b.unsqueeze(-3)
        dist = d.abs().sum(-1) if kernel == "laplacian" else d.pow(2).sum(-1)
        return torch.exp(-dist / (2.0 * sigma)).mean((-2, -1))

    return (k(x, x) + k(y, y) - 2 * k(x, y) + 1e-6).sqrt()


def reference_bear(self, batch):
    cfg = self.config
    obs, act, rew, next_obs, done = (batch[k] for k in ("observations", "actions", "rewards", "next_observations", "terminals"))
    b, n = obs.shape[-2], cfg.mmd_samples
    vae_loss = self.vae.loss(obs, act, generator=self.noise)
    optimize(self.vae_opt, vae_loss)
    with torch.no_grad():
        nxt = next_obs.repeat_interleave(cfg.target_samples, -2)
        q_t = self.critic_target(nxt, self.actor(nxt, generator=self.noise)[0])
        q_min, q_max = q_t.min(0).values, q_t.max(0).values
        lmbda = self.setting("lmbda", like=q_min)
        q_t = lmbda * q_min + (1.0 - lmbda) * q_max
        target = rew + cfg.gamma * (1.0 - done) * q_t.unflatten(-1, (b, cfg.target_samples)).max(-1).values
    q = self.critic(obs, act)
    critic_loss = (q - target).pow(2).mean(-1).sum(0)
    optimize(self.critic_opt, critic_loss)
    rep = obs.repeat_interleave(n, -2)
    pi_actions = self.actor(rep, generator=self.noise)[0]
    with torch.no_grad():
        data_like = self.vae.decode(rep, generator=self.noise).unflatten(-2, (b, n))
    divergence = reference_mmd(pi_actions.unflatten(-2, (b, n)), data_like, cfg.kernel, cfg.kernel_sigma)
    alpha = self.log_alpha.exp().detach()
    threshold = self.setting("mmd_threshold", like=divergence)
    constraint = alpha * (divergence - threshold)
    if self.step < cfg.warmup_steps:
        actor_loss = constraint.mean(-1)
    else:
        with frozen(self.critic):
            q_pi = self.critic(rep, pi_actions).min(0).values.unflatten(-1, (b, n)).mean(-1)
        actor_loss = (-q_pi + constraint).mean(-1)
    optimize(self.actor_opt, actor_loss)
    alpha_loss = -(self.log_alpha.exp() * (divergence.detach() - threshold)).mean(-1)
    optimize(self.alpha_opt, alpha_loss)
    with torch.no_grad():
        self.log_alpha.clamp_(cfg.log_alpha_min, cfg.log_alpha_max)
    soft_update(self.critic_target, self.critic, cfg.tau)
    return {"train/vae_loss": vae_loss.detach(), "train/critic_loss": critic_loss.detach(),
            "train/actor_loss": actor_loss.detach(), "train/mmd": divergence.detach().mean(-1), "train/alpha": alpha,
            "train/q_mean": q.detach().mean((0, -1)), "train/q_max": q.detach().amax((0, -1))}


def reference_bear_policy_action(self, obs):
    n = self.config.act_samples
    rep = obs.repeat_interleave(n, -2)
    candidates = self.actor(rep, generator=self.eval_noise)[0]
    best = self.critic(rep, candidates)[0].unflatten(-1, (obs.shape[-2], n)).argmax(-1)
    grouped = candidates.unflatten(-2, (obs.shape[-2], n))
    return grouped.gather(-2, best[..., None, None].expand(*best.shape, 1, grouped.shape[-1])).squeeze(-2)


# name -> (algorithm, settings, reference update, reference acting or None); warm-up phases end after
# the first update, so both phases of each update are compared.
CASES = {
    "cql": ("cql", {"warmup_steps": 1}, reference_cql, None),
    "cql-lagrange-backup": ("cql", {"warmup_steps": 1, "lagrange": True, "backup_entropy": True}, reference_cql, None),
    "bcq": ("bcq", {}, reference_bcq, None),
    "bear": ("bear", {"warmup_steps": 1}, reference_bear, reference_bear_policy_action),
    "bear-gaussian": ("bear", {"warmup_steps": 1, "kernel": "gaussian"}, reference_bear, None),
}


def fixed_batches(members: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(123)
    lead = (members,) if members else ()

    def one() -> dict[str, torch.Tensor]:
        return {"observations": torch.randn(*lead, BATCH, OBS_DIM, generator=gen),
                "actions": torch.rand(*lead, BATCH, ACT_DIM, generator=gen) * 2 - 1,
                "rewards": torch.randn(*lead, BATCH, generator=gen),
                "next_observations": torch.randn(*lead, BATCH, OBS_DIM, generator=gen),
                "terminals": (torch.rand(*lead, BATCH, generator=gen) < 0.1).float()}

    return [one() for _ in range(UPDATES)]


def train(case: str, members: int, reference: bool, updates: int = UPDATES):
    """(the algorithm after ``updates`` updates, every update's metrics, its actions on a probe)."""
    name, settings, update, policy_action = CASES[case]
    cls = get_algorithm(name)
    small = {k: (32, 32) for k in cls.Config.__dataclass_fields__ if k.endswith("hidden")}
    config = make_config(cls.Config, {**small, **settings})
    algo = cls.population(OBS_DIM, ACT_DIM, config, [3, 4][:members], device="cpu") if members else \
        cls(OBS_DIM, ACT_DIM, config, device="cpu", seed=3)
    if reference:
        algo.update = types.MethodType(update, algo)
        if policy_action is not None:
            algo.policy_action = types.MethodType(policy_action, algo)
    metrics = []
    for batch in fixed_batches(members)[:updates]:
        metrics.append({k: v.clone() for k, v in algo.update(batch).items()})
        algo.step += 1
    probe = torch.randn(*([members] if members else []), 5, OBS_DIM, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(11)  # a solo run's acting draws come from torch's global stream
    return algo, metrics, algo.act(probe.numpy())


def flat_tensors(state, prefix=""):
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from flat_tensors(v, f"{prefix}.{k}")
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            yield from flat_tensors(v, f"{prefix}.{i}")


@pytest.mark.parametrize("concatenate", [False, True], ids=["per-group", "concatenated"])
@pytest.mark.parametrize("members", [0, 2], ids=["solo", "population"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_batched_update_computes_the_one_call_per_input_math(case, members, concatenate, monkeypatch):
    # nets.batched_call concatenates on CUDA only (measured slower on the CPU): both ways are checked here.
    monkeypatch.setattr(nets, "CONCATENATE_ON", {"cuda", "cpu"} if concatenate else {"cuda"})
    tolerance = 0.0 if case in BIT_EXACT else TOLERANCE
    new, new_metrics, new_actions = train(case, members, reference=False)
    old, old_metrics, old_actions = train(case, members, reference=True)
    for step, (a, b) in enumerate(zip(new_metrics, old_metrics)):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=tolerance, msg=f"update {step}: {key}")
    new_state, old_state = dict(flat_tensors(new.state_dict())), dict(flat_tensors(old.state_dict()))
    assert new_state.keys() == old_state.keys() and len(new_state) > 10
    for key, value in new_state.items():
        torch.testing.assert_close(value, old_state[key], rtol=0, atol=tolerance, msg=key)
    initial = dict(flat_tensors(train(case, members, reference=False, updates=0)[0].state_dict()))
    moved = max((value.float() - initial[key].float()).abs().max().item() for key, value in new_state.items()
                if key in initial and value.shape == initial[key].shape)
    assert moved > 1000 * TOLERANCE  # the updates did move the weights: the tolerance can tell a change
    torch.testing.assert_close(torch.as_tensor(new_actions), torch.as_tensor(old_actions), rtol=0, atol=tolerance)
