"""What every offline algorithm shares: config handling, device, acting, and checkpointable state.

About 330 lines: the config rules (names, types, ranges, old names, docs) and the base class
they serve stay side by side; every algorithm file reads against this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from d4rl_lite.algorithms.settings import Count, Discount
from d4rl_lite.device import resolve_device
from d4rl_lite.errors import UserInputError


@dataclasses.dataclass
class AlgorithmConfig:
    """Settings every algorithm shares; the training loop reads exactly these (``training_settings``).

    One name per concept across algorithms: ``actor_hidden`` / ``critic_hidden`` (layer sizes),
    ``actor_lr`` / ``critic_lr``, ``temperature_lr`` / ``init_temperature`` (SAC's entropy
    temperature), ``warmup_steps`` (first updates whose actor loss leaves out Q), and named weights
    (``rl_weight``, ``divergence_weight``, ``cql_weight``) instead of a bare ``alpha``. A config's
    ``renamed`` maps its older names to the new ones (accepted, with a notice).
    """

    batch_size: Count = 256
    """Transitions per gradient update."""
    gamma: Discount = 0.99
    """Discount factor."""
    normalize_states: bool = False
    """Standardize observations with the dataset's mean and std (the same statistics when acting)."""
    normalize_reward: bool = False
    """Rescale rewards so that episode returns in the dataset span 1000 (IQL on locomotion)."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this, then ``reward_bias`` is added (after normalize_reward)."""
    reward_bias: float = 0.0
    """Added to every reward after ``reward_scale`` (e.g. -1 for IQL's antmaze setting, r - 1)."""

    renamed: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Settings added after runs were recorded without them, whose default is the behaviour those runs
    # had: at their default they are left out of a run's identity, so such a run still resumes.
    added_later: ClassVar[tuple[str, ...]] = ()


def training_settings(config: Any) -> AlgorithmConfig:
    """The shared settings of any algorithm's config: its own values where it declares them (every
    built-in config derives from AlgorithmConfig), AlgorithmConfig's defaults where a plain user
    dataclass leaves them out."""
    if isinstance(config, AlgorithmConfig):
        return config
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(AlgorithmConfig) if hasattr(config, f.name)}
    return AlgorithmConfig(**shared)


class OfflineAlgorithm:
    """Base class: a subclass defines ``Config`` (reference defaults), builds its networks and
    optimizers in ``setup``, and implements ``update`` (one gradient step, metrics left on the device)
    and ``policy_action`` (deterministic action for a normalized observation batch)."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = object
    # True for a baseline that is expected to fail offline (naive SAC): tests and the benchmark's
    # validity checks hold it to that instead of to improving over its initial policy.
    naive_baseline: ClassVar[bool] = False

    # Whether ``update`` is written for populations (member dimension first, see ``population``).
    supports_population: ClassVar[bool] = False
    # Scalar settings the members of a population may hold different values of (a sweep); ``update``
    # reads each through ``setting(name, like)``.
    sweepable: ClassVar[tuple[str, ...]] = ()
    # Why ``train --compile`` does not compile this algorithm's update (algorithms/compiled.py), or
    # None where its compiled update was measured to compile and match its eager one.
    compile_refusal: ClassVar[str | None] = "its compiled update has not been measured"

    @classmethod
    def cost_phases(cls, config: Any, start: int, end: int) -> tuple[tuple[int, int, int], ...]:
        """How ``bench --plan`` times updates ``start`` .. ``end - 1`` of a run: phases (step to time
        updates from, how many of the span's updates cost like those, how many updates from that step
        may be timed without leaving the phase). One phase here, in the middle of the span (past any
        warm-up); an algorithm whose updates differ much over a run declares its own."""
        return ((start + (end - start) // 2, end - start, end - start),) if end > start else ()

    def __init__(self, obs_dim: int, act_dim: int, config: Any = None, device: Any = "auto", seed: int = 0,
                 _population_seeds: list[int] | None = None):
        config = config if config is not None else self.Config()
        # One config per member (a sweep) or one for all; ``config`` is what the members share.
        self.member_configs = list(config) if isinstance(config, list) else [config] * len(_population_seeds or [0])
        self.config, swept = _shared_config(self.member_configs, self.sweepable, self.name)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = resolve_device(device)
        self.step = 0  # gradient steps taken; algorithms with warm-up phases read it
        # members == 0: a solo run, drawing from torch's global generator. Otherwise each member
        # builds its networks from its own seed's stream and keeps drawing from it (``noise``).
        self.members = len(_population_seeds) if _population_seeds else 0
        self.noise: Any = None
        self.eval_noise: Any = None
        if self.members:
            self._member_rng = [torch.Generator().manual_seed(s).get_state() for s in _population_seeds]
        else:
            torch.manual_seed(seed)
        # State normalization (TD3+BC, IQL, ...): the trainer normalizes the dataset once and the
        # same statistics are applied when acting.
        self._swept = {name: torch.tensor(values, dtype=torch.float32, device=self.device) for name, values in swept.items()}
        self.obs_mean = self.member_tensor(torch.zeros(obs_dim))
        self.obs_std = self.member_tensor(torch.ones(obs_dim))
        self.setup()
        if self.members:
            from d4rl_lite.nets.members import MemberGenerators

            # On CUDA a solo run's draws come from the CUDA generator its seed set, not the CPU one.
            states = (self._member_rng if self.device.type == "cpu" else
                      [torch.Generator(device=self.device).manual_seed(s).get_state() for s in _population_seeds])
            self.noise = MemberGenerators(states, self.device)
            # Acting draws (BCQ's VAE samples, BEAR's policy samples) come from a stream of their
            # own per member, so evaluating never shifts the training draws.
            self.eval_noise = MemberGenerators(states, self.device)

    @classmethod
    def population(cls, obs_dim: int, act_dim: int, config: Any, seeds: list[int], device: Any = "auto") -> OfflineAlgorithm:
        """One instance training ``len(seeds)`` members together, member m being the solo run of
        ``seeds[m]``: every network holds all members' weights (``nets.members``), batches are
        (M, B, ...), each loss is summed over members (so no member's gradient depends on
        another's) and every random draw comes from the member's own stream. ``config``: one for
        every member, or a list of one per member differing only in ``sweepable`` settings."""
        if not cls.supports_population:
            raise UserInputError(f"{cls.name} does not train as a population yet; train its seeds one by one")
        if not seeds:
            raise UserInputError("a population needs at least one seed")
        if isinstance(config, list) and len(config) != len(seeds):
            raise ValueError(f"{len(config)} member configs for {len(seeds)} seeds")
        return cls(obs_dim, act_dim, config, device=device, _population_seeds=list(seeds))

    def setting(self, name: str, like: torch.Tensor) -> float | torch.Tensor:
        """Setting ``name`` (one of ``sweepable``) where it meets tensor ``like`` (members first): the
        config's number, or, when the members hold different values (a sweep), one value per member
        shaped (M, 1, ..., 1) to broadcast against ``like``."""
        values = self._swept.get(name)
        if values is None:
            return getattr(self.config, name)
        return values.view(-1, *([1] * (like.dim() - 1)))

    def network(self, factory: Callable[[], nn.Module]) -> nn.Module:
        """``factory()`` on the algorithm's device. In a population, one per member, each built
        from its member's random stream (its solo run's initialisation), stacked into one module."""
        if not self.members:
            return factory().to(self.device)
        from d4rl_lite.nets.members import stack_members

        solos = []
        for m in range(self.members):
            torch.set_rng_state(self._member_rng[m])
            solos.append(factory())
            self._member_rng[m] = torch.get_rng_state()
        return stack_members(solos).to(self.device)

    def member_tensor(self, value: torch.Tensor | float, requires_grad: bool = False) -> torch.Tensor:
        """A per-run tensor (a temperature, a Lagrange multiplier, normalization statistics): as given
        for a solo run, (M, 1, *shape) for a population (it broadcasts over the batch dimension)."""
        value = torch.as_tensor(value, dtype=torch.float32)
        if self.members:
            value = value.expand(self.members, 1, *value.shape)
        return value.to(self.device).clone().requires_grad_(requires_grad)

    def setup(self) -> None:
        raise NotImplementedError

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic actions for raw (unnormalized) flat observations, batch (n, obs_dim); for a
        population, (M, n, obs_dim) -> (M, n, act_dim), member m acting on its own rows."""
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.device)
        obs = (obs - self.obs_mean) / self.obs_std
        return self.policy_action(obs).clamp(-1.0, 1.0).cpu().numpy()

    def critic_value(self, q: torch.Tensor) -> torch.Tensor:
        """The value the critics' estimates q (num_q, ...) give: their minimum (an ensemble that
        aggregates otherwise, e.g. by the mean, overrides this)."""
        return q.min(0).values

    @torch.inference_mode()
    def predicted_values(self, observations: np.ndarray, member: int | None = None) -> np.ndarray | None:
        """The critic's value of acting by the deterministic policy, ``critic_value`` (min_i Q_i(s, pi(s))), for raw
        flat observations (n, obs_dim) -> (n,): member ``member``'s in a population. None for an
        algorithm without Q critics (``critic``). CQL's theorem bounds this quantity from below by
        the policy's true value; a naive critic's runs far above it."""
        critic = getattr(self, "critic", None)
        if critic is None:
            return None
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.device)
        if self.members:
            obs = obs.expand(self.members, *obs.shape)
        obs = (obs - self.obs_mean) / self.obs_std
        values = self.critic_value(critic(obs, self.policy_action(obs).clamp(-1.0, 1.0))).float().cpu().numpy()
        return values[member or 0] if self.members else values

    def member_policy(self, m: int) -> Callable[[np.ndarray], np.ndarray]:
        """Member ``m`` of a population as a policy on (n, obs_dim) batches (every member acts on
        the batch; m's actions are returned)."""
        if not self.members:
            return self

        def policy(observations: np.ndarray) -> np.ndarray:
            obs = np.asarray(observations, dtype=np.float32)
            return self.act(np.repeat(obs[None], self.members, axis=0))[m]

        return policy

    def __call__(self, observations: np.ndarray) -> np.ndarray:  # the Policy protocol of evaluate()
        return self.act(observations)

    # -- state ----------------------------------------------------------------------------
    def _state_items(self) -> dict[str, Any]:
        """Every nn.Module, optimizer, scheduler and tensor attribute: what a checkpoint holds."""
        return {k: v for k, v in vars(self).items()
                if isinstance(v, (nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.Tensor))}

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step}
        for k, v in self._state_items().items():
            out[k] = v.detach().clone() if isinstance(v, torch.Tensor) else v.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state.get("step", 0)
        for k, v in self._state_items().items():
            if k not in state and k in ("obs_mean", "obs_std"):
                continue  # checkpoints of runs without state normalization may predate these
            if isinstance(v, torch.Tensor):
                with torch.no_grad():
                    v.copy_(state[k])
            else:
                v.load_state_dict(state[k])


class DiffersPerMember:
    """Stands in a population's shared config for a setting its members hold different values of:
    any arithmetic with it fails, naming ``OfflineAlgorithm.setting``, which gives the per-member
    values (a plain ``cfg.name`` would silently give every member one value)."""

    def __init__(self, name: str, values: list[Any]):
        self.name, self.values = name, values

    def __repr__(self) -> str:
        return f"<{self.name} differs per member: {self.values}>"

    def _refuse(self, *_: Any) -> Any:
        raise TypeError(f"setting {self.name} differs between the members of this population (a sweep); "
                        f"read it with self.setting({self.name!r}, like=tensor)")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __pow__ = __rpow__ = __neg__ = __lt__ = __le__ = __gt__ = __ge__ = __float__ = __bool__ = _refuse
    __eq__ = __ne__ = _refuse  # cfg.beta == 3.0 would otherwise be silently False in a sweep
    __hash__ = None  # type: ignore[assignment]


def _shared_config(configs: list[Any], sweepable: tuple[str, ...], algo_name: str) -> tuple[Any, dict[str, list[Any]]]:
    """What the member ``configs`` share: the first config with each differing field replaced by a
    ``DiffersPerMember``; and those fields' values, one per member. Only ``sweepable`` fields may
    differ (the others shape networks or schedules that the members share)."""
    shared = configs[0]
    swept = {f.name: [getattr(c, f.name) for c in configs] for f in dataclasses.fields(shared)
             if any(getattr(c, f.name) != getattr(shared, f.name) for c in configs)} if dataclasses.is_dataclass(shared) else {}
    if not swept:
        return shared, {}
    check_sweepable(algo_name, sweepable, swept)
    return dataclasses.replace(shared, **{k: DiffersPerMember(k, v) for k, v in swept.items()}), swept


def check_sweepable(algo_name: str, sweepable: tuple[str, ...], keys: Any) -> None:
    """The one rule for what may differ between a population's members: only ``sweepable`` settings
    (the others shape networks or schedules the members share). Refuses the others in one line."""
    fixed = sorted(set(keys) - set(sweepable))
    if fixed:
        raise UserInputError(f"{', '.join(fixed)} cannot differ between the members of a {algo_name} population "
                             f"(it can sweep: {', '.join(sweepable) or 'nothing'}); train such runs separately")


# How every algorithm's Adam runs. torch's multi-tensor (foreach) implementation: on CPU it rounds
# each element the same whatever the tensor's size, so a population member's weights equal its
# solo run's bit for bit; the fused CPU kernel rounds a tensor's vectorized tail by its size, and
# members drifted from their solo runs (1.7e-2 in BEAR's VAE after 200 updates). The cost is
# measured by benchmarks/adam_exactness_cost.py, which swaps in {"fused": True}.
ADAM_OPTIONS: dict[str, Any] = {"foreach": True}


def adam(params: Any, lr: float, **options: Any) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr, **options)`` as every algorithm builds it (``ADAM_OPTIONS``)."""
    return torch.optim.Adam(params, lr=lr, **ADAM_OPTIONS, **options)


def optimize(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One gradient step on ``loss``: clear the gradients, backpropagate, step.

    A population's ``loss`` holds one value per member; their sum is minimised, so each member's
    weights get exactly their own loss's gradient (Adam is elementwise: M independent Adams).
    """
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward()
    optimizer.step()


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over a run's batch (B, d): a scalar, or one value per member (M, B, d)."""
    return (prediction - target).pow(2).mean((-2, -1))


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Use ``module`` inside the block without gradients reaching its weights (they still reach
    its inputs: an actor's loss through a critic trains the actor, not the critic)."""
    module.requires_grad_(False)
    try:
        yield module
    finally:
        module.requires_grad_(True)
