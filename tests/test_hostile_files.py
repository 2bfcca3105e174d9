"""Crafted files never make d4rl-lite read another file, block, allocate without bound, or fail with a
traceback: HDF5 external storage, external links and foreign virtual sources, declared shapes the file
cannot hold, FIFOs and devices where a file belongs, unusable reference scores, and JSON fields of the
wrong type or nested 100k deep (checksums recomputed, so only the content is hostile).

Cases that hang or exhaust memory on an unguarded reader run the CLI in a subprocess, with a timeout
and a 4 GiB address-space limit, so that a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import d4rl_lite
import d4rl_lite.references
import d4rl_lite.tasks
from d4rl_lite.cli import main
from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.datasets.storage import FLAT_GROUP, metadata_checksum
from d4rl_lite.errors import DatasetError
from d4rl_lite.training.offline import TrainConfig, train

NAME = "pointmaze-umaze-dense-expert-v0"
DATA = "d4rl_lite/pointmaze-umaze-dense/expert-v0/data"
DEEP = b"[" * 100_000 + b"]" * 100_000


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:  # as tests/test_trust.py
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))


def cli_process(*argv, env: dict | None = None, timeout: float = 90) -> tuple[int, str]:
    """The CLI in a child process: a hang is a timeout and a runaway allocation a MemoryError, not a stuck suite."""
    try:
        done = subprocess.run([sys.executable, "-m", "d4rl_lite.cli", *map(str, argv)], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=_limit_memory, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        pytest.fail(f"d4rl-lite {argv[0]} blocked for {timeout} s")
    return done.returncode, done.stderr


@pytest.fixture(scope="module")
def maze_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_data")
    build_dataset(NAME, size=1200, seed=0, root=root, num_envs=4)
    return root


@pytest.fixture
def data_root(maze_root, tmp_path):
    """A private copy of the dataset root, safe to craft."""
    root = tmp_path / "root"
    shutil.copytree(maze_root, root)
    return root


@pytest.fixture
def fresh_references(monkeypatch):
    """Reference scores are cached per process: each test reads its own file afresh."""
    monkeypatch.setattr(d4rl_lite.references, "_reference_cache", None)
    yield
    d4rl_lite.references._reference_cache = None


def edit_metadata(root: Path, edit) -> None:
    """Apply ``edit`` to the dataset's metadata and recompute its checksum (anyone can)."""
    path = root / DATA / "metadata.json"
    meta = json.loads(path.read_text())
    edit(meta)
    meta["d4rl_lite"]["metadata_checksum"] = metadata_checksum(meta)
    path.write_text(json.dumps(meta))


def replace_flat(root: Path, key: str, make) -> None:
    """Replace the flat array ``key`` of the dataset's HDF5 file by ``make(group, key, array)``."""
    with h5py.File(root / DATA / "main_data.hdf5", "r+") as f:
        flat = f[FLAT_GROUP]
        array = flat[key][()]
        del flat[key]
        make(flat, key, array)


def external_storage(target: Path):
    # No data is passed: HDF5 would write it into ``target``.
    return lambda g, key, a: g.create_dataset(key, shape=a.shape, dtype=a.dtype, external=[(str(target), 0, h5py.h5f.UNLIMITED)])


# -- 1. the HDF5 file reads nothing but itself, and no more than it holds ------------------------------------------
def test_external_raw_storage_is_refused_before_reading(data_root, tmp_path, capsys):
    secret = tmp_path / "secret"  # stands for /etc/passwd
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 400)
    replace_flat(data_root, "actions", external_storage(secret))
    for verify in (False, True):  # verified, it used to be refused only after the secret was read and validated
        with pytest.raises(DatasetError, match=rf"d4rl_lite_flat/actions.*stores its data in another file \({secret}\)"):
            d4rl_lite.load_dataset(NAME, root=data_root, verify=verify)
    for flags in (["--no-verify"], []):
        code, _, err = cli(capsys, "info", NAME, "--root", data_root, *flags)
        assert code == 2 and "another file" in one_error_line(err)


def test_external_storage_on_a_fifo_does_not_block_info(data_root, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    replace_flat(data_root, "observations/observation", external_storage(fifo))
    for flags in (["--no-verify"], []):
        code, err = cli_process("info", NAME, "--root", data_root, *flags)
        assert code == 2 and f"another file ({fifo})" in one_error_line(err)


def _write_elsewhere(other: Path, array: np.ndarray) -> None:
    """The array's own bytes in another file: data, checksum and validation would all pass."""
    with h5py.File(other, "w") as o:
        o.create_dataset("a", data=array)


@pytest.mark.parametrize("kind", ["external-link", "virtual-flat-array", "virtual-episode-view"])
def test_links_and_virtual_sources_into_another_file_are_refused(data_root, tmp_path, capsys, kind):
    other = tmp_path / "other.h5"
    def external_link(g, key, a):
        _write_elsewhere(other, a)
        g[key] = h5py.ExternalLink(str(other), "a")

    def virtual_view(g, key, a):
        _write_elsewhere(other, a)
        layout = h5py.VirtualLayout(shape=a.shape, dtype=a.dtype)
        layout[:] = h5py.VirtualSource(str(other), "a", shape=a.shape, dtype=a.dtype)
        g.create_virtual_dataset(key, layout)

    if kind != "virtual-episode-view":
        replace_flat(data_root, "actions", external_link if kind == "external-link" else virtual_view)
    else:  # Minari's view of episode 0 made to map another file (d4rl_lite's own reads never touch it)
        with h5py.File(data_root / DATA / "main_data.hdf5", "r+") as f:
            view = f["episode_0/actions"]
            shape, dtype = view.shape, view.dtype
            _write_elsewhere(other, view[()])
            del f["episode_0/actions"]
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[:] = h5py.VirtualSource(str(other), "a", shape=shape, dtype=dtype)
            f["episode_0"].create_virtual_dataset("actions", layout)
    code, _, err = cli(capsys, "info", NAME, "--root", data_root)  # verified: every view is checked
    line = one_error_line(err)
    assert code == 2 and str(other) in line and "refused before reading" in line
    if kind != "virtual-episode-view":  # what the loader itself would read: refused unverified too
        with pytest.raises(DatasetError, match="refused before reading"):
            d4rl_lite.load_dataset(NAME, root=data_root, verify=False)


def test_a_view_reaching_past_its_source_is_refused(data_root, capsys):
    with h5py.File(data_root / DATA / "main_data.hdf5", "r+") as f:
        del f["episode_0/rewards"]
        src = h5py.VirtualSource(".", f"{FLAT_GROUP}/rewards", shape=(5000,), dtype=np.float32)
        layout = h5py.VirtualLayout(shape=(300,), dtype=np.float32)
        layout[:] = src[4000:4300]  # rows the flat array (1,200) does not have: read as zeros by Minari
        f["episode_0"].create_virtual_dataset("rewards", layout)
    code, _, err = cli(capsys, "info", NAME, "--root", data_root)
    assert code == 2 and "outside its shape (1200,)" in one_error_line(err)


def test_a_declared_shape_the_file_cannot_hold_is_refused_before_allocating(data_root, tmp_path):
    # (1e9, 11) floats ask for 41 GiB of a file of kilobytes.
    replace_flat(data_root, "actions", lambda g, key, a: g.create_dataset(key, shape=(10**9, 11), dtype="f4"))
    for flags in (["--no-verify"], []):
        code, err = cli_process("info", NAME, "--root", data_root, *flags)
        assert code == 2 and "declares shape (1000000000, 11)" in one_error_line(err)
    # The metadata forged to agree (checksum recomputed): the file still cannot hold what it declares.
    forged = tmp_path / "forged"
    shutil.copytree(data_root, forged)
    steps = 10**8
    edit_metadata(forged, lambda m: m.update(total_steps=steps))
    with h5py.File(forged / DATA / "main_data.hdf5", "r+") as f:
        flat = f[FLAT_GROUP]
        for key in ("actions", "rewards", "terminations", "truncations", "observations/observation",
                    "observations/achieved_goal", "observations/desired_goal"):
            shape, dtype = flat[key].shape, flat[key].dtype
            del flat[key]
            rows = steps + 4 if key.startswith("observations") else steps
            flat.create_dataset(key, shape=(rows, *shape[1:]), dtype=dtype)  # declared, never written
    code, err = cli_process("info", NAME, "--root", forged, "--no-verify")
    assert code == 2 and "refused before reading" in one_error_line(err)


@pytest.mark.parametrize("name, kind", [("main_data.hdf5", "fifo"), ("metadata.json", "fifo"),
                                        ("metadata.json", "/dev/zero")])
def test_dataset_files_that_are_not_regular_files_are_refused(data_root, name, kind):
    path = data_root / DATA / name
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(kind)
    code, err = cli_process("info", NAME, "--root", data_root)
    line = one_error_line(err)
    assert code == 2 and name in line and ("FIFO" if kind == "fifo" else "character device") in line


@pytest.fixture(scope="module")
def trained_run(maze_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("hostile_run") / f"bc__{NAME}__seed0"  # a results directory's run name
    tc = TrainConfig(steps=20, seed=0, device="cpu", log_every=10, eval_every=20, eval_episodes=1, checkpoint_every=10)
    train("bc", d4rl_lite.load_dataset(NAME, root=maze_root), tc, {"hidden": (16, 16), "batch_size": 32}, run_dir=run)
    return run


def _plant(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_run_files_that_are_not_regular_files_are_refused(trained_run, maze_root, tmp_path, kind):
    resume = ["train", "bc", NAME, "--steps", 30, "--log-every", 10, "--eval-every", 20, "--eval-episodes", 1,
              "--checkpoint-every", 10, "--device", "cpu", "--set", "hidden=16,16", "--set", "batch_size=32", "--quiet",
              "--root", maze_root, "--run-dir"]
    for name in ("config.json", "log.jsonl"):  # a resumed train reads both
        run = tmp_path / name / trained_run.name
        shutil.copytree(trained_run, run)
        _plant(run / name, kind)
        code, err = cli_process(*resume, run)
        line = one_error_line(err)
        assert code == 2 and f"{run / name}" in line and "not a regular file" in line, (name, line)
    # A report refuses that run (exit 1, as for any damaged result), says why, and reports the others.
    results = tmp_path / "results"
    shutil.copytree(trained_run, results / trained_run.name)
    damaged = results / trained_run.name.replace("seed0", "seed1")
    shutil.copytree(trained_run, damaged)
    _plant(damaged / "result.json", kind)
    code, err = cli_process("report", results)
    assert code == 1 and "Traceback" not in err, err
    assert f"REFUSED {damaged / 'result.json'}: result is" in err and "not a regular file" in err, err
    # The readers themselves, as the library calls them.
    ckpt = tmp_path / "checkpoint.safetensors"
    ckpt.touch()
    _plant(ckpt, kind)
    for call in (f"load_state({str(ckpt)!r})", f"read_record({str(ckpt)!r})"):
        done = subprocess.run([sys.executable, "-c", f"from d4rl_lite.files import *; {call}"], capture_output=True,
                              text=True, timeout=90, preexec_fn=_limit_memory)
        assert "UnreadableFileError" in done.stderr and "not a regular file" in done.stderr, done.stderr


@pytest.mark.parametrize("field, value", [("steps", "20"), ("curve", 5), ("curve", [{"step": 20, "eval/normalized_score": "x"}]),
                                          ("curve", [{"step": 20}])],
                         ids=["steps-string", "curve-number", "curve-score-string", "curve-without-score"])
def test_result_fields_of_the_wrong_type_are_refused_in_one_line(trained_run, tmp_path, capsys, field, value):
    from d4rl_lite.files import read_record, write_record

    results = tmp_path / "results"
    shutil.copytree(trained_run, results / trained_run.name)
    damaged = results / trained_run.name.replace("seed0", "seed1")
    shutil.copytree(trained_run, damaged)
    record = read_record(damaged / "result.json")
    record[field] = value
    write_record(damaged / "result.json", record)  # a valid checksum: only the type is wrong
    code, _, err = cli(capsys, "report", results)
    assert code == 1 and "Traceback" not in err, err
    assert f"REFUSED {damaged / 'result.json'}: not a run result ({field}" in err, err


# -- 6. reference scores that cannot normalize a score ---------------------------------------------------------
@pytest.mark.parametrize("ref_min, ref_max", [(100.0, 100.0), (0.0, float("nan")), (0.0, float("inf")), (200.0, 100.0)])
def test_unusable_reference_scores_are_refused_naming_the_file(maze_root, tmp_path, monkeypatch, capsys,
                                                               fresh_references, ref_min, ref_max):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"pointmaze-umaze-dense": {"ref_min": {"value": ref_min}, "ref_max": {"value": ref_max}}}))
    monkeypatch.setenv("D4RL_LITE_REFERENCE_SCORES", str(refs))
    code, out, err = cli(capsys, "info", NAME, "--root", maze_root)
    assert code == 2 and str(refs) in one_error_line(err) and "nan" not in out and "inf" not in out
    d4rl_lite.references._reference_cache = None
    run = tmp_path / "run"
    code, _, err = cli(capsys, "train", "bc", NAME, "--root", maze_root, "--steps", 20, "--eval-every", 10,
                       "--eval-episodes", 1, "--log-every", 10, "--set", "hidden=16,16", "--device", "cpu",
                       "--run-dir", run, "--quiet")
    line = one_error_line(err)
    assert code == 2 and str(refs) in line and "learning rate" not in line
    assert not (run / "log.jsonl").exists()  # refused before the first update, not after the budget


@pytest.mark.parametrize("edit", [
    lambda m: m.update(ref_min_score=50.0, ref_max_score=50.0),
    lambda m: m["d4rl_lite"]["reference"]["ref_max"].update(value=float("nan")),
], ids=["minari-scores-equal", "reference-block-nan"])
def test_dataset_metadata_with_unusable_references_is_refused(data_root, capsys, edit):
    edit_metadata(data_root, edit)
    code, _, err = cli(capsys, "info", NAME, "--root", data_root)
    line = one_error_line(err)
    assert code == 2 and "metadata.json" in line and "ref_m" in line


def test_a_reference_file_that_is_a_fifo_is_refused_not_skipped(maze_root, tmp_path, monkeypatch, capsys,
                                                               fresh_references):
    fifo = tmp_path / "refs.json"
    os.mkfifo(fifo)
    monkeypatch.setenv("D4RL_LITE_REFERENCE_SCORES", str(fifo))
    code, _, err = cli(capsys, "info", NAME, "--root", maze_root)
    assert code == 2 and f"{fifo}: reference-score file is a FIFO" in one_error_line(err)


# -- 7. JSON of the wrong type or depth: one line -------------------------------------------------------------
@pytest.mark.parametrize("key, value, flags", [
    ("checksum", 7, ["--no-verify"]),
    ("card", "x", []),
    ("max_episode_steps", "300", []),
])
def test_metadata_fields_of_the_wrong_type_are_one_line(data_root, capsys, key, value, flags):
    edit_metadata(data_root, lambda m: m["d4rl_lite"].update({key: value}))
    code, _, err = cli(capsys, "info", NAME, "--root", data_root, *flags)
    assert code == 2 and f"d4rl_lite.{key} must be" in one_error_line(err)


def test_json_nested_100k_deep_is_one_line(data_root, tmp_path, monkeypatch, capsys, fresh_references):
    (data_root / DATA / "metadata.json").write_bytes(DEEP)
    code, _, err = cli(capsys, "info", NAME, "--root", data_root)
    assert code == 2 and "metadata.json" in one_error_line(err)
    refs = tmp_path / "refs.json"
    refs.write_bytes(b'{"hopper": ' + DEEP + b"}")
    monkeypatch.setenv("D4RL_LITE_REFERENCE_SCORES", str(refs))
    code, _, err = cli(capsys, "list")
    assert code == 2 and str(refs) in one_error_line(err)


@pytest.mark.parametrize("content", [
    {"pointmaze-umaze-dense": {"ref_max": {"value": "200"}}},
    {"pointmaze-umaze-dense": {"ref_max": [1]}},
    {"pointmaze-umaze-dense": {"ref_min": {"value": [0.0]}}},
], ids=["value-string", "entry-list", "value-list"])
def test_reference_file_fields_of_the_wrong_type_are_one_line(maze_root, tmp_path, monkeypatch, capsys,
                                                              fresh_references, content):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps(content))
    monkeypatch.setenv("D4RL_LITE_REFERENCE_SCORES", str(refs))
    code, _, err = cli(capsys, "info", NAME, "--root", maze_root)
    assert code == 2 and f"{refs}: not a reference-score file (pointmaze-umaze-dense.ref_m" in one_error_line(err)


@pytest.mark.parametrize("content", [b"[1]", b'{"step": [1]}', b'{"step": 5, "replay_starts_at_step": "0"}', DEEP],
                         ids=["list", "step-list", "start-string", "nested-100k"])
def test_behaviour_snapshot_info_of_the_wrong_type_is_one_line(tiny_zoo, tmp_path, capsys, content):
    from d4rl_lite.production.behavior_training import snapshot_run

    snapshot = snapshot_run(tiny_zoo / "run", tmp_path / "snapshot")
    (snapshot / "snapshot.json").write_bytes(content)
    code, _, err = cli(capsys, "train-behavior", "hopper", "--run-dir", tmp_path / "fresh", "--resume-from", snapshot,
                       "--steps", 1500)
    assert code == 2 and "snapshot.json" in one_error_line(err)


@pytest.mark.parametrize("field, value, kind", [("hidden", "16", "medium"), ("medium.step", "x", "medium-replay"),
                                                ("training.replay_run", {"steps": "all"}, "medium-replay")])
def test_behaviour_card_of_the_wrong_type_is_one_line(tiny_zoo, tmp_path, monkeypatch, capsys, field, value, kind):
    from d4rl_lite.datasets.behavior.policies import write_manifest

    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo / "zoo", zoo)
    card = json.loads((zoo / "hopper/card.json").read_text())
    *parents, key = field.split(".")
    holder = card
    for name in parents:
        holder = holder[name]
    holder[key] = value
    (zoo / "hopper/card.json").write_text(json.dumps(card))
    write_manifest(zoo / "hopper")  # the manifest agrees: only the types are wrong
    monkeypatch.setenv("D4RL_LITE_ZOO", str(zoo))
    code, _, err = cli(capsys, "build", f"hopper-{kind}-v0", "--size", 200, "--root", tmp_path / "root")
    assert code == 2 and "card.json: behaviour card" in one_error_line(err)

