"""Names that become paths: a suite's name, a dataset's name from its metadata, a ladder entry's file.

Such a name comes from a file anyone may have written, so before it is joined to a directory it
is checked to name something inside that directory: no separator, no ``..``, not empty, no
control characters, and short enough for every file system (with room for a suffix such as
``-returns.png``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from d4rl_lite.errors import UserInputError

MAX_NAME_CHARS = 200  # file systems allow 255 bytes; the rest is for suffixes and temporary names


def _problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "is empty" if name == "" else f"is not a string ({type(name).__name__})"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if ".." in name or name == ".":
        return "holds '..'" if ".." in name else "is '.'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "holds a control character"
    return None


def _shown(name: Any) -> str:
    text = repr(name)
    return text if len(text) <= 80 else text[:60] + f"...' ({len(name)} characters)"


def path_name(name: Any, what: str) -> str:
    """``name`` if it can be one file or directory name inside a directory; else a ValueError that
    says what (``what``) and why."""
    problem = _problem(name)
    if problem:
        raise UserInputError(f"{what} {_shown(name)} cannot be used as a file name: it {problem} (a name is 1 to "
                         f"{MAX_NAME_CHARS} characters without '/', '\\', '..' or control characters)")
    return name


def relative_path(path: Any, what: str) -> Path:
    """``path`` ("ladder/step_00050000.safetensors") as a relative Path whose every part is a
    ``path_name``: joined to a directory, it stays inside it."""
    parts = path.split("/") if isinstance(path, str) else [path]
    for part in parts:
        problem = _problem(part)
        if problem:
            raise UserInputError(f"{what} {_shown(path)} cannot be used as a file name inside its directory: "
                             f"{'a part of it' if len(parts) > 1 else 'it'} {problem} (parts of 1 to "
                             f"{MAX_NAME_CHARS} characters without '\\', '..' or control characters, joined by '/')")
    return Path(*parts)
