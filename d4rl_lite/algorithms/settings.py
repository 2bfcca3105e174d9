"""Settings of an algorithm's config: their declared ranges, their docs, the names that set them,
and how ``--set`` / suite / config-file values become a config.

A field's range is declared with its type (``batch_size: Count = 256``), so renaming the field
keeps its check: ``Count`` (a whole number >= 1), ``Steps`` (>= 0), ``LearningRate`` (> 0),
``Discount`` (in (0, 1)), ``Rate`` (in (0, 1]), ``Layers`` (layer sizes, each >= 1), ``Weight``
(>= 0), ``Positive`` (> 0), ``WeightClip`` (in (0, 1e6]). Every
number is also checked finite. A config's own ``validate()`` checks what is special to it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from typing import Annotated, Any

from d4rl_lite.errors import UserInputError


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The values a setting may take: ``low`` / ``high`` (None: unbounded), each inclusive or not."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    what: str = ""

    def problem(self, value: float) -> str | None:
        too_low = self.low is not None and (value < self.low if self.low_inclusive else value <= self.low)
        too_high = self.high is not None and (value > self.high if self.high_inclusive else value >= self.high)
        if not (too_low or too_high):
            return None
        lo = "" if self.low is None else f"{'>=' if self.low_inclusive else '>'} {self.low:g}"
        hi = "" if self.high is None else f"{'<=' if self.high_inclusive else '<'} {self.high:g}"
        return f"{self.what} must be {' and '.join(filter(None, (lo, hi)))}".strip()


@dataclasses.dataclass(frozen=True)
class LayerSizes:
    """A network's hidden layer sizes: a non-empty tuple of whole numbers >= 1."""


Count = Annotated[int, Bounds(1, what="a count")]
Steps = Annotated[int, Bounds(0, what="a number of steps")]
LearningRate = Annotated[float, Bounds(0, low_inclusive=False, what="a learning rate")]
Discount = Annotated[float, Bounds(0, 1, low_inclusive=False, high_inclusive=False, what="the discount")]
Rate = Annotated[float, Bounds(0, 1, low_inclusive=False, what="an averaging rate")]
Layers = Annotated[tuple[int, ...], LayerSizes()]
Weight = Annotated[float, Bounds(0, what="a weight")]
Positive = Annotated[float, Bounds(0, low_inclusive=False, what="a positive number")]
# An upper clip of exp weights: beyond float32's range it could not be applied (1e6 is far past any use).
WeightClip = Annotated[float, Bounds(0, 1e6, low_inclusive=False, what="a weight clip")]


def declared(cls: type) -> dict[str, Any]:
    """{field: its Bounds or LayerSizes} for the fields of config class ``cls`` that declare one."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):  # each class's annotations in its own module's names
        try:
            hints.update(typing.get_type_hints(klass, include_extras=True))
        except (NameError, TypeError):  # a user's config whose annotations do not resolve: nothing declared there
            continue
    out = {}
    for f in dataclasses.fields(cls):
        marks = getattr(hints.get(f.name), "__metadata__", ())
        found = [m for m in marks if isinstance(m, (Bounds, LayerSizes))]
        if found:
            out[f.name] = found[0]
    return out


def check_ranges(config: Any) -> None:
    """Each setting against the range its field declares; every number finite."""
    rules = declared(type(config))
    for f in dataclasses.fields(config):
        name, value, rule = f.name, getattr(config, f.name), rules.get(f.name)
        if isinstance(rule, LayerSizes):
            if not isinstance(value, tuple) or not value or not all(isinstance(v, int) and v >= 1 for v in value):
                raise UserInputError(f"setting {name}={value!r}: layer sizes must be whole numbers >= 1")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # strings, None, and whatever a user config holds: its own validate() checks them
        if not math.isfinite(value):
            raise UserInputError(f"setting {name}={value!r}: must be a finite number")
        if rule is not None and (problem := rule.problem(value)):
            raise UserInputError(f"setting {name}={value!r}: {problem}")


_noticed: set[tuple[str, str]] = set()


def new_names(cls: type, key: str) -> tuple[str, ...]:
    """The fields an older setting name of ``cls`` stands for (its ``renamed``; empty if none)."""
    return tuple(getattr(cls, "renamed", {}).get(key, ()))


def setting_docs(cls: type) -> dict[str, str]:
    """Each field of config class ``cls`` -> its docstring (the string right under the field, as
    CleanRL documents its ``Args``); the nearest declaration along the class hierarchy wins."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError):  # defined where there is no source (e.g. in an interactive session)
            continue
        for node, after in zip(body, body[1:] + [None]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}


def domain_settings(algo_name: str, domain: str, task: str | None = None) -> dict[str, Any]:
    """The settings ``algo_name``'s reference implementation uses on tasks of ``domain``, and over
    them those of the task named ``task`` (e.g. MOPO's termination rule on hopper) (data:
    ``algorithms/domain_settings.json``, each entry with its source); empty if it has none."""
    import json
    from importlib import resources

    table = json.loads(resources.files("d4rl_lite.algorithms").joinpath("domain_settings.json").read_text())
    entries = table.get(algo_name, {})
    return {**entries.get(domain, {}).get("settings", {}), **(entries.get(task, {}).get("settings", {}) if task else {})}


def hidden_fields(cls: type) -> tuple[str, ...]:
    """Every network's layer sizes in config class ``cls``: its fields declared ``Layers``."""
    rules = declared(cls)
    return tuple(f.name for f in dataclasses.fields(cls) if isinstance(rules.get(f.name), LayerSizes))


def setting_targets(cls: type, key: str) -> tuple[str, ...]:
    """The fields of config class ``cls`` that setting ``key`` sets (``--set``, a run's config): itself,
    the fields an older name now stands for, or, for the shorthand ``hidden``, every network's layer
    sizes; empty if none. (Suites read ``hidden`` as the shorthand first: ``Suite.algo_settings``.)"""
    if key in {f.name for f in dataclasses.fields(cls)}:
        return (key,)
    if new_names(cls, key):
        return new_names(cls, key)
    if key == "hidden":
        return hidden_fields(cls)
    return ()


def make_config(cls: type, overrides: dict[str, Any] | None) -> Any:
    """``cls(**defaults)`` with ``overrides`` (strings from the CLI are converted to the field's type).

    Unknown keys and wrong types raise UserInputError naming the field and the known ones.
    """
    config = cls()
    for key, value in (overrides or {}).items():
        targets = setting_targets(cls, key)
        if not targets:
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise UserInputError(f"unknown setting {key!r} for {cls.__name__}; settings: {known}")
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
        raise UserInputError(f"setting {key}={value!r}: expected {type(current).__name__} like {current!r}") from None
