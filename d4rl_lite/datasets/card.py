"""Data cards: the measured facts of a dataset, as a dict, as text, and as a return histogram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.errors import ReferenceScoreUnavailable
from d4rl_lite.tasks import Task


def _stats(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}


def compute_card(ds: OfflineDataset, task: Task) -> dict[str, Any]:
    """Counts, return and length statistics (raw and normalized where references exist)."""
    returns = ds.episode_returns()
    card: dict[str, Any] = {
        "task": task.name,
        "transitions": ds.num_transitions,
        "episodes": ds.num_episodes,
        "terminals": int(ds.terminals.sum()),
        "timeouts": int(ds.timeouts.sum()),
        "episode_length": _stats(ds.episode_lengths.astype(np.float64)),
        "return": _stats(returns),
        "reward": _stats(ds.rewards.astype(np.float64)),
        "action_abs_mean": float(np.abs(ds.actions).mean()),
    }
    # Reference scores are returns of the task's protocol episodes: only an episode that ran to the
    # horizon or ended in a terminal state is comparable (not a 200-step stitch segment, nor the
    # last episode a build cut short).
    ends = np.cumsum(ds.episode_lengths) - 1
    protocol = (ds.episode_lengths == task.horizon) | ds.terminals[ends].astype(bool)
    try:
        if not protocol.any():
            raise ReferenceScoreUnavailable(
                f"no episode follows the task's protocol ({task.horizon} steps or a terminal state; these are "
                f"{int(ds.episode_lengths.max())} steps at most), so normalizing against its references means nothing")
        card["normalized_return"] = _stats(np.asarray(task.normalized_score(returns[protocol])))
        if not protocol.all():
            card["normalized_over"] = (f"{int(protocol.sum())} of {len(protocol)} episodes (the others are shorter "
                                       f"than the protocol's {task.horizon} steps without a terminal)")
    except ReferenceScoreUnavailable as e:
        card["normalized_return"] = None
        card["normalized_return_unavailable"] = str(e)
    return card


def format_card(card: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """Human-readable card for the terminal."""
    lines = []
    for k, v in (header or {}).items():
        lines.append(f"{k:<18} {v}")
    fmt = lambda s: f"mean {s['mean']:.2f}  std {s['std']:.2f}  min {s['min']:.2f}  max {s['max']:.2f}"  # noqa: E731
    lines += [
        f"{'task':<18} {card['task']}",
        f"{'transitions':<18} {card['transitions']:,}",
        f"{'episodes':<18} {card['episodes']:,}",
        f"{'terminals':<18} {card['terminals']:,}   timeouts {card['timeouts']:,}",
        f"{'episode length':<18} {fmt(card['episode_length'])}",
        f"{'return (raw)':<18} {fmt(card['return'])}",
    ]
    if card.get("normalized_return"):
        over = f"   over {card['normalized_over']}" if card.get("normalized_over") else ""
        lines.append(f"{'return (norm.)':<18} {fmt(card['normalized_return'])}{over}")
    else:
        lines.append(f"{'return (norm.)':<18} n/a: {card.get('normalized_return_unavailable', 'no reference scores')}")
    cert = card.get("stitching_certificate")
    if cert:
        lines.append(f"{'stitching':<18} coverage {cert['coverage']:.0%} of {cert['free_cells']} free cells; "
                     f"{cert['single_episode_solutions']} of {len(cert['tasks'])} evaluation tasks solved by a single "
                     f"episode; {cert['episodes_reaching_eval_goal']} episodes reach the evaluation goal")
        for t in cert["tasks"]:
            segs = "no chain in the data" if t["min_segments"] is None else f"min segments {t['min_segments']}"
            lines.append(f"{'':<18} {tuple(t['start'])} -> {tuple(t['goal'])} ({t['shortest_path_cells']} cells): "
                         f"{'SOLVED by one episode' if t['single_episode'] else 'no single episode'}, {segs}")
    for key, value in card.items():
        # Other builder-specific facts (human-like effects, ...) follow as-is.
        if key not in {"task", "transitions", "episodes", "terminals", "timeouts", "episode_length", "return",
                       "normalized_return", "normalized_return_unavailable", "reward", "action_abs_mean",
                       "stitching_certificate", "normalized_over"}:
            lines.append(f"{key:<18} {value}")
    return "\n".join(lines)


def plot_return_histogram(ds: OfflineDataset, task: Task, path: str | Path, title: str) -> Path:
    """PNG histogram of episode returns, with the reference scores marked when known."""
    from d4rl_lite.plotting import pyplot, save_figure

    plt = pyplot()
    returns = ds.episode_returns()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.hist(returns, bins=min(50, max(5, len(returns) // 4)), color="#4477aa", edgecolor="white")
    # The axis spans the data; a reference score outside it is marked by an arrow at that edge
    # (random data sits far below ref_max: a shared axis would squeeze it into a sliver).
    lo, hi = float(returns.min()), float(returns.max())
    pad = 0.05 * (hi - lo) if hi > lo else max(1.0, abs(hi) * 0.05)
    xlim = (lo - pad, hi + pad)
    ax.set_xlim(xlim)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.3)  # headroom: the reference labels sit above the bars, not on them
    box = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.9}
    for key, ref, colour in (("min", task.ref_min, "#cc3311"), ("max", task.ref_max, "#228833")):
        if ref.value is None:
            continue
        label = f"ref_{key} = {ref.value:.1f}"
        if xlim[0] <= ref.value <= xlim[1]:
            ax.axvline(ref.value, color=colour, linestyle="--", linewidth=1.2)
            ax.annotate(label, xy=(ref.value, 0.97), xycoords=("data", "axes fraction"), ha="right", va="top",
                        rotation=90, fontsize=8, color=colour, bbox=box, zorder=5)
        else:
            right = ref.value > xlim[1]
            ax.annotate(f"{label} {'→' if right else '←'}" if right else f"← {label}",
                        xy=(0.99 if right else 0.01, 0.97 if key == "max" else 0.90), xycoords="axes fraction",
                        ha="right" if right else "left", va="top", fontsize=8, color=colour, bbox=box, zorder=5)
    ax.set_xlabel("episode return (raw)")
    ax.set_ylabel("episodes")
    ax.set_title(f"{title}: {ds.num_episodes} episodes, {ds.num_transitions:,} transitions")
    return save_figure(fig, path)
