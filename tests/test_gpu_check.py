"""benchmarks/gpu_check.py on a machine without CUDA: one line that says so, exit 0 (issue 35)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run its full check")
def test_without_cuda_it_says_so_in_one_line_and_exits_0():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0], out.stdout
    assert out.stderr == ""
