"""The `d4rl-lite` command: the README quickstart as a user runs it (a new process); the other verbs through
`main` in this process (the same parser and code, without ~3 s of imports per call)."""

import os
import subprocess

import pytest


def run(*args, root, cwd=None):
    """The installed ``d4rl-lite`` command in a new process, as a user runs it (~3 s of imports each)."""
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root)}
    return subprocess.run(["d4rl-lite", *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


@pytest.fixture
def cli(capsys):
    """The same command's ``main`` in this process (the autouse root fixture sets MINARI_DATASETS_PATH)."""
    from d4rl_lite.cli import main

    def call(*args, root=None):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # --help, and argparse's own usage errors
            code = e.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return call


def test_readme_quickstart_with_a_relative_root(tmp_path, root):
    # The README's main command, as a user types it: a relative --root in the current directory.
    args = ["--root", "./d4rl_lite_data"]
    out = run("build", "hopper-random-v0", "--size", "300", "--quiet", *args, root=root, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = run("info", "hopper-random-v0", *args, root=root, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "transitions        300" in out.stdout
    assert (tmp_path / "d4rl_lite_data/d4rl_lite/hopper/random-v0/data/main_data.hdf5").is_file()


@pytest.mark.parametrize("verb", ["list", "info", "build", "train", "refs", "train-behavior", "export-behavior"])
def test_every_verb_has_help(cli, verb, root):
    out = cli(verb, "--help", root=root)
    assert out.returncode == 0 and "usage: d4rl-lite " + verb in out.stdout
    assert len(out.stdout.splitlines()) > 5


def test_top_level_help_lists_verbs(cli, root):
    out = cli("--help", root=root)
    assert out.returncode == 0
    for verb in ("list", "info", "build", "train", "refs", "train-behavior", "export-behavior"):
        assert verb in out.stdout


def test_build_then_info_then_list(cli, root):
    out = cli("build", "hopper-random-v0", "--size", "500", "--seed", "3", "--quiet", root=root)
    assert out.returncode == 0, out.stderr
    assert "transitions        500" in out.stdout and "wrote " in out.stdout

    out = cli("info", "hopper-random-v0", root=root)
    assert out.returncode == 0, out.stderr
    assert "verified" in out.stdout and "return (raw)" in out.stdout and "seed=3" in out.stdout
    png = root / "d4rl_lite/hopper/random-v0/returns.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out = cli("info", str(root / "d4rl_lite/hopper/random-v0"), "--plot", str(root / "h.png"), root=root)
    assert out.returncode == 0 and (root / "h.png").exists()

    out = cli("list", root=root)
    assert out.returncode == 0
    lines = {l.split()[0]: l for l in out.stdout.splitlines() if l.startswith("  ") and len(l.split()) > 1}
    assert lines["hopper-random-v0"].split()[-1] == "built"
    assert lines["walker2d-random-v0"].split()[-1] == "buildable"
    assert "ant-expert-v0" in lines and "pointmaze-large-stitch-v0" in lines


def test_errors_are_one_clear_line_and_exit_2(cli, root):
    out = cli("info", "hopper-randm-v0", root=root)
    assert out.returncode == 2 and "Did you mean 'hopper-random-v0'" in out.stderr
    assert "Traceback" not in out.stderr
    out = cli("build", "hopper-random-v0", "--size", "0", root=root)
    assert out.returncode == 2 and "at least 1 transition" in out.stderr


def test_an_internal_value_error_is_a_bug_not_bad_input(cli, root, monkeypatch, capsys):
    import numpy as np

    from d4rl_lite.cli import dataset_verbs
    from d4rl_lite.errors import UserInputError

    def broken_list(args):  # a verb hitting an internal NumPy error, as a bug would
        return np.zeros(3).reshape(2)

    monkeypatch.setattr(dataset_verbs, "cmd_list", broken_list)
    with pytest.raises(ValueError, match="cannot reshape") as raised:  # it propagates with its traceback
        cli("list", root=root)
    assert not isinstance(raised.value, UserInputError)
    assert "error:" not in capsys.readouterr().err  # nothing printed it as the user's mistake
    # A user's mistake in the same process is still one line and exit 2.
    out = cli("train", "bc", "hopper-random-v0", "--sweep", "no_such_setting=1,2", root=root)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("d4rl-lite train: error: unknown setting 'no_such_setting'")


def test_refs_shows_how_each_score_was_measured(cli, root):
    out = cli("refs", root=root)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    ref_min = [l for l in lines if " ref_min " in l]
    ref_max = [l for l in lines if " ref_max " in l]
    from d4rl_lite.tasks import TASKS

    assert len(ref_min) == len(ref_max) == sum(t.domain != "skill" for t in TASKS.values())
    measured = [l for l in ref_min if not l.startswith("antmaze-")]  # ant mazes: D4RL's 0 and 1 by definition
    assert all("uniform random policy" in l and "2026-" in l for l in measured)
    assert all("D4RL antmaze's definition" in l for l in ref_min + ref_max if l.startswith("antmaze-"))
    assert all("provisional" in l or "expert" in l or "controller" in l for l in ref_max if not l.startswith("antmaze-"))


def test_build_human_and_mixed_from_the_command_line(cli, zoo, root):
    # The zoo fixture points D4RL_LITE_ZOO at a tiny trained zoo; the subprocess inherits it.
    out = cli("build", "hopper-human-v0", "--size", "400", "--set", "pause_prob=0.05", "--set", "reaction_delay=2",
              "--quiet", root=root)
    assert out.returncode == 0, out.stderr
    assert "human_effects" in out.stdout and "paused_share" in out.stdout
    out = cli("info", "hopper-human-v0", root=root)
    assert "measured_reaction_delay" in out.stdout
    out = cli("build", "hopper-mixed-v0", "--size", "300", "--mix", "random:2,expert:1", "--quiet", root=root)
    assert out.returncode == 0, out.stderr
    out = cli("info", "hopper-mixed-v0", "--json", root=root)
    assert '"mix": "random:0.666667,expert:0.333333"' in out.stdout
    out = cli("build", "hopper-human-v0", "--set", "pause_prob", root=root)
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr
