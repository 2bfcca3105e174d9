"""Threads are chosen, not inherited: train sets them, records them, and they are not part of a run."""

from __future__ import annotations

import torch

from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.files import read_record


def test_train_sets_and_records_its_threads_and_a_run_continues_with_others(tmp_path):
    import d4rl_lite
    from d4rl_lite.training.offline import TrainConfig, train

    build_dataset("pointmaze-umaze-dense-expert-v0", size=300, seed=0, root=tmp_path / "data")
    data = d4rl_lite.load_dataset("pointmaze-umaze-dense-expert-v0", root=tmp_path / "data")
    before = torch.get_num_threads()
    try:
        common = dict(seed=0, device="cpu", log_every=10, eval_every=20, eval_episodes=1, checkpoint_every=10)
        train("bc", data, TrainConfig(steps=10, threads=2, **common), {"hidden": (8, 8)}, run_dir=tmp_path / "run")
        assert torch.get_num_threads() == 2
        assert read_record(tmp_path / "run" / "config.json")["train"]["threads"] == 2
        record = train("bc", data, TrainConfig(steps=20, threads=1, **common), {"hidden": (8, 8)}, run_dir=tmp_path / "run")
        assert record["steps"] == 20 and torch.get_num_threads() == 1  # the same run, continued on one thread
    finally:
        torch.set_num_threads(before)


def test_the_train_command_takes_threads(capsys):
    from d4rl_lite.cli import build_parser

    args = build_parser().parse_args(["train", "bc", "hopper-random-v0"])
    assert args.threads == 1
    assert build_parser().parse_args(["train", "bc", "hopper-random-v0", "--threads", "3"]).threads == 3
