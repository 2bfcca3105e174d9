"""Offline RL algorithms by name: one file each in this folder, registered with ``@register``.

Every module here is imported when the package is (so a new algorithm is one new file: the
registry, the CLI's help, the tests' parametrization and the suites' "all" settings follow).
Algorithms outside the package register the same way from a module a suite ``imports``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from d4rl_lite.errors import UnknownNameError, UserInputError

ALGORITHMS: dict[str, Any] = {}


def register(name: str) -> Callable[[Any], Any]:
    """Class decorator adding an algorithm to the registry under ``name``."""

    def add(cls: Any) -> Any:
        if name in ALGORITHMS:
            raise UserInputError(f"algorithm {name!r} is already registered")
        ALGORITHMS[name] = cls
        return cls

    return add


def get_algorithm(name: str) -> Any:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise UnknownNameError("algorithm", name, ALGORITHMS, "See `d4rl-lite list`.") from None


def _import_algorithm_modules() -> None:
    import importlib
    import pkgutil

    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module != "base":
            importlib.import_module(f"{__name__}.{module}")  # each registers itself


_import_algorithm_modules()
