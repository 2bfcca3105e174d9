"""Run logging: JSONL always, Weights & Biases when asked (offline without a key; never fatal)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any


class RunLogger:
    """Appends ``{"step": s, **metrics}`` lines to ``path``; mirrors them to W&B when ``wandb`` is set.

    ``wandb``: None, or a dict of ``wandb.init`` arguments (project, group, name, config, dir). Any
    W&B failure is reported once on stderr and W&B is switched off: training goes on.
    """

    def __init__(self, path: str | Path, wandb: dict[str, Any] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a")
        self._wandb = None
        self.wandb_dir: str | None = None
        self.wandb_offline = False
        if wandb is not None:
            self._start_wandb(wandb)

    def _start_wandb(self, kwargs: dict[str, Any]) -> None:
        try:
            import wandb

            self.wandb_offline = not os.environ.get("WANDB_API_KEY") and os.environ.get("WANDB_MODE") != "online"
            mode = "offline" if self.wandb_offline else os.environ.get("WANDB_MODE", "online")
            self._wandb = wandb.init(mode=mode, reinit="create_new", **kwargs)
            self.wandb_dir = self._wandb.dir
        except Exception as e:  # noqa: BLE001 - W&B must never stop a run
            self._disable_wandb(e)

    def _disable_wandb(self, error: BaseException) -> None:
        print(f"d4rl-lite: W&B disabled for this run ({type(error).__name__}: {error}); JSONL logging continues",
              file=sys.stderr)
        self._wandb = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._wandb is not None:
            try:
                self._wandb.log({k: v for k, v in row.items() if k != "step"}, step=int(step))
            except Exception as e:  # noqa: BLE001
                self._disable_wandb(e)

    def summary(self, values: dict[str, Any]) -> None:
        if self._wandb is not None:
            try:
                self._wandb.summary.update({k: _plain(v) for k, v in values.items()})
            except Exception as e:  # noqa: BLE001
                self._disable_wandb(e)

    def close(self) -> None:
        self._file.close()
        if self._wandb is not None:
            try:
                run_dir = str(Path(self._wandb.dir).parent)
                self._wandb.finish()
                if self.wandb_offline:
                    print(f"W&B run saved offline; upload it with: wandb sync {run_dir}", file=sys.stderr)
            except Exception as e:  # noqa: BLE001
                self._disable_wandb(e)


def truncate_log(path: str | Path, last_step: int) -> None:
    """Drop log lines after ``last_step`` (a resumed run rewrites them, exactly as before).

    A line cut short by a kill (the last one, unterminated or unreadable) is dropped with a warning.
    """
    path = Path(path)
    if not path.exists():
        return
    keep = [json.dumps(row) for row in read_log(path, repair_note=True) if row["step"] <= last_step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


def read_log(path: str | Path, repair_note: bool = False) -> list[dict[str, Any]]:
    """The rows of a JSONL run log. A damaged last line (a kill mid-write) is skipped with a warning;
    damage anywhere else is a ``CorruptFileError`` naming the file and line."""
    from d4rl_lite.files import CorruptFileError

    path = Path(path)
    lines = path.read_text(errors="replace").split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError("not a log row")
        except ValueError:
            if i >= len(lines) - 2 and all(not rest.strip() for rest in lines[i + 1:]):
                if repair_note:
                    print(f"d4rl-lite: warning: {path}: dropped a partial last line (the run was killed while "
                          "writing it)", file=sys.stderr)
                continue
            raise CorruptFileError(f"{path}: line {i + 1} is not a log row; the log was damaged. "
                                   "Delete the run directory and train again.") from None
        rows.append(row)
    return rows


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf
    return v



# How long read_wandb_offline waits for wandb-core to finish a run file. ``wandb.finish()`` returns before
# wandb-core has written the file's last block (it is told to close the run without waiting for it), so a
# file read straight after finish() can still be a bare 7-byte header or end mid-record.
