"""The upper floors' records and declarations: one name per run, checks chosen by declaration."""

from __future__ import annotations

import dataclasses
import math

import pytest

from d4rl_lite.algorithms.base import AlgorithmConfig
from d4rl_lite.algorithms.settings import Count, Layers, LearningRate
from d4rl_lite.records import RunSpec, population_name
from d4rl_lite.training.loop import DivergenceError, DivergenceGuard


def test_a_run_id_names_a_run_one_way_and_reads_back():
    spec = RunSpec.of("cql", "hopper-medium-v0", 3, {"cql_weight": 5.0, "alpha": 0.1})
    assert spec.run_id == "cql__hopper-medium-v0__alpha=0.1__cql_weight=5__seed3"
    assert spec.label == "alpha=0.1 cql_weight=5 seed 3"
    back = RunSpec.from_run_id(spec.run_id)
    assert back is not None and (back.algorithm, back.dataset, back.seed) == ("cql", "hopper-medium-v0", 3)
    assert dict(back.sweep) == {"alpha": "0.1", "cql_weight": "5"}  # from a name, values are text
    assert RunSpec.from_run_id("bc__hopper-random-v0__seed0") == RunSpec.of("bc", "hopper-random-v0", 0)
    for not_a_run in ("table.md", "bc__hopper", "bc__hopper__seedx", "bc__hopper__weird__seed1"):
        assert RunSpec.from_run_id(not_a_run) is None
    record = {"algorithm": "iql", "dataset": "walker2d-expert-v0", "train": {"seed": 4}}
    assert RunSpec.from_record(record).run_id == "iql__walker2d-expert-v0__seed4"
    assert population_name("bc", "d", [0, 1]) == "bc__d__seeds0,1" and population_name("bc", "d", [2]) == "bc__d__seed2"


def test_train_and_bench_name_a_run_the_same_way(tmp_path):
    from d4rl_lite.training.offline import default_run_dir

    assert default_run_dir("iql", "hopper-medium-v0", 0).name == RunSpec.of("iql", "hopper-medium-v0", 0).run_id


def test_the_value_bound_reads_declared_metrics_not_letters_in_names(tmp_path):
    guard = DivergenceGuard([tmp_path / "checkpoint.safetensors"], q_bound=100.0)
    guard.check_metrics([{"train/cql_gap": 1e6, "train/qux_loss": 1e6}], step=10)  # not value estimates: no bound
    with pytest.raises(DivergenceError, match=r"train/q_mean = 1e\+06 .* exceeds the sane bound"):
        guard.check_metrics([{"train/q_mean": 1e6}], step=10)
    own = DivergenceGuard([tmp_path / "c"], q_bound=100.0, value_metrics=("train/my_value",))
    with pytest.raises(DivergenceError):
        own.check_metrics([{"train/my_value": -1e6}], step=10)
    with pytest.raises(DivergenceError, match="nan"):
        guard.check_metrics([{"train/cql_gap": math.nan}], step=10)  # non-finite is divergence whatever the name


def test_a_per_member_setting_refuses_comparison_as_it_refuses_arithmetic():
    from d4rl_lite.algorithms.base import DiffersPerMember

    beta = DiffersPerMember("beta", [1.0, 3.0])
    for use in (lambda: beta == 3.0, lambda: beta != 3.0, lambda: 3.0 == beta, lambda: beta * 2, lambda: bool(beta)):
        with pytest.raises(TypeError, match="differs between the members"):
            use()


@dataclasses.dataclass
class Renamed(AlgorithmConfig):  # names no naming convention would recognise
    how_many: Count = 4
    step_size: LearningRate = 1e-3
    trunk: Layers = (8, 8)
    free_float: float = -2.0


def test_setting_ranges_follow_the_declaration_not_the_name():
    from d4rl_lite.algorithms.settings import declared, hidden_fields, make_config
    from d4rl_lite.errors import UserInputError

    assert set(declared(Renamed)) >= {"how_many", "step_size", "trunk", "batch_size", "gamma"}
    assert hidden_fields(Renamed) == ("trunk",)  # a suite's "hidden" reaches it
    for key, value, says in (("how_many", "0", "a count must be >= 1"), ("step_size", "0", "a learning rate must be > 0"),
                             ("trunk", "0", "layer sizes"), ("gamma", "1", "the discount must be > 0 and < 1"),
                             ("free_float", "inf", "must be a finite number")):
        with pytest.raises(UserInputError, match=says):
            make_config(Renamed, {key: value})
    assert make_config(Renamed, {"free_float": "-5"}).free_float == -5.0  # undeclared: any finite number


def test_a_run_result_is_read_once_into_typed_fields_and_named_one_way(tmp_path):
    from d4rl_lite.benchmark.results import ResultSet
    from d4rl_lite.records import RunResult, RunStatus

    record = {"algorithm": "cql", "dataset": "hopper-medium-v0", "train": {"seed": 2, "suite": "lite"},
              "sweep": {"cql_weight": 5.0}, "steps": 30, "checksum": "sha256:x",
              "final": {"step": 30, "eval/normalized_score": 41.0, "eval/return_mean": 1200.0, "eval/success_rate": 0.5},
              "best": {"step": 20, "eval/normalized_score": 45.0},
              "curve": [{"step": 20, "eval/normalized_score": 45.0}, {"step": 30, "eval/normalized_score": 41.0}],
              "data": {"normalized_return": 30.0}}
    run = RunResult.finished(record, tmp_path / "x" / "result.json")
    assert run.status is RunStatus.FINISHED and not run.finetuned and run.finetuning is None
    assert (run.final.normalized_score, run.final.raw_return, run.final.success_rate, run.best.score(True)) == (41.0, 1200.0, 0.5, 45.0)
    assert [(p.step, p.score) for p in run.curve] == [(20, 45.0), (30, 41.0)] and run.final.score(False) == 1200.0
    assert (run.data.normalized_return, run.data.online_agent, run.suite, run.steps) == (30.0, None, "lite", 30)
    assert run.run_id == "cql__hopper-medium-v0__cql_weight=5__seed2" and run.column == "cql[cql_weight=5.0]"
    tuned = RunResult.finished({**record, "steps": 60, "finetune": {"offline_final": {"eval/normalized_score": 40.0},
                                                                    "sampling": "uniform", "parent_step": 30}})
    assert tuned.finetuned and tuned.run_id.endswith("__seed2__finetune")
    assert (tuned.finetuning.offline_final.normalized_score, tuned.finetuning.parent_step) == (40.0, 30)
    # A file that cannot be read as a run is known by its directory's name; a fine-tuning run's by its suffix.
    lost = RunResult.unusable(RunStatus.DIVERGED, tmp_path / "bc__hopper-medium-v0__seed1__finetune" / "diverged.json", "Q")
    assert lost.finetuned and lost.spec == RunSpec.of("bc", "hopper-medium-v0", 1) and lost.run_id.endswith("__finetune")
    odd = RunResult.unusable(RunStatus.REFUSED, tmp_path / "my run" / "result.json", "damaged")
    assert odd.spec is None and odd.run_id == "my run" and str(odd).endswith("my run/result.json: damaged")
    gone = RunResult.missing(RunSpec.of("bc", "hopper-medium-v0", 0))
    found = ResultSet((run, tuned, lost, odd, gone))
    assert found.finished == [run] and found.finetuned == [tuned] and found.refused == [lost, odd]
    assert found.missing == [gone] and not found.complete and ResultSet((run,)).complete


def _sizes(limit_lines: int, limit_function: int) -> tuple[list[str], list[str]]:
    """Package modules over ``limit_lines`` lines and functions over ``limit_function`` lines."""
    import ast
    from pathlib import Path

    import d4rl_lite

    big_files, long_functions = [], []
    for path in sorted(Path(d4rl_lite.__file__).parent.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > limit_lines:
            big_files.append(f"{path.name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit_function:
                    long_functions.append(f"{path.name}:{node.name}: {length} lines")
    return big_files, long_functions


def test_no_module_over_350_lines_and_no_function_over_60():
    big_files, long_functions = _sizes(350, 60)
    assert big_files == [] and long_functions == []
    assert _sizes(300, 55) != ([], [])  # the measure sees the package (some files and functions come close)
