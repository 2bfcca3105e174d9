"""What every offline algorithm shares: config handling, device, acting, and checkpointable state."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from d4rl_lite.device import resolve_device


@dataclasses.dataclass
class AlgorithmConfig:
    """Settings every algorithm shares; the training loop reads exactly these (``training_settings``).

    One name per concept across algorithms: ``actor_hidden`` / ``critic_hidden`` (layer sizes),
    ``actor_lr`` / ``critic_lr``, ``temperature_lr`` / ``init_temperature`` (SAC's entropy
    temperature), ``warmup_steps`` (first updates whose actor loss leaves out Q), and named weights
    (``rl_weight``, ``divergence_weight``, ``cql_weight``) instead of a bare ``alpha``. A config's
    ``renamed`` maps its older names to the new ones (accepted, with a notice).
    """

    batch_size: int = 256
    """Transitions per gradient update."""
    gamma: float = 0.99
    """Discount factor."""
    normalize_states: bool = False
    """Standardize observations with the dataset's mean and std (the same statistics when acting)."""
    normalize_reward: bool = False
    """Rescale rewards so that episode returns in the dataset span 1000 (IQL on locomotion)."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this, then ``reward_bias`` is added (after normalize_reward)."""
    reward_bias: float = 0.0

    renamed: ClassVar[dict[str, tuple[str, ...]]] = {}


def training_settings(config: Any) -> AlgorithmConfig:
    """The shared settings of any algorithm's config: its own values where it declares them (every
    built-in config derives from AlgorithmConfig), AlgorithmConfig's defaults where a plain user
    dataclass leaves them out."""
    if isinstance(config, AlgorithmConfig):
        return config
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(AlgorithmConfig) if hasattr(config, f.name)}
    return AlgorithmConfig(**shared)


_noticed: set[tuple[str, str]] = set()


def new_names(cls: type, key: str) -> tuple[str, ...]:
    """The fields an older setting name of ``cls`` stands for (its ``renamed``; empty if none)."""
    return tuple(getattr(cls, "renamed", {}).get(key, ()))


class OfflineAlgorithm:
    """Base class: a subclass defines ``Config`` (reference defaults), builds its networks and
    optimizers in ``setup``, and implements ``update`` (one gradient step, metrics left on the device)
    and ``policy_action`` (deterministic action for a normalized observation batch)."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = object
    # True for a baseline that is expected to fail offline (naive SAC): tests and the benchmark's
    # validity checks hold it to that instead of to improving over its initial policy.
    naive_baseline: ClassVar[bool] = False

    def __init__(self, obs_dim: int, act_dim: int, config: Any = None, device: Any = "auto", seed: int = 0):
        self.config = config if config is not None else self.Config()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = resolve_device(device)
        self.step = 0  # gradient steps taken; algorithms with warm-up phases read it
        torch.manual_seed(seed)
        # State normalization (TD3+BC, IQL, ...): the trainer normalizes the dataset once and the
        # same statistics are applied when acting.
        self.obs_mean = torch.zeros(obs_dim, device=self.device)
        self.obs_std = torch.ones(obs_dim, device=self.device)
        self.setup()

    def setup(self) -> None:
        raise NotImplementedError

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def policy_action(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic actions for raw (unnormalized) flat observations, batch (n, obs_dim)."""
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.device)
        obs = (obs - self.obs_mean) / self.obs_std
        return self.policy_action(obs).clamp(-1.0, 1.0).cpu().numpy()

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


def optimize(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One gradient step on ``loss``: clear the gradients, backpropagate, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Use ``module`` inside the block without gradients reaching its weights (they still reach
    its inputs: an actor's loss through a critic trains the actor, not the critic)."""
    module.requires_grad_(False)
    try:
        yield module
    finally:
        module.requires_grad_(True)


def make_config(cls: type, overrides: dict[str, Any] | None) -> Any:
    """``cls(**defaults)`` with ``overrides`` (strings from the CLI are converted to the field's type).

    Unknown keys and wrong types raise ValueError naming the field and the known ones.
    """
    config = cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in (overrides or {}).items():
        if key in fields:
            targets: tuple[str, ...] = (key,)
        elif new_names(cls, key):
            targets = new_names(cls, key)
        elif key == "hidden":  # shorthand (as in suites): every network's layer sizes
            targets = tuple(f for f in fields if f.endswith("_hidden"))
        else:
            targets = ()
        if not targets:
            raise ValueError(f"unknown setting {key!r} for {cls.__name__}; settings: {', '.join(fields)}")
        if key != "hidden" and targets != (key,) and (cls.__name__, key) not in _noticed:
            _noticed.add((cls.__name__, key))
            print(f"d4rl-lite: note: setting {key!r} of {cls.__name__} is now called {' and '.join(targets)}; "
                  "the old name still works", file=sys.stderr)
        for target in targets:
            setattr(config, target, _convert(target, value, getattr(config, target)))
    check_ranges(config)
    if hasattr(config, "validate"):
        config.validate()
    return config


def check_ranges(config: Any) -> None:
    """The ranges every algorithm's settings share, by the field-naming convention of the configs:
    sizes, counts and steps are whole numbers (``*_steps`` may be 0, the rest >= 1), learning rates
    and weights positive, discount and averaging rates in (0, 1), every number finite."""
    import math

    for f in dataclasses.fields(config):
        name, value = f.name, getattr(config, f.name)
        if name.endswith("_hidden"):
            if not isinstance(value, tuple) or not value or not all(isinstance(v, int) and v >= 1 for v in value):
                raise ValueError(f"setting {name}={value!r}: layer sizes must be whole numbers >= 1")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # strings, None, and whatever a user config holds: its own validate() checks them
        if not math.isfinite(value):
            raise ValueError(f"setting {name}={value!r}: must be a finite number")
        if name == "gamma" and not 0.0 < value < 1.0:
            raise ValueError(f"setting gamma={value!r}: the discount must be in (0, 1)")
        if name == "tau" and not 0.0 < value <= 1.0:
            raise ValueError(f"setting tau={value!r}: the target-network averaging rate must be in (0, 1]")
        if (name.endswith("_lr") or name == "lr") and value <= 0:
            raise ValueError(f"setting {name}={value!r}: a learning rate must be > 0")
        if isinstance(value, int):
            low = 0 if name.endswith("_steps") and not name.endswith("schedule_steps") else 1
            if name.endswith("_freq") and value < 1:
                raise ValueError(f"setting {name}={value!r}: must be >= 1")
            if (name.endswith(("_size", "_steps", "samples", "_actions", "_critics", "num_qs")) or name.startswith("num_")) \
                    and value < low:  # (schedule lengths divide: >= 1)
                raise ValueError(f"setting {name}={value!r}: must be >= {low}")


def _convert(key: str, value: Any, current: Any) -> Any:
    if isinstance(value, list) and isinstance(current, tuple):  # layer sizes from JSON
        return tuple(value)
    if not isinstance(value, str):
        return value
    try:
        if isinstance(current, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        if isinstance(current, tuple):
            return tuple(int(x) for x in value.replace("x", ",").split(",") if x)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if current is None:
            for conv in (int, float):
                try:
                    return conv(value)
                except ValueError:
                    pass
        return value
    except ValueError:
        raise ValueError(f"setting {key}={value!r}: expected {type(current).__name__} like {current!r}") from None
