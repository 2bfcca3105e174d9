"""``medium-replay``: the experience the behaviour policy collected while it trained up to medium.

Source, in order of preference:
1. the real replay buffer of the training run, every transition up to the step where it reached
   medium, in collection order (as D4RL; for a re-run of the recipe the card's ``replay_run``
   says that step, else it is the medium checkpoint's): committed with the policies (``zoo/<task>/replay``, when
   small enough) or in the run directory, when that is on this machine;
2. otherwise the committed ladder's actors up to medium, rolled out in order with sampled
   actions, an equal share each. The recipe says which source was used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.datasets.behavior.policies import ActorPolicy, load_actor, read_card, zoo_dir, zoo_file
from d4rl_lite.datasets.builders.mixed import component_seed, split_sizes
from d4rl_lite.datasets.collect import collect_episodes
from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.tasks import Task


def pack_replay_chunk(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A replay chunk as committed: ``next_observations`` kept only where it is not the next row's
    observation (episode ends, and the chunk's last row), which halves the compressed size."""
    obs, nxt = arrays["observations"], arrays["next_observations"]
    keep = np.append(np.flatnonzero((nxt[:-1] != obs[1:]).any(axis=1)), len(nxt) - 1)
    packed = {k: v for k, v in arrays.items() if k != "next_observations"}
    return {**packed, "next_observations_rows": keep.astype(np.int64), "next_observations_kept": nxt[keep]}


def load_replay_chunk(path: Path) -> dict[str, np.ndarray]:
    """A replay chunk's arrays, whether as a run wrote it or packed (``pack_replay_chunk``)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if "next_observations_rows" in arrays:
        rows, kept = arrays.pop("next_observations_rows"), arrays.pop("next_observations_kept")
        nxt = np.empty_like(arrays["observations"])
        nxt[:-1] = arrays["observations"][1:]
        nxt[rows] = kept
        arrays["next_observations"] = nxt
    return arrays


def replay_to_episodes(chunks: list[Path], up_to: int, size: int | None) -> EpisodeArrays:
    """Replay transitions [0, min(up_to, size)) as episodes; an unfinished last episode ends as a timeout,
    and so does one the replay does not continue (a resume of the run that collected it)."""
    data: dict[str, list[np.ndarray]] = {}
    have = 0
    for f in chunks:
        for k, v in load_replay_chunk(f).items():
            data.setdefault(k, []).append(v)
        have += len(data["rewards"][-1])
        if have >= up_to:
            break
    n = min(up_to, have, size or up_to)
    arr = {k: np.concatenate(v)[:n] for k, v in data.items()}
    terminals = arr["terminals"].astype(bool)
    timeouts = arr["timeouts"].astype(bool) & ~terminals
    timeouts[-1] |= not terminals[-1]
    # A resumed behaviour run starts a new episode without flagging the last step before it (the
    # simulator's state is not in its checkpoint): where a transition does not continue from the
    # one before, that episode was cut short there, as a time limit would cut it.
    cut = ~np.all(arr["next_observations"][:-1] == arr["observations"][1:], axis=1)
    timeouts[:-1] |= cut & ~terminals[:-1]
    ends = np.flatnonzero(terminals | timeouts)
    lengths = np.diff(np.concatenate([[-1], ends]))
    # Stored observations: each episode's rows plus its final next observation.
    obs_rows = []
    for s, e in zip(ends - lengths + 1, ends):
        obs_rows.append(arr["observations"][s : e + 1])
        obs_rows.append(arr["next_observations"][e : e + 1])
    return EpisodeArrays(observations=np.concatenate(obs_rows), actions=arr["actions"], rewards=arr["rewards"],
                         terminations=terminals, truncations=timeouts, episode_lengths=lengths)


def build_medium_replay(task: Task, *, size: int | None, seed: int, num_envs: int,
                        progress: Callable[[int], None] | None = None) -> tuple[EpisodeArrays, dict[str, Any]]:
    card = read_card(task.name)
    medium_step = card["medium"]["step"]
    rerun = card.get("training", {}).get("replay_run")  # the replay of a later run of the same recipe
    replay_end = rerun["steps"] if rerun else medium_step  # where that run reached medium
    run_dir = Path((rerun or card.get("training", {})).get("run_dir", "/nonexistent"))
    committed = [zoo_file(task.name, f"replay/{f.name}")  # export checked it covers medium
                 for f in sorted((zoo_dir(task.name) / "replay").glob("chunk_*.npz"))]
    chunks = committed or sorted((run_dir / "replay").glob("chunk_*.npz"))
    covered = max((int(c.stem.split("_")[2]) for c in chunks), default=0)
    complete = rerun is not None or card.get("training", {}).get("replay_starts_at_step", 0) == 0  # a warm restart lost the start
    if complete and covered >= replay_end:
        raw = replay_to_episodes(chunks, replay_end, size)
        if progress:
            progress(int(raw.episode_lengths.sum()))
        return raw, {"source": "real replay buffer of the training run" + (" (a re-run, see the card)" if rerun else ""),
                     "replay_from": "committed with the policies" if committed else str(run_dir),
                     "up_to_step": replay_end, "description": f"SAC replay buffer up to step {replay_end:,} (medium)"}

    ladder = [e for e in card["ladder"] if e["step"] <= medium_step]
    total = size or medium_step
    parts = []
    for i, (entry, n) in enumerate(zip(ladder, split_sizes(total, [1.0] * len(ladder)))):
        actor = load_actor(task, zoo_file(task.name, entry["file"]), tuple(card["hidden"]))
        parts.append(collect_episodes(task, ActorPolicy(actor, component_seed(seed, i)), n, component_seed(seed, i),
                                      num_envs, progress=progress))
    return EpisodeArrays.concatenate(parts), {
        "source": "ladder rollouts (the run's complete replay buffer is not on this machine)",
        "ladder_steps": [e["step"] for e in ladder], "num_envs": num_envs,
        "description": f"ladder actors up to step {medium_step:,} rolled out in order, sampled actions"}
