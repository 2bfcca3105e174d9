"""Fine-tuning in a suite: after its offline budget, each run of the named algorithms continues online
(``training/finetune.py``) in a run directory of its own beside it, ``<run id>__finetune``::

    "finetune": {"env_steps": 20000, "eval_every": 2000, "algorithms": ["awac", "iql", "bear"],
                 "sampling": "uniform", "online_fraction": 0.5}

``algorithms`` (default: every algorithm of the suite), ``eval_every`` (default: the suite's),
``sampling`` and ``online_fraction`` (``training/finetune_experience.Mix``) are optional. The report
shows, per dataset and algorithm, the offline score, the score after fine-tuning and the
improvement (each seed's own, paired); the ``finetune`` validity check compares improvements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from d4rl_lite.errors import UserInputError
from d4rl_lite.records import RunResult, RunSpec

KEYS = ("env_steps", "eval_every", "algorithms", "sampling", "online_fraction")


@dataclass(frozen=True)
class FinetunePlan:
    """What a suite's ``finetune`` block asks for (module docstring)."""

    env_steps: int
    eval_every: int | None = None
    algorithms: tuple[str, ...] | None = None
    sampling: str = "uniform"
    online_fraction: float = 0.5

    @classmethod
    def from_suite(cls, block: Any, suite_name: str, suite_algorithms: list[str]) -> FinetunePlan:
        """The checked plan of a suite's ``finetune`` block; one line naming what is wrong otherwise."""
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise UserInputError(f"suite {suite_name!r}: finetune {what}; see d4rl_lite/benchmark/finetune_suite.py")

        need(isinstance(block, dict), "must be an object such as {\"env_steps\": 20000}")
        unknown = sorted(set(block) - set(KEYS))
        need(not unknown, f"has unknown key(s) {', '.join(map(repr, unknown))} (it takes {', '.join(KEYS)})")
        from d4rl_lite.training.run_files import MAX_STEP

        for key in ("env_steps", "eval_every"):
            value = block.get(key, 1)
            need(isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_STEP,
                 f"{key} must be a whole number >= 1 (at most {MAX_STEP:,})")
        need("env_steps" in block, "needs env_steps")
        algorithms = block.get("algorithms")
        need(algorithms is None or (isinstance(algorithms, list) and algorithms and all(a in suite_algorithms for a in algorithms)),
             "algorithms must be a non-empty list of the suite's algorithms")
        fraction = block.get("online_fraction", 0.5)
        need(isinstance(fraction, (int, float)) and not isinstance(fraction, bool), "online_fraction must be a number")
        plan = cls(block["env_steps"], block.get("eval_every"), tuple(algorithms) if algorithms else None,
                   block.get("sampling", "uniform"), float(fraction))
        try:
            plan.mix().validate()
        except UserInputError as e:
            need(False, str(e))
        return plan

    def mix(self) -> Any:
        from d4rl_lite.training.finetune_experience import Mix

        return Mix(self.sampling, self.online_fraction)

    def applies(self, algorithm: str) -> bool:
        return self.algorithms is None or algorithm in self.algorithms


def plan_of(suite: Any) -> FinetunePlan | None:
    """The fine-tuning plan of a suite (a ``Suite`` or its description), None when it has none."""
    block = suite.get("finetune") if isinstance(suite, dict) else getattr(suite, "finetune", None)
    if block is None:
        return None
    name = suite.get("name", "?") if isinstance(suite, dict) else suite.name
    algorithms = suite.get("algorithms", []) if isinstance(suite, dict) else suite.algorithms
    return FinetunePlan.from_suite(block, name, list(algorithms))


def online_memory_problem(plan: FinetunePlan, suite: Any) -> str | None:
    """Why a suite's fine-tuning cannot keep its online transitions in this machine's memory (a
    population's members together, as a worker fine-tunes them), or None: said when the suite is
    checked, not in a worker after the offline training."""
    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.datasets.catalogue import parse_dataset_name
    from d4rl_lite.tasks import get_task
    from d4rl_lite.training.finetune_experience import online_buffer_problem

    for algorithm in filter(plan.applies, suite.algorithms):
        cls = ALGORITHMS.get(algorithm)
        members = len(suite.seeds) if cls is not None and cls.supports_population else 1
        for dataset in suite.only_on.get(algorithm, suite.datasets):
            task = get_task(parse_dataset_name(dataset).task)
            problem = online_buffer_problem(plan.env_steps, members, task.observation_dim, task.action_dim)
            if problem:
                return f"{algorithm} on {dataset}: {problem}"
    return None


def finetune_run_id(algorithm: str, dataset: str, seed: int) -> str:
    return RunSpec.of(algorithm, dataset, seed).finetune_run_id


def is_finetuned(results_dir: Path, plan: FinetunePlan, algorithm: str, dataset: str, seed: int) -> bool:
    """Whether the fine-tuning run of (algorithm, dataset, seed) finished its env steps."""
    from d4rl_lite.files import CorruptFileError, read_record

    run = Path(results_dir) / finetune_run_id(algorithm, dataset, seed)
    if (run / "diverged.json").is_file() and not (run / "result.json").exists():
        return True  # diverged online: not tried again (the table lists it as refused, with its reason)
    if not (run / "result.json").exists():
        return False
    try:
        record = read_record(run / "result.json", "result")
    except CorruptFileError:
        return False
    return record.get("steps") == plan.env_steps and plan_mismatch(plan, record) is None


def plan_mismatch(plan: FinetunePlan, record: dict[str, Any]) -> str | None:
    """How a fine-tuning run's sampling rule differs from the plan's, None when it does not."""
    ran = record.get("finetune") or {}
    want = plan.mix().record()
    if {k: ran.get(k) for k in want} != want:
        return (f"fine-tuned with sampling {ran.get('sampling')!r} (online fraction {ran.get('online_fraction')}), "
                f"the suite asks for {want['sampling']!r} (online fraction {want['online_fraction']})")
    return None


def finetune_group(suite: Any, algorithm: str, dataset: str, seeds: list[int], results_dir: Path, root: Any,
                   device: str, wandb: bool) -> dict[int, dict[str, Any]]:
    """Fine-tune the finished offline runs of ``seeds`` (in a worker, after their offline training) as
    one population; {seed: its final evaluation} for those fine-tuned."""
    from d4rl_lite.training.finetune import finetune_population
    from d4rl_lite.training.loop import DivergenceError
    from d4rl_lite.training.offline import TrainConfig

    plan = plan_of(suite)
    if plan is None or not plan.applies(algorithm):
        return {}
    def diverged(s: int) -> bool:
        return (results_dir / finetune_run_id(algorithm, dataset, s) / "diverged.json").is_file()

    # Seeds whose offline run finished (not diverged) and whose fine-tuning has not diverged before.
    ready = [s for s in seeds if (results_dir / RunSpec.of(algorithm, dataset, s).run_id / "result.json").is_file()
             and not diverged(s)]
    if not ready:
        return {}
    tc = TrainConfig(steps=plan.env_steps, seed=ready[0], device=device, log_every=suite.log_every,
                     eval_every=plan.eval_every or suite.eval_every, eval_episodes=suite.eval_episodes,
                     checkpoint_every=suite.checkpoint_every, wandb=wandb, wandb_project=f"d4rl-lite-{suite.name}",
                     precision=suite.precision, compile=suite.compile, suite=suite.name)
    while True:
        try:
            records = finetune_population([results_dir / RunSpec.of(algorithm, dataset, s).run_id for s in ready], tc,
                                          plan.mix(), [results_dir / finetune_run_id(algorithm, dataset, s) for s in ready],
                                          root=root)
            return {s: r["final"] for s, r in zip(ready, records)}
        except DivergenceError:
            # A member that diverged keeps its diverged.json (the table lists it as refused); the others
            # go on from their last checkpoints, exactly as they would have (members are independent).
            lost = [s for s in ready if diverged(s)]
            if not lost:
                raise
            ready = [s for s in ready if s not in lost]
            if not ready:
                return {}


# -- what the validity checks read (the report's table: finetune_report.py) --------------------------------
def improvement(metric: str, result: RunResult, scale: float = 1.0) -> float | None:
    """A fine-tuning run's final ``metric`` minus its offline parent's (times ``scale``); None for an
    offline run or a metric either lacks."""
    if result.finetuning is None:
        return None
    after, before = result.final.value(metric), result.finetuning.offline_final.value(metric)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (after, before)):
        return None
    return (float(after) - float(before)) * scale


def online_budgets(results: list[RunResult]) -> set[str]:
    """The distinct ways ``results``' fine-tuning runs were fine-tuned (env steps, sampling rule, the
    parent's updates), each as text; offline runs are left out."""
    out = set()
    for r in results:
        tune = r.finetuning
        if tune is not None:
            rule = tune.sampling if tune.online_fraction is None else f"{tune.sampling} {tune.online_fraction}"
            out.add(f"{r.steps} env steps, {rule} sampling, after {tune.parent_step} updates")
    return out
