"""What a suite file may make d4rl-lite do, checked when the suite is read.

- A bare name (``smoke``) is a shipped suite, never a file that happens to be in the current
  directory; a suite file is named by a path (``./mine.json``, anything with a separator or ending
  in ``.json``).
- A suite's ``imports`` are Python modules: importing one runs its code. They are imported only
  when the user asks (``bench --allow-imports``; ``run_suite(..., allow_imports=True)``), never by
  ``--plan``, ``--list`` or ``report``, and they resolve from ``PYTHONPATH`` and installed packages:
  the current directory (which ``python -m`` and interactive sessions put on ``sys.path``) is
  searched only when ``PYTHONPATH`` names it.
- A setting under ``all`` that every algorithm is meant to take (``hidden``, the shared settings of
  ``AlgorithmConfig``) must reach every algorithm of the suite, else the algorithms would be
  compared with different networks or batches.
- One run's networks and batch must fit in this machine's memory (a lower bound, estimated
  before anything is allocated).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from d4rl_lite.errors import UnknownNameError, UserInputError

MAX_SUITE_BYTES = 2**20  # the shipped suites are a few kB


def shipped_suites() -> list[Path]:
    from importlib import resources

    folder = resources.files("d4rl_lite").joinpath("benchmark", "suites")
    return sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".json"))


def suite_file(name_or_path: str | os.PathLike) -> Path:
    """The file ``name_or_path`` means: a path (it has a separator or ends in ``.json``) is that
    file; a bare name is a shipped suite only (a local file of that name is pointed out, not used)."""
    text = str(name_or_path)
    if isinstance(name_or_path, os.PathLike) or "/" in text or os.sep in text or text.endswith(".json"):
        path = Path(text)
        if not path.is_file():
            raise UserInputError(f"no suite file at {path}" + (" (not a regular file)" if path.exists() else "")
                             + "; give a shipped suite's name (`d4rl-lite bench --list`) or a suite file's path")
        return path
    shipped = {p.stem: p for p in shipped_suites()}
    local = Path(text).is_file()
    if text not in shipped:
        hint = (f"A file named {text} is here: give it as a path, ./{text}, to use it." if local else
                "Give a shipped suite's name or the path to a suite file (./NAME.json).")
        raise UnknownNameError("suite", text, shipped, hint)
    if local:
        print(f"d4rl-lite: note: {text} is the shipped suite; the file ./{text} here is not used (give it as "
              f"./{text} to use it)", file=sys.stderr)
    return shipped[text]


def read_suite(path: Path) -> dict[str, Any]:
    """A suite file's JSON object (bounded in size and depth: one line on any defect)."""
    from d4rl_lite.files import read_json

    raw = read_json(path, "suite file", "See d4rl_lite/benchmark/suites.py for the format.", limit=MAX_SUITE_BYTES)
    if not isinstance(raw, dict):
        raise UserInputError(f"{path}: not a valid suite file (expected a JSON object, found {type(raw).__name__}); "
                         "see d4rl_lite/benchmark/suites.py for the format")
    raw.pop("checksum", None)  # a results directory's suite.json (written by bench) serves as a suite file too
    return raw


def is_module_name(text: Any) -> bool:
    """``my_algo`` or ``package.my_algo``: an absolute module name, nothing a path could hide in."""
    return isinstance(text, str) and all(part.isidentifier() for part in text.split("."))


def imports_refused(suite_name: str, modules: list[str]) -> str:
    return (f"suite {suite_name!r} imports {', '.join(modules)}, Python code that runs when imported; bench runs a "
            "suite's imports only with --allow-imports (allow_imports=True in Python): add it if you trust "
            f"{'that module' if len(modules) == 1 else 'those modules'}")


def import_modules(modules: list[str], suite_name: str) -> None:
    """Import ``modules`` (the user allowed it) with the current directory off ``sys.path`` unless
    PYTHONPATH names it: a file that happens to be where the command runs is not imported."""
    cwd = os.path.realpath(os.getcwd())
    asked = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    implicit = [(i, p) for i, p in enumerate(sys.path) if os.path.realpath(p or ".") == cwd and cwd not in asked]
    for i, _ in reversed(implicit):
        del sys.path[i]
    importlib.invalidate_caches()  # a module written just now (a test, a notebook) is seen
    try:
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise UserInputError(f"suite {suite_name!r} imports {module!r}, which cannot be imported ({e}); put it "
                                 "on PYTHONPATH (the current directory is searched only when PYTHONPATH names it)") from None
    finally:
        for i, p in implicit:
            sys.path.insert(i, p)


def unreached_shared_setting(where: str, settings: dict[str, Any], algo: str, cls: type, own: dict[str, Any]) -> str | None:
    """Why a setting of ``settings["all"]`` meant for every algorithm reaches none of ``algo``'s
    fields (``own``: the algorithm's own settings there, which make it moot), or None."""
    from d4rl_lite.algorithms.base import AlgorithmConfig
    from d4rl_lite.algorithms.settings import hidden_fields, setting_targets

    shared = {f.name for f in dataclasses.fields(AlgorithmConfig)}
    for key in settings.get("all", {}):
        if key in own or (key != "hidden" and key not in shared):
            continue  # an algorithm-specific key is for the algorithms that have it
        if key == "hidden" and not hidden_fields(cls):
            return (f"{where}.all.hidden reaches no setting of {algo} (hidden sets every network's layer sizes, the fields declared "
                    f"Layers, and its config {cls.__name__} has none): declare its layer sizes as "
                    f"d4rl_lite.algorithms.settings.Layers as the built-in algorithms do, or give {algo} its own value "
                    f"in {where}.{algo}")
        if key != "hidden" and not setting_targets(cls, key):
            return (f"{where}.all.{key} reaches no setting of {algo} (its config {cls.__name__} does not extend "
                    f"AlgorithmConfig, so it would train with the default {key}): extend "
                    "d4rl_lite.algorithms.base.AlgorithmConfig, which every built-in config extends")
    return None

