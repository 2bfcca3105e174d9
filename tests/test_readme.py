"""The README runs as written: every Python block after a small build, every command line parses.

``blocks``, ``command_lines`` and ``run_python_block`` serve the documentation's tests too
(tests/test_docs.py), which hold the docs pages to the same rule.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MAX_README_LINES = 200


def blocks(language: str, path: Path = README) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def command_lines(path: Path = README) -> list[list[str]]:
    """The words of every ``d4rl-lite`` command in the file's bash blocks, after any leading
    ``VAR=value`` assignments (``PYTHONPATH=. d4rl-lite bench ...``)."""
    commands = []
    for block in blocks("bash", path):
        for part in re.split(r"&&|\n", block):
            words = shlex.split(part)
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
                words = words[1:]
            if words and words[0] == "d4rl-lite":
                commands.append(words[1:])
    return commands


def build_first_command_data(root: Path) -> None:
    """What the first of the two commands leaves behind, smaller: hopper-random-v0 under ``root``."""
    from d4rl_lite.datasets.builders import build_dataset

    build_dataset("hopper-random-v0", size=2000, seed=0, root=root, num_envs=4)


def run_python_block(block: str, cwd: Path) -> subprocess.CompletedProcess:
    """``block`` as a script in ``cwd`` (which holds ``./d4rl_lite_data``), in a new Python process."""
    script = cwd / "block.py"
    script.write_text(block)
    return subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_readme_has_the_blocks_this_test_runs():
    assert len(blocks("python")) >= 1 and len(blocks("bash")) >= 2


def test_the_readme_is_short_and_its_links_resolve():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local, "the README links to the documentation"
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_every_python_block_runs_after_the_two_commands(index, tmp_path):
    build_first_command_data(tmp_path / "d4rl_lite_data")
    done = run_python_block(blocks("python")[index], tmp_path)
    assert done.returncode == 0, done.stderr


def test_every_command_line_in_the_readme_parses():
    from d4rl_lite.cli import build_parser

    parser = build_parser()
    commands = command_lines()
    for words in commands:
        parser.parse_args(words)  # an unknown flag or verb exits here
    assert len(commands) >= 2
