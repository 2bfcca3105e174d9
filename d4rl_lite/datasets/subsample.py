"""Subsamples of a dataset by collection order or at random, whole episodes only.

A subsample is part of a dataset's name, so two never share one: ``hopper-full-replay-v0`` with
``--subsample first:0.1`` is ``hopper-full-replay-first10pct-v0`` (``last:20000`` ->
``...-last20000-v0``, ``random:0.1`` -> ``...-random10pct-v0``). Its rule, for a size K (a fraction of the
dataset's transitions, as a whole percent, or a number of transitions):

- ``first``: the episodes from the start of collection, up to the first that brings the total to K;
- ``last``: likewise from the end of collection;
- ``random``: episodes drawn without replacement (a generator seeded by the build's seed) until the
  total reaches K, then kept in collection order.

Episodes stay whole, so a subsample holds K transitions or a little more (at most one episode more).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.errors import UserInputError

MODES = ("first", "last", "random")
_LABEL = re.compile(r"^(?P<mode>first|last|random)(?P<amount>[1-9][0-9]*)(?P<pct>pct)?$")


@dataclass(frozen=True)
class Subsample:
    """Which part of a dataset to keep: ``mode`` (first, last, random) and ``amount``, a whole percent
    of its transitions (``percent``) or a number of transitions."""

    mode: str
    amount: int
    percent: bool

    @classmethod
    def parse(cls, spec: str) -> Subsample:
        """``first:0.1``, ``last:20000``, ``random:0.25`` (a fraction in (0, 1] or a transition count)."""
        mode, sep, size = spec.partition(":")
        if not sep or mode not in MODES:
            raise UserInputError(f"--subsample {spec!r}: expected MODE:SIZE with MODE one of {', '.join(MODES)} and SIZE a "
                                 "fraction (0.1) or a number of transitions (20000), e.g. first:0.1")
        try:
            value = float(size)
        except ValueError:
            raise UserInputError(f"--subsample {spec!r}: {size!r} is not a number") from None
        if 0 < value < 1 or value == 1.0 and "." in size:
            percent = value * 100
            if abs(percent - round(percent)) > 1e-9:
                raise UserInputError(f"--subsample {spec!r}: a fraction must be a whole percent (0.1, 0.05), got {size}")
            return cls(mode, int(round(percent)), True)
        if value >= 1 and value == int(value) and "." not in size:
            return cls(mode, int(value), False)
        raise UserInputError(f"--subsample {spec!r}: SIZE must be a fraction in (0, 1] or a whole number of "
                             f"transitions >= 1, got {size}")

    @classmethod
    def from_label(cls, label: str) -> Subsample | None:
        """The subsample a name's label stands for (``first10pct``), None for any other text."""
        m = _LABEL.match(label)
        if not m or (m["pct"] and int(m["amount"]) > 100):
            return None
        return cls(m["mode"], int(m["amount"]), bool(m["pct"]))

    @property
    def label(self) -> str:
        return f"{self.mode}{self.amount}{'pct' if self.percent else ''}"

    @property
    def spec(self) -> str:
        """As ``--subsample`` takes it: a fraction always has its point (``first:1.0`` is all, ``first:1`` one transition)."""
        if not self.percent:
            return f"{self.mode}:{self.amount}"
        fraction = f"{self.amount / 100:g}"
        return f"{self.mode}:{fraction if '.' in fraction else fraction + '.0'}"

    def target(self, transitions: int) -> int:
        return max(1, round(transitions * self.amount / 100)) if self.percent else self.amount

    def episodes(self, lengths: np.ndarray, seed: int) -> np.ndarray:
        """The indices (collection order) of the episodes kept from episodes of ``lengths``."""
        target = self.target(int(lengths.sum()))
        if target > lengths.sum():
            raise UserInputError(f"--subsample {self.spec}: the dataset holds {int(lengths.sum()):,} transitions, "
                                 f"fewer than the {target:,} asked for")
        order = {"first": np.arange(len(lengths)), "last": np.arange(len(lengths))[::-1],
                 "random": np.random.default_rng([seed, 7_001]).permutation(len(lengths))}[self.mode]
        reached = int(np.searchsorted(np.cumsum(lengths[order]), target)) + 1  # episodes until the total reaches K
        return np.sort(order[:reached])

    def apply(self, raw: EpisodeArrays, seed: int) -> tuple[EpisodeArrays, dict[str, Any]]:
        """The kept episodes, and what the recipe and the card record of them."""
        keep = self.episodes(raw.episode_lengths, seed)
        kept = select_episodes(raw, keep)
        return kept, {"subsample": self.spec, "label": self.label, "rule": __doc__.split("\n\n")[1].strip(),
                      "of_transitions": int(raw.episode_lengths.sum()), "of_episodes": int(len(raw.episode_lengths)),
                      "kept_transitions": int(kept.episode_lengths.sum()), "kept_episodes": int(len(keep)),
                      "first_episode": int(keep[0]), "last_episode": int(keep[-1])}


def select_episodes(raw: EpisodeArrays, indices: np.ndarray) -> EpisodeArrays:
    """Episodes ``indices`` (ascending) of ``raw``, each whole (its T transitions and T + 1 observations)."""
    lengths = raw.episode_lengths
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    obs_starts = starts + np.arange(len(lengths))  # each episode stores one observation more
    rows = np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in indices])
    obs_rows = np.concatenate([np.arange(obs_starts[i], obs_starts[i] + lengths[i] + 1) for i in indices])
    obs = raw.observations
    return EpisodeArrays(
        observations={k: v[obs_rows] for k, v in obs.items()} if isinstance(obs, dict) else obs[obs_rows],
        actions=raw.actions[rows], rewards=raw.rewards[rows], terminations=raw.terminations[rows],
        truncations=raw.truncations[rows], episode_lengths=lengths[indices])


def split_kind(kind: str) -> tuple[str, Subsample | None]:
    """``full-replay-first10pct`` -> (``full-replay``, first 10%); a kind without a subsample -> (kind, None)."""
    base, _, last = kind.rpartition("-")
    sub = Subsample.from_label(last) if base else None
    return (base, sub) if sub else (kind, None)
