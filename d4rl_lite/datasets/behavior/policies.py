"""Committed behaviour policies: each task's ladder of SAC actors, its card, and loading them as policies.

Layout, inside the package (``d4rl_lite/datasets/behavior/zoo/<task>/``)::

    card.json                 expert and medium choices with 100-episode returns, training facts
    ladder.json               every ladder entry: step, file, evaluated returns
    ladder/step_*.safetensors actor weights (TanhGaussianPolicy, hidden sizes in card.json)
    curve.csv, curve.png      the training curve
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4rl_lite.nets import TanhGaussianPolicy
from d4rl_lite.errors import D4RLLiteError
from d4rl_lite.files import read_json
from d4rl_lite.schema import Range, read_checked_json
from d4rl_lite.tasks import Task, get_task


def zoo_dir(task_name: str) -> Path:
    """Where a task's committed policies are: the package's zoo, or $D4RL_LITE_ZOO/<task> when set."""
    root = os.environ.get("D4RL_LITE_ZOO")
    base = Path(root) if root else Path(str(resources.files("d4rl_lite").joinpath("datasets", "behavior", "zoo")))
    return base / task_name


MANIFEST = "checksums.json"  # {path relative to the task's zoo folder: "sha256:..."}, written by export


def write_manifest(folder: Path) -> None:
    """Record the SHA-256 of every file of an exported zoo folder (what ``zoo_file`` checks)."""
    sums = {str(f.relative_to(folder)): _sha256(f) for f in sorted(folder.rglob("*")) if f.is_file() and f.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps(sums, indent=2) + "\n")


def zoo_file(task_name: str, relative: str) -> Path:
    """A file of a task's zoo, verified against the zoo's manifest; any mismatch is one clear error."""
    folder = zoo_dir(task_name)
    path = folder / relative
    advice = f"Restore the zoo from the repository (git checkout), or re-export it with `d4rl-lite export-behavior {task_name}`."
    try:
        manifest = read_json(folder / MANIFEST, "manifest")
        expected = manifest[relative]
    except (OSError, ValueError, KeyError, TypeError):
        raise D4RLLiteError(f"{path}: not listed in {folder / MANIFEST} (missing or damaged manifest); not used. "
                            + advice) from None
    if not path.is_file() or _sha256(path) != expected:
        raise D4RLLiteError(f"{path}: checksum mismatch with {MANIFEST} (altered or damaged); not used. " + advice)
    return path


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:  # in pieces: a file of any size hashes in bounded memory
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def read_card(task_name: str) -> dict[str, Any]:
    path = zoo_dir(task_name) / "card.json"
    if not path.is_file():
        raise D4RLLiteError(
            f"no committed behaviour policies for {task_name!r} yet (expected {path}). Train them with "
            f"`d4rl-lite train-behavior {task_name}` and export with `d4rl-lite export-behavior {task_name}`."
        )
    return read_checked_json(zoo_file(task_name, "card.json"), CARD_SPEC, "behaviour card",
                             f"Restore the zoo from the repository, or re-export it with `d4rl-lite export-behavior {task_name}`.")


# What card.json must hold for the builders and export to use it (written by ``export_behavior``).
_ROLE = {"step": Range(int, 0), "file": str, "return_mean_100?": float, "return_std_100?": float, "episodes?": Range(int, 1)}
CARD_SPEC = {"hidden": [Range(int, 1)], "expert": _ROLE, "medium": _ROLE,
             "training?": {"run_dir?": str, "replay_starts_at_step?": Range(int, 0),
                           "replay_run?": ({"run_dir?": str, "steps": Range(int, 0)}, None)},
             "ladder?": [{"step": Range(int, 0), "file": str}]}


def load_actor(task: Task, weights: str | Path, hidden: tuple[int, ...]) -> TanhGaussianPolicy:
    from safetensors.torch import load_file

    actor = TanhGaussianPolicy(task.observation_dim, task.action_dim, hidden)
    actor.load_state_dict(load_file(str(weights)))
    return actor.eval().requires_grad_(False)


def load_role(task_name: str, role: str) -> tuple[TanhGaussianPolicy, dict[str, Any]]:
    """The committed ``expert`` or ``medium`` actor of a task, with its card entry."""
    card = read_card(task_name)
    if role not in card:
        raise D4RLLiteError(f"card of {task_name!r} has no {role!r} policy; re-run `d4rl-lite export-behavior {task_name}`")
    entry = card[role]
    actor = load_actor(get_task(task_name), zoo_file(task_name, entry["file"]), tuple(card["hidden"]))
    return actor, entry


class NumpyActor:
    """The actor's forward pass in NumPy: for the small batches of data collection, NumPy's per-call
    overhead is a fraction of torch's, which keeps inference off the critical path of env stepping."""

    def __init__(self, actor: TanhGaussianPolicy):
        linears = [m for m in actor.trunk if isinstance(m, torch.nn.Linear)]
        self.layers = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]
        self.log_std_min, self.log_std_max = actor.log_std_min, actor.log_std_max
        self.act_dim = actor.act_dim

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, log_std) of the pre-tanh Gaussian for a batch of flat observations."""
        h = obs.astype(np.float32, copy=False)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                np.maximum(h, 0, out=h)
        mean, log_std = h[:, : self.act_dim], h[:, self.act_dim :]
        return mean, np.clip(log_std, self.log_std_min, self.log_std_max)


class ActorPolicy:
    """A SAC actor as a data-collection policy (the Policy protocol of evaluate/collect_episodes).

    Stochastic mode samples a = tanh(mu + sigma * eps) as D4RL did, with eps drawn from a stream
    per episode (``default_rng([seed, episode, 2])``, drawn a block per episode), so an episode's
    noise does not depend on which vector-env copy runs it.
    """

    def __init__(self, actor: TanhGaussianPolicy, seed: int = 0, deterministic: bool = False, horizon: int = 1000):
        self.actor = NumpyActor(actor)
        self.seed, self.deterministic, self.horizon = seed, deterministic, horizon
        self._noise = np.zeros((0, horizon, self.actor.act_dim), np.float32)  # per copy: its episode's noise
        self._t = np.zeros(0, np.int64)

    def start_episode(self, slot: int, episode_index: int) -> None:
        if slot >= len(self._t):
            grow = slot + 1 - len(self._t)
            self._noise = np.concatenate([self._noise, np.zeros((grow, *self._noise.shape[1:]), np.float32)])
            self._t = np.concatenate([self._t, np.zeros(grow, np.int64)])
        rng = np.random.default_rng([self.seed, episode_index, 2])
        self._noise[slot] = rng.standard_normal((self.horizon, self.actor.act_dim), dtype=np.float32)
        self._t[slot] = 0

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        mean, log_std = self.actor(observations)
        if self.deterministic:
            return np.tanh(mean)
        n = len(observations)
        eps = self._noise[np.arange(n), self._t[:n] % self.horizon]
        self._t[:n] += 1
        return np.tanh(mean + np.exp(log_std) * eps)
