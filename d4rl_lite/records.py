"""What a run is and what it produced, typed: one name for a run everywhere (directory, log lines,
tables, checks), and its result as the table, the validity checks and ``report`` read it.

``train`` names its run directories with ``RunSpec``, ``bench`` its results' directories, and the
table, the validity checks and ``report`` find runs by it; nothing parses a run back out of a
message. ``RunResult`` is a run of a results directory as ``benchmark/results.py`` found it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEP = "__"  # between the parts of a run id: names of algorithms, datasets and settings never hold it
# A fine-tuning run's directory: its offline parent's name and this (``d4rl-lite finetune``, a suite's "finetune").
FINETUNE_SUFFIX = SEP + "finetune"


def count_label(n: int, noun: str) -> str:
    """"1 dataset", "3 datasets"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def shown(value: Any) -> str:
    """A setting's value as a name shows it: 5.0 -> 5, 0.0001 -> 0.0001."""
    return f"{value:.10g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class RunSpec:
    """What a run is: ``algorithm`` trained on ``dataset`` with ``seed`` and, for a member of a
    sweep, the settings (``sweep``: sorted (key, value) pairs) its population's members differ in."""

    algorithm: str
    dataset: str
    seed: int
    sweep: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, algorithm: str, dataset: str, seed: int, sweep: dict[str, Any] | None = None) -> RunSpec:
        return cls(algorithm, dataset, int(seed), tuple(sorted((sweep or {}).items())))

    @property
    def run_id(self) -> str:
        """``iql__hopper-medium-v0__seed0``; a sweep member ``cql__hopper-medium-v0__cql_weight=5__seed0``.
        Also the name of the run's directory."""
        swept = "".join(f"{SEP}{key}={shown(value)}" for key, value in self.sweep)
        return f"{self.algorithm}{SEP}{self.dataset}{swept}{SEP}seed{self.seed}"

    @property
    def finetune_run_id(self) -> str:
        """The name of this run's fine-tuning run (``<run id>__finetune``), and of its directory."""
        return self.run_id + FINETUNE_SUFFIX

    @property
    def label(self) -> str:
        """How messages name a population's member: ``seed 3``, or ``cql_weight=5 seed 3`` in a sweep."""
        return "".join(f"{key}={shown(value)} " for key, value in self.sweep) + f"seed {self.seed}"

    @property
    def cell(self) -> tuple[str, str]:
        """(algorithm, dataset): the table cell the run counts in."""
        return self.algorithm, self.dataset

    @classmethod
    def from_run_id(cls, run_id: str) -> RunSpec | None:
        """The run a directory name (written by ``run_id``) stands for; None for any other name."""
        parts = run_id.split(SEP)
        if len(parts) < 3 or not parts[-1].startswith("seed") or not parts[-1][4:].isdigit():
            return None
        sweep = tuple(tuple(p.split("=", 1)) for p in parts[2:-1])
        if any(len(pair) != 2 for pair in sweep):
            return None
        return cls(parts[0], parts[1], int(parts[-1][4:]), sweep)  # swept values as text (from a name)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunSpec:
        """The run a config, result or divergence record describes."""
        return cls.of(record["algorithm"], record["dataset"], record["train"]["seed"], record.get("sweep"))


def population_name(algorithm: str, dataset: str, seeds: list[int]) -> str:
    """How a job of several seeds is named in progress lines: ``bc__hopper-medium-v0__seeds0,1,2``."""
    if len(seeds) == 1:
        return RunSpec.of(algorithm, dataset, seeds[0]).run_id
    return f"{algorithm}{SEP}{dataset}{SEP}seeds{','.join(map(str, seeds))}"


# The metrics of a result's evaluations (``eval/...`` in result.json and log.jsonl).
NORMALIZED, RAW, SUCCESS = "eval/normalized_score", "eval/return_mean", "eval/success_rate"
PREDICTED_VALUE, DISCOUNTED_RETURN = "eval/predicted_value", "eval/discounted_return"


def _block(value: Any) -> Mapping[str, Any]:
    """A record's sub-object, or nothing when a (hand-edited) record holds something else there."""
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a run's policy as its result recorded it. Values are as the file holds them
    (None: not recorded); ``value`` reads a metric a validity check names (patterns.json)."""

    step: int | None = None
    normalized_score: float | None = None
    raw_return: float | None = None
    success_rate: float | None = None
    predicted_value: float | None = None  # the critic's value of its policy at the evaluation's first states
    discounted_return: float | None = None  # the return that policy then got from them, discounted
    metrics: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, metrics: Any) -> Evaluation:
        m = _block(metrics)
        return cls(m.get("step"), m.get(NORMALIZED), m.get(RAW), m.get(SUCCESS), m.get(PREDICTED_VALUE),
                   m.get(DISCOUNTED_RETURN), dict(m))

    @property
    def normalized(self) -> bool:
        """Whether it has a normalized score (the task has both reference scores)."""
        return self.normalized_score is not None

    def score(self, normalized: bool) -> float | None:
        """The normalized score, or the raw return."""
        return self.normalized_score if normalized else self.raw_return

    def value(self, metric: str) -> Any:
        return self.metrics.get(metric)


@dataclass(frozen=True)
class DataFacts:
    """What a run recorded about its dataset (``data`` in result.json)."""

    normalized_return: float | None = None  # the data's own episodes, mean normalized score
    online_agent: float | None = None  # a full replay's: the normalized score of the agent that collected it
    mc_return: float | None = None  # the data's mean discounted Monte-Carlo return

    @classmethod
    def of(cls, data: Any) -> DataFacts:
        d = _block(data)
        return cls(d.get("normalized_return"), d.get("online_agent"), d.get("mc_return"))


@dataclass(frozen=True)
class Finetuning:
    """How a fine-tuning run was fine-tuned (``finetune`` in its result): from which offline evaluation."""

    offline_final: Evaluation  # its offline parent's final evaluation
    parent_step: int | None = None
    sampling: str | None = None
    online_fraction: float | None = None

    @classmethod
    def of(cls, block: Any) -> Finetuning:
        b = _block(block)
        return cls(Evaluation.of(b.get("offline_final")), b.get("parent_step"), b.get("sampling"), b.get("online_fraction"))


@dataclass(frozen=True)
class CurvePoint:
    step: int
    score: float


class RunStatus(enum.Enum):
    FINISHED = "finished"  # a verified result
    MISSING = "missing"  # planned (or expected by the grid of what is there), no result
    REFUSED = "refused"  # a result file that cannot be trusted (``reason``)
    DIVERGED = "diverged"  # stopped without a result (its divergence record; ``reason``)


@dataclass(frozen=True)
class RunResult:
    """A run of a results directory: what it is, its status and, finished, what it produced.

    ``finetuned``: a fine-tuning run (``<run id>__finetune``). ``spec`` is None only for a refused
    file in a directory that names no run. ``record`` is the verified file it was read from, kept
    as storage for a field nothing here names."""

    spec: RunSpec | None
    status: RunStatus
    finetuned: bool = False
    reason: str | None = None  # why it is refused or diverged
    path: Path | None = None  # its result.json (or diverged.json)
    steps: int | None = None  # updates (a fine-tuning run: env steps)
    final: Evaluation = field(default_factory=Evaluation)
    best: Evaluation = field(default_factory=Evaluation)
    curve: tuple[CurvePoint, ...] = ()  # the score of each evaluation (normalized when the final one is)
    data: DataFacts = field(default_factory=DataFacts)
    finetuning: Finetuning | None = None
    task: str | None = None
    checksum: str | None = None  # of its result.json
    dataset_checksum: str | None = None  # of the dataset it was trained on
    run_dir: str | None = None  # where it was trained (its result says)
    suite: str | None = None  # the suite that trained it
    q_at_divergence: float | None = None  # a diverged run's mean Q when it was stopped
    record: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def finished(cls, record: Mapping[str, Any], path: Path | None = None) -> RunResult:
        """A verified result (``result.json``), or one a test writes with the fields it needs."""
        return cls.of_record(record, RunStatus.FINISHED, path)

    @classmethod
    def diverged(cls, record: Mapping[str, Any], path: Path, reason: str) -> RunResult:
        """A run stopped for divergence: its divergence record (``diverged.json``), read as a result."""
        return cls.of_record(record, RunStatus.DIVERGED, path, reason)

    @classmethod
    def of_record(cls, record: Mapping[str, Any], status: RunStatus, path: Path | None = None,
                  reason: str | None = None) -> RunResult:
        final, tune = Evaluation.of(record.get("final")), record.get("finetune")
        key = NORMALIZED if final.normalized else RAW  # the score its curve records (``write_result``)
        curve = tuple(CurvePoint(p.get("step"), p.get(key)) for p in record.get("curve") or () if isinstance(p, Mapping))
        return cls(RunSpec.from_record(record), status, finetuned=isinstance(tune, Mapping), reason=reason, path=path,
                   steps=record.get("steps"), final=final, best=Evaluation.of(record.get("best")), curve=curve,
                   data=DataFacts.of(record.get("data")), finetuning=Finetuning.of(tune) if isinstance(tune, Mapping) else None,
                   task=record.get("task"), checksum=record.get("checksum"), dataset_checksum=record.get("dataset_checksum"),
                   run_dir=record.get("run_dir"), suite=_block(record.get("train")).get("suite"),
                   q_at_divergence=_block(record.get("at_divergence")).get("train/q_mean"), record=record)

    @classmethod
    def unusable(cls, status: RunStatus, path: Path, reason: str) -> RunResult:
        """A refused or diverged run known by its directory's name alone (its file cannot be read as a run)."""
        name = path.parent.name
        tuned = name.endswith(FINETUNE_SUFFIX)
        spec = RunSpec.from_run_id(name[: -len(FINETUNE_SUFFIX)] if tuned else name)
        return cls(spec, status, tuned, reason, path)

    @classmethod
    def missing(cls, spec: RunSpec, finetuned: bool = False) -> RunResult:
        return cls(spec, RunStatus.MISSING, finetuned)

    @property
    def run_id(self) -> str:
        """The run's name (``RunSpec.run_id``, with ``__finetune`` for a fine-tuning run); a refused or
        diverged run's is its directory's name (the file there is what was refused)."""
        if self.spec is None or (self.path is not None and self.status in (RunStatus.REFUSED, RunStatus.DIVERGED)):
            return self.path.parent.name if self.path else "?"
        return self.spec.finetune_run_id if self.finetuned else self.spec.run_id

    @property
    def directory(self) -> Path | None:
        """The directory its file was read from (where its log and checkpoints are)."""
        return self.path.parent if self.path is not None else None

    @property
    def column(self) -> str:
        """The table column of the run: its algorithm, with a sweep member's values (``cql[cql_weight=5.0]``),
        so that members of a sweep are never pooled as seeds of one cell."""
        swept = self.spec.sweep
        return self.spec.algorithm + ("[" + ",".join(f"{k}={v}" for k, v in swept) + "]" if swept else "")

    def __str__(self) -> str:
        """How a refusal is said: its file and why."""
        return f"{self.path}: {self.reason}" if self.reason is not None else self.run_id
