"""Adding an algorithm is one file: dropped into d4rl_lite/algorithms/, nothing else touched, it
appears in `d4rl-lite train --help`, trains from the command line and runs in a suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import d4rl_lite.algorithms

ONE_FILE = '''
"""Behaviour cloning written by a test: the whole of a new algorithm."""

from dataclasses import dataclass

from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import AlgorithmConfig, OfflineAlgorithm, optimize
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate
from d4rl_lite.nets import DeterministicActor


@dataclass
class OneFileBCConfig(AlgorithmConfig):
    actor_hidden: Layers = (16, 16)
    actor_lr: LearningRate = 1e-3
    batch_size: Count = 32


@register("one_file_bc")
class OneFileBC(OfflineAlgorithm):
    Config = OneFileBCConfig

    def setup(self):
        self.actor = DeterministicActor(self.obs_dim, self.act_dim, self.config.actor_hidden).to(self.device)
        self.opt = __import__("torch").optim.Adam(self.actor.parameters(), lr=self.config.actor_lr)

    def update(self, batch):
        loss = ((self.actor(batch["observations"]) - batch["actions"]) ** 2).mean()
        optimize(self.opt, loss)
        return {"train/actor_loss": loss.detach()}

    def policy_action(self, obs):
        return self.actor(obs)
'''


@pytest.fixture
def one_more_file():
    path = Path(d4rl_lite.algorithms.__file__).parent / "one_file_bc.py"
    path.write_text(ONE_FILE)
    try:
        yield path
    finally:
        path.unlink()


def test_one_new_file_is_a_new_algorithm_everywhere(one_more_file, tmp_path, monkeypatch):
    from d4rl_lite.cli import build_parser

    monkeypatch.setattr(d4rl_lite.algorithms, "ALGORITHMS", dict(d4rl_lite.algorithms.ALGORITHMS))
    d4rl_lite.algorithms._import_algorithm_modules()  # what importing the package does in a new process
    train_help = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                      if a.dest == "algo").help
    assert "one_file_bc" in train_help
    cli = [sys.executable, "-m", "d4rl_lite.cli"]
    root = tmp_path / "root"  # bench builds the dataset and trains every run of the suite
    suite = {"name": "one", "algorithms": ["one_file_bc", "bc"], "datasets": {"pointmaze-umaze-dense-expert-v0": {"size": 600}},
             "seeds": [0], "steps": 20, "eval_every": 20, "eval_episodes": 1, "log_every": 10, "checkpoint_every": 10,
             "settings": {"all": {"hidden": [16, 16]}}}
    (tmp_path / "one.json").write_text(json.dumps(suite))
    benched = subprocess.run(cli + ["bench", str(tmp_path / "one.json"), "--root", str(root), "--results",
                                    str(tmp_path / "res"), "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert benched.returncode == 0, benched.stdout + benched.stderr
    assert "| dataset | data | bc | one_file_bc |" in benched.stdout
    record = json.loads((tmp_path / "res/one_file_bc__pointmaze-umaze-dense-expert-v0__seed0/result.json").read_text())
    assert record["algorithm"] == "one_file_bc" and record["steps"] == 20
