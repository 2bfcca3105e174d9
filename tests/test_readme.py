"""The README runs as written: every Python block after a small build, every command line parses."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_the_blocks_this_test_runs():
    assert len(blocks("python")) >= 2 and len(blocks("bash")) >= 2


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_every_python_block_runs_after_the_two_commands(index, tmp_path):
    from d4rl_lite.datasets.builders import build_dataset

    # What the first command leaves behind, smaller: hopper-random-v0 in ./d4rl_lite_data.
    build_dataset("hopper-random-v0", size=2000, seed=0, root=tmp_path / "d4rl_lite_data", num_envs=4)
    script = tmp_path / "block.py"
    script.write_text(blocks("python")[index])
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_every_command_line_in_the_readme_parses():
    from d4rl_lite.cli import build_parser

    parser = build_parser()
    commands = 0
    for block in blocks("bash"):
        for part in re.split(r"&&|\n", block):
            words = shlex.split(part)
            if words and words[0] == "d4rl-lite":
                parser.parse_args(words[1:])  # an unknown flag or verb exits here
                commands += 1
    assert commands >= 2
