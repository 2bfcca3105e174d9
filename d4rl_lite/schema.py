"""What the JSON files the project reads must hold: small declarative specs and one checker.

A file of the right shape can still hold a field of the wrong type (even under a valid checksum,
which anyone can recompute); checked where the file is read, that is one line naming the field,
not a TypeError deep inside a command. A spec is:

- a type: ``int`` (a whole number, never a bool), ``float`` (any finite number), ``str``, ``bool``,
  ``dict`` or ``list`` (any content), ``None`` (JSON null);
- ``Range(int or float, lo, hi)``: such a number within [lo, hi];
- a dict ``{key: spec}``: a JSON object; a key ending in ``?`` may be absent, keys not named are
  allowed (files gain fields over versions);
- a one-element list ``[spec]``: a JSON array whose every item matches ``spec``;
- a tuple of specs: any one of them, e.g. ``(Range(int, 1), None)`` for "a positive count or null".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    kind: type  # int or float
    lo: float | None = None
    hi: float | None = None


_NAMES = {int: "a whole number", float: "a finite number", str: "a string", bool: "true or false",
          dict: "an object", list: "a list", type(None): "null"}


def _found(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)  # 7, nan, inf
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return _NAMES.get(type(value), type(value).__name__)


def _describe(spec: Any) -> str:
    if spec is None:
        return "null"
    if isinstance(spec, Range):
        bounds = [f">= {spec.lo:g}" if spec.lo is not None else "", f"<= {spec.hi:g}" if spec.hi is not None else ""]
        return " ".join([_NAMES[spec.kind], *filter(None, bounds)])
    if isinstance(spec, dict):
        return "an object"
    if isinstance(spec, list):
        return f"a list (each item {_describe(spec[0])})"
    if isinstance(spec, tuple):
        return " or ".join(_describe(s) for s in spec)
    return _NAMES.get(spec, spec.__name__)


def _is(value: Any, kind: Any) -> bool:
    if kind is None:
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def mismatch(value: Any, spec: Any, where: str = "") -> str | None:
    """How ``value`` differs from ``spec`` (``"d4rl_lite.name must be a string, found 7"``),
    or None when it matches. ``where`` names ``value`` in the message ("" for a whole file)."""
    label = where or "the file's top level"
    if isinstance(spec, tuple):
        problems = [mismatch(value, s, where) for s in spec]
        if None in problems:
            return None
        inner = [p for s, p in zip(spec, problems) if isinstance(s, (dict, list)) and _is(value, type(s))]
        return inner[0] if inner else f"{label} must be {_describe(spec)}, found {_found(value)}"
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{label} must be an object, found {_found(value)}"
        for key, sub in spec.items():
            name = key.removesuffix("?")
            path = f"{where}.{name}" if where else name
            if name not in value:
                if key.endswith("?"):
                    continue
                return f"{path} is missing"
            problem = mismatch(value[name], sub, path)
            if problem:
                return problem
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{label} must be {_describe(spec)}, found {_found(value)}"
        return next((p for i, item in enumerate(value) if (p := mismatch(item, spec[0], f"{where}[{i}]"))), None)
    kind = spec.kind if isinstance(spec, Range) else spec
    if not _is(value, kind):
        return f"{label} must be {_describe(spec)}, found {_found(value)}"
    if isinstance(spec, Range) and not ((spec.lo is None or value >= spec.lo) and (spec.hi is None or value <= spec.hi)):
        return f"{label} must be {_describe(spec)}, found {value!r}"
    return None


# -- reference scores: the shipped/user reference files and each dataset's copy of them -------------
REFERENCE = {"value?": (float, None), "how?": str}  # value None: not measured yet
TASK_REFERENCES = {"ref_min?": REFERENCE, "ref_max?": REFERENCE}


def reference_pair_problem(ref_min: Any, ref_max: Any) -> str | None:
    """Why two reference returns cannot normalize a score (None when they can, or one is not measured):
    ref_max == ref_min divides by zero, ref_max < ref_min turns the scale upside down."""
    for label, value in (("ref_min", ref_min), ("ref_max", ref_max)):
        if value is not None and not _is(value, float):
            return f"{label} must be a finite number, found {_found(value)}"
    if ref_min is not None and ref_max is not None and not ref_max > ref_min:
        return f"ref_max ({ref_max!r}) must be above ref_min ({ref_min!r}), or no score can be normalized"
    return None


def read_checked_json(path: Any, spec: Any, what: str, advice: str = "") -> Any:
    """A JSON file (a regular file of bounded size and depth, see ``files.read_json``) that matches
    ``spec``; anything else is one ``CorruptFileError`` naming the file and the field."""
    from d4rl_lite.files import CorruptFileError, read_json

    data = read_json(path, what, advice)
    problem = mismatch(data, spec)
    if problem:
        raise CorruptFileError(f"{path}: {what}: {problem}. {advice}".rstrip())
    return data
