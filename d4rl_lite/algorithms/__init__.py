"""Offline RL algorithms by name (one readable file each; shared nets and trainer plumbing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from d4rl_lite.errors import UnknownNameError

ALGORITHMS: dict[str, Any] = {}


def register(name: str) -> Callable[[Any], Any]:
    """Class decorator adding an algorithm to the registry under ``name``."""

    def add(cls: Any) -> Any:
        if name in ALGORITHMS:
            raise ValueError(f"algorithm {name!r} is already registered")
        ALGORITHMS[name] = cls
        return cls

    return add


def get_algorithm(name: str) -> Any:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise UnknownNameError("algorithm", name, ALGORITHMS, "See `d4rl-lite list`.") from None


# Each algorithm module registers itself on import.
from d4rl_lite.algorithms import awac, bc, bcq, bear, brac, cql, iql, sac, td3_bc  # noqa: E402, F401
