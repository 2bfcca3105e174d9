"""Where datasets live on disk: the datasets root, each dataset's directory and files, and the
rebuild command that puts a damaged one back (advice that works as typed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from d4rl_lite.errors import DatasetNotFoundError
from d4rl_lite.tasks import TASKS

DATA_DIR = "data"
MAIN_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
NAMESPACE_FILE = "namespace_metadata.json"


def datasets_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live: ``root``, else $MINARI_DATASETS_PATH, else ~/.minari/datasets (Minari's rule)."""
    if root is None:
        root = os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets"
    # Absolute: Minari joins relative data paths onto themselves when it sizes a dataset.
    return Path(root).expanduser().absolute()


def dataset_dir_for_id(dataset_id: str, root: str | os.PathLike | None = None) -> Path:
    return datasets_root(root) / dataset_id


def find_data_dir(path: str | os.PathLike) -> Path:
    """Accept a dataset directory, its ``data`` directory or its ``main_data.hdf5``; return ``data``."""
    p = Path(path).expanduser()
    candidates = [p / DATA_DIR, p] if p.is_dir() else [p.parent] if p.name in (MAIN_FILE, METADATA_FILE) else []
    for c in candidates:
        if (c / METADATA_FILE).is_file() or (c / MAIN_FILE).is_file():
            return c
    raise DatasetNotFoundError(
        f"no dataset at {p}: expected a directory holding {DATA_DIR}/{METADATA_FILE} and "
        f"{DATA_DIR}/{MAIN_FILE} (a Minari dataset directory). Check the path, or build the dataset "
        f"with `d4rl-lite build NAME`."
    )


def rebuild_advice(data_dir: Path, ours: dict[str, Any] | None = None) -> str:
    """A rebuild command that works as typed: the dataset's name, size and seed, and its root."""
    ours = ours if isinstance(ours, dict) else {}
    in_layout = data_dir.parent.parent.name in TASKS  # <root>/d4rl_lite/<task>/<kind>-vN/data
    name = f"{data_dir.parent.parent.name}-{data_dir.parent.name}" if in_layout else ours.get("name")
    if not isinstance(name, str):
        return "Rebuild it with `d4rl-lite build NAME --force` (its name is unreadable; `d4rl-lite list` shows names)."
    command = f"d4rl-lite build {name} --force"
    recipe = ours.get("recipe") if isinstance(ours.get("recipe"), dict) else {}
    for key in ("size", "seed"):
        if isinstance(recipe.get(key), int) and not isinstance(recipe.get(key), bool):
            command += f" --{key} {recipe[key]}"
    if not in_layout:
        return (f"Rebuild it with `{command} --root ROOT` (ROOT: your datasets directory; this copy at "
                f"{data_dir.parent} is outside one) and copy it here again.")
    root = data_dir.parent.parent.parent.parent
    try:
        if root.resolve() != datasets_root(None).resolve():
            command += f" --root {root}"
    except OSError:
        pass
    return f"Rebuild it with `{command}`."
