"""Nothing on disk runs code or is used unverified; every bad input is one line; concurrent use is safe.

One test (or more) per item of the reliability issue; the fuzz test at the end feeds every CLI
verb damaged files of every kind.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import d4rl_lite
from d4rl_lite.training.loop import DivergenceError
from d4rl_lite.training.run_files import CHECKPOINT
from d4rl_lite.training.offline import TrainConfig, train
from d4rl_lite.cli import main
from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.files import CorruptFileError, load_state, read_record, save_state, write_record
from d4rl_lite.locking import BusyError, RunDirLock

SMALL = {"hidden": (16, 16), "batch_size": 32}


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def maze_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust_data")
    build_dataset("pointmaze-umaze-dense-expert-v0", size=1200, seed=0, root=root, num_envs=4)
    return root


@pytest.fixture(scope="module")
def maze(maze_root):
    return d4rl_lite.load_dataset("pointmaze-umaze-dense-expert-v0", root=maze_root)


def resume_args(run) -> list:
    """`train` arguments that continue ``trained_run`` (same identity) to 30 steps."""
    return ["train", "bc", "pointmaze-umaze-dense-expert-v0", "--run-dir", run, "--steps", 30, "--log-every", 10,
            "--eval-every", 20, "--eval-episodes", 1, "--checkpoint-every", 10, "--device", "cpu",
            "--set", "hidden=16,16", "--set", "batch_size=32", "--quiet"]


def tiny_train(dataset, run_dir, steps=20, algo="bc", **over):
    tc = TrainConfig(steps=steps, seed=0, device="cpu", log_every=10, eval_every=20, eval_episodes=1,
                     checkpoint_every=10)
    return train(algo, dataset, tc, {**SMALL, **over}, run_dir=run_dir)


@pytest.fixture(scope="module")
def trained_run(maze, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "bc"
    tiny_train(maze, run)
    return run


@pytest.fixture
def run_copy(trained_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained_run, dst)
    return dst


# -- 1. a checkpoint cannot run code ------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", [CHECKPOINT, "checkpoint.pt"])
def test_a_planted_pickle_never_runs_on_eval_or_resume(run_copy, maze_root, tmp_path, capsys, name):
    marker = tmp_path / "pwned"
    (run_copy / CHECKPOINT).unlink()
    (run_copy / name).write_bytes(pickle.dumps({"algo": _Payload(marker)}))
    code, _, err = cli(capsys, "eval", run_copy)
    assert code == 2 and not marker.exists()
    assert "pickle" in one_error_line(err)
    code, _, err = cli(capsys, *resume_args(run_copy), "--root", maze_root)
    assert code == 2 and not marker.exists()
    assert "pickle" in one_error_line(err)


def test_bench_over_a_shared_results_directory_never_unpickles(maze_root, tmp_path, capsys):
    marker = tmp_path / "pwned"
    suite = {"name": "t", "algorithms": ["bc"], "datasets": {"pointmaze-umaze-dense-expert-v0": {"size": 1200}},
             "seeds": [0], "steps": 20, "eval_every": 20, "eval_episodes": 1, "log_every": 10, "checkpoint_every": 10,
             "settings": {"all": {"hidden": [16, 16]}}}
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    results = tmp_path / "results"
    run = results / "bc__pointmaze-umaze-dense-expert-v0__seed0"
    run.mkdir(parents=True)
    (run / CHECKPOINT).write_bytes(pickle.dumps(_Payload(marker)))
    code, out, err = cli(capsys, "bench", tmp_path / "suite.json", "--results", results, "--root", maze_root,
                         "--workers", 1)
    assert not marker.exists() and code != 0
    assert "FAILED bc__pointmaze-umaze-dense-expert-v0__seed0" in out and "pickle" in out


# -- 2. checkpoints and results are verified --------------------------------------------------------
def test_four_changed_bytes_in_a_checkpoint_are_caught(run_copy, capsys):
    ckpt = run_copy / CHECKPOINT
    data = bytearray(ckpt.read_bytes())
    data[-64:-60] = b"\xff\xff\x7f\x7f"  # a weight becomes 3.4e38
    ckpt.write_bytes(bytes(data))
    code, _, err = cli(capsys, "eval", run_copy)
    line = one_error_line(err)
    assert code == 2 and str(ckpt) in line and "checksum mismatch" in line


def test_state_round_trip_keeps_types_and_values(tmp_path):
    import numpy as np
    import torch

    state = {"w": torch.randn(3, 2), "n": 5, "x": 0.25, "t": (1, 2.0), "d": {0: {"m": torch.ones(2)}}, "none": None,
             "rng": np.random.default_rng(1).bit_generator.state, "flag": True, "$odd": "key"}
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert torch.equal(back["w"], state["w"]) and back["t"] == (1, 2.0) and torch.equal(back["d"][0]["m"], torch.ones(2))
    assert back["rng"] == state["rng"] and back["none"] is None and back["flag"] is True and back["$odd"] == "key"


def test_result_json_is_verified(tmp_path):
    write_record(tmp_path / "r.json", {"score": 1.5})
    assert read_record(tmp_path / "r.json")["score"] == 1.5
    text = (tmp_path / "r.json").read_text().replace("1.5", "9.5")
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(CorruptFileError, match=r"r\.json: record checksum mismatch"):
        read_record(tmp_path / "r.json")


# -- 4. tables say loudly what is missing or refused --------------------------------------------------
@pytest.fixture(scope="module")
def small_results(maze, tmp_path_factory):
    """Two algorithms x one dataset x two seeds, trained for real (tiny)."""
    results = tmp_path_factory.mktemp("results")
    for algo in ("bc", "td3_bc"):
        for seed in (0, 1):
            tc = TrainConfig(steps=20, seed=seed, device="cpu", log_every=10, eval_every=20, eval_episodes=1,
                             checkpoint_every=10)
            train(algo, maze, tc, SMALL, run_dir=results / f"{algo}__pointmaze-umaze-dense-expert-v0__seed{seed}")
    return results


def test_report_flags_a_missing_run_in_table_and_exit_status(small_results, tmp_path, capsys):
    results = tmp_path / "r"
    shutil.copytree(small_results, results)
    assert cli(capsys, "report", results)[0] == 0
    shutil.rmtree(results / "bc__pointmaze-umaze-dense-expert-v0__seed1")
    code, out, err = cli(capsys, "report", results)
    assert code == 1
    assert "1/2 seeds" in out and "INCOMPLETE TABLE: 1 run(s) missing (bc__pointmaze-umaze-dense-expert-v0__seed1)" in err
    (results / "td3_bc__pointmaze-umaze-dense-expert-v0__seed1/log.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    code, out, err = cli(capsys, "report", results)  # one damaged log refuses its run only
    assert code == 1 and "td3_bc__pointmaze-umaze-dense-expert-v0__seed1/log.jsonl: line 2 is not a log row" in err
    assert "| pointmaze-umaze-dense-expert-v0 |" in out


def test_report_refuses_nan_wrong_budget_and_scores_not_in_the_log(small_results, tmp_path, capsys):
    results = tmp_path / "r"
    shutil.copytree(small_results, results)
    nan_run = results / "bc__pointmaze-umaze-dense-expert-v0__seed0/result.json"
    record = read_record(nan_run)
    record["final"]["eval/normalized_score"] = float("nan")
    write_record(nan_run, record)  # a consistent checksum: the content itself is refused
    edited = results / "td3_bc__pointmaze-umaze-dense-expert-v0__seed0/result.json"
    record = read_record(edited)
    record["final"]["eval/normalized_score"] += 50.0
    write_record(edited, record)
    short = results / "td3_bc__pointmaze-umaze-dense-expert-v0__seed1/result.json"
    record = read_record(short)
    record["steps"] = 10
    write_record(short, record)
    write_record(results / "suite.json", {"steps": 20, "algorithms": ["bc", "td3_bc"],
                                          "datasets": {"pointmaze-umaze-dense-expert-v0": {}}, "seeds": [0, 1]})
    code, out, err = cli(capsys, "report", results)
    assert code == 1
    assert "not a finite number" in err and "does not match its own log.jsonl" in err
    assert "trained for 10 steps, the suite asks for 20" in err and "**MISSING**" in out


def test_report_says_one_line_about_malformed_suite_and_result_files(small_results, tmp_path, capsys):
    results = tmp_path / "r"
    shutil.copytree(small_results, results)
    odd = results / "bc__pointmaze-umaze-dense-expert-v0__seed1/result.json"
    record = read_record(odd)
    record["dataset"] = ["pointmaze-umaze-dense-expert-v0"]  # well-formed JSON, not a dataset name
    write_record(odd, record)
    code, out, err = cli(capsys, "report", results)
    assert code == 1 and "seed1/result.json: not a run result" in err
    write_record(results / "suite.json", {"steps": math.inf, "algorithms": ["bc"], "datasets": {}, "seeds": [0]})
    code, out, err = cli(capsys, "report", results)
    assert code == 2 and "suite.json: not a suite description" in one_error_line(err)


def test_domain_averages_cover_only_datasets_every_algorithm_has(small_results):
    from d4rl_lite.benchmark.results import read_results
    from d4rl_lite.benchmark.table import is_summary, score_table
    from d4rl_lite.records import RunResult

    records = read_results(small_results)
    extra = [RunResult.finished({**r.record, "dataset": "pointmaze-medium-dense-expert-v0"})
             for r in records if r.spec.algorithm == "bc"]
    rows = score_table(records + extra)
    averages = [r for r in rows if is_summary(r)]
    assert averages and all("1 dataset; 1 left out" in r["dataset"] for r in averages)


# -- 5. a suite's dataset is identified by name, size and seed ------------------------------------------
def test_bench_refuses_a_dataset_of_another_size(maze_root, tmp_path):
    from d4rl_lite.benchmark.runner import ensure_datasets
    from d4rl_lite.benchmark.suites import Suite

    root = tmp_path / "root"
    shutil.copytree(maze_root, root)
    suite = Suite(name="t", algorithms=["bc"], datasets={"pointmaze-umaze-dense-expert-v0": {"size": 1500}}, seeds=[0],
                  steps=10, eval_every=10)
    with pytest.raises(ValueError, match=r"built with size 1200 and seed 0, but suite 't' asks for size 1500.*--force"):
        ensure_datasets(suite, root, log=lambda _: None)
    ensure_datasets(suite, root, log=lambda _: None, force=True)
    assert d4rl_lite.load_dataset("pointmaze-umaze-dense-expert-v0", root=root).num_transitions == 1500


def test_bench_refuses_a_run_trained_past_the_suites_budget(small_results, tmp_path):
    from d4rl_lite.benchmark.runner import is_finished
    from d4rl_lite.benchmark.suites import Suite

    suite = Suite(name="t", algorithms=["bc"], datasets={"pointmaze-umaze-dense-expert-v0": {}}, seeds=[0], steps=10,
                  eval_every=10)
    with pytest.raises(ValueError, match="trained for 20 steps, more than the 10 of suite 't'"):
        is_finished(small_results, suite, "bc", "pointmaze-umaze-dense-expert-v0", 0)


def test_an_old_pickle_behaviour_checkpoint_is_refused(tmp_path):
    from d4rl_lite.production.behavior_training import BehaviorConfig, train_behavior

    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.pt").write_bytes(pickle.dumps({"step": 1}))
    with pytest.raises(d4rl_lite.D4RLLiteError, match="latest.pt, a pickle checkpoint .* not read"):
        train_behavior("hopper", run, BehaviorConfig(total_steps=10, checkpoint_every=10, eval_every=10, ladder_every=10))


# -- 6. divergence is caught at every save, settings are range-checked -------------------------------------
def test_nan_weights_are_never_saved_and_the_run_fails(maze, tmp_path):
    tc = TrainConfig(steps=60, seed=0, device="cpu", log_every=100, eval_every=60, eval_episodes=1, checkpoint_every=100)
    with pytest.raises(DivergenceError):
        train("td3_bc", maze, tc, {**SMALL, "actor_lr": 1e30, "critic_lr": 1e30}, run_dir=tmp_path)
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("setting, match", [("batch_size=0", "batch_size=0: a count must be >= 1"),
                                            ("batch_size=-3", "batch_size=-3: a count must be >= 1"),
                                            ("gamma=1.0", "gamma=1.0: the discount must be > 0 and < 1"),
                                            ("actor_lr=0", "actor_lr=0.0: a learning rate must be > 0"),
                                            ("hidden=0,4", "layer sizes must be whole numbers")])
def test_out_of_range_settings_are_one_line(maze_root, tmp_path, capsys, setting, match):
    algo = "bc" if not setting.startswith("gamma") else "td3_bc"
    code, _, err = cli(capsys, "train", algo, "pointmaze-umaze-dense-expert-v0", "--root", maze_root, "--run-dir",
                       tmp_path / "run", "--steps", 10, "--quiet", "--set", setting)
    assert code == 2 and match in one_error_line(err)
    assert not (tmp_path / "run").exists()  # 14. nothing written by a failed start


# -- 7. a checkpoint carries its run's identity -------------------------------------------------------------
def test_a_checkpoint_from_another_run_is_refused(maze, trained_run, tmp_path, capsys):
    other = tmp_path / "other"
    tiny_train(maze, other, steps=30)
    shutil.copy(trained_run / CHECKPOINT, other / CHECKPOINT)
    code, _, err = cli(capsys, "eval", other)
    assert code == 2 and "belongs to another run" in one_error_line(err)
    cfg = read_record(trained_run / "config.json")  # and a config.json of another algorithm
    cfg["algorithm"], cfg["algo"] = "td3_bc", {}
    write_record(other / "config.json", cfg)
    code, _, err = cli(capsys, "eval", other)
    assert code == 2 and "belongs to another run" in one_error_line(err)


# -- 8. one line, exit 2 ------------------------------------------------------------------------------------
def test_bad_devices_and_seeds_name_the_flag(maze_root, tmp_path, capsys):
    base = ["train", "bc", "pointmaze-umaze-dense-expert-v0", "--root", maze_root, "--run-dir", tmp_path / "r", "--quiet"]
    code, _, err = cli(capsys, *base, "--device", "banana")
    assert code == 2 and "unknown device 'banana'" in one_error_line(err)
    for argv in ([*base, "--seed", "-1"], ["build", "pointmaze-umaze-dense-expert-v0", "--seed", "-1", "--root", tmp_path]):
        with pytest.raises(SystemExit) as e:  # refused while the command line is read
            main([str(a) for a in argv])
        line = one_error_line(capsys.readouterr().err)
        assert e.value.code == 2 and "argument --seed: seeds are whole numbers from 0 to" in line
    assert not (tmp_path / "r" / "config.json").exists()


def test_a_partial_last_log_line_is_cut_on_resume(maze, tmp_path, capfd):
    run = tmp_path / "run"
    tiny_train(maze, run, steps=20)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 30, "train/lo')  # killed mid-write
    record = tiny_train(maze, run, steps=40)
    assert record["steps"] == 40
    assert "dropped a partial last line" in capfd.readouterr().err
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/return_mean" in r] == [20, 40]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="with a GPU, auto means CUDA, whose batch stream differs from the CPU run's, so the "
                    "resume is refused by design (tested on CPU-only machines)")
def test_device_is_not_part_of_a_runs_identity(maze, tmp_path):
    tiny_train(maze, tmp_path / "run", steps=10)
    tc = TrainConfig(steps=20, seed=0, device="auto", log_every=10, eval_every=20, eval_episodes=1, checkpoint_every=10)
    assert train("bc", maze, tc, SMALL, run_dir=tmp_path / "run")["steps"] == 20


def test_rewards_of_the_wrong_length_name_rewards(tmp_path):
    from conftest import hand_made_episodes
    from d4rl_lite.datasets.storage import write_dataset
    from d4rl_lite.errors import DatasetError
    from d4rl_lite.tasks import get_task

    raw = hand_made_episodes()
    raw.rewards = raw.rewards[:-1]
    with pytest.raises(DatasetError, match="field 'rewards'"):
        write_dataset("d4rl_lite/hopper/random-v0", get_task("hopper"), raw, {"name": "hopper-random-v0"}, root=tmp_path)


# -- 9. advice works when followed literally --------------------------------------------------------------------
def test_rebuild_advice_names_root_size_and_seed(maze_root, tmp_path, capsys):
    root = tmp_path / "elsewhere"
    shutil.copytree(maze_root, root)
    h5 = root / "d4rl_lite/pointmaze-umaze-dense/expert-v0/data/main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[:1000])
    code, _, err = cli(capsys, "info", "pointmaze-umaze-dense-expert-v0", "--root", root)
    line = one_error_line(err)
    assert code == 2
    assert f"d4rl-lite build pointmaze-umaze-dense-expert-v0 --force --size 1200 --seed 0 --root {root}" in line


# -- 10. paths are accepted everywhere ---------------------------------------------------------------------------
def test_make_accepts_a_dataset_directory(maze_root):
    path = maze_root / "d4rl_lite/pointmaze-umaze-dense/expert-v0"
    env = d4rl_lite.make(str(path))
    assert env.task.name == "pointmaze-umaze-dense" and len(env.get_dataset()["rewards"]) == 1200


# -- 11. a build that cannot fit is refused up front ----------------------------------------------------------------
def test_an_impossible_size_is_refused_with_the_figure(tmp_path, capsys):
    code, _, err = cli(capsys, "build", "hopper-random-v0", "--size", "1e12", "--root", tmp_path)
    line = one_error_line(err)
    assert code == 2 and "--size 1,000,000,000,000 needs about" in line and "GB" in line


# -- 12, 13. locks ------------------------------------------------------------------------------------------------
def test_a_second_build_of_the_same_name_fails_while_the_first_runs(tmp_path):
    lock = RunDirLock(tmp_path / ".locks" / "d4rl_lite__hopper__random-v0")
    lock.acquire()  # as a concurrent build holds it
    try:
        with pytest.raises(BusyError, match=rf"in use by process {os.getpid()}.*being built right now"):
            build_dataset("hopper-random-v0", size=50, root=tmp_path)
    finally:
        lock.release()
    build_dataset("hopper-random-v0", size=50, root=tmp_path)


def test_a_dataset_written_meanwhile_is_not_replaced_without_force(tmp_path):
    from conftest import hand_made_episodes
    from d4rl_lite.datasets.storage import write_dataset
    from d4rl_lite.tasks import get_task

    build_dataset("hopper-random-v0", size=50, root=tmp_path)
    with pytest.raises(FileExistsError, match="already exists"):
        write_dataset("d4rl_lite/hopper/random-v0", get_task("hopper"), hand_made_episodes(),
                      {"name": "hopper-random-v0"}, root=tmp_path)


def test_two_trainings_cannot_share_a_run_directory(maze, tmp_path):
    with RunDirLock(tmp_path / "run"):
        with pytest.raises(BusyError, match="run directory is in use"):
            tiny_train(maze, tmp_path / "run")
    tiny_train(maze, tmp_path / "run")


def test_two_concurrent_train_commands_one_fails(maze_root, tmp_path):
    cmd = [sys.executable, "-m", "d4rl_lite.cli", "train", "bc", "pointmaze-umaze-dense-expert-v0", "--root",
           str(maze_root), "--run-dir", str(tmp_path / "run"), "--steps", "1000000", "--log-every", "100",
           "--eval-every", "1000000", "--eval-episodes", "1", "--checkpoint-every", "1000", "--device", "cpu", "--set",
           "hidden=16,16", "--quiet"]
    from d4rl_lite.training.logging import read_log

    def logged_steps():
        log = tmp_path / "run/log.jsonl"
        return [row["step"] for row in read_log(log)] if log.exists() else []  # (a line cut mid-write is dropped)

    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The second command starts once the first has logged a row, so the first's log cannot be empty when
        # it is killed below (it once was, on a slow CI machine, when the second started at the log's creation).
        deadline = time.time() + 120
        while not logged_steps() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert first.poll() is None  # the first was training all along
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2 and "run directory is in use by process" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    steps = logged_steps()
    assert steps and steps == sorted(set(steps))  # no line written twice


# -- 15. orphans and stale temporaries ------------------------------------------------------------------------------
def test_a_pool_worker_exits_when_its_parent_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import os, subprocess, sys, time
        if len(sys.argv) > 1:  # the worker
            from d4rl_lite.benchmark.executors import _exit_when_orphaned
            _exit_when_orphaned(int(sys.argv[1]), period_s=0.1)
            open({str(tmp_path / 'worker.pid')!r}, 'w').write(str(os.getpid()))
            time.sleep(120)
        else:  # the parent
            subprocess.Popen([sys.executable, __file__, str(os.getpid())])
            time.sleep(120)
    """)
    (tmp_path / "s.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "s.py")])
    deadline = time.time() + 60
    pid_file = tmp_path / "worker.pid"
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and _alive(worker):
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        return state != "Z"
    except FileNotFoundError:
        return False


def test_stale_temporaries_are_removed_but_live_ones_kept(tmp_path, capsys):
    from d4rl_lite.datasets.workspace import remove_stale_temporaries, temporary_lock_dir, TMP_PREFIX

    stale, live = tmp_path / f"{TMP_PREFIX}dead", tmp_path / f"{TMP_PREFIX}live"
    for d in (stale, live):
        (d / "data").mkdir(parents=True)
    with RunDirLock(temporary_lock_dir(live)):
        assert remove_stale_temporaries(tmp_path) == [stale]
        assert live.exists() and not stale.exists()


# -- fuzz: every verb, every kind of damaged file -----------------------------------------------------------------
def _damages(data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    for i in range(0, len(flipped), max(1, len(flipped) // 7)):
        flipped[i] ^= 0x5A
    return {"empty": b"", "truncated": data[: len(data) // 2], "bitflipped": bytes(flipped), "zeroed": bytes(len(data)),
            "json-list": b"[1, 2, 3]", "json-null": b"null", "json-string": b'"x"'}


def _json_type_damages(text: str) -> dict[str, bytes]:
    obj = json.loads(text)
    out = {}
    for key in list(obj)[:3]:
        for label, value in (("number", 5), ("null", None), ("list", [1]), ("string", "x")):
            if type(value) is type(obj[key]):
                continue  # same type: a valid file, not a damaged one
            changed = dict(obj)
            changed[key] = value
            out[f"{key}={label}"] = json.dumps(changed).encode()
    return out


def _wrong_types_with_checksum(text: str) -> dict[str, bytes]:
    """Fields of our metadata block of the wrong type, the metadata checksum recomputed (anyone can)."""
    from d4rl_lite.datasets.storage import metadata_checksum

    out = {}
    for key, value in (("task", 7), ("checksum", 7), ("recipe", 7), ("name", 7), ("card", "x"), ("max_episode_steps", "9")):
        meta = json.loads(text)
        meta["d4rl_lite"][key] = value
        meta["d4rl_lite"]["metadata_checksum"] = metadata_checksum(meta)
        out[f"d4rl_lite.{key}={value!r}+checksum"] = json.dumps(meta).encode()
    return out


def _crafted_hdf5(path: Path, work: Path) -> dict[str, bytes]:
    """The dataset's HDF5 file made to read another file, or to declare far more than it holds."""
    import h5py

    secret, other = work / "secret", work / "other.h5"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 400)
    out = {}
    for label in ("external-storage", "external-link", "declared-41GiB"):
        copy = work / f"{label}.hdf5"
        shutil.copy(path, copy)
        with h5py.File(copy, "r+") as f:
            flat = f["d4rl_lite_flat"]
            actions = flat["actions"][()]
            del flat["actions"]
            if label == "external-storage":  # no data given: HDF5 would write it into the secret
                flat.create_dataset("actions", shape=actions.shape, dtype=actions.dtype,
                                    external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
            elif label == "external-link":
                with h5py.File(other, "w") as o:
                    o["a"] = actions
                flat["actions"] = h5py.ExternalLink(str(other), "a")
            else:
                flat.create_dataset("actions", shape=(10**9, 11), dtype="f4")
        out[label] = copy.read_bytes()
    return out


def test_fuzz_every_verb_with_damaged_files(maze_root, trained_run, small_results, tmp_path, capsys):
    cases = 0
    # datasets: info, train, make via eval of ... (info and train read them)
    src = maze_root / "d4rl_lite/pointmaze-umaze-dense/expert-v0/data"
    for fname in ("metadata.json", "main_data.hdf5"):
        original = (src / fname).read_bytes()
        damages = _damages(original)
        if fname.endswith(".json"):
            damages.update(_json_type_damages(original.decode()))
            meta = json.loads(original)
            for key in ("task", "checksum", "metadata_checksum", "recipe", "name"):
                changed = json.loads(original)
                changed["d4rl_lite"][key] = 7
                damages[f"d4rl_lite.{key}=7"] = json.dumps(changed).encode()
            damages.update(_wrong_types_with_checksum(original.decode()))
            damages["nested-100k"] = b"[" * 100_000 + b"]" * 100_000
            assert meta
        else:
            damages.update(_crafted_hdf5(src / fname, tmp_path))
        for label, data in damages.items():
            root = tmp_path / f"ds-{fname}-{label}"
            shutil.copytree(maze_root, root)
            (root / "d4rl_lite/pointmaze-umaze-dense/expert-v0/data" / fname).write_bytes(data)
            verbs = [["info", "pointmaze-umaze-dense-expert-v0"]]
            if label in ("truncated", "bitflipped", "json-list"):  # train reads datasets through the same loader
                verbs.append(["train", "bc", "pointmaze-umaze-dense-expert-v0", "--steps", "5", "--quiet",
                              "--run-dir", tmp_path / "never"])
            for verb in verbs:
                code, _, err = cli(capsys, *verb, "--root", root)
                cases += 1
                if code == 0 and "=" in label and not label.startswith("d4rl_lite."):
                    continue  # a Minari field d4rl_lite does not interpret (covered by the checksums' own tests)
                assert code == 2, (fname, label, verb, err)
                one_error_line(err)
    # checkpoints, run configs and logs: eval and a resumed train
    for fname in (CHECKPOINT, "config.json", "log.jsonl"):
        original = (trained_run / fname).read_bytes()
        damages = _damages(original)
        if fname == "config.json":
            damages.update(_json_type_damages(original.decode()))
        for label, data in damages.items():
            run = tmp_path / f"run-{fname}-{label}"
            shutil.copytree(trained_run, run)
            (run / fname).write_bytes(data)
            verbs = [[*resume_args(run), "--root", maze_root]]
            if fname != "log.jsonl":
                verbs.append(["eval", run, "--episodes", 1])
            for verb in verbs:
                code, _, err = cli(capsys, *verb)
                cases += 1
                if fname == "log.jsonl" and code == 0:
                    assert "Traceback" not in err
                    continue  # a log whose only damage is its last line is cut on resume, with a warning
                assert code == 2, (fname, label, verb[0], err)
                one_error_line(err)
    # results: report
    result_damages = _damages((small_results / "bc__pointmaze-umaze-dense-expert-v0__seed0/result.json").read_bytes())
    for label in ("empty", "bitflipped", "json-list"):  # a report costs seconds (bootstrap, plots): three kinds
        data = result_damages[label]
        results = tmp_path / f"res-{label}"
        shutil.copytree(small_results, results)
        (results / "bc__pointmaze-umaze-dense-expert-v0__seed0/result.json").write_bytes(data)
        code, _, err = cli(capsys, "report", results)
        assert code == 1 and "REFUSED" in err and "result.json" in err and "Traceback" not in err
        cases += 1
    # suite files: bench
    suite_text = json.dumps({"name": "t", "algorithms": ["bc"], "datasets": {"pointmaze-umaze-dense-expert-v0": {}},
                             "seeds": [0], "steps": 10, "eval_every": 10})
    damages = _damages(suite_text.encode())
    damages.update(_json_type_damages(suite_text))
    for label, data in damages.items():
        path = tmp_path / f"suite-{label}.json"
        path.write_bytes(data)
        code, _, err = cli(capsys, "bench", path, "--root", maze_root, "--results", tmp_path / "never-res")
        assert code == 2, (label, err)
        one_error_line(err)
        cases += 1
    print(f"fuzz cases: {cases}")
    assert cases > 50
    assert not math.isnan(cases)


def test_committed_policies_are_verified_against_their_manifest(tiny_zoo, tmp_path, monkeypatch):
    from d4rl_lite.datasets.behavior.policies import load_role, read_card

    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo / "zoo", zoo)
    monkeypatch.setenv("D4RL_LITE_ZOO", str(zoo))
    actor, entry = load_role("hopper", "expert")  # intact: loads
    weights = zoo / "hopper" / entry["file"]
    data = bytearray(weights.read_bytes())
    data[-8] ^= 0xFF  # one weight changes
    weights.write_bytes(bytes(data))
    with pytest.raises(d4rl_lite.D4RLLiteError, match=r"checksum mismatch with checksums.json"):
        load_role("hopper", "expert")
    card = zoo / "hopper" / "card.json"
    card.write_text(card.read_text().replace('"hopper"', '"walker2d"', 1))
    with pytest.raises(d4rl_lite.D4RLLiteError, match=r"card.json: checksum mismatch"):
        read_card("hopper")


def test_a_checkpoint_whose_header_length_starts_with_0x80_is_read(tmp_path):
    # The first byte of a safetensors file is its header length's low byte; 0x80 there is not a pickle.
    import torch

    for pad in range(300):
        save_state(tmp_path / "c.safetensors", {"x": torch.zeros(2), "pad": "p" * pad})
        if (tmp_path / "c.safetensors").read_bytes()[:1] == b"\x80":
            break
    else:
        raise AssertionError("no padding gave a header length ending in 0x80")
    assert load_state(tmp_path / "c.safetensors")["pad"] == "p" * pad


def test_a_refused_resume_names_the_settings_that_differ():
    from d4rl_lite.training.run_files import config_differences

    old = {"algo": {"a": 1, "b": 2, "c": 3, "d": 4}, "train": {"seed": 0, "steps": 10}, "run_uid": "x"}
    assert config_differences(old, {**old, "train": {"seed": 0, "steps": 99}, "run_uid": "y"}) == ""  # same run
    new = {"algo": {"a": 5, "b": 6, "c": 7}, "train": {"seed": 1, "steps": 10}}
    assert config_differences(old, new) == "algo.a: 1 -> 5; algo.b: 2 -> 6; algo.c: 3 -> 7; and 2 more"
    assert config_differences(old, new, limit=5).endswith("algo.d: 4 -> (none); train.seed: 0 -> 1")
