"""The data-collection checks (full_replay, diversity) on synthetic results whose verdict is known,
and the online agent's column in the table."""

import pytest

from d4rl_lite.benchmark import validity
from d4rl_lite.benchmark.data_checks import subsample_pairs
from d4rl_lite.benchmark.table import AGENT, score_table
from d4rl_lite.benchmark.table_formats import to_markdown
from d4rl_lite.records import RunResult

FULL = {"hopper": "hopper-full-replay-v0", "walker2d": "walker2d-full-replay-v0"}


def record(algo, dataset, seed, score, agent=None):
    data = {"normalized_return": 13.0, "mc_return": 50.0, **({"online_agent": agent} if agent is not None else {})}
    return RunResult.finished({"algorithm": algo, "dataset": dataset, "train": {"seed": seed}, "steps": 100,
                               "final": {"step": 100, "eval/normalized_score": score},
                               "best": {"eval/normalized_score": score}, "data": data})


def grid(scores, dataset, seeds=3, agent=None):
    """Records of ``scores`` = {algo: mean}, seeds spread by -1, 0, +1 around the mean."""
    return [record(a, dataset, s, m + (s - 1), agent) for a, m in scores.items() for s in range(seeds)]


@pytest.mark.parametrize("iql, bc, verdict", [(98.0, 40.0, validity.REPRODUCED),  # 5 below the agent, far above BC
                                              (60.0, 40.0, validity.NOT_REPRODUCED),  # 43 below the agent
                                              (110.0, 110.0, validity.NOT_REPRODUCED)])  # above the agent, level with BC
def test_full_replay_compares_the_best_offline_agent_with_the_online_agent_and_bc(iql, bc, verdict, tmp_path):
    spec = validity.load_patterns()["full_replay"]
    runs = grid({"bc": bc, "iql": iql, "td3_bc": 30.0}, FULL["hopper"], agent=103.0)
    runs += grid({"bc": bc, "iql": iql, "td3_bc": 30.0}, FULL["walker2d"], agent=103.0)
    v = validity.evaluate_pattern("full_replay", spec, runs, tmp_path)
    assert v["verdict"] == verdict
    assert v["effect"] == pytest.approx(iql - 103.0) and v["over_baseline"] == pytest.approx(iql - bc)
    assert v["online_agent"] == {FULL["hopper"]: 103.0, FULL["walker2d"]: 103.0}


def test_full_replay_without_the_agent_s_score_or_seeds_is_not_enough(tmp_path):
    spec = validity.load_patterns()["full_replay"]
    old = grid({"bc": 40.0, "iql": 98.0}, FULL["hopper"])  # runs that predate the online agent's record
    v = validity.evaluate_pattern("full_replay", spec, old, tmp_path)
    assert v["verdict"] == validity.NOT_ENOUGH and "no online agent's score" in v["reason"]
    few = grid({"bc": 40.0, "iql": 98.0}, FULL["hopper"], seeds=2, agent=103.0)
    assert validity.evaluate_pattern("full_replay", spec, few, tmp_path)["verdict"] == validity.NOT_ENOUGH


def test_subsamples_pair_by_the_dataset_they_were_drawn_from():
    names = ["walker2d-full-replay-first10pct-v0", "hopper-full-replay-random10pct-v0", "hopper-full-replay-first10pct-v0",
             "walker2d-full-replay-random10pct-v0", "hopper-full-replay-v0", "walker2d-full-replay-last10pct-v0"]
    assert subsample_pairs(names, "random10pct", "first10pct") == [
        ("hopper-full-replay-random10pct-v0", "hopper-full-replay-first10pct-v0"),
        ("walker2d-full-replay-random10pct-v0", "walker2d-full-replay-first10pct-v0")]
    assert subsample_pairs(names, "random10pct", "last10pct") == [  # hopper has no last10pct
        ("walker2d-full-replay-random10pct-v0", "walker2d-full-replay-last10pct-v0")]
    assert subsample_pairs(names, "first10pct", "last20pct") == []


@pytest.mark.parametrize("random_minus_first, verdict", [(30.0, validity.REPRODUCED), (-10.0, validity.NOT_REPRODUCED),
                                                         (0.0, validity.NOT_REPRODUCED)])
def test_diversity_is_random_minus_first_for_the_same_algorithm(random_minus_first, verdict, tmp_path):
    spec = validity.load_patterns()["diversity"]
    runs = []
    for task in ("hopper", "walker2d"):
        first = {"bc": 10.0, "td3_bc": 20.0, "iql": 30.0}
        runs += grid(first, f"{task}-full-replay-first10pct-v0")
        runs += grid({a: s + random_minus_first for a, s in first.items()}, f"{task}-full-replay-random10pct-v0")
    v = validity.evaluate_pattern("diversity", spec, runs, tmp_path)
    assert v["verdict"] == verdict and v["effect"] == pytest.approx(random_minus_first)
    assert v["per_algorithm"] == pytest.approx({"bc": random_minus_first, "td3_bc": random_minus_first,
                                                "iql": random_minus_first})


def test_diversity_leaves_out_an_algorithm_short_of_seeds_and_says_so(tmp_path):
    spec = validity.load_patterns()["diversity"]
    runs = grid({"bc": 10.0, "iql": 30.0}, "hopper-full-replay-first10pct-v0")
    runs += grid({"bc": 40.0}, "hopper-full-replay-random10pct-v0") + grid({"iql": 60.0}, "hopper-full-replay-random10pct-v0", 2)
    v = validity.evaluate_pattern("diversity", spec, runs, tmp_path)
    assert v["effect"] == pytest.approx(30.0) and list(v["per_algorithm"]) == ["bc"]
    assert "left out (fewer than 3 seeds): td3_bc, iql" in v["reason"]
    only_first = grid({"bc": 10.0}, "hopper-full-replay-first10pct-v0")
    assert validity.evaluate_pattern("diversity", spec, only_first, tmp_path)["verdict"] == validity.NOT_ENOUGH


def test_the_checks_run_unnamed_where_their_datasets_and_algorithms_are(tmp_path):
    runs = grid({"bc": 40.0, "iql": 98.0}, FULL["hopper"], agent=103.0)
    runs += grid({"bc": 10.0}, "hopper-full-replay-first10pct-v0") + grid({"bc": 40.0}, "hopper-full-replay-random10pct-v0")
    assert [v["id"] for v in validity.check_validity(tmp_path, runs)] == ["full_replay", "diversity"]


def test_the_table_shows_the_online_agent_beside_the_full_replay():
    runs = grid({"bc": 40.0, "iql": 98.0}, FULL["hopper"], agent=103.7) + grid({"bc": 30.0}, "hopper-medium-v0")
    rows = score_table(runs)
    assert [(r["dataset"], r["final_mean"]) for r in rows if r["algorithm"] == AGENT] == [(FULL["hopper"], 103.7)]
    table = to_markdown(rows)
    assert table.splitlines()[0] == "| dataset | data | online agent | bc | iql |"
    assert "| hopper-full-replay-v0 | 13.0 | 103.7 |" in table and "| hopper-medium-v0 | 13.0 | – |" in table
