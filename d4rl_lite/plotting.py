"""Figures written to PNG without a display: one place for the backend and for saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` as ``path`` (a PNG when the name has no suffix) and return the file written."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")  # what matplotlib would write: say so, rather than the name given
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)
    return path
