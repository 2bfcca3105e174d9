"""What a newcomer and an attacker met, fixed: each test failed on the code before its fix.

Builds that already exist, diverged state that must never be saved, forged steps and results,
escaped table text, references mixed between runs, one-line errors at the command line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from d4rl_lite.cli import main
from d4rl_lite.datasets.builders import build_dataset
from test_trust import cli, one_error_line


# -- the README can be run twice ---------------------------------------------------------------
def test_building_the_same_dataset_again_is_already_built(tmp_path, capsys):
    args = ("build", "pointmaze-umaze-dense-random-v0", "--size", 300, "--root", tmp_path, "--quiet")
    assert cli(capsys, *args)[0] == 0
    code, out, _ = cli(capsys, *args)
    assert code == 0 and "already built" in out and "pointmaze-umaze-dense-random-v0" in out
    path = build_dataset("pointmaze-umaze-dense-random-v0", size=300, seed=0, root=tmp_path)  # Python: no error
    assert (path / "data").is_dir()
    code, _, err = cli(capsys, "build", "pointmaze-umaze-dense-random-v0", "--size", 301, "--root", tmp_path)
    line = one_error_line(err)
    assert code == 2 and "size (300; asked 301)" in line and "--force" in line
    code, _, err = cli(capsys, "build", "pointmaze-umaze-dense-random-v0", "--size", 300, "--seed", 1, "--root", tmp_path)
    assert code == 2 and "seed (0; asked 1)" in one_error_line(err)


def test_a_damaged_existing_build_is_not_called_already_built(tmp_path, capsys):
    path = build_dataset("pointmaze-umaze-dense-random-v0", size=300, seed=0, root=tmp_path)
    import h5py

    from d4rl_lite.datasets.locations import MAIN_FILE
    from d4rl_lite.datasets.storage import FLAT_GROUP

    with h5py.File(path / "data" / MAIN_FILE, "r+") as f:
        f[FLAT_GROUP]["rewards"][0] += 1.0
    code, out, err = cli(capsys, "build", "pointmaze-umaze-dense-random-v0", "--size", 300, "--root", tmp_path)
    assert code == 2 and "already built" not in out and "changed after it was written" in one_error_line(err)


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("d4rl-lite 0.")


# -- nothing diverged is saved --------------------------------------------------------------------
def test_a_nan_temperature_is_never_saved_by_behaviour_training(tmp_path):
    from safetensors.torch import load_file, save_file

    from d4rl_lite.files import load_state
    from d4rl_lite.production.behavior_training import LATEST, SNAPSHOT_WEIGHTS, train_behavior
    from d4rl_lite.training.loop import DivergenceError
    from conftest import tiny_behavior_config

    run = tmp_path / "run"
    train_behavior("hopper", run, tiny_behavior_config(total_steps=500), log=lambda _: None)
    weights = load_file(str(run / SNAPSHOT_WEIGHTS))
    weights["log_alpha"] = torch.full_like(weights["log_alpha"], float("nan"))
    save_file(weights, str(run / SNAPSHOT_WEIGHTS))
    (run / LATEST).unlink()  # a fresh machine: warm restart from the committed snapshot
    with pytest.raises(DivergenceError, match="log_alpha"):
        train_behavior("hopper", run, tiny_behavior_config(total_steps=1000), log=lambda _: None)
    if (run / LATEST).exists():
        saved = load_state(run / LATEST)["sac"]["log_alpha"]
        assert bool(torch.isfinite(saved).all())


def test_the_guard_checks_top_level_tensors_and_optimizer_moments(tmp_path):
    from d4rl_lite.algorithms.sac import SAC, SACConfig
    from d4rl_lite.training.loop import DivergenceError, DivergenceGuard

    sac = SAC(3, 1, SACConfig(actor_hidden=(8,), critic_hidden=(8,)), device="cpu", seed=0)
    guard = DivergenceGuard([tmp_path / "checkpoint.safetensors"])
    guard.check_weights(sac, 1)  # finite: passes
    with torch.no_grad():
        sac.log_alpha.fill_(math.nan)
    with pytest.raises(DivergenceError, match="log_alpha"):
        guard.check_weights(sac, 1)


# -- one set of references per table -----------------------------------------------------------
def test_a_table_never_mixes_reference_scores(tmp_path, monkeypatch, capsys):
    import d4rl_lite
    from d4rl_lite import references, tasks
    from d4rl_lite.files import read_record, write_record
    from d4rl_lite.training.offline import TrainConfig, train

    build_dataset("pointmaze-umaze-dense-expert-v0", size=600, seed=0, root=tmp_path / "data")
    data = d4rl_lite.load_dataset("pointmaze-umaze-dense-expert-v0", root=tmp_path / "data")
    results = tmp_path / "results"
    tc = dict(steps=10, device="cpu", log_every=10, eval_every=10, eval_episodes=1, checkpoint_every=10)
    small = {"hidden": (8, 8), "batch_size": 16}
    train("bc", data, TrainConfig(seed=0, **tc), small, run_dir=results / "bc__pointmaze-umaze-dense-expert-v0__seed0")
    shipped = tasks.reference_scores("pointmaze-umaze-dense")
    override = tmp_path / "refs.json"  # the user re-measures ref_max between the two seeds
    override.write_text(json.dumps({"pointmaze-umaze-dense": {"ref_max": {"value": 2 * shipped["ref_max"].value,
                                                                          "how": "re-measured"}}}))
    monkeypatch.setenv("D4RL_LITE_REFERENCE_SCORES", str(override))
    monkeypatch.setattr(references, "_reference_cache", None)
    train("bc", data, TrainConfig(seed=1, **tc), small, run_dir=results / "bc__pointmaze-umaze-dense-expert-v0__seed1")
    second = read_record(results / "bc__pointmaze-umaze-dense-expert-v0__seed1" / "result.json")
    assert second["references"]["ref_max"] == 2 * shipped["ref_max"].value
    assert second["references"]["source"]["ref_max"] == str(override)
    monkeypatch.setenv("D4RL_LITE_REFERENCE_SCORES", str(tmp_path / "none.json"))  # back to the shipped ones
    monkeypatch.setattr(references, "_reference_cache", None)
    code, out, err = cli(capsys, "report", results)
    assert code == 1 and "bc__pointmaze-umaze-dense-expert-v0__seed1" in err and "ref_max" in err
    # A result written before references were recorded: its raw return tells.
    del second["references"]
    write_record(results / "bc__pointmaze-umaze-dense-expert-v0__seed1" / "result.json", second)
    code, out, err = cli(capsys, "report", results)
    assert code == 1 and "seed1/result.json: was normalized with other references" in err


# -- forged checkpoints, logs and results --------------------------------------------------------
@pytest.fixture(scope="module")
def maze_data(tmp_path_factory):
    import d4rl_lite

    root = tmp_path_factory.mktemp("probe_data")
    build_dataset("pointmaze-umaze-dense-expert-v0", size=600, seed=0, root=root)
    return root, d4rl_lite.load_dataset("pointmaze-umaze-dense-expert-v0", root=root)


def _tiny_run(data, run, seed=0, algo="bc"):
    from d4rl_lite.training.offline import TrainConfig, train

    tc = TrainConfig(steps=20, seed=seed, device="cpu", log_every=10, eval_every=20, eval_episodes=1, checkpoint_every=10)
    return train(algo, data, tc, {"hidden": (8, 8), "batch_size": 16}, run_dir=run)


@pytest.fixture(scope="module")
def tiny_run(maze_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("probe_run") / "bc__pointmaze-umaze-dense-expert-v0__seed0"
    _tiny_run(maze_data[1], run)
    return run


@pytest.mark.parametrize("step", [1e30, 20.5, -100, "20", True])
def test_a_forged_checkpoint_step_is_refused(tiny_run, maze_data, tmp_path, capsys, step):
    import shutil

    from d4rl_lite.files import load_state, save_state
    from d4rl_lite.training.run_files import CHECKPOINT

    run = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, run)
    state = load_state(run / CHECKPOINT)
    state["step"] = step
    save_state(run / CHECKPOINT, state)  # a valid checksum over a forged step
    code, _, err = cli(capsys, "train", "bc", "pointmaze-umaze-dense-expert-v0", "--root", maze_data[0], "--run-dir", run,
                       "--steps", 30, "--log-every", 10, "--eval-every", 20, "--eval-episodes", 1,
                       "--checkpoint-every", 10, "--device", "cpu", "--set", "hidden=8,8", "--set", "batch_size=16",
                       "--quiet")
    assert code == 2 and "is not a whole number of updates" in one_error_line(err)
    assert not (run / "result.json").exists() or json.loads((run / "result.json").read_text())["steps"] == 20
    code, _, err = cli(capsys, "eval", run, "--episodes", 1)
    assert code == 2 and "is not a whole number of updates" in one_error_line(err)


def test_eval_of_nan_weights_fails_in_one_line(tiny_run, tmp_path, capsys):
    import shutil

    from d4rl_lite.files import load_state, save_state
    from d4rl_lite.training.run_files import CHECKPOINT

    run = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, run)
    state = load_state(run / CHECKPOINT)
    weights = next(v for k, v in state["algo"]["actor"].items() if k.endswith("weight"))
    weights.fill_(float("nan"))
    save_state(run / CHECKPOINT, state)
    code, out, err = cli(capsys, "eval", run, "--episodes", 1)
    assert code == 2 and "non-finite values in actor" in one_error_line(err) and "nan" not in out


def test_a_log_row_with_a_bad_step_is_damage_not_a_kill(tiny_run, tmp_path, capsys):
    import shutil

    from d4rl_lite.files import CorruptFileError
    from d4rl_lite.training.logging import read_log

    run = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, run)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": "abc"}\n')
    with pytest.raises(CorruptFileError, match="is not a log row"):
        read_log(run / "log.jsonl", repair_note=True)
    with open(run / "log.jsonl", "a") as f:
        f.write("[" * 100_000 + "\n")  # nested past Python's recursion limit, in the middle of the log
        f.write('{"step": 30}\n')
    with pytest.raises(CorruptFileError, match="is not a log row"):
        read_log(run / "log.jsonl")


def test_result_text_is_escaped_in_the_tables(tiny_run, tmp_path, capsys):
    import shutil

    from d4rl_lite.files import read_record, write_record

    results = tmp_path / "results"
    run = results / tiny_run.name
    shutil.copytree(tiny_run, run)
    record = read_record(run / "result.json")
    record["algorithm"] = r"x|y\input{/etc/passwd}"  # a forged result with a valid checksum
    write_record(run / "result.json", record)
    cli(capsys, "report", results)
    tex = (results / "table.tex").read_text()
    assert r"\input" not in tex and r"\textbackslash{}input\{/etc/passwd\}" in tex
    md = (results / "table.md").read_text().splitlines()
    assert md[0].count(" | ") == md[2].count(" | ")  # the header has as many columns as the rows
    assert r"x\|y" in md[0]


def test_a_one_seed_cell_shows_its_seed_count_not_a_zero_spread(tiny_run, tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(tiny_run, results / tiny_run.name)
    assert cli(capsys, "report", results)[0] == 0
    md = (results / "table.md").read_text()
    assert "(1 seed)" in md and "± 0.0" not in md and "-0.0" not in md
    assert "Success rate (%)" in md  # a goal task: the unit the validity checks read is shown too


def test_info_plot_to_a_directory_says_the_file_it_wrote(maze_data, tmp_path, capsys):
    out_dir = tmp_path / "pictures"
    out_dir.mkdir()
    code, out, _ = cli(capsys, "info", "pointmaze-umaze-dense-expert-v0", "--root", maze_data[0], "--plot", out_dir)
    assert code == 0
    written = [line.split()[-1] for line in out.splitlines() if line.startswith(("return histogram", "maze picture"))]
    assert len(written) == 2 and all(Path(p).is_file() and Path(p).parent == out_dir for p in written)
    no_suffix = tmp_path / "hist"
    code, out, _ = cli(capsys, "info", "pointmaze-umaze-dense-expert-v0", "--root", maze_data[0], "--plot", no_suffix)
    printed = next(line.split()[-1] for line in out.splitlines() if line.startswith("return histogram"))
    assert Path(printed).is_file()


@pytest.mark.parametrize("argv, match", [
    (["train", "bc", "x", "--seed", "99999999999999999999"], "seeds are whole numbers from 0 to"),
    (["build", "hopper-random-v0", "--seed", "-1"], "seeds are whole numbers from 0 to"),
    (["train", "bc", "x", "--seeds", "0-99999999999"], "is more than 1,000 seeds"),
])
def test_huge_seeds_are_one_line(capsys, argv, match):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and match in one_error_line(capsys.readouterr().err)


def test_os_errors_are_one_line_naming_the_path(tiny_run, tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(tiny_run, results / tiny_run.name)
    (results / "table.md").mkdir()  # a directory where the table goes
    code, _, err = cli(capsys, "report", results)
    assert code == 2 and "table.md" in one_error_line(err)
    code, _, err = cli(capsys, "build", "pointmaze-umaze-dense-random-v0", "--size", 300, "--root", tmp_path / ("n" * 5000))
    assert code == 2 and "File name too long" in one_error_line(err)


# -- W&B ---------------------------------------------------------------------------------------------
def _wandb_home(monkeypatch, tmp_path):
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_an_offline_wandb_run_has_a_plain_json_summary_and_report_leaves_no_empty_log(maze_data, tmp_path, monkeypatch,
                                                                                       capsys):
    from d4rl_lite.training.logging import SUMMARY_FILE
    from d4rl_lite.training.offline import TrainConfig, train

    _wandb_home(monkeypatch, tmp_path)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    results = tmp_path / "results"
    run = results / "bc__pointmaze-umaze-dense-expert-v0__seed0"
    tc = TrainConfig(steps=20, seed=0, device="cpu", log_every=10, eval_every=20, eval_episodes=1, checkpoint_every=10,
                     wandb=True)
    record = train("bc", maze_data[1], tc, {"hidden": (8, 8), "batch_size": 16}, run_dir=run)
    summaries = list((run / "wandb").glob(f"offline-run-*/files/{SUMMARY_FILE}"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["eval/normalized_score"] == pytest.approx(record["final"]["eval/normalized_score"])
    assert cli(capsys, "report", results, "--wandb")[0] == 0
    assert not (results / "wandb_report.jsonl").exists()


def test_wandb_online_without_a_network_waits_a_bounded_time_and_says_one_line(maze_data, tmp_path, monkeypatch, capsys):
    import time

    from d4rl_lite.training.offline import TrainConfig, train

    _wandb_home(monkeypatch, tmp_path)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there: refused, on this machine
    monkeypatch.delenv("WANDB_INIT_TIMEOUT", raising=False)
    tc = TrainConfig(steps=10, seed=0, device="cpu", log_every=5, eval_every=10, eval_episodes=1, checkpoint_every=5,
                     wandb=True)
    start = time.monotonic()
    record = train("bc", maze_data[1], tc, {"hidden": (8, 8), "batch_size": 16}, run_dir=tmp_path / "run")
    assert record["steps"] == 10 and time.monotonic() - start < 60
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    wandb_lines = [line for line in err if "W&B" in line or "wandb" in line.lower()]
    assert len(wandb_lines) == 1 and "W&B disabled for this run" in wandb_lines[0], err


# -- a results directory's plan cannot be edited or lost silently ---------------------------------
def test_an_edited_or_deleted_suite_json_never_hides_a_missing_algorithm(maze_data, tmp_path, capsys):
    from d4rl_lite.files import write_record
    from d4rl_lite.training.offline import TrainConfig, train

    results = tmp_path / "results"
    suite = {"name": "tiny", "algorithms": ["bc", "td3_bc"], "seeds": [0], "steps": 20,
             "datasets": {"pointmaze-umaze-dense-expert-v0": {"size": 600, "seed": 0}}}
    results.mkdir()
    write_record(results / "suite.json", suite)
    for algo in ("bc", "td3_bc"):
        tc = TrainConfig(steps=20, seed=0, device="cpu", log_every=10, eval_every=20, eval_episodes=1,
                         checkpoint_every=10, suite="tiny")  # as bench trains them
        train(algo, maze_data[1], tc, {"hidden": (8, 8), "batch_size": 16},
              run_dir=results / f"{algo}__pointmaze-umaze-dense-expert-v0__seed0")
    assert cli(capsys, "report", results)[0] == 0
    import shutil

    shutil.rmtree(results / "td3_bc__pointmaze-umaze-dense-expert-v0__seed0")
    text = json.loads((results / "suite.json").read_text())
    text["algorithms"] = ["bc"]  # the deleted algorithm taken out of the plan too
    (results / "suite.json").write_text(json.dumps(text))
    code, _, err = cli(capsys, "report", results)
    assert code == 2 and "suite.json" in one_error_line(err) and "checksum mismatch" in err
    (results / "suite.json").unlink()
    code, _, err = cli(capsys, "report", results)
    assert code == 2 and "suite.json is missing, but the runs here were trained by suite tiny" in one_error_line(err)
