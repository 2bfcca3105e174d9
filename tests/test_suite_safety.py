"""Suites run code only when asked, names never put a file elsewhere, and a suite's settings reach
the algorithms they are meant for (issue 30: items 2, 4, 11; from 7 and 8 the suite cases)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from d4rl_lite.files import write_record
from test_trust import cli, one_error_line

OWN_ALGORITHM_HOWTO = Path(__file__).resolve().parent.parent / "docs/how-to/own-algorithm.md"
SHIPPED_SMOKE = Path(__file__).resolve().parent.parent / "d4rl_lite/benchmark/suites/smoke.json"
TINY = {"name": "tiny", "algorithms": ["bc"], "datasets": {"pointmaze-umaze-dense-expert-v0": {"size": 600}},
        "seeds": [0], "steps": 10, "eval_every": 10, "eval_episodes": 1, "log_every": 5, "checkpoint_every": 10,
        "settings": {"all": {"hidden": [16, 16], "batch_size": 32}}}
# A module whose import leaves a file behind: proof that it ran.
MARKER = "from pathlib import Path\nPath(__file__).with_name('{name}.ran').write_text('ran')\n"


def run_cli(*argv, cwd: Path, pythonpath: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m d4rl_lite.cli ARGV`` in ``cwd``: that form puts the current directory on sys.path."""
    import d4rl_lite

    env = dict(os.environ)  # PYTHONPATH: ``pythonpath`` and the package under test, never the current directory
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, str(Path(d4rl_lite.__file__).parent.parent)]))
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "d4rl_lite.cli", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def write_suite(path: Path, **changes) -> Path:
    path.write_text(json.dumps({**TINY, **changes}))
    return path


def marker_module(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(MARKER.format(name=name))
    return folder / f"{name}.ran"


# -- item 2: a suite's imports run only when the user asks ---------------------------------------
def test_plan_never_runs_a_suites_imports(tmp_path):
    ran = marker_module(tmp_path / "mods", "planmark")
    write_suite(tmp_path / "s.json", imports=["planmark", "this"])
    done = run_cli("bench", "./s.json", "--plan", "--workers", "1", cwd=tmp_path, pythonpath=str(tmp_path / "mods"))
    assert done.returncode == 0, done.stderr
    assert not ran.exists() and "Zen of Python" not in done.stdout
    assert "bc on pointmaze-umaze-dense-expert-v0" in done.stdout  # the plan itself is made


def test_plan_names_the_algorithms_it_cannot_measure_without_their_imports(tmp_path):
    write_suite(tmp_path / "s.json", algorithms=["bc", "my_bc"], imports=["my_algo_nowhere"])
    done = run_cli("bench", "./s.json", "--plan", "--workers", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "my_bc" in line]
    assert len(lines) == 1 and "not measured" in lines[0] and "--allow-imports" in lines[0], done.stdout
    assert "bc on pointmaze-umaze-dense-expert-v0" in done.stdout


def test_bench_refuses_a_suites_imports_without_allow_imports(tmp_path):
    ran = marker_module(tmp_path / "mods", "benchmark_marker")
    (tmp_path / "mods/benchmark_marker.py").write_text(MARKER.format(name="benchmark_marker") + "raise SystemExit(9)\n")
    write_suite(tmp_path / "s.json", imports=["benchmark_marker"])
    done = run_cli("bench", "./s.json", "--results", tmp_path / "res", "--root", tmp_path / "root", "--workers", "1",
                   cwd=tmp_path, pythonpath=str(tmp_path / "mods"))
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and "benchmark_marker" in line and "--allow-imports" in line
    assert not ran.exists() and not (tmp_path / "res").exists() and not (tmp_path / "root").exists()


def test_a_bare_suite_name_is_the_shipped_suite_never_a_local_file(tmp_path, monkeypatch, capsys):
    from d4rl_lite.benchmark.suites import Suite

    ran = marker_module(tmp_path, "shadow_marker")
    local = {**json.loads(SHIPPED_SMOKE.read_text()), "description": "LOCAL", "imports": ["shadow_marker"]}
    (tmp_path / "smoke").write_text(json.dumps(local))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "shadow_marker", raising=False)
    suite = Suite.load("smoke")
    assert suite.description == json.loads(SHIPPED_SMOKE.read_text())["description"] and suite.imports == []
    assert not ran.exists()
    assert "./smoke" in capsys.readouterr().err  # not silent: the note says how to use the local file
    assert Suite.load("./smoke").description == "LOCAL" and not ran.exists()  # a path is the local file, not imported
    (tmp_path / "mine").write_text(json.dumps(TINY))
    with pytest.raises(LookupError, match="unknown suite 'mine'.*./mine"):
        Suite.load("mine")


def test_imports_never_resolve_from_the_current_directory_implicitly(tmp_path, monkeypatch):
    from d4rl_lite.benchmark.suites import Suite

    ran = marker_module(tmp_path, "cwd_marker")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend("")  # as `python -m ...` and an interactive session have it
    monkeypatch.delitem(sys.modules, "cwd_marker", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    suite = Suite(**{**TINY, "imports": ["cwd_marker"]})
    with pytest.raises(ValueError, match="cwd_marker.*cannot be imported.*PYTHONPATH"):
        suite.import_plugins()
    assert not ran.exists() and "" in sys.path  # sys.path as it was
    monkeypatch.setenv("PYTHONPATH", ".")  # named by the user: the current directory is searched
    suite.import_plugins()
    assert ran.exists()
    sys.modules.pop("cwd_marker", None)


def test_a_suites_module_names_are_module_names(tmp_path):
    from d4rl_lite.benchmark.suites import Suite

    for bad in ("../evil", "os.path/x", "", "a..b"):
        with pytest.raises(ValueError, match="imports must be a list of module names"):
            Suite.load(write_suite(tmp_path / "s.json", imports=[bad]))


def test_report_never_imports(tmp_path, capsys):
    # A guard (report has never imported): its suite.json names a module that would leave a mark.
    ran = marker_module(tmp_path / "mods", "report_marker")
    sys.path.insert(0, str(tmp_path / "mods"))
    try:
        (tmp_path / "res").mkdir()
        write_record(tmp_path / "res/suite.json", {**TINY, "imports": ["report_marker"]})
        code, _, err = cli(capsys, "report", tmp_path / "res")
    finally:
        sys.path.remove(str(tmp_path / "mods"))
    one_error_line(err)
    assert code == 2 and not ran.exists()


# -- item 4: names that become paths ---------------------------------------------------------------
def test_path_names_are_refused_when_they_would_leave_their_root():
    from d4rl_lite.paths import path_name, relative_path

    for good in ("smoke", "hopper-random-v0", "bc__hopper-random-v0__seed0", "a" * 200):
        assert path_name(good, "name") == good
    for bad in ("", "..", ".", "../x", "a/b", "a\\b", "a..b", "x\n", "a" * 201, 7, None):
        with pytest.raises(ValueError, match="cannot be used as a file name"):
            path_name(bad, "name")
    assert relative_path("ladder/step_00000500.safetensors", "file") == Path("ladder/step_00000500.safetensors")
    for bad in ("../escape.txt", "/etc/passwd", "ladder/../../x", "ladder//x", ""):
        with pytest.raises(ValueError, match="cannot be used as a file name"):
            relative_path(bad, "file")


def test_a_suite_name_cannot_write_results_outside_results(tmp_path):
    cwd = tmp_path / "a/b/c"
    cwd.mkdir(parents=True)
    write_suite(cwd / "esc.json", name="../../../escaped_results")
    done = run_cli("bench", "./esc.json", "--root", tmp_path / "root", "--workers", "1", cwd=cwd)
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and "../../../escaped_results" in line
    assert not list(tmp_path.rglob("escaped_results*")) and not (cwd / "results").exists()


def _rename_dataset(data_dir: Path, name: str) -> None:
    """A forged metadata name, consistent with the metadata checksum (which anyone can recompute)."""
    from d4rl_lite.datasets.storage import metadata_checksum

    meta = json.loads((data_dir / "metadata.json").read_text())
    meta["d4rl_lite"]["name"] = name
    meta["d4rl_lite"]["metadata_checksum"] = metadata_checksum(meta)
    (data_dir / "metadata.json").write_text(json.dumps(meta))


def test_info_never_writes_its_histogram_outside_the_working_directory(hopper_copy, tmp_path, monkeypatch, capsys):
    _rename_dataset(hopper_copy / "data", "../../escaped")
    cwd = tmp_path / "w1/w2"
    cwd.mkdir(parents=True)
    (cwd / "a_file").write_text("")
    monkeypatch.chdir(cwd)
    # A --plot that cannot be written (under a file): info falls back to the current directory.
    code, _, err = cli(capsys, "info", hopper_copy, "--plot", "a_file/returns.png")
    assert code == 2 and "../../escaped" in one_error_line(err)
    assert not list(tmp_path.rglob("escaped*"))


def test_train_never_puts_a_run_directory_outside_runs(hopper_copy, tmp_path, monkeypatch, capsys):
    _rename_dataset(hopper_copy / "data", "../../../escaped")
    cwd = tmp_path / "w1/w2"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    code, _, err = cli(capsys, "train", "bc", hopper_copy, "--steps", "2", "--eval-every", "2", "--log-every", "1",
                       "--checkpoint-every", "2", "--eval-episodes", "1", "--set", "hidden=8,8", "--quiet")
    assert code == 2 and "../../../escaped" in one_error_line(err)
    assert not list(tmp_path.rglob("escaped*")) and not (cwd / "runs").exists()


def test_export_behavior_never_copies_a_ladder_file_outside_the_export(tiny_zoo, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_zoo / "run", run)
    (tmp_path / "escape.txt").write_text("not a policy")
    ladder = json.loads((run / "ladder.json").read_text())
    ladder.append({"step": 10**9, "file": "../escape.txt", "eval_det_mean": -1e9, "eval_sto_mean": -1e9})
    (run / "ladder.json").write_text(json.dumps(ladder))
    zoo = tmp_path / "zoo"
    code, _, err = cli(capsys, "export-behavior", "hopper", "--run-dir", run, "--zoo", zoo, "--episodes", "2")
    assert code == 2 and "../escape.txt" in one_error_line(err)
    assert not zoo.exists()


# -- item 11: a suite's settings reach the algorithms they are meant for ------------------------------
OLD_STYLE = '''
from dataclasses import dataclass
import torch
from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import OfflineAlgorithm
from d4rl_lite.nets import DeterministicActor

@dataclass
class OldConfig:
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    batch_size: int = 256

@dataclass
class NoSharedConfig:
    actor_hidden: tuple[int, ...] = (256, 256)

class OldBC(OfflineAlgorithm):
    Config = OldConfig

    def setup(self):
        self.actor = DeterministicActor(self.obs_dim, self.act_dim, self.config.hidden).to(self.device)

register("old_bc")(OldBC)
register("no_shared_bc")(type("NoSharedBC", (OldBC,), {"Config": NoSharedConfig}))
'''


def test_a_shared_setting_that_misses_an_algorithm_is_refused_at_load(tmp_path, monkeypatch):
    import d4rl_lite.algorithms as registry
    from d4rl_lite.benchmark.suites import Suite

    monkeypatch.setattr(registry, "ALGORITHMS", dict(registry.ALGORITHMS))
    exec(compile(OLD_STYLE, "old_style", "exec"), {})
    # The README's old example: its `hidden` is not declared Layers, so bc got 16x16 and it 256x256.
    with pytest.raises(ValueError, match=r"settings.all.hidden reaches no setting of old_bc.*declared Layers"):
        Suite.load(write_suite(tmp_path / "s.json", algorithms=["bc", "old_bc"]))
    # Its config without AlgorithmConfig's fields: the suite's batch_size would not reach it.
    with pytest.raises(ValueError, match=r"settings.all.batch_size reaches no setting of no_shared_bc.*AlgorithmConfig"):
        Suite.load(write_suite(tmp_path / "s.json", algorithms=["bc", "no_shared_bc"],
                               settings={"all": {"batch_size": 32}}))
    # Given its own value, nothing is missed; the same under a dataset's settings.
    Suite.load(write_suite(tmp_path / "s.json", algorithms=["bc", "old_bc"],
                           settings={"all": {"hidden": [16, 16]}, "old_bc": {"hidden": [16, 16]}}))
    with pytest.raises(ValueError, match=r"pointmaze-umaze-dense-expert-v0's settings.all.hidden reaches no setting of old_bc"):
        Suite.load(write_suite(tmp_path / "s.json", algorithms=["bc", "old_bc"], settings={},
                               datasets={"pointmaze-umaze-dense-expert-v0": {"size": 600,
                                                                              "settings": {"all": {"hidden": [8]}}}}))


def test_the_docs_own_algorithm_trains_as_a_population_with_the_suites_networks(tmp_path):
    example = next(b for b in re.findall(r"```python\n(.*?)```", OWN_ALGORITHM_HOWTO.read_text(), flags=re.S)
                   if "@register" in b)
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods/my_algo.py").write_text(example)
    write_suite(tmp_path / "mine.json", name="mine", algorithms=["my_bc", "bc"], seeds=[0, 1], imports=["my_algo"])
    done = run_cli("bench", "./mine.json", "--allow-imports", "--root", tmp_path / "root", "--workers", "1",
                   cwd=tmp_path, pythonpath=str(tmp_path / "mods"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finished my_bc__pointmaze-umaze-dense-expert-v0__seeds0,1" in done.stdout  # one population
    for algo in ("my_bc", "bc"):
        config = json.loads((tmp_path / f"results/mine/{algo}__pointmaze-umaze-dense-expert-v0__seed1/config.json").read_text())
        assert config["algo"]["actor_hidden"] == [16, 16] and config["algo"]["batch_size"] == 32


# -- item 7 and 8: a suite's numbers are checked before anything is allocated or written -------------
def test_a_suite_whose_networks_cannot_fit_is_refused_before_the_plan_allocates(tmp_path, capsys):
    write_suite(tmp_path / "big.json", settings={"all": {"hidden": [10**12, 10**12]}})
    code, _, err = cli(capsys, "bench", tmp_path / "big.json", "--plan")
    line = one_error_line(err)
    assert code == 2 and "one run of bc" in line and "GiB" in line and "memory" in line
    # Each run fits, the population of its 100k seeds --plan would calibrate does not.
    write_suite(tmp_path / "many.json", seeds=list(range(100_000)), settings={"all": {"hidden": [1024, 1024]}})
    code, _, err = cli(capsys, "bench", tmp_path / "many.json", "--plan")
    line = one_error_line(err)
    assert code == 2 and "population of 100000 seeds" in line and "GiB" in line


def test_a_suite_nested_100k_deep_is_one_line(tmp_path, capsys):
    (tmp_path / "deep.json").write_text('{"name": "deep", "description": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, _, err = cli(capsys, "bench", tmp_path / "deep.json", "--plan")
    assert code == 2 and "deep.json" in one_error_line(err)


def test_workers_0_is_refused_before_anything_is_written(tmp_path, capsys):
    write_suite(tmp_path / "w0.json", name="w0")
    code, _, err = cli(capsys, "bench", tmp_path / "w0.json", "--workers", "0", "--results", tmp_path / "res",
                       "--root", tmp_path / "root")
    assert code == 2 and "--workers" in one_error_line(err)
    assert not (tmp_path / "res").exists() and not (tmp_path / "root").exists()
