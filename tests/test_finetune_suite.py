"""Fine-tuning in a suite: the plan's checks, a real tiny bench that trains offline then online, the
report's fine-tuning table, and the ``finetune`` validity check on results whose verdict is known."""

import json

import pytest

from d4rl_lite.benchmark import validity
from d4rl_lite.benchmark.finetune_suite import FinetunePlan, finetune_run_id, improvement
from d4rl_lite.benchmark.suites import Suite
from d4rl_lite.errors import UserInputError

DATASET = "pointmaze-umaze-dense-random-v0"


def suite_file(tmp_path, **finetune):
    spec = {"name": "tiny_ft", "algorithms": ["bc", "awac"], "seeds": [0, 1], "datasets": {DATASET: {"size": 2000}},
            "steps": 40, "eval_every": 20, "eval_episodes": 2, "log_every": 10, "checkpoint_every": 20,
            "settings": {"all": {"hidden": [32, 32], "batch_size": 64}},
            "finetune": {"env_steps": 60, "eval_every": 30, "algorithms": ["awac"], **finetune}}
    path = tmp_path / "tiny_ft.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("block, message", [({"env_steps": 0}, "env_steps must be a whole number >= 1"),
                                            ({"eval_every": 5}, "needs env_steps"),
                                            ({"env_steps": 10, "algorithms": ["iql"]}, "algorithms must be a non-empty list"),
                                            ({"env_steps": 10, "sampling": "half"}, "sampling must be one of"),
                                            ({"env_steps": 10, "online_fraction": 2}, "online fraction must be between"),
                                            ({"env_steps": 10, "budget": 3}, "unknown key(s) 'budget'"),
                                            ({"env_steps": 10**20}, "env_steps must be a whole number >= 1 (at most")])
def test_a_bad_finetune_block_is_one_line(block, message):
    with pytest.raises(UserInputError, match="suite 'x': finetune") as e:
        FinetunePlan.from_suite(block, "x", ["bc", "awac"])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_suite_whose_online_buffer_cannot_fit_is_refused_when_checked(tmp_path):
    with pytest.raises(UserInputError, match="GiB of online transitions in memory") as e:
        Suite.load(suite_file(tmp_path, env_steps=10**12))  # what `bench --plan` and `bench` load first
    assert "suite 'tiny_ft': awac on " in str(e.value) and "\n" not in str(e.value)
    assert Suite.load(suite_file(tmp_path)).finetune["env_steps"] == 60


def test_a_suite_trains_offline_then_fine_tunes_and_reports_both(tmp_path, capsys):
    from d4rl_lite.benchmark.report import print_report
    from d4rl_lite.benchmark.results import collect_results
    from d4rl_lite.benchmark.runner import run_suite
    from d4rl_lite.files import read_record

    suite, results, root = Suite.load(suite_file(tmp_path)), tmp_path / "res", tmp_path / "root"
    lines: list[str] = []
    assert run_suite(suite, results, workers=1, root=root, log=lines.append)["done"] == 4
    # the online phase reports its evaluations over env steps, as the offline one over updates
    assert any(line.startswith(f"  awac__{DATASET}__seeds0,1__finetune: 30/60 env steps") for line in lines), lines
    for seed in (0, 1):  # awac's runs went on online, bc's did not (the block names awac only)
        tuned = read_record(results / finetune_run_id("awac", DATASET, seed) / "result.json", "result")
        parent = read_record(results / f"awac__{DATASET}__seed{seed}" / "result.json", "result")
        assert tuned["steps"] == 60 and tuned["finetune"]["offline_final"] == parent["final"]
        assert tuned["finetune"]["parent"].endswith(f"awac__{DATASET}__seed{seed}")
    assert not (results / finetune_run_id("bc", DATASET, 0)).exists()
    found = collect_results(results)
    assert found.complete and len(found.finished) == 4 and len(found.finetuned) == 2
    assert run_suite(suite, results, workers=1, root=root, log=lambda _: None) == {"done": 0, "skipped": 4, "failed": 0}
    capsys.readouterr()
    assert print_report(results) is True
    out = capsys.readouterr().out
    assert "| dataset | algorithm | offline | after fine-tuning | improvement | seeds |" in out
    assert f"| {DATASET} | awac |" in out and "60 env steps" in out and (results / "finetune.md").is_file()
    # A fine-tuning run that is gone is missing, by its own name; the offline table is unchanged.
    import shutil

    shutil.rmtree(results / finetune_run_id("awac", DATASET, 1))
    assert [r.run_id for r in collect_results(results).missing] == [finetune_run_id("awac", DATASET, 1)]
    assert print_report(results) is False
    assert "INCOMPLETE TABLE: 1 run(s) missing (awac__pointmaze-umaze-dense-random-v0__seed1__finetune)" in capsys.readouterr().err


def _finished(records):
    """The runs (``RunResult``) of result records."""
    from d4rl_lite.records import RunResult

    return [RunResult.finished(r) for r in records]


def _tuned(algo, seed, before, after, dataset="hopper-medium-replay-v0"):
    return {"algorithm": algo, "dataset": dataset, "train": {"seed": seed}, "steps": 100,
            "final": {"eval/normalized_score": after}, "data": {},
            "finetune": {"offline_final": {"eval/normalized_score": before}}}


def _offline(algo, seed, score, dataset="hopper-medium-replay-v0"):
    return {"algorithm": algo, "dataset": dataset, "train": {"seed": seed}, "steps": 100,
            "final": {"eval/normalized_score": score}, "data": {}}


@pytest.mark.parametrize("iql_gain, bear_gain, verdict", [(30.0, 2.0, validity.REPRODUCED),
                                                         (5.0, 5.0, validity.NOT_REPRODUCED),
                                                         (-10.0, 3.0, validity.NOT_REPRODUCED)])
def test_the_finetune_check_compares_improvements_seed_by_seed(iql_gain, bear_gain, verdict, tmp_path):
    spec = validity.load_patterns()["finetune"]
    runs = []
    for s in range(3):  # offline scores differ per seed; each seed is compared with its own parent
        runs += [_tuned("iql", s, 40.0 + 10 * s, 40.0 + 10 * s + iql_gain + (s - 1)),
                 _tuned("bear", s, 60.0 - 5 * s, 60.0 - 5 * s + bear_gain + (s - 1))]
        runs += [_offline("iql", s, 40.0 + 10 * s), _offline("bear", s, 60.0 - 5 * s)]  # not what it reads
    v = validity.evaluate_pattern("finetune", spec, _finished(runs), tmp_path)
    assert v["verdict"] == verdict and v["effect"] == pytest.approx(iql_gain - bear_gain)
    assert v["cells"]["iql"]["hopper-medium-replay-v0"] == pytest.approx(iql_gain)
    assert improvement("eval/normalized_score", *_finished([_offline("iql", 0, 40.0)])) is None
    # The offline checks never count a fine-tuning run as a seed of its algorithm.
    replay = validity.evaluate_pattern("replay", validity.load_patterns()["replay"],
                                       _finished(runs + [_offline("bc", s, 10.0) for s in range(3)]), tmp_path)
    assert replay["seeds"]["iql"]["hopper-medium-replay-v0"] == 3  # its offline runs only
    assert replay["cells"]["iql"]["hopper-medium-replay-v0"] == pytest.approx(50.0)


def test_the_finetune_check_runs_unnamed_only_where_runs_were_fine_tuned(tmp_path):
    offline = [_offline(a, s, 50.0) for a in ("iql", "bear", "bc") for s in range(3)]
    assert "finetune" not in [v["id"] for v in validity.check_validity(tmp_path, _finished(offline))]
    tuned = offline + [_tuned(a, s, 50.0, 60.0) for a in ("iql", "bear") for s in range(3)]
    assert "finetune" in [v["id"] for v in validity.check_validity(tmp_path, _finished(tuned))]


def test_improvements_of_runs_fine_tuned_differently_are_not_compared(tmp_path):
    spec = validity.load_patterns()["finetune"]
    runs = [_tuned("iql", s, 40.0, 70.0) for s in range(3)]
    longer = [{**_tuned("bear", s, 40.0, 42.0), "steps": 5000} for s in range(3)]  # another online budget
    v = validity.evaluate_pattern("finetune", spec, _finished(runs + longer), tmp_path)
    assert v["verdict"] == validity.NOT_ENOUGH and "fine-tuned differently (100 env steps" in v["reason"]
    alike = [_tuned("bear", s, 40.0, 42.0) for s in range(3)]
    assert validity.evaluate_pattern("finetune", spec, _finished(runs + alike), tmp_path)["verdict"] == validity.REPRODUCED


def test_the_fine_tuning_table_keeps_budgets_and_sweep_members_apart():
    from d4rl_lite.benchmark.finetune_report import finetune_table

    runs = [_tuned("iql", s, 40.0, 70.0) for s in range(2)] + [{**_tuned("iql", s, 40.0, 50.0), "steps": 5000}
                                                                for s in range(2)]
    runs += [{**_tuned("iql", s, 40.0, 45.0), "sweep": {"beta": 10.0}} for s in range(2)]
    table = finetune_table(_finished(runs))
    assert "| iql (100 env steps) | 40.0 ± 0.0 | 70.0 ± 0.0 | +30.0 ± 0.0 | 2 |" in table
    assert "| iql (5,000 env steps) | 40.0 ± 0.0 | 50.0 ± 0.0 | +10.0 ± 0.0 | 2 |" in table
    assert "| iql[beta=10.0] (100 env steps) |" in table


def test_a_suite_does_not_retry_a_run_that_diverged_online_and_refuses_one_tuned_otherwise(tmp_path):
    from d4rl_lite.benchmark.finetune_suite import is_finetuned, plan_of
    from d4rl_lite.benchmark.results import collect_results
    from d4rl_lite.benchmark.runner import run_suite
    from d4rl_lite.files import read_record, write_record

    suite, results, root = Suite.load(suite_file(tmp_path)), tmp_path / "res", tmp_path / "root"
    lost = results / finetune_run_id("awac", DATASET, 1)
    lost.mkdir(parents=True)
    write_record(lost / "diverged.json", {"algorithm": "awac", "dataset": DATASET, "diverged": "Q beyond the bound",
                                          "finetune": {}, "train": {"seed": 1}})
    assert run_suite(suite, results, workers=1, root=root, log=lambda _: None)["done"] == 4
    assert (results / finetune_run_id("awac", DATASET, 0) / "result.json").is_file()
    assert not (lost / "result.json").exists() and is_finetuned(results, plan_of(suite), "awac", DATASET, 1)
    found = collect_results(results)
    assert [r.run_id for r in found.refused] == [lost.name] and "Q beyond the bound" in found.refused[0].reason
    # A suite asking for another sampling rule refuses the run tuned by the first (and would train it again).
    other = Suite.load(suite_file(tmp_path, sampling="online_fraction"))
    assert not is_finetuned(results, plan_of(other), "awac", DATASET, 0)
    write_record(results / "suite.json", other.__dict__)
    refused = {r.run_id: r.reason for r in collect_results(results).refused}
    assert "fine-tuned with sampling 'uniform'" in refused[finetune_run_id("awac", DATASET, 0)]
    assert read_record(results / finetune_run_id("awac", DATASET, 0) / "result.json", "result")["steps"] == 60
