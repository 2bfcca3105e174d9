"""Suites, the local and Ray runners, the table, and the eval/report commands."""

import json
import subprocess

import pytest

from d4rl_lite.benchmark.runner import run_suite
from d4rl_lite.benchmark.suites import Suite
from d4rl_lite.benchmark.results import read_results
from d4rl_lite.benchmark.table import is_summary, score_table
from d4rl_lite.benchmark.table_formats import to_json, to_latex, to_markdown
from d4rl_lite.files import write_record
from d4rl_lite.records import RunResult


def tiny_suite(tmp_path):
    spec = {
        "name": "tiny", "algorithms": ["bc", "iql"], "seeds": [0, 1],
        "datasets": {"pointmaze-umaze-dense-random-v0": {"size": 2000}},
        "steps": 40, "eval_every": 20, "eval_episodes": 2, "log_every": 10, "checkpoint_every": 20,
        "settings": {"all": {"hidden": [32, 32], "batch_size": 64, "actor_lr_schedule_steps": 40}},
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(spec))
    return Suite.load(path)


def test_shipped_suites_are_valid():
    smoke = Suite.load("smoke")
    assert set(smoke.algorithms) == {"bc", "td3_bc", "iql", "awac", "cql", "bcq", "bear", "brac_p", "brac_v", "crr", "sac_n",
                                     "edac", "mopo"}
    assert Suite.load("d4rl").steps == 1_000_000 and len(Suite.load("d4rl").seeds) == 5
    with pytest.raises(LookupError, match="Did you mean 'smoke'"):
        Suite.load("smoek")


def test_suite_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "algorithms": ["bc"], "datasets": {"hopper-random-v0": {}}, "seeds": [0],
                               "steps": 10, "eval_every": 5, "settings": {"bc": {"hiddden": [8]}}}))
    with pytest.raises(ValueError, match="unknown setting 'hiddden'"):
        Suite.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="suite file is not valid JSON"):
        Suite.load(bad)


def test_only_on_limits_an_algorithm_to_some_datasets(tmp_path):
    spec = {"name": "x", "algorithms": ["bc", "cql"], "datasets": {"hopper-random-v0": {}, "walker2d-random-v0": {}},
            "seeds": [0, 1], "steps": 10, "eval_every": 5, "only_on": {"cql": ["walker2d-random-v0"]}}
    path = tmp_path / "only.json"
    path.write_text(json.dumps(spec))
    runs = Suite.load(path).runs()
    assert sorted({(a, d) for a, d, _ in runs}) == [("bc", "hopper-random-v0"), ("bc", "walker2d-random-v0"),
                                                     ("cql", "walker2d-random-v0")] and len(runs) == 6
    from d4rl_lite.benchmark.results import collect_results

    (tmp_path / "results").mkdir()
    write_record(tmp_path / "results" / "suite.json", spec)  # a report expects what the suite plans (bench writes it so)
    assert sorted(r.run_id for r in collect_results(tmp_path / "results").missing) == sorted(
        f"{a}__{d}__seed{s}" for a, d, s in runs)
    for only_on in ({"cql": ["ant-random-v0"]}, {"iql": ["hopper-random-v0"]}, {"cql": []}):
        path.write_text(json.dumps({**spec, "only_on": only_on}))
        with pytest.raises(ValueError, match="only_on must map algorithms of the suite"):
            Suite.load(path)


@pytest.fixture(scope="module")
def tiny_local(tmp_path_factory):
    """The tiny suite run once on the local pool: (suite, results dir, its dataset root, progress lines)."""
    base = tmp_path_factory.mktemp("tiny_local")
    suite, lines = tiny_suite(base), []
    counts = run_suite(suite, base / "local", workers=2, root=base / "root", log=lines.append)
    assert counts == {"done": 4, "skipped": 0, "failed": 0}
    return suite, base / "local", base / "root", lines


def test_local_runner_skips_finished_runs(tiny_local):
    suite, results, root, lines = tiny_local
    assert any("done /" in line and "running /" in line and "left]" in line for line in lines)
    again = run_suite(suite, results, workers=2, root=root, log=lines.append)
    assert again == {"done": 0, "skipped": 4, "failed": 0}
    local = score_table(read_results(results))
    rows = {(r["dataset"], r["algorithm"]): r for r in local}
    assert rows[("pointmaze-umaze-dense-random-v0", "bc")]["seeds"] == 2
    assert rows[("pointmaze-umaze-dense-random-v0", "iql")]["metric"] == "normalized"
    assert "maze average (1 dataset)" in to_markdown(local) and r"\pm" in to_latex(local)


def test_ray_gives_the_same_table_as_the_local_pool(tiny_local, tmp_path):
    """Both executors end to end on the smallest suite that has several algorithms and seeds
    (the shipped smoke file's validity is test_shipped_suites_are_valid's job)."""
    suite, results, root, _ = tiny_local
    assert run_suite(suite, tmp_path / "ray", executor="ray", workers=2, root=root, log=lambda _: None)["done"] == 4
    local, ray = score_table(read_results(results)), score_table(read_results(tmp_path / "ray"))
    assert to_json(local) == to_json(ray)


def test_populations_off_gives_the_same_table(tiny_local, tmp_path):
    """The tiny suite's runs trained one per process (--population off) against its populations
    (the default, tiny_local): a member ends within float rounding of its solo run."""
    import json

    suite, results, root, lines = tiny_local
    assert any("2 populations" in line for line in lines)  # bc and iql, two seeds each
    solo_lines = []
    counts = run_suite(suite, tmp_path / "solo", workers=2, root=root, log=solo_lines.append, population=False)
    assert counts["done"] == 4 and not any("populations" in line for line in solo_lines)
    together, alone = score_table(read_results(results)), score_table(read_results(tmp_path / "solo"))
    assert to_markdown(together) == to_markdown(alone)
    for a, b in zip(json.loads(to_json(together)), json.loads(to_json(alone))):
        for key, value in a.items():
            close = pytest.approx(b[key], rel=1e-4, abs=1e-4, nan_ok=True) if isinstance(value, float) else b[key]
            assert value == close, key


def test_a_dataset_with_a_budget_of_its_own(tiny_local, tmp_path):
    """A dataset's own steps, eval_every and settings reach its runs (and no other's); bench then
    counts them finished, the report accepts them and refuses one trained to the suite's budget, and
    the plan counts each dataset's updates."""
    from d4rl_lite.benchmark.plan import plan_suite
    from d4rl_lite.benchmark.results import collect_results
    from d4rl_lite.files import read_record

    suite, _, root, _ = tiny_local
    longer = {"size": 2000, "steps": 60, "eval_every": 30, "settings": {"all": {"actor_lr_schedule_steps": 60}}}
    spec = {**suite.__dict__, "seeds": [0], "datasets": {**suite.datasets, "pointmaze-umaze-random-v0": longer}}
    path = tmp_path / "budgets.json"
    path.write_text(json.dumps(spec))
    mixed = Suite.load(path)
    assert mixed.steps_on("pointmaze-umaze-random-v0") == 60 and mixed.steps_on("pointmaze-umaze-dense-random-v0") == 40
    assert run_suite(mixed, tmp_path / "res", workers=2, root=root, log=lambda _: None)["done"] == 4
    for dataset, steps, every in (("pointmaze-umaze-dense-random-v0", 40, 20), ("pointmaze-umaze-random-v0", 60, 30)):
        config = read_record(tmp_path / "res" / f"iql__{dataset}__seed0" / "config.json", "run config")
        assert (config["train"]["steps"], config["train"]["eval_every"], config["algo"]["actor_lr_schedule_steps"]) == (
            steps, every, steps)
        log = (tmp_path / "res" / f"bc__{dataset}__seed0" / "log.jsonl").read_text().splitlines()
        assert [json.loads(row)["step"] for row in log if "eval/return_mean" in row] == [every, 2 * every]
    assert run_suite(mixed, tmp_path / "res", workers=2, root=root, log=lambda _: None) == {"done": 0, "skipped": 4,
                                                                                           "failed": 0}
    results = collect_results(tmp_path / "res")
    assert results.complete and len(results.finished) == 4
    assert "Final evaluation after 40 updates (60 on pointmaze-umaze-random-v0)," in to_markdown(score_table(results.finished))
    costs, _ = plan_suite(mixed, workers=2, population=True, device="cpu")
    assert sorted(c.updates for c in costs) == [40, 40, 60, 60]

    # The suite read as if that dataset had the suite's budget: its runs are refused, with the reason.
    short = {**spec, "datasets": {**spec["datasets"], "pointmaze-umaze-random-v0": {"size": 2000}}}
    write_record(tmp_path / "res" / "suite.json", short)
    refused = collect_results(tmp_path / "res").refused
    assert len(refused) == 2 and all("trained for 60 steps, the suite asks for 40" in r.reason for r in refused)
    assert sorted(r.run_id for r in refused) == sorted(r.path.parent.name for r in refused)  # typed, not parsed

    for bad, message in (({"size": 2000, "step": 60}, "unknown key\\(s\\) 'step'"),
                         ({"steps": 0}, "steps must be a whole number >= 1"),
                         ({"settings": {"cql": {"cql_weight": 1}}}, "settings for algorithms the suite does not run"),
                         ({"settings": {"iql": {"expectyle": 0.9}}}, "unknown setting 'expectyle'"),
                         ({"settings": {"all": {"hiden": [8, 8]}}}, "settings.all has 'hiden', which no algorithm has")):
        path.write_text(json.dumps({**spec, "datasets": {"pointmaze-umaze-random-v0": bad}}))
        with pytest.raises(ValueError, match=message):
            Suite.load(path)


def test_report_and_eval_commands(tiny_local, tmp_path, capsys, monkeypatch):
    import shutil

    from d4rl_lite.cli import main

    shutil.copytree(tiny_local[1], tmp_path / "res")
    assert main(["report", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "| dataset | data | bc | iql |" in out  # the data's own score first
    assert "Validity: the literature's patterns on this suite" not in out  # random maze data: no check applies
    for name in ("table.md", "table.csv", "table.json", "table.tex", "learning_curves.png"):
        assert (tmp_path / "res" / name).stat().st_size > 0
    # The same report logged to W&B (offline): the table as a wandb.Table, the plots as images.
    from wandb_reader import read_wandb_offline

    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert main(["report", str(tmp_path / "res"), "--wandb"]) == 0
    assert "W&B: table and plots logged" in capsys.readouterr().out
    (run,) = (tmp_path / "res" / "wandb").glob("offline-run-*")
    logged = set().union(*read_wandb_offline(run))
    assert {"benchmark/table/_type", "benchmark/learning_curves/_type"} <= logged
    run_dir = tmp_path / "res" / "bc__pointmaze-umaze-dense-random-v0__seed0"
    out = subprocess.run(["d4rl-lite", "eval", str(run_dir), "--episodes", "3"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "return_mean" in out.stdout and "normalized_mean" in out.stdout and "step                 40" in out.stdout


def test_statistics_match_rliable_on_a_fixed_score_matrix():
    import numpy as np
    from rliable import library as rly
    from rliable import metrics
    from scipy.stats import trim_mean

    from d4rl_lite.benchmark import stats

    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(60, 10, size=(5, 4)), "b": rng.normal(40, 10, size=(5, 4))}
    ours = stats.aggregate(scores, reps=2000)
    points, cis = rly.get_interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)]),
                                             reps=2000)
    for a in scores:
        # Point estimates are exact; bootstrap CIs agree up to resampling noise (rliable's resampler
        # ignores the seed it is given, so two calls never match bit for bit).
        assert ours[a]["iqm"] == points[a][0] and ours[a]["mean"] == points[a][1]
        assert abs(ours[a]["iqm_low"] - cis[a][0][0]) < 1.0 and abs(ours[a]["iqm_high"] - cis[a][1][0]) < 1.0
        assert ours[a]["iqm"] == pytest.approx(trim_mean(scores[a].ravel(), 0.25))
        assert ours[a]["iqm_low"] < ours[a]["iqm"] < ours[a]["iqm_high"]
    poi = stats.probability_of_improvement(scores, reps=500)
    assert list(poi) == ["a,b"] and poi["a,b"]["p"] > 0.8
    assert stats.probability_of_improvement(scores, reps=200, against="b")["b,a"]["p"] == pytest.approx(1 - poi["a,b"]["p"])


def test_the_performance_profiles_plot_is_the_same_file_for_the_same_scores(tmp_path):
    """Its intervals are a bootstrap: seeded, as the aggregates' are, so a re-report rewrites the same bytes."""
    import numpy as np

    from d4rl_lite.benchmark import stats

    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(60, 10, size=(5, 4)), "b": rng.normal(40, 10, size=(5, 4))}
    first = stats.plot_performance_profiles(scores, tmp_path / "one.png").read_bytes()
    np.random.seed(123)  # whatever the global state was before
    assert stats.plot_performance_profiles(scores, tmp_path / "two.png").read_bytes() == first


def test_score_matrices_from_records():
    from d4rl_lite.benchmark import stats

    def rec(algo, ds, seed, score):
        return RunResult.finished({"algorithm": algo, "dataset": ds, "train": {"seed": seed},
                                   "final": {"eval/normalized_score": score}})

    records = [rec("x", "d1", 0, 1.0), rec("x", "d1", 1, 2.0), rec("x", "d2", 0, 3.0), rec("x", "d2", 1, 4.0),
               rec("y", "d1", 0, 5.0), rec("y", "d1", 1, 6.0)]
    scores, datasets = stats.score_matrices(records)
    assert datasets == ["d1"] and scores["x"].tolist() == [[1.0], [2.0]] and scores["y"].tolist() == [[5.0], [6.0]]


def test_an_algorithm_run_on_some_datasets_only_stays_out_of_averages_and_aggregates():
    from d4rl_lite.benchmark import stats
    from d4rl_lite.benchmark.table import partial_algorithms

    def rec(algo, ds, seed, score):
        return RunResult.finished({"algorithm": algo, "dataset": ds, "train": {"seed": seed}, "steps": 10,
                                   "final": {"eval/normalized_score": score}, "best": {"eval/normalized_score": score}})

    datasets = ["hopper-medium-replay-v0", "walker2d-medium-replay-v0"]
    records = [rec(a, d, s, 10.0 * i + s) for i, a in enumerate(["bc", "iql"]) for d in datasets for s in (0, 1)]
    records += [rec("cql", datasets[0], s, 50.0) for s in (0, 1)]
    planned = [r.spec for r in records]
    assert partial_algorithms(planned) == {"cql"}
    rows = score_table(records, planned=planned)
    average = {r["algorithm"]: r for r in rows if is_summary(r)}
    assert set(average) == {"bc", "iql"} and "2 datasets; without cql" in average["iql"]["dataset"]
    assert average["iql"]["final_mean"] == pytest.approx(10.5)  # both datasets, not only the one cql ran on
    assert "| – |" in to_markdown(rows)
    scores, shared = stats.score_matrices(records, leave_out={"cql"})
    assert shared == datasets and set(scores) == {"bc", "iql"}
    # Without a plan (no suite), an algorithm missing somewhere narrows the average to shared datasets.
    assert all("1 dataset; 1 left out" in r["dataset"] for r in score_table(records) if is_summary(r))


def test_single_task_datasets_get_a_row_with_their_mean_over_the_five_tasks():
    def rec(algo, ds, seed, score):
        return RunResult.finished({"algorithm": algo, "dataset": ds, "train": {"seed": seed}, "steps": 10,
                                   "final": {"eval/normalized_score": score}, "best": {"eval/normalized_score": score}})

    records = [rec("iql", f"pointmaze-umaze-task{k}-stitch-v0", s, 10.0 * k + s) for k in range(1, 6) for s in (0, 1)]
    records += [rec("bc", f"pointmaze-umaze-task{k}-stitch-v0", s, 5.0) for k in range(1, 5) for s in (0, 1)]  # no task 5
    rows = {(r["dataset"], r["algorithm"]): r for r in score_table(records)}
    mean = rows[("pointmaze-umaze-stitch-v0 (mean of 5 tasks)", "iql")]
    assert mean["final_mean"] == pytest.approx(30.5) and mean["seeds"] == 2
    assert ("pointmaze-umaze-stitch-v0 (mean of 5 tasks)", "bc") not in rows  # not every task ran


def test_a_user_algorithm_joins_a_suite(tmp_path, root, monkeypatch):
    import sys

    import d4rl_lite.algorithms as registry

    monkeypatch.setattr(registry, "ALGORITHMS", dict(registry.ALGORITHMS))  # the registration stays in this test
    monkeypatch.delitem(sys.modules, "my_algo", raising=False)
    (tmp_path / "my_algo.py").write_text('''
from dataclasses import dataclass
import torch
from d4rl_lite.algorithms import register
from d4rl_lite.algorithms.base import OfflineAlgorithm
from d4rl_lite.nets import DeterministicActor

@dataclass
class MyConfig:
    hidden: tuple = (16, 16)
    lr: float = 1e-3
    batch_size: int = 32

@register("my_bc")
class MyBC(OfflineAlgorithm):
    Config = MyConfig

    def setup(self):
        self.actor = DeterministicActor(self.obs_dim, self.act_dim, self.config.hidden).to(self.device)
        self.opt = torch.optim.Adam(self.actor.parameters(), lr=self.config.lr)

    def update(self, batch):
        loss = ((self.actor(batch["observations"]) - batch["actions"]) ** 2).mean()
        self.opt.zero_grad(); loss.backward(); self.opt.step()
        return {"train/actor_loss": loss.detach()}

    def policy_action(self, obs):
        return self.actor(obs)
''')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # for the spawned workers
    suite = tiny_suite(tmp_path)
    spec = {**suite.__dict__, "algorithms": ["my_bc"], "seeds": [0], "imports": ["my_algo"], "settings": {}}
    (tmp_path / "mine.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="imports my_algo.*allow_imports=True"):  # code runs only when asked
        run_suite(Suite.load(tmp_path / "mine.json"), tmp_path / "res", workers=1, root=root, log=lambda _: None)
    counts = run_suite(Suite.load(tmp_path / "mine.json"), tmp_path / "res", workers=1, root=root, log=lambda _: None,
                       allow_imports=True)
    assert counts == {"done": 1, "skipped": 0, "failed": 0}
    assert read_results(tmp_path / "res")[0].spec.algorithm == "my_bc"


def test_the_plan_projects_the_wall_time_of_a_measured_run(tmp_path, capsys):
    # The tiny suite run on the local pool against what --plan projects for it on the same machine:
    # within a factor of 2 either way. (The smoke suite's own run takes minutes; its plan is checked
    # against a run by hand, see docs/results/speed.md.) One worker, so that the run, like the plan's
    # calibration, is one busy process: with two, the run competed with the other test worker for
    # this machine's two cores (measured 10 s against 4.9 projected) while the calibration did not.
    import re

    from d4rl_lite.benchmark.plan import plan_suite

    suite, lines = tiny_suite(tmp_path), []
    assert run_suite(suite, tmp_path / "local", workers=1, root=tmp_path / "root", log=lines.append)["done"] == 4
    measured = next(float(m[1]) for line in lines if (m := re.search(r"runs finished, \d+ failed, in (\d+) s", line)))
    costs, projected = plan_suite(suite, workers=1, population=True, device="cpu")
    assert [c.seeds for c in costs] == [[0, 1], [0, 1]] and sum(c.updates for c in costs) == 4 * suite.steps
    print(f"tiny suite: projected {projected:.1f} s, measured {measured:.0f} s")
    assert measured / 2 <= projected <= measured * 2, (projected, measured)


def test_learning_curves_keep_one_colour_per_algorithm_across_panels():
    # cql on one dataset only (as lite's only_on): the other algorithms keep their colours in both
    # panels, and each panel's legend names what it shows, with its seed count.
    from d4rl_lite.benchmark.curves import learning_curves_figure
    from d4rl_lite.benchmark.results import NORMALIZED
    from d4rl_lite.plotting import pyplot

    def run(algo, dataset, seed):
        curve = [{"step": s, NORMALIZED: float(s * (seed + 1))} for s in (10, 20)]
        return RunResult.finished({"algorithm": algo, "dataset": dataset, "train": {"seed": seed}, "curve": curve,
                                   "final": curve[-1]})

    records = [run(a, d, s) for d in ("hopper-medium-replay-v0", "walker2d-medium-replay-v0")
               for a in ("bc", "iql") for s in (0, 1)] + [run("cql", "hopper-medium-replay-v0", s) for s in (0, 1)]
    fig = learning_curves_figure(records)
    colours = [{line.get_label().split(" (")[0]: line.get_color() for line in ax.get_lines()} for ax in fig.axes]
    assert sorted(colours[0]) == ["bc", "cql", "iql"] and sorted(colours[1]) == ["bc", "iql"]
    assert all(colours[1][a] == colours[0][a] for a in ("bc", "iql")) and len(set(colours[0].values())) == 3
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert legends == [["bc (2 seeds)", "cql (2 seeds)", "iql (2 seeds)"], ["bc (2 seeds)", "iql (2 seeds)"]]
    assert "band = lowest to highest seed" in fig._suptitle.get_text()
    pyplot().close(fig)


def test_a_suites_hidden_sets_every_network_and_a_misspelt_all_key_is_refused(tmp_path):
    # "hidden" in a suite's "all" is every network's layers, BEAR's VAE included (BEAR's own old
    # name "hidden", which --set still reads, meant its actor and critics only).
    import dataclasses

    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import make_config

    smoke = Suite.load("smoke")
    bear = make_config(get_algorithm("bear").Config, smoke.algo_settings("bear"))
    assert (bear.actor_hidden, bear.critic_hidden, bear.vae_hidden) == ((64, 64),) * 3
    by_set = make_config(get_algorithm("bear").Config, {"hidden": [32, 32]})
    default_vae = next(f.default for f in dataclasses.fields(by_set) if f.name == "vae_hidden")
    assert by_set.actor_hidden == (32, 32) and by_set.vae_hidden == default_vae != (32, 32)

    spec = {**smoke.__dict__, "settings": {"all": {"hidden": [64, 64], "batchsize": 64}}}
    (tmp_path / "typo.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="settings.all has 'batchsize', which no algorithm has"):
        Suite.load(tmp_path / "typo.json")


def test_progress_shows_an_evaluation_that_ends_after_a_quiet_line_at_its_step(tmp_path):
    """A population's evaluation takes long enough for a quiet line at its step to come first; its
    score is still shown, once every member has logged it (a member's row alone is not the mean)."""
    import json

    from d4rl_lite.benchmark.progress import JobProgress

    runs = [tmp_path / "m0", tmp_path / "m1"]
    for run in runs:
        run.mkdir()

    def log(run, row):
        with open(run / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    progress = JobProgress("job", runs, 1000, quiet_s=0.0)
    for run in runs:
        log(run, {"step": 100, "time/updates_per_s": 5.0})
    assert progress.lines() == ["  job: 100/1,000 updates, 5 upd/s"]
    log(runs[0], {"step": 100, "eval/return_mean": 10.0, "eval/normalized_score": 50.0})
    assert progress.lines() == []
    log(runs[1], {"step": 100, "eval/return_mean": 20.0, "eval/normalized_score": 70.0})
    assert progress.lines() == ["  job: 100/1,000 updates, 5 upd/s, score 60.0 at 100"]
    for run in runs:
        log(run, {"step": 150, "time/updates_per_s": 6.0})
    assert progress.lines() == ["  job: 150/1,000 updates, 6 upd/s, score 60.0 at 100"]
