"""What a run is, typed: one name for it everywhere (directory, log lines, tables, checks).

``train`` names its run directories with it, ``bench`` its results' directories, and the table,
the validity checks and ``report`` find runs by it; nothing parses a run back out of a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEP = "__"  # between the parts of a run id: names of algorithms, datasets and settings never hold it
# A fine-tuning run's directory: its offline parent's name and this (``d4rl-lite finetune``, a suite's "finetune").
FINETUNE_SUFFIX = SEP + "finetune"


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
