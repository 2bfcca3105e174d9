"""Ctrl-C stops `bench` within seconds (queued jobs never start, running ones keep their last
checkpoint, exit 130, a later bench resumes); `bench` shows progress inside a job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from d4rl_lite.benchmark.runner import run_suite
from d4rl_lite.benchmark.suites import Suite

DATASET = "pointmaze-umaze-dense-random-v0"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from d4rl_lite.datasets.builders import build_dataset

    root = tmp_path_factory.mktemp("interrupt_root")
    build_dataset(DATASET, size=2000, seed=0, root=root)
    return root


def slow_suite(path: Path, seeds: int = 4, steps: int = 4000) -> Path:
    """One bc run per seed, each long enough (seconds) that a signal finds one running and the others queued."""
    spec = {"name": "slow", "algorithms": ["bc"], "seeds": list(range(seeds)),
            "datasets": {DATASET: {"size": 2000}}, "steps": steps, "eval_every": 1000, "eval_episodes": 2,
            "log_every": 100, "checkpoint_every": 500,
            "settings": {"all": {"hidden": [32, 32], "batch_size": 64}}}
    path.write_text(json.dumps(spec))
    return path


def bench_command(suite: Path, results: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "d4rl_lite.cli", "bench", str(suite), "--results", str(results), "--root", str(root),
            "--workers", "1", "--population", "off", *extra]


def as_from_a_terminal() -> None:
    """In the child before bench starts: Ctrl-C's default action, as a shell gives a foreground command.
    A process that ignores SIGINT passes that on to what it starts (POSIX keeps SIG_IGN across exec),
    and a pytest-xdist worker may ignore it: bench would then rightly ignore Ctrl-C too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def started_runs(results: Path) -> set[str]:
    return {p.name for p in results.iterdir() if p.is_dir()} if results.exists() else set()


def training(results: Path) -> bool:
    """A run has logged its first updates (its job is past loading and training now)."""
    return any(p.stat().st_size > 0 for p in results.glob("*/log.jsonl"))


def live_processes_of_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that are not zombies (an orphan's exit is reaped by init, in its own time)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


@pytest.mark.parametrize("to", ["group", "main"])
def test_ctrl_c_stops_bench_within_seconds_and_a_later_bench_resumes(to, tmp_path, data_root):
    from d4rl_lite.files import load_state

    suite, results = slow_suite(tmp_path / "slow.json"), tmp_path / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(bench_command(suite, results, data_root), env=env, start_new_session=True,
                            preexec_fn=as_from_a_terminal,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not training(results) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert training(results), proc.communicate(timeout=30)
        running = started_runs(results)
        assert len(running) == 1  # one worker: the other runs are queued
        if to == "group":  # Ctrl-C in a terminal: every process of the foreground group
            os.killpg(proc.pid, signal.SIGINT)
        else:  # kill -INT of the main process only
            os.kill(proc.pid, signal.SIGINT)
        sent = time.time()
        out, err = proc.communicate(timeout=60)
        took = time.time() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert took < 20, f"bench took {took:.0f} s to stop after SIGINT"
    assert started_runs(results) == running, "a queued run started after the signal"
    assert "Traceback" not in err, err
    # Nothing of the group outlives bench: no worker goes on training unseen.
    deadline = time.time() + 5
    while live_processes_of_group(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not live_processes_of_group(proc.pid)
    # The stopped run keeps a valid checkpoint (if it reached one), and the same command resumes and finishes.
    (run,) = running
    if (results / run / "checkpoint.safetensors").exists():
        assert 0 < load_state(results / run / "checkpoint.safetensors")["step"] < 4000
    again = subprocess.run(bench_command(suite, results, data_root), env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    for seed in range(4):
        result = json.loads((results / f"bc__{DATASET}__seed{seed}" / "result.json").read_text())
        assert result["steps"] == 4000


def test_bench_shows_progress_inside_a_job(tmp_path, data_root):
    """Each evaluation of a running job is one line (steps done of the budget, updates/s, score), before
    the job's 'finished' line; output that is not a terminal gets lines, never redraws."""
    suite = Suite.load(slow_suite(tmp_path / "slow.json", seeds=2, steps=3000))
    lines: list[str] = []
    assert run_suite(suite, tmp_path / "results", workers=1, root=data_root, log=lines.append,
                     population=True)["done"] == 2
    finished = next(i for i, line in enumerate(lines) if line.startswith("[") and "finished" in line)
    progress = [line for line in lines[:finished] if "1,000/3,000 updates" in line or "2,000/3,000 updates" in line]
    assert len(progress) == 2, lines
    for line in progress:
        assert f"bc__{DATASET}__seeds0,1:" in line and "upd/s" in line and "score" in line, line
    assert all("\r" not in line for line in lines)
