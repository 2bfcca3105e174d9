"""Exceptions of d4rl_lite: every message says what is wrong and what to do about it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class D4RLLiteError(Exception):
    """Base class of every error this package raises on purpose."""


class UserInputError(D4RLLiteError, ValueError):
    """A setting, option, name or file the user gave that cannot be used as given.

    The command line prints it as one line (exit 2); any other ValueError is a bug and keeps its
    traceback. Also a ValueError, so code that caught ValueError before still catches it.
    """


class UnknownNameError(D4RLLiteError, LookupError):
    """A task, dataset, kind or algorithm name that is not registered."""

    def __init__(self, what: str, name: str, known: Iterable[str], hint: str = ""):
        known = sorted(set(known))
        self.what, self.name, self.known = what, name, known
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        msg = f"unknown {what} {name!r}."
        if close:
            msg += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        else:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            msg += f" Known {what}s: {shown}."
        if hint:
            msg += " " + hint
        super().__init__(msg)


class DatasetError(D4RLLiteError, ValueError):
    """A dataset file or array that fails validation.

    ``path`` names the file, ``field`` the array (or metadata key) and ``index`` the first bad
    transition, when those apply.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        field: str | None = None,
        index: int | None = None,
        advice: str = "",
    ):
        self.path = None if path is None else str(path)
        self.field, self.index, self.problem = field, index, problem
        where = []
        if self.path:
            where.append(self.path)
        if field:
            where.append(f"field {field!r}")
        if index is not None:
            where.append(f"index {index}")
        msg = (": ".join([", ".join(where), problem]) if where else problem).rstrip(".") + "."
        if advice:
            msg += " " + advice
        super().__init__(msg)


class ChecksumMismatchError(DatasetError):
    """Stored arrays do not hash to the checksum recorded when the dataset was written."""


class TaskMismatchError(DatasetError):
    """A dataset opened for a task other than the one it was built for."""


class DatasetNotFoundError(D4RLLiteError, FileNotFoundError):
    """A catalogue dataset that has not been built on this machine, or a path with no dataset."""


class ReferenceScoreUnavailable(D4RLLiteError, ValueError):
    """A normalized score was asked for while the task's reference score is not yet measured."""
