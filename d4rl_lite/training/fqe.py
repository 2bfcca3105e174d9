"""Fitted Q Evaluation (Le et al. 2019): the value of a fixed policy, estimated from the dataset alone.

FQE fits Q^pi by regression: Q(s, a) towards r + gamma (1 - terminal) Q'(s', pi(s')) over the
dataset's transitions, Q' a target copy of Q refreshed every ``target_update_every`` updates
(each refresh is one more iteration of the policy's Bellman operator). The policy's value is
then J(pi) = mean over the dataset's episode-start states s0 of Q(s0, pi(s0)).

What the estimate is: a *discounted* value in the dataset's *raw* rewards. Raw rewards, not the
rewards a run was trained on (IQL rescales them, others add a bias), so that runs of different
algorithms on one dataset are estimated in one unit and can be ranked; discounted, because that
is what FQE estimates. A run's true score is an undiscounted (normalized) return over whole
episodes, another quantity: what to compare is the ranking (``benchmark/ope.py`` reports rank correlations).

Several policies on one dataset are evaluated together: their critics are one population
(``nets.members.stack_members``), each member regressing on its own policy's actions. The
policy is fixed, so its actions at every s' and s0 are computed once before fitting and the
update touches only the critics. Every member starts from the same initial weights (the seed's)
and sees the same minibatches: common random numbers, so differences between the estimates come
from the policies, and a member's estimate does not depend on which others share its stack.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from d4rl_lite.algorithms.base import adam, optimize
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate, Steps
from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.errors import UserInputError
from d4rl_lite.nets import QEnsemble
from d4rl_lite.nets.members import stack_members

Policy = Callable[[np.ndarray], np.ndarray]  # raw flat observations (n, obs_dim) -> actions (n, act_dim)
BAR_EVERY = 100  # updates between progress-bar moves (the bar reads no tensor)
ACT_CHUNK = 8192  # observations per policy call when computing the policy's actions


@dataclass
class FQEConfig:
    """Settings of Fitted Q Evaluation. Defaults follow d3rlpy's FQE (lr 1e-4, hard target update
    every 100 updates, one critic) with the 2x256 critic the algorithms here use."""

    hidden: Layers = (256, 256)
    """Hidden layer sizes of the FQE critic Q(s, a)."""
    lr: LearningRate = 1e-4
    """Adam learning rate of the critic (d3rlpy's FQE: 1e-4)."""
    batch_size: Count = 256
    """Transitions per update (the same minibatch for every policy evaluated together)."""
    steps: Count = 50_000
    """Gradient updates. With a target refresh every 100 updates this is 500 Bellman iterations,
    enough for gamma**500 < 0.01 at gamma 0.99."""
    target_update_every: Count = 100
    """Updates between copies of the critic into its target network (d3rlpy: 100)."""
    gamma: float | None = None
    """Discount. None: the gamma each run was trained with (0.99 for a policy without a run)."""
    normalize_states: bool = True
    """Standardize the critic's observations with the dataset's mean and std (the policy still sees
    raw observations and applies its own normalization)."""
    seed: Steps = 0
    """Seeds the critic's initial weights, the minibatches and any sampling inside the policies."""

    def validate(self) -> None:
        if self.gamma is not None and not 0.0 < self.gamma < 1.0:
            raise UserInputError(f"FQE setting gamma={self.gamma!r}: the discount must be > 0 and < 1 "
                                 "(or unset: each run's own)")


@dataclass(frozen=True)
class FQEEstimate:
    """One policy's FQE result."""

    value: float  # J(pi): mean Q(s0, pi(s0)) over the episode-start states; discounted, raw rewards
    gamma: float
    td_loss: float  # the critic's squared TD error on the last minibatch (a fit that diverged shows here)
    start_states: int


def policy_actions(policy: Policy, observations: np.ndarray, chunk: int = ACT_CHUNK) -> np.ndarray:
    """``policy``'s actions at every row of ``observations`` (raw), in chunks, as float32 in [-1, 1]."""
    out = [np.asarray(policy(observations[i:i + chunk]), dtype=np.float32) for i in range(0, len(observations), chunk)]
    return np.clip(np.concatenate(out), -1.0, 1.0) if out else np.zeros((0, 0), np.float32)


def start_observations(dataset: OfflineDataset) -> np.ndarray:
    """The first observation of every episode of ``dataset``: the states J(pi) averages over."""
    return dataset.observations[dataset.episode_starts]


def fitted_q_evaluation(dataset: OfflineDataset, policies: Sequence[Policy], config: FQEConfig | None = None,
                        gammas: Sequence[float] | None = None, device: Any = "cpu",
                        progress: bool | str = False) -> list[FQEEstimate]:
    """FQE of every policy of ``policies`` on ``dataset``, fitted together (one critic each, stacked).

    ``gammas``: each policy's discount where ``config.gamma`` is None (default 0.99). ``progress``:
    a tqdm bar (a string is its label). The same seed gives the same estimates.
    """
    from d4rl_lite.device import resolve_device

    cfg = config or FQEConfig()
    cfg.validate()
    if not policies:
        raise UserInputError("FQE needs at least one policy to evaluate")
    if dataset.num_transitions == 0 or dataset.num_episodes == 0:
        raise UserInputError("FQE needs a dataset with at least one transition")
    members = len(policies)
    member_gammas = [cfg.gamma if cfg.gamma is not None else (float(gammas[m]) if gammas else 0.99) for m in range(members)]
    dev = resolve_device(device)
    starts = start_observations(dataset)
    # The policies' actions, once: a fixed policy's pi(s') does not change while its critic is fit.
    # Sampling inside a policy (BCQ's candidates) draws from the seed's stream, so reruns agree.
    with torch.random.fork_rng(devices=[]):
        next_actions, start_actions = [], []
        for policy in policies:
            torch.manual_seed(cfg.seed)
            next_actions.append(policy_actions(policy, dataset.next_observations))
            start_actions.append(policy_actions(policy, starts))
    data = _Data(dataset, cfg.normalize_states, np.stack(next_actions), np.stack(start_actions), dev)
    gamma = torch.tensor(member_gammas, dtype=torch.float32, device=dev).unsqueeze(1)  # (M, 1): per member
    values, losses = _fit(data, gamma, cfg, dev, progress)
    return [FQEEstimate(float(v), g, float(loss), len(starts)) for v, g, loss in zip(values, member_gammas, losses)]


class _Data:
    """The transitions as the critics read them: device tensors, observations standardized (or not),
    and the members' policy actions at every next state and start state, (M, N, A) and (M, S, A)."""

    def __init__(self, dataset: OfflineDataset, normalize: bool, next_actions: np.ndarray, start_actions: np.ndarray,
                 device: torch.device):
        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)

        mean, std = (dataset.observation_stats().mean, dataset.observation_stats().std) if normalize else (0.0, 1.0)
        self.obs = tensor((dataset.observations - mean) / std)
        self.next_obs = tensor((dataset.next_observations - mean) / std)
        self.start_obs = tensor((start_observations(dataset) - mean) / std)
        self.actions = tensor(dataset.actions)
        self.rewards = tensor(dataset.rewards)  # raw: see the module docstring
        self.not_done = 1.0 - tensor(dataset.terminals)  # timeouts bootstrap: next_observations is the true s'
        self.next_actions = tensor(next_actions)
        self.start_actions = tensor(start_actions)
        self.size, self.members = len(dataset.rewards), len(next_actions)


def _fit(data: _Data, gamma: torch.Tensor, cfg: FQEConfig, device: torch.device,
         progress: bool | str) -> tuple[np.ndarray, np.ndarray]:
    """Fit the members' critics; (J per member, last TD loss per member). No host sync until the end."""
    m, obs_dim, act_dim = data.members, data.obs.shape[1], data.actions.shape[1]
    with torch.random.fork_rng(devices=[]):  # the critic's initialisation, without touching the caller's stream
        torch.manual_seed(cfg.seed)
        solo = QEnsemble(obs_dim, act_dim, cfg.hidden, num_q=1)
    critic = stack_members([solo] * m).to(device)  # every member starts from the seed's weights
    target = copy.deepcopy(critic).requires_grad_(False)
    optimizer = adam(critic.parameters(), cfg.lr)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=progress if isinstance(progress, str) else "FQE", unit="upd", dynamic_ncols=True)
    loss = torch.zeros(m, device=device)
    try:
        for step in range(1, cfg.steps + 1):
            idx = torch.randint(0, data.size, (cfg.batch_size,), device=device, generator=gen)
            shape = (m, cfg.batch_size, -1)
            with torch.no_grad():
                next_q = target(data.next_obs[idx].expand(shape), data.next_actions[:, idx])[0]  # (M, B)
                y = data.rewards[idx] + gamma * data.not_done[idx] * next_q
            q = critic(data.obs[idx].expand(shape), data.actions[idx].expand(shape))[0]
            loss = (q - y).pow(2).mean(-1)  # (M,): each member's own regression
            optimize(optimizer, loss)
            if step % cfg.target_update_every == 0:
                _copy_into(target, critic)
            if bar is not None and (step % BAR_EVERY == 0 or step == cfg.steps):
                bar.update(step - bar.n)
    finally:
        if bar is not None:
            bar.close()
    with torch.no_grad():
        starts = data.start_obs.expand(m, *data.start_obs.shape)
        values = critic(starts, data.start_actions)[0].mean(-1)
    return values.cpu().numpy(), loss.detach().cpu().numpy()


@torch.no_grad()
def _copy_into(target: torch.nn.Module, source: torch.nn.Module) -> None:
    for t, s in zip(target.parameters(), source.parameters()):
        t.copy_(s)


def config_record(cfg: FQEConfig) -> dict[str, Any]:
    """The settings as a JSON-ready dict (what ``ope.json`` records the estimates were made with)."""
    return dataclasses.asdict(cfg)
