"""Fitted Q Evaluation: a known value recovered, policies ranked, stacks equal to solo fits, and the
``ope`` command on real (tiny) runs, its file, the report's FQE column and its refusals."""

import json
import math

import numpy as np
import pytest

from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.training.fqe import FQEConfig, fitted_q_evaluation

LENGTH, EPISODES, GAMMA = 10, 100, 0.9
# Small and fast, and enough Bellman iterations (steps / target_update_every = 40 > LENGTH) to reach
# the end of a 10-step episode.
FAST = FQEConfig(hidden=(64, 64), lr=1e-3, batch_size=128, steps=2000, target_update_every=50, gamma=GAMMA)


def chain_dataset(reward=lambda t, a: a[:, 0]) -> OfflineDataset:
    """Episodes of LENGTH steps ending in a terminal; the observation is (t / LENGTH, 1), actions are
    uniform in [-1, 1] and rewards ``reward(t, a)``: every policy's Q is known in closed form."""
    rng = np.random.default_rng(0)
    t = np.tile(np.arange(LENGTH), EPISODES)
    obs = np.stack([t / LENGTH, np.ones(len(t))], 1).astype(np.float32)
    next_obs = np.stack([(t + 1) / LENGTH, np.ones(len(t))], 1).astype(np.float32)
    actions = rng.uniform(-1, 1, (len(t), 1)).astype(np.float32)
    terminals = t == LENGTH - 1
    return OfflineDataset(obs, actions, reward(t, actions).astype(np.float32), next_obs, terminals,
                          np.zeros_like(terminals), np.full(EPISODES, LENGTH))


def linear_policy(c: float, slope: float):
    """pi(s) = c + slope * t / LENGTH: an action that changes along the episode."""
    return lambda obs: (c + slope * obs[:, :1]).astype(np.float32)


def test_fqe_recovers_the_discounted_value_of_a_known_case():
    """Reward = the action taken, so J(pi) = sum_t gamma^t pi(s_t) exactly; the policies' actions
    differ from the data's (uniform) ones, so this is off-policy evaluation."""
    policies = [(0.5, -0.6), (-0.3, 0.4)]
    estimates = fitted_q_evaluation(chain_dataset(), [linear_policy(*p) for p in policies], FAST)
    for (c, slope), estimate in zip(policies, estimates):
        true = sum(GAMMA**t * (c + slope * t / LENGTH) for t in range(LENGTH))
        assert estimate.value == pytest.approx(true, abs=0.05), (c, slope, true)  # |true| ~ 1.5-3
        assert estimate.gamma == GAMMA and estimate.start_states == EPISODES and estimate.td_loss < 1e-2


def test_fqe_ranks_a_good_policy_above_a_bad_one():
    """Reward -(a - target(t))^2: the policy that acts the target is worth 0, the one that acts its
    opposite is worth much less; a third in between ranks in between."""
    target = lambda t: 0.8 - 1.6 * t / LENGTH
    data = chain_dataset(lambda t, a: -(a[:, 0] - target(t)) ** 2)
    good, middle, bad = linear_policy(0.8, -1.6), linear_policy(0.0, 0.0), linear_policy(-0.8, 1.6)
    values = [e.value for e in fitted_q_evaluation(data, [bad, good, middle], FAST)]
    assert values[1] > values[2] > values[0]
    assert values[1] == pytest.approx(0.0, abs=0.1)


def test_a_stacked_fit_equals_each_policys_own_fit_and_the_seed_decides():
    data = chain_dataset()
    few = FQEConfig(**{**FAST.__dict__, "steps": 300})
    policies = [linear_policy(0.5, 0.0), linear_policy(-0.2, 0.3), linear_policy(0.9, -1.0)]
    stacked = [e.value for e in fitted_q_evaluation(data, policies, few)]
    alone = [fitted_q_evaluation(data, [p], few)[0].value for p in policies]
    assert stacked == pytest.approx(alone, abs=1e-5)
    assert [e.value for e in fitted_q_evaluation(data, policies, few)] == stacked  # same seed, same estimates
    other = [e.value for e in fitted_q_evaluation(data, policies, FQEConfig(**{**few.__dict__, "seed": 1}))]
    assert other != stacked


def test_rank_correlations_and_their_fisher_z_intervals_by_hand():
    from d4rl_lite.benchmark.ope_file import rank_correlation

    estimates, scores = [1, 2, 3, 4, 5, 6], [10, 30, 20, 40, 50, 60]  # one adjacent swap
    rho = 1 - 6 * 2 / (6 * 35)  # Spearman: 1 - 6 sum d^2 / (n (n^2 - 1))
    tau = (14 - 1) / 15  # Kendall: (concordant - discordant) / pairs
    for kind, value, var in (("spearman", rho, 1.06 / 3), ("kendall", tau, 0.437 / 2)):
        got = rank_correlation(kind, estimates, scores)
        z, half = math.atanh(value), 1.959963984540054 * math.sqrt(var)
        assert got["statistic"] == pytest.approx(value) and got["runs"] == 6
        assert (got["low"], got["high"]) == pytest.approx((math.tanh(z - half), math.tanh(z + half)))
    assert rank_correlation("spearman", [1, 2], [1, 2]) is None  # too few runs
    assert rank_correlation("kendall", [1, 2, 3, 4], [1, 3, 2, 4])["low"] is None  # n = 4: no Kendall interval


# -- the command on real runs -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Four real tiny runs on a real small hopper dataset (bc and td3_bc, two seeds each): (results, root)."""
    from d4rl_lite.datasets.builders import build_dataset
    from d4rl_lite.datasets.d4rl_compat import load_dataset
    from d4rl_lite.records import RunSpec
    from d4rl_lite.training.offline import TrainConfig, train_population

    base = tmp_path_factory.mktemp("ope")
    root, results = base / "root", base / "results"
    build_dataset("hopper-random-v0", size=600, seed=0, root=root, num_envs=4)
    dataset = load_dataset("hopper-random-v0", root=root)
    tc = TrainConfig(steps=40, eval_every=20, eval_episodes=2, log_every=10, checkpoint_every=20, device="cpu")
    for algo in ("bc", "td3_bc"):
        runs = [results / RunSpec.of(algo, "hopper-random-v0", s).run_id for s in (0, 1)]
        train_population(algo, dataset, tc, {"hidden": (16, 16), "batch_size": 32}, [0, 1], runs)
    return results, root


def test_ope_prints_estimates_writes_them_and_report_shows_the_column(tiny_runs, tmp_path, capsys):
    import csv
    import shutil

    from d4rl_lite.benchmark.ope_file import read_ope
    from d4rl_lite.cli import main
    from d4rl_lite.files import read_record, write_record

    results = tmp_path / "results"
    shutil.copytree(tiny_runs[0], results)
    args = ["--steps", "100", "--set", "hidden=32,32", "--root", str(tiny_runs[1]), "--quiet"]
    assert main(["ope", str(results), *args]) == 0
    out = capsys.readouterr().out
    ope = read_ope(results)  # verified and typed
    assert len(ope["runs"]) == 4 and ope["fqe"]["steps"] == 100 and ope["fqe"]["hidden"] == [32, 32]
    for run in ope["runs"]:
        assert run["run_id"] in out and math.isfinite(run["fqe_value"]) and run["gamma"] == 0.99
        result = read_record(results / run["run_id"] / "result.json", "result")
        assert run["score"] == result["final"]["eval/normalized_score"] and run["result_checksum"] == result["checksum"]
    (block,) = ope["datasets"]
    assert block["runs"] == 4 and block["spearman"]["runs"] == 4 and block["spearman"]["low"] is not None
    assert "rank correlation, FQE vs final score: Spearman" in out and "Kendall" in out
    again = tmp_path / "again"
    shutil.copytree(tiny_runs[0], again)
    assert main(["ope", str(again), *args]) == 0  # reproducible: the same seed gives the same estimates
    assert [r["fqe_value"] for r in read_ope(again)["runs"]] == [r["fqe_value"] for r in ope["runs"]]

    assert main(["report", str(results)]) == 0
    out = capsys.readouterr().out
    assert "| dataset | algorithm | final | FQE |" in out and "- hopper-random-v0: Spearman" in out
    with open(results / "table.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["dataset"] == "hopper-random-v0" and r["algorithm"] != "data"]
    assert len(rows) == 2 and all(r["fqe_mean"] for r in rows)

    # Estimates of results that are no longer there (a run trained again) are not shown.
    record = json.loads((results / "ope.json").read_text())
    for run in record["runs"]:
        run["result_checksum"] = "sha256:other"
    write_record(results / "ope.json", record)
    main(["report", str(results)])
    out = capsys.readouterr().out
    assert "| dataset | algorithm | final | FQE |" not in out and "are of other results" in out
    (results / "ope.json").write_text("{not json")  # damaged: the report goes on without the column
    assert main(["report", str(results)]) == 0
    assert "(FQE column skipped:" in capsys.readouterr().out

    # One run directory: its estimate alone (no correlation from one run), written beside it.
    run_dir = results / "bc__hopper-random-v0__seed0"
    assert main(["ope", str(run_dir), *args]) == 0
    assert "Spearman n/a" in capsys.readouterr().out and len(read_ope(run_dir)["runs"]) == 1


def test_ope_keeps_the_estimates_of_unchanged_results_and_redoes_the_others(tiny_runs, tmp_path, capsys, monkeypatch):
    import shutil

    from d4rl_lite.benchmark import ope as ope_module
    from d4rl_lite.benchmark.ope_file import read_ope
    from d4rl_lite.cli import main

    results = tmp_path / "results"
    shutil.copytree(tiny_runs[0], results)
    args = ["--steps", "100", "--set", "hidden=32,32", "--root", str(tiny_runs[1]), "--quiet"]
    assert main(["ope", str(results), *args]) == 0
    first = {r["run_id"]: r for r in read_ope(results)["runs"]}
    fitted = []
    real = ope_module.fitted_q_evaluation
    monkeypatch.setattr(ope_module, "fitted_q_evaluation", lambda ds, policies, *a, **k: fitted.append(len(policies))
                        or real(ds, policies, *a, **k))
    assert main(["ope", str(results), *args]) == 0  # nothing changed: nothing fitted again, the same estimates
    assert fitted == [] and "4 estimate(s) of ope.json kept" in capsys.readouterr().out
    assert {r["run_id"]: r for r in read_ope(results)["runs"]} == first
    assert main(["ope", str(results), *args[:1], "200", *args[2:]]) == 0  # other settings: every run again
    assert fitted == [4]
    assert all(r["fqe_value"] != first[r["run_id"]]["fqe_value"] for r in read_ope(results)["runs"])


def test_ope_refuses_bad_input_in_one_line(tiny_runs, tmp_path, capsys):
    import shutil

    from d4rl_lite.cli import main

    results, root = tiny_runs
    unfinished = tmp_path / "unfinished"
    shutil.copytree(results / "bc__hopper-random-v0__seed0", unfinished)
    (unfinished / "result.json").unlink()
    (tmp_path / "empty").mkdir()
    cases = {str(tmp_path / "nowhere"): "is not a directory",
             str(tmp_path / "empty"): "is neither a run directory",
             str(unfinished): "is not finished (no result.json)"}
    for path, message in cases.items():
        assert main(["ope", path, "--root", str(root), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("d4rl-lite ope: error:") and message in err, err
    assert main(["ope", str(results), "--root", str(tmp_path / "no_datasets"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dataset hopper-random-v0 is not built under" in err, err
    assert main(["ope", str(results), "--set", "gamma=1", "--root", str(root)]) == 2
    assert "the discount must be > 0 and < 1" in capsys.readouterr().err
    assert not (results / "ope.json").exists()  # nothing written by a refused command


def test_ope_reads_a_runs_dataset_only_by_its_catalogue_name(tiny_runs, tmp_path, capsys, monkeypatch):
    import shutil

    from d4rl_lite.benchmark import ope as ope_module
    from d4rl_lite.cli import main
    from d4rl_lite.datasets.catalogue import locate
    from d4rl_lite.files import read_record, write_record

    results, root = tiny_runs
    fitted = []
    monkeypatch.setattr(ope_module, "fitted_q_evaluation", lambda *a, **k: fitted.append(a) or [])
    (tmp_path / "empty").mkdir()
    # A run whose result names a real dataset by its path, outside the --root given: not read.
    single = tmp_path / "single"
    shutil.copytree(results / "bc__hopper-random-v0__seed0", single)
    real = str(locate("hopper-random-v0", root)[0])
    write_record(single / "result.json", {**read_record(single / "result.json"), "dataset": real})
    assert main(["ope", str(single), "--root", str(tmp_path / "empty"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a catalogue name" in err, err
    # In a results directory each such run is refused by name; here none is left to evaluate.
    forged = tmp_path / "forged"
    shutil.copytree(results, forged)
    for result in forged.glob("*/result.json"):
        write_record(result, {**read_record(result), "dataset": "../../etc/passwd"})
    assert main(["ope", str(forged), "--root", str(root), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5 and all("REFUSED" in line and "is not a catalogue name" in line for line in lines[:4])
    assert "no finished runs under" in lines[4] and fitted == [] and not (forged / "ope.json").exists()


def test_ope_refuses_an_ope_json_that_is_not_a_file_before_fitting(tiny_runs, tmp_path, capsys, monkeypatch):
    import shutil

    from d4rl_lite.benchmark import ope as ope_module
    from d4rl_lite.cli import main

    results = tmp_path / "results"
    shutil.copytree(tiny_runs[0], results)
    (results / "ope.json").mkdir()
    fitted = []
    monkeypatch.setattr(ope_module, "fitted_q_evaluation", lambda *a, **k: fitted.append(a) or [])
    assert main(["ope", str(results), "--root", str(tiny_runs[1]), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ope.json is a directory" in err and "move it away" in err, err
    assert fitted == [] and (results / "ope.json").is_dir()


# -- the ope_ranking validity check on estimates whose correlation is known ----------------------------
def _ope_record(estimates_by_dataset, checksums):
    runs = []
    for dataset, pairs in estimates_by_dataset.items():
        for i, (estimate, score) in enumerate(pairs):
            runs.append({"run_id": f"a__{dataset}__seed{i}", "dataset": dataset, "algorithm": "a", "seed": i,
                         "result_checksum": checksums[(dataset, i)], "score": score,
                         "score_metric": "eval/normalized_score", "fqe_value": estimate, "gamma": 0.99, "td_loss": 0.1})
    return {"fqe": {"steps": 100}, "runs": runs, "datasets": [], "overall": {"runs": len(runs), "spearman": None,
                                                                             "kendall": None}}


@pytest.mark.parametrize("order, verdict", [("same", "reproduced"), ("reversed", "not reproduced"),
                                            ("shuffled", "not reproduced")])
def test_ope_ranking_pools_the_within_dataset_rank_correlations(order, verdict, tmp_path):
    from d4rl_lite.benchmark import validity
    from d4rl_lite.benchmark.ope_file import write_ope

    scores = {"hopper-medium-replay-v0": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0],
              "walker2d-medium-replay-v0": [5.0, 15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 75.0]}
    rank = {"same": [0, 1, 2, 3, 4, 5, 6, 7], "reversed": [7, 6, 5, 4, 3, 2, 1, 0], "shuffled": [3, 0, 6, 1, 7, 2, 5, 4]}[order]
    # Estimates in another unit per dataset (hopper's 1000x walker2d's): only ranks within a dataset are compared.
    estimates = {d: [(1000.0 if d.startswith("hopper") else 1.0) * rank[i] for i in range(8)] for d in scores}
    checksums = {(d, i): f"sha256:{d}{i}" for d in scores for i in range(8)}
    from d4rl_lite.records import RunResult

    records = [{"algorithm": "a", "dataset": d, "train": {"seed": i}, "checksum": checksums[(d, i)], "steps": 10,
                "final": {"eval/normalized_score": s}} for d, ss in scores.items() for i, s in enumerate(ss)]
    records, retrained = ([RunResult.finished(r) for r in records],
                          [RunResult.finished({**r, "checksum": "sha256:new"}) for r in records])
    write_ope(tmp_path, _ope_record({d: list(zip(estimates[d], scores[d])) for d in scores}, checksums))
    (v,) = validity.check_validity(tmp_path, records, ["ope_ranking"])
    assert v["verdict"] == verdict
    expected = {"same": 1.0, "reversed": -1.0}.get(order)
    if expected is not None:
        assert v["effect"] == pytest.approx(expected, abs=1e-6)
    # Unnamed, the check runs where estimates exist; estimates of results trained again do not count.
    assert "ope_ranking" in [x["id"] for x in validity.check_validity(tmp_path, records)]
    assert "ope_ranking" not in [x["id"] for x in validity.check_validity(tmp_path / "none", records)]
    (stale,) = validity.check_validity(tmp_path, retrained, ["ope_ranking"])
    assert stale["verdict"] == "not enough runs" and "4 or more of its current runs" in stale["reason"]


def test_report_survives_forged_correlations_and_shows_those_of_current_runs(tiny_runs, tmp_path, capsys):
    import shutil

    from d4rl_lite.cli import main
    from d4rl_lite.files import write_record

    results = tmp_path / "results"
    shutil.copytree(tiny_runs[0], results)
    assert main(["ope", str(results), "--steps", "100", "--set", "hidden=32,32", "--root", str(tiny_runs[1]), "--quiet"]) == 0
    record = json.loads((results / "ope.json").read_text())
    record.pop("checksum", None)
    record["datasets"][0]["spearman"]["high"] = None  # a bound without its pair: was a traceback in report
    write_record(results / "ope.json", record)
    capsys.readouterr()
    assert main(["report", str(results)]) == 0
    assert "- hopper-random-v0: Spearman" in capsys.readouterr().out
    record["datasets"][0]["spearman"]["statistic"] = 1e300  # not a correlation: the file is refused, the report goes on
    write_record(results / "ope.json", record)
    assert main(["report", str(results)]) == 0
    assert "(FQE column skipped:" in capsys.readouterr().out
