"""The literature's patterns a results table is checked against, as data (``patterns.json``): each
with its claim, source, the dataset kinds it concerns and its threshold. The checks are ``validity.py``."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_patterns() -> dict[str, dict[str, Any]]:
    """The checks, by id (``patterns.json``; keys starting with ``_`` are notes)."""
    table = json.loads(resources.files("d4rl_lite.benchmark").joinpath("patterns.json").read_text())
    return {k: v for k, v in table.items() if not k.startswith("_")}
