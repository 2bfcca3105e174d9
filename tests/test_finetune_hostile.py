"""``finetune`` (and ``train``) against forged or odd input: parent records edited with their checksum and
checkpoint identity recomputed, one run named twice, a resume asked to stop before its checkpoint, an
online buffer larger than the machine, FIFOs where files should be. Each is one line (exit 2) before
anything is read from elsewhere or written."""

import json
import math
import os
import shutil

import pytest

import d4rl_lite
from d4rl_lite.cli import main
from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.errors import UserInputError
from d4rl_lite.files import load_state, read_record, save_state, write_record
from d4rl_lite.training.finetune import finetune, finetune_population
from d4rl_lite.training.offline import TrainConfig, train
from d4rl_lite.training.run_files import checkpoint_identity

DATASET = "hopper-random-v0"
TINY = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 32}
SMALL = dict(device="cpu", log_every=20, eval_every=40, eval_episodes=1, checkpoint_every=20)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_data")
    build_dataset(DATASET, size=600, seed=0, root=root, num_envs=4)
    return root


@pytest.fixture(scope="module")
def parent(data_root, tmp_path_factory):
    """A finished tiny TD3+BC run, never modified (tests copy it)."""
    run = tmp_path_factory.mktemp("hostile_parent") / "td3_bc_1"
    dataset = d4rl_lite.load_dataset(DATASET, root=data_root)
    train("td3_bc", dataset, TrainConfig(steps=40, seed=1, **SMALL), TINY, run_dir=run)
    return run


def forged(parent, where, edit_config=None, edit_result=None):
    """A copy of ``parent`` with its records edited, their checksums and the checkpoint's identity
    recomputed (what anyone with the package can do)."""
    run = where / "forged"
    shutil.copytree(parent, run)
    config, result = read_record(run / "config.json"), read_record(run / "result.json")
    if edit_config:
        edit_config(config)
    if edit_result:
        edit_result(result)
    write_record(run / "config.json", config)
    write_record(run / "result.json", result)
    if isinstance(config.get("train"), dict):  # else no identity can be computed: the checkpoint stays as it was
        state = load_state(run / "checkpoint.safetensors")
        state["identity"] = checkpoint_identity(read_record(run / "config.json"))
        save_state(run / "checkpoint.safetensors", state)
    return run


def refused(capsys, args, steps="40"):
    code = main(["finetune", *map(str, args), "--env-steps", steps, "--device", "cpu", "--quiet", "--eval-episodes", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def _set(*path_and_value):
    *keys, value = path_and_value

    def edit(record):
        for k in keys[:-1]:
            record = record[k]
        record[keys[-1]] = value
    return edit


CONFIG_FORGERIES = {
    "dataset_up": (_set("dataset", "../../etc/passwd"), "is not a catalogue name"),
    "finetune_int": (_set("finetune", 1), "is a fine-tuning run"),
    "train_text": (_set("train", "x"), "train must be an object"),
    "seed_text": (_set("train", "seed", "abc"), "train.seed must be a whole number"),
    "seed_negative": (_set("train", "seed", -1), "train.seed must be a whole number"),
    "seed_huge": (_set("train", "seed", 2**70), "train.seed must be a whole number"),
    "seed_fraction": (_set("train", "seed", 1.5), "train.seed must be a whole number"),
    "sweep_text": (_set("sweep", "x"), "sweep must be an object"),
    "sweep_list": (_set("sweep", [1]), "sweep must be an object"),
    "other_task": (_set("task", "walker2d"), "is not its dataset's (hopper)"),
}
RESULT_FORGERIES = {
    "final_text": (_set("final", "x"), "final must be an object"),
    "score_text": (_set("final", "eval/normalized_score", "x"), "final.eval/normalized_score must be a finite number"),
    "score_nan": (_set("final", "eval/normalized_score", math.nan), "must be a finite number, found nan"),
    "score_inf": (_set("final", "eval/return_mean", math.inf), "must be a finite number, found inf"),
}


@pytest.mark.parametrize("case", [*CONFIG_FORGERIES, *RESULT_FORGERIES])
def test_a_forged_parent_is_one_line_and_nothing_is_made(case, parent, data_root, tmp_path, capsys):
    edit, message = CONFIG_FORGERIES.get(case) or RESULT_FORGERIES[case]
    run = forged(parent, tmp_path, *((edit, None) if case in CONFIG_FORGERIES else (None, edit)))
    assert message in refused(capsys, [run, "--root", data_root])
    assert not (tmp_path / "forged__finetune").exists()


def test_a_dataset_path_in_a_parent_is_not_read_whatever_it_points_at(parent, data_root, tmp_path, capsys):
    from d4rl_lite.datasets.catalogue import locate

    real = str(locate(DATASET, data_root)[0])  # a real dataset, outside the --root given
    run = forged(parent, tmp_path, _set("dataset", real), _set("dataset", real))
    (tmp_path / "empty_root").mkdir()
    assert "is not a catalogue name" in refused(capsys, [run, "--root", tmp_path / "empty_root"])
    assert not (tmp_path / "forged__finetune").exists()


def test_one_run_named_twice_or_as_its_own_run_dir_is_refused(parent, data_root, tmp_path, capsys, monkeypatch):
    run = tmp_path / "p"
    shutil.copytree(parent, run)
    os.symlink(run, tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    root = ["--root", data_root]
    assert "p given twice" in refused(capsys, ["p", run, *root]).replace(str(run), "p")
    assert "given twice" in refused(capsys, ["p", "link", "--run-dir", "a", "--run-dir", "b", *root])
    assert "--run-dir p is the offline run p itself" in refused(capsys, ["p", "--run-dir", "p", *root])
    assert "--run-dir a given twice" in refused(capsys, ["p", tmp_path / "other", "--run-dir", "a", "--run-dir", "./a", *root])
    assert not list(tmp_path.glob("*__finetune")) and not (tmp_path / "a").exists()


def test_files_that_are_not_regular_files_are_named_as_such(parent, data_root, tmp_path, capsys):
    for name in ("result.json", "config.json", "checkpoint.safetensors"):
        run = tmp_path / name.split(".")[0]
        shutil.copytree(parent, run)
        (run / name).unlink()
        os.mkfifo(run / name)
        assert f"{name}: " in (err := refused(capsys, [run, "--root", data_root])) and "FIFO" in err, err


def test_a_resume_asked_to_stop_before_its_checkpoint_is_refused(parent, data_root, tmp_path, capsys):
    run = tmp_path / "ft"
    finetune(parent, TrainConfig(steps=40, **SMALL), run_dir=run, root=data_root)
    before = (run / "result.json").read_bytes()
    same = ["--log-every", "20", "--eval-every", "40", "--checkpoint-every", "20"]  # SMALL: the same run
    err = refused(capsys, [parent, "--run-dir", run, "--root", data_root, *same], steps="20")
    assert "has already run 40 env steps" in err and "--env-steps 40 or more" in err
    assert (run / "result.json").read_bytes() == before


def test_train_resumed_with_fewer_steps_than_its_checkpoint_is_refused(data_root, tmp_path, capsys):
    args = ["train", "bc", DATASET, "--root", str(data_root), "--run-dir", str(tmp_path / "t"), "--device", "cpu",
            "--eval-every", "20", "--log-every", "10", "--checkpoint-every", "20", "--eval-episodes", "1", "--quiet",
            "--set", "hidden=16"]
    assert main([*args, "--steps", "40"]) == 0
    before = (tmp_path / "t" / "result.json").read_bytes()
    capsys.readouterr()
    assert main([*args, "--steps", "30"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has already run 40 updates" in err and "--steps 40 or more" in err, err
    assert (tmp_path / "t" / "result.json").read_bytes() == before
    assert main([*args, "--steps", "40"]) == 0  # the same command as before still goes on


def test_an_online_buffer_larger_than_the_machine_is_refused_before_anything(parent, data_root, tmp_path, capsys):
    with pytest.raises(UserInputError, match="GiB of online transitions in memory, more than this machine's"):
        finetune_population([parent], TrainConfig(steps=10**12, **SMALL), run_dirs=[tmp_path / "big"], root=data_root)
    assert not (tmp_path / "big").exists()
    with pytest.raises(SystemExit) as e:  # argparse's one line
        main(["finetune", str(parent), "--env-steps", str(10**20), "--run-dir", str(tmp_path / "huge")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "env steps are whole numbers from 1 to 9,007,199,254,740,992" in err


def test_a_fine_tuning_result_with_forged_offline_scores_is_refused_not_a_crash(parent, tmp_path, capsys):
    from d4rl_lite.benchmark.finetune_report import finetune_table
    from d4rl_lite.records import RunResult
    from d4rl_lite.schema import mismatch
    from d4rl_lite.training.run_files import RESULT_SPEC

    result = read_record(parent / "result.json")
    good = {**result, "finetune": {"offline_final": result["final"]}}
    assert mismatch(good, RESULT_SPEC) is None
    for bad in ([1, 2], {"eval/normalized_score": "x"}, {"eval/normalized_score": math.nan}):
        record = {**result, "finetune": {"offline_final": bad}}
        assert mismatch(record, RESULT_SPEC), bad
        assert "| 1 |" not in (finetune_table([RunResult.finished(record)]) or "")  # left out of the table, no traceback
    # The whole command: a results directory holding such a run reports it as refused.
    results = tmp_path / "results"
    shutil.copytree(parent, results / "td3_bc__hopper-random-v0__seed1")
    tuned = results / "td3_bc__hopper-random-v0__seed1__finetune"
    shutil.copytree(parent, tuned)
    record = {**read_record(tuned / "result.json"), "finetune": {"offline_final": [1, 2]}, "run_dir": str(tuned)}
    write_record(tuned / "result.json", record)
    config = read_record(tuned / "config.json")
    write_record(tuned / "config.json", {**config, "finetune": {"offline_final": [1, 2]}})
    code = main(["report", str(results)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and code in (0, 1), out.err
    assert "REFUSED" in out.err and "finetune.offline_final must be an object, found a list" in out.err
    assert json.loads((tuned / "result.json").read_text())["finetune"]["offline_final"] == [1, 2]  # nothing lost
