"""A fine-tuning run's experience: the offline data as trained plus each member's online transitions
(``MixedReplay``), and the members' env copies stepped once per update (``OnlineMembers``, the loop's
batch source). ``training/finetune.py`` says how a run uses them and how they resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4rl_lite.algorithms.exploration import explore
from d4rl_lite.errors import D4RLLiteError, UserInputError
from d4rl_lite.training.data import RewardTransform
from d4rl_lite.training.online import EpisodeStepper, Steps

SAMPLING = ("uniform", "online_fraction")
# Keeps online episodes' seeds apart from the evaluation protocol's (task.eval_seed + i).
EPISODE_SEED_SALT = 33_000_000


def episode_seed(run_seed: int, episode: int) -> int:
    """The reset seed of a member's ``episode``-th online episode: a function of (run seed, episode) only."""
    return int(np.random.SeedSequence([EPISODE_SEED_SALT, run_seed, episode]).generate_state(1)[0])


@dataclass
class Mix:
    """How a batch mixes offline and online transitions.

    ``uniform``: every transition of the union (offline data and the member's online ones) equally
    likely, as AWAC and IQL fine-tune; ``online_fraction``: round(online_fraction x batch) rows from
    the online transitions, the rest from the offline data (RLPD and Cal-QL's symmetric sampling: 0.5).
    """

    sampling: str = "uniform"
    online_fraction: float = 0.5

    def validate(self) -> None:
        if self.sampling not in SAMPLING:
            raise UserInputError(f"sampling must be one of {', '.join(SAMPLING)}, got {self.sampling!r}")
        if not 0.0 <= self.online_fraction <= 1.0:
            raise UserInputError(f"online fraction must be between 0 and 1, got {self.online_fraction}")

    def record(self) -> dict[str, Any]:
        return {"sampling": self.sampling,
                "online_fraction": self.online_fraction if self.sampling == "online_fraction" else None}


def online_buffer_bytes(env_steps: int, members: int, obs_dim: int, act_dim: int) -> int:
    """What ``MixedReplay`` reserves up front for the online transitions: a float32 row per env step and
    member (observation, next observation, action, reward, terminal, timeout)."""
    return env_steps * members * 4 * (2 * obs_dim + act_dim + 3)


def online_buffer_problem(env_steps: int, members: int, obs_dim: int, act_dim: int) -> str | None:
    """Why fine-tuning ``members`` runs for ``env_steps`` cannot fit its online buffer in this machine's
    memory, or None; said before anything is read or allocated."""
    from d4rl_lite.algorithms.memory import machine_memory_bytes

    need, have = online_buffer_bytes(env_steps, members, obs_dim, act_dim), machine_memory_bytes()
    if have is None or need <= have:
        return None
    who = "one run" if members == 1 else f"{members} runs"
    return (f"fine-tuning {who} for {env_steps:,} env steps keeps {need / 2**30:,.1f} GiB of online transitions in "
            f"memory, more than this machine's {have / 2**30:,.1f} GiB; use fewer env steps"
            + ("" if members == 1 else " or fine-tune fewer runs at once"))


class MixedReplay:
    """The offline data as trained (``prepare_data``) and each member's online transitions, kept raw
    as the env gave them in (M, capacity, ...) tensors on the device and put in the algorithm's units
    when sampled: observations standardized with the member's ``obs_mean`` / ``obs_std``, rewards by
    the run's ``RewardTransform``. Indices are drawn on the device from each member's batch generator."""

    def __init__(self, data: Any, algo: Any, rewards: RewardTransform, capacity: int, mix: Mix, batch_size: int):
        self.data, self.algo, self.rewards, self.mix, self.batch_size = data, algo, rewards, mix, batch_size
        device, members = algo.device, algo.members
        self.online = {k: torch.zeros((members, capacity, *t.shape[1:]), device=device) for k, t in data.tensors.items()}
        self.size = 0  # online transitions per member (every member steps at once)
        self._members = torch.arange(members, device=device)[:, None]

    def add(self, steps: Steps, actions: np.ndarray) -> None:
        row = {"observations": steps.obs, "actions": actions, "rewards": steps.rewards,
               "next_observations": steps.next_obs, "terminals": steps.terminals, "timeouts": steps.timeouts}
        for k, t in self.online.items():
            t[:, self.size] = torch.as_tensor(np.asarray(row[k], dtype=np.float32), device=t.device)
        self.size += 1

    def as_trained(self, rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw online rows (M, n, ...) in the units the algorithm learned in."""
        out = dict(rows)
        for k in ("observations", "next_observations"):
            out[k] = (rows[k] - self.algo.obs_mean) / self.algo.obs_std
        out["rewards"] = rows["rewards"] * self.rewards.multiplier + self.rewards.bias
        return out

    def online_rows(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each member's online transitions at ``idx`` (M, n), as trained."""
        return self.as_trained({k: t[self._members, idx] for k, t in self.online.items()})

    def sample(self, gens: list[torch.Generator]) -> dict[str, torch.Tensor]:
        """A (M, batch, ...) batch by the mix's rule, member m's rows drawn with ``gens[m]``."""
        b, n_off, device = self.batch_size, self.data.size, self.algo.device
        if self.mix.sampling == "uniform":
            idx = torch.stack([torch.randint(0, n_off + self.size, (b,), device=device, generator=g) for g in gens])
            online = idx >= n_off
            offline = {k: t[idx.clamp(max=n_off - 1)] for k, t in self.data.tensors.items()}
            mine = self.online_rows((idx - n_off).clamp(min=0))
            return {k: torch.where(online.view(*online.shape, *[1] * (v.dim() - 2)), mine[k], v) for k, v in offline.items()}
        k_on = round(self.mix.online_fraction * b)
        off = torch.stack([torch.randint(0, n_off, (b - k_on,), device=device, generator=g) for g in gens])
        on = torch.stack([torch.randint(0, self.size, (k_on,), device=device, generator=g) for g in gens])
        mine = self.online_rows(on)
        return {k: torch.cat([t[off], mine[k]], 1) for k, t in self.data.tensors.items()}

    def member_rows(self, m: int) -> dict[str, torch.Tensor]:
        return {k: t[m, :self.size].clone() for k, t in self.online.items()}

    def restore(self, rows: list[dict[str, torch.Tensor]], size: int) -> None:
        for m, member in enumerate(rows):
            for k, t in self.online.items():
                t[m, :size] = member[k].to(t.device)
        self.size = size


class OnlineMembers:
    """Each member's env copy, stepped once per update with the members' exploration actions (one policy
    call for the population); the loop's batch source (``next_batch``). Member m's episode k starts
    from ``episode_seed(seeds[m], k)``."""

    def __init__(self, task: Any, algo: Any, replay: MixedReplay, seeds: list[int], gens: list[torch.Generator]):
        self.task, self.algo, self.replay, self.seeds, self.gens = task, algo, replay, seeds, gens
        self.started = np.zeros(len(seeds), np.int64)  # episodes started per member
        self.episode_start = np.zeros(len(seeds), np.int64)  # where each current episode starts in the buffer
        self.finished: list[list[float]] = [[] for _ in seeds]  # returns of episodes ended since the last log
        self.stepper: EpisodeStepper | None = None

    def _seed(self, i: int) -> int:
        self.started[i] += 1
        return episode_seed(self.seeds[i], int(self.started[i]) - 1)

    def start(self) -> None:
        self.stepper = EpisodeStepper(self.task, len(self.seeds), self._seed)

    def next_batch(self, step: int) -> dict[str, torch.Tensor]:
        actions = explore(self.algo, self.stepper.obs[:, None, :])[:, 0]
        out = self.stepper.step(actions)
        self.replay.add(out, actions)
        for i, episode_return, _ in out.finished:
            self.finished[i].append(episode_return)
            self.episode_start[i] = self.replay.size
        return self.replay.sample(self.gens)

    def take_finished(self, m: int) -> list[float]:
        done, self.finished[m] = self.finished[m], []
        return done

    def checkpoint_extra(self, m: int) -> dict[str, Any]:
        """What member m's checkpoint holds to continue exactly (see ``training/finetune.py``)."""
        return {"online": self.replay.member_rows(m), "online_size": self.replay.size,
                "episodes_started": int(self.started[m]), "episode_start": int(self.episode_start[m]),
                "episode_return": float(self.stepper.episode_return[m]), "obs": torch.from_numpy(self.stepper.obs[m].copy())}

    def restore(self, extras: list[dict[str, Any]], step: int, ckpts: list[Path]) -> None:
        """Refill the buffer and bring every env back to where its checkpoint left it: reset with its
        current episode's seed, re-stepped with the episode's stored actions; refused unless the
        observation reached equals the stored one bit for bit."""
        try:
            sizes = {int(e["online_size"]) for e in extras}
            rows = [{k: e["online"][k] for k in self.replay.online} for e in extras]
            self.started[:] = [int(e["episodes_started"]) - 1 for e in extras]  # the reset below starts it again
            self.episode_start[:] = [int(e["episode_start"]) for e in extras]
            stored_obs = [e["obs"].numpy() for e in extras]
            ok = (sizes == {step} and all(r[k].shape[0] == step for r in rows for k in r)
                  and all(0 <= s <= step for s in self.episode_start) and all(s >= 0 for s in self.started))
        except (KeyError, TypeError, AttributeError, ValueError):
            ok = False
        if not ok:
            raise D4RLLiteError(f"{ckpts[0].parent}: the checkpoint's online experience does not fit its step {step:,}; "
                                "it was damaged or forged. Delete the fine-tuning run directory and fine-tune again.")
        self.replay.restore(rows, step)
        self.start()
        actions = self.replay.online["actions"].cpu().numpy()
        for j in range(int((step - self.episode_start).max(initial=0))):
            at = self.episode_start + j
            active = at < step
            self.stepper.step(actions[np.arange(len(at)), np.minimum(at, step - 1)], active)
        for m, ckpt in enumerate(ckpts):
            if not np.array_equal(self.stepper.obs[m], stored_obs[m]):
                raise D4RLLiteError(f"{ckpt}: re-stepping the environment to the checkpoint did not reach the stored "
                                    "observation (another machine or simulator version?); this run cannot continue "
                                    "exactly. Fine-tune again into a new --run-dir.")
            self.stepper.episode_return[m] = float(extras[m]["episode_return"])
