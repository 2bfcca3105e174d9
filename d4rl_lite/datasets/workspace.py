"""Where builds work: room checks before a build, temporary directories, and removing the ones
a killed build left behind (only those no live build holds, see ``d4rl_lite.locking``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from d4rl_lite.errors import UserInputError
from d4rl_lite.tasks import Task

TMP_PREFIX = ".d4rl_lite-tmp-"


def estimated_bytes(task: Task, size: int) -> int:
    """A build's peak footprint: float32 observations, next observations, actions and scalars per
    transition, about three copies at once while episodes are collected, flattened and written."""
    per_transition = 4 * (2 * task.observation_dim + task.action_dim + 4)
    return 3 * per_transition * size


def check_room_for(task: Task, size: int, root: Path) -> None:
    """Refuse, with the figures, a build that cannot fit in memory or on disk."""
    need = estimated_bytes(task, size)
    avail_mem = available_memory()
    probe = root
    while not probe.exists():
        probe = probe.parent
    free_disk = shutil.disk_usage(probe).free
    gb = 1e9
    if avail_mem is not None and need > avail_mem:
        raise UserInputError(f"--size {size:,} needs about {need / gb:.1f} GB of memory to build; {avail_mem / gb:.1f} GB "
                         "is available. Ask for fewer transitions.")
    if need / 3 > free_disk:
        raise UserInputError(f"--size {size:,} needs about {need / 3 / gb:.1f} GB on disk; {free_disk / gb:.1f} GB is free "
                         f"under {probe}. Free space, pass another --root, or ask for fewer transitions.")


def available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def temporary_lock_dir(tmp: Path) -> Path:
    return tmp.parent / ".locks" / tmp.name


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete half-written datasets left by a killed build (temporary directories no live build holds)."""
    from d4rl_lite.locking import is_locked

    removed = []
    if not root.is_dir():
        return removed
    for tmp in root.glob(TMP_PREFIX + "*"):
        if tmp.is_dir() and not is_locked(temporary_lock_dir(tmp)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed
