"""The validity report: each check on synthetic results whose verdict is known, and the data column."""

import json

import numpy as np
import pytest

from d4rl_lite.benchmark import validity
from d4rl_lite.records import RunResult


def record(*args, **kwargs):
    """A finished run (``RunResult``) of ``record_dict``."""
    return RunResult.finished(record_dict(*args, **kwargs))


def record_dict(algo, dataset, seed, score=None, success=None, data_score=None, mc=None):
    final = {"step": 100}
    if score is not None:
        final["eval/normalized_score"] = score
    if success is not None:
        final["eval/success_rate"] = success
    return {"algorithm": algo, "dataset": dataset, "train": {"seed": seed}, "final": final, "steps": 100,
            "data": {"normalized_return": data_score, "mc_return": mc}}


def grid(scores, dataset, key="score", seeds=3, **extra):
    """Records of ``scores`` = {algo: mean}, seeds spread by +-1 around the mean."""
    return [record(a, dataset, s, **{key: m + (s - 1) * (0.01 if key == "success" else 1.0)}, **extra)
            for a, m in scores.items() for s in range(seeds)]


def test_a_clear_gap_on_replay_data_is_reproduced(tmp_path):
    spec = validity.load_patterns()["replay"]
    runs = grid({"bc": 25, "iql": 60, "cql": 40, "td3_bc": 50}, "hopper-medium-replay-v0")
    runs += grid({"bc": 20, "iql": 55, "cql": 70, "td3_bc": 30}, "walker2d-medium-replay-v0")
    v = validity.evaluate_pattern("replay", spec, runs, tmp_path)
    assert v["verdict"] == validity.REPRODUCED
    assert v["effect"] == pytest.approx(((60 - 25) + (70 - 20)) / 2)  # best of IQL/CQL/TD3+BC minus BC, per dataset
    assert v["low"] > spec["threshold"] and v["low"] <= v["effect"] <= v["high"]


def test_no_gap_on_a_stitch_maze_is_not_reproduced(tmp_path):
    spec = validity.load_patterns()["stitching"]
    runs = grid({"bc": 0.40, "iql": 0.42, "cql": 0.35}, "pointmaze-medium-stitch-v0", key="success")
    v = validity.evaluate_pattern("stitching", spec, runs, tmp_path)
    assert v["verdict"] == validity.NOT_REPRODUCED and v["effect"] == pytest.approx(2.0)  # percentage points
    assert v["high"] < spec["threshold"]


def test_too_few_seeds_give_not_enough_runs(tmp_path):
    spec = validity.load_patterns()["replay"]
    runs = grid({"bc": 25, "iql": 90}, "hopper-medium-replay-v0", seeds=2)
    v = validity.evaluate_pattern("replay", spec, runs, tmp_path)
    assert v["verdict"] == validity.NOT_ENOUGH and "fewer than 3 seeds" in v["reason"] and v["effect"] is None


def test_bc_near_its_expert_data_and_far_from_it(tmp_path):
    spec = validity.load_patterns()["expert_bc"]
    near = grid({"bc": 95}, "hopper-expert-v0", data_score=100.0)
    far = grid({"bc": 40}, "hopper-expert-v0", data_score=100.0)
    assert validity.evaluate_pattern("expert_bc", spec, near, tmp_path)["verdict"] == validity.REPRODUCED
    v = validity.evaluate_pattern("expert_bc", spec, far, tmp_path)
    assert v["verdict"] == validity.NOT_REPRODUCED and v["effect"] == pytest.approx(-60.0)
    old = grid({"bc": 95}, "hopper-expert-v0")  # runs without a recorded data score cannot be checked
    assert validity.evaluate_pattern("expert_bc", spec, old, tmp_path)["verdict"] == validity.NOT_ENOUGH


def write_log(results, algo, dataset, seed, **values):
    run = results / f"{algo}__{dataset}__seed{seed}"
    run.mkdir(parents=True)
    (run / "log.jsonl").write_text(json.dumps({"step": 100, **values}) + "\n")


def valued(algo, dataset, seed, value, actual):
    """A run whose final evaluation recorded its critic's value and its policy's discounted return."""
    r = record_dict(algo, dataset, seed, score=5.0)
    r["final"].update({"eval/predicted_value": value, "eval/discounted_return": actual})
    return RunResult.finished(r)


@pytest.mark.parametrize("sac_v, cql_v, verdict", [(300.0, 80.0, validity.REPRODUCED),  # SAC +200%, CQL -20%
                                                   (110.0, 80.0, validity.NOT_REPRODUCED),  # SAC only +10%
                                                   (300.0, 130.0, validity.NOT_REPRODUCED)])  # CQL above its return
def test_naive_sac_over_estimates_where_cql_does_not(tmp_path, sac_v, cql_v, verdict):
    spec = validity.load_patterns()["naive_offpolicy"]
    runs = [valued(algo, "hopper-medium-v0", seed, v + seed, 100.0)
            for algo, v in (("sac", sac_v), ("cql", cql_v)) for seed in range(3)]
    v = validity.evaluate_pattern("naive_offpolicy", spec, runs, tmp_path)
    assert v["verdict"] == verdict
    assert v["effect"] == pytest.approx((sac_v + 1 - 100) / 100) and v["conservative_effect"] == pytest.approx((cql_v + 1 - 100) / 100)
    # A policy that gets a negative return: the gap is scaled by its size, so over-estimation stays positive.
    negative = [valued("sac", "hopper-medium-v0", s, -50.0, -100.0) for s in range(3)]
    negative += [valued("cql", "hopper-medium-v0", s, -150.0, -100.0) for s in range(3)]
    v = validity.evaluate_pattern("naive_offpolicy", spec, negative, tmp_path)
    assert v["effect"] == pytest.approx(0.5) and v["conservative_effect"] == pytest.approx(-0.5)
    # Runs that predate these records (only the data's Monte-Carlo return): not enough runs, never a verdict.
    old = [record(a, "hopper-medium-v0", s, score=5.0, mc=100.0) for a in ("sac", "cql") for s in range(3)]
    assert validity.evaluate_pattern("naive_offpolicy", spec, old, tmp_path)["verdict"] == validity.NOT_ENOUGH


def test_a_suite_names_its_checks_and_unknown_names_are_refused(tmp_path):
    runs = grid({"bc": 25, "iql": 60}, "hopper-medium-replay-v0")
    assert [v["id"] for v in validity.check_validity(tmp_path, runs)] == ["replay"]  # what its datasets allow
    named = validity.check_validity(tmp_path, runs, ["replay", "stitching"])
    assert [v["verdict"] for v in named] == [validity.REPRODUCED, validity.NOT_ENOUGH]  # a named check is never dropped
    with pytest.raises(ValueError, match="unknown validity pattern"):
        validity.check_validity(tmp_path, runs, ["stiching"])


def test_the_data_column_is_the_mean_normalized_return_of_the_datasets_episodes(tmp_path):
    import d4rl_lite
    from d4rl_lite.benchmark.results import read_results
    from d4rl_lite.benchmark.table import DATA, score_table
    from d4rl_lite.benchmark.table_formats import to_markdown
    from d4rl_lite.datasets.builders import build_dataset
    from d4rl_lite.tasks import get_task
    from d4rl_lite.training.offline import TrainConfig, train

    build_dataset("hopper-random-v0", size=2000, seed=0, root=tmp_path / "data")
    ds = d4rl_lite.load_dataset("hopper-random-v0", root=tmp_path / "data")
    tc = TrainConfig(steps=10, device="cpu", log_every=5, eval_every=10, eval_episodes=1, checkpoint_every=5)
    train("bc", ds, tc, {"hidden": (8,)}, run_dir=tmp_path / "res" / "bc__hopper-random-v0__seed0")
    row = next(r for r in score_table(read_results(tmp_path / "res")) if r["algorithm"] == DATA)
    # By hand: the episodes that ended in a terminal state or at the horizon (the last one a size
    # budget cut is not an episode of the task's protocol), each normalized, then averaged.
    task = get_task("hopper")
    returns, ends = [], np.cumsum(ds.episode_lengths) - 1
    for episode, end in zip(ds.episodes(), ends):
        if ds.terminals[end] or len(episode.rewards) == task.horizon:
            returns.append(episode.rewards.astype(np.float64).sum())
    assert len(returns) < ds.num_episodes  # the cut episode really was left out
    assert row["final_mean"] == pytest.approx(float(np.mean(task.normalized_score(np.array(returns)))))
    assert to_markdown([row]).splitlines()[0] == f"| dataset | {DATA} |"
    # The Monte-Carlo yardstick of the overestimation check, by hand: G_t = r_t + 0.99 G_(t+1) per
    # episode; every step of a terminated episode counts, of the cut last one only the steps at least
    # 459 steps (0.99^459 <= 0.01) before the cut.
    values = []
    for episode, end in zip(ds.episodes(), ends):
        g, back = 0.0, []
        for reward in episode.rewards[::-1]:
            g = float(reward) + 0.99 * g
            back.append(g)
        back = back[::-1]
        values += back if ds.terminals[end] else back[: max(0, len(back) - 459)]
    result = read_results(tmp_path / "res")[0]
    assert result.data.mc_return == pytest.approx(np.mean(values), rel=1e-9)


def test_diverged_naive_runs_count_with_their_q_when_stopped(tmp_path):
    """Every SAC seed diverged (no result, a divergence record with its Q then): the check still has
    them, against the return of their last evaluation; a divergence record without its Q is
    reported as not counted."""
    from d4rl_lite.files import write_record

    spec = validity.load_patterns()["naive_offpolicy"]
    runs = [valued("cql", "hopper-medium-v0", s, 80.0 + s, 100.0) for s in range(3)]
    for s in range(3):
        write_log(tmp_path, "sac", "hopper-medium-v0", s, **{"eval/discounted_return": 100.0})  # before it diverged
        stopped = {**record_dict("sac", "hopper-medium-v0", s), "diverged": "training diverged: ...",
                   "at_divergence": {"train/q_mean": 5e4 + s}}
        write_record(tmp_path / f"sac__hopper-medium-v0__seed{s}" / "diverged.json", stopped)
    v = validity.evaluate_pattern("naive_offpolicy", spec, runs, tmp_path)
    assert v["verdict"] == validity.REPRODUCED and v["effect"] == pytest.approx((5e4 + 1 - 100) / 100)
    assert v["diverged_naive_runs"] == {"counted_at_divergence": 3, "not_counted": 0} and "count with their Q" in v["reason"]
    write_record(tmp_path / "sac__hopper-medium-v0__seed2" / "diverged.json",
                 {**record_dict("sac", "hopper-medium-v0", 2), "diverged": "training diverged: ..."})
    v = validity.evaluate_pattern("naive_offpolicy", spec, runs, tmp_path)
    assert v["verdict"] == validity.NOT_ENOUGH and "1 sac run(s) diverged without a record" in v["reason"]


def test_intervals_are_the_same_on_every_report_and_leave_numpys_generator_alone(tmp_path):
    """rliable resamples with NumPy's global generator: the report seeds it inside and restores it."""
    spec = validity.load_patterns()["replay"]
    runs = grid({"bc": 25, "iql": 40, "td3_bc": 33}, "hopper-medium-replay-v0")
    np.random.seed(1)
    first = validity.evaluate_pattern("replay", spec, runs, tmp_path)
    after = np.random.rand()
    np.random.seed(1)
    np.random.rand(7)  # another global state: the interval must not depend on it
    second = validity.evaluate_pattern("replay", spec, runs, tmp_path)
    assert (first["low"], first["high"]) == (second["low"], second["high"])
    np.random.seed(1)
    assert np.random.rand() == after  # the caller's stream is where it was


def test_the_antmaze_check_concerns_d4rls_ant_maze_kinds_only(tmp_path):
    spec = validity.load_patterns()["antmaze"]
    datasets = ["antmaze-umaze-diverse-v0", "antmaze-large-play-v0", "antmaze-medium-stitch-v0",
                "pointmaze-medium-stitch-v0", "hopper-medium-replay-v0"]
    assert validity.applicable(spec, datasets) == ["antmaze-umaze-diverse-v0", "antmaze-large-play-v0"]
    runs = grid({"bc": 0.45, "iql": 0.62}, "antmaze-umaze-diverse-v0", key="success")
    v = validity.evaluate_pattern("antmaze", spec, runs, tmp_path)
    assert v["verdict"] == validity.REPRODUCED and v["effect"] == pytest.approx(17.0)  # percentage points
