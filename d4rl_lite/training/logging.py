"""Run logging: JSONL always, Weights & Biases when asked (offline without a key; never fatal)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any


WANDB_INIT_TIMEOUT_S = 15  # seconds W&B may take to start a run before it is switched off
SUMMARY_FILE = "d4rl_lite_summary.json"  # in the W&B run's files/: each metric's last value, readable offline


def wandb_run_args(tc: Any, member: Any, finetune: bool = False) -> dict[str, Any] | None:
    """``wandb.init``'s arguments for one member's run, or None when ``tc.wandb`` is off: runs are named
    by their run id and grouped by algorithm and dataset, fine-tuning runs in groups of their own."""
    if not tc.wandb:
        return None
    spec = member.spec
    return {"project": tc.wandb_project, "group": f"{spec.algorithm}-{spec.dataset}" + ("-finetune" if finetune else ""),
            "name": spec.finetune_run_id if finetune else spec.run_id, "config": member.record, "dir": str(member.run)}


class RunLogger:
    """Appends ``{"step": s, **metrics}`` lines to ``path``; mirrors them to W&B when ``wandb`` is set.

    ``wandb``: None, or a dict of ``wandb.init`` arguments (project, group, name, config, dir). Any
    W&B failure is reported once on stderr and W&B is switched off: training goes on.
    """

    def __init__(self, path: str | Path | None, wandb: dict[str, Any] | None = None):
        self.path = Path(path) if path is not None else None  # None: W&B only (a report's table and plots)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a") if self.path is not None else None
        self.last: dict[str, Any] = {}  # every metric's latest value: the W&B run's summary
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
            # Online without a network W&B retries for minutes and prints its own lines: wait a bounded
            # time, say it once (below), and go on logging to JSONL. WANDB_INIT_TIMEOUT still overrides.
            os.environ.setdefault("WANDB_SILENT", "true")
            timeout = {} if "WANDB_INIT_TIMEOUT" in os.environ else {"init_timeout": WANDB_INIT_TIMEOUT_S}
            self._wandb = wandb.init(mode=mode, reinit="create_new", settings=wandb.Settings(**timeout), **kwargs)
            self.wandb_dir = self._wandb.dir
        except Exception as e:  # noqa: BLE001 - W&B must never stop a run
            self._disable_wandb(e)

    def _disable_wandb(self, error: BaseException) -> None:
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        print(f"d4rl-lite: W&B disabled for this run ({type(error).__name__}: {first_line}); JSONL logging continues",
              file=sys.stderr)
        self._wandb = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self.last.update(row)
        if self._file is not None:
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
        if self._file is not None:
            self._file.close()
        if self._wandb is not None:
            try:
                run_dir = str(Path(self._wandb.dir).parent)
                if self.last:  # W&B's own run file needs W&B to read; this one is plain JSON, uploaded with the run
                    (Path(self._wandb.dir) / SUMMARY_FILE).write_text(json.dumps(self.last, indent=2) + "\n")
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
    from d4rl_lite.files import MAX_LOG_BYTES, CorruptFileError, json_depth_exceeds, read_regular_file

    path = Path(path)
    lines = read_regular_file(path, MAX_LOG_BYTES, "log").decode(errors="replace").split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            row = None
            # A kill mid-write leaves the last line unreadable: dropped. A line that parses but is not
            # a log row (a step that is not a whole number, say) was written so: damage, wherever it is.
            if i >= len(lines) - 2 and all(not rest.strip() for rest in lines[i + 1:]):
                if repair_note:
                    print(f"d4rl-lite: warning: {path}: dropped a partial last line (the run was killed while "
                          "writing it)", file=sys.stderr)
                continue
        if row is None or not isinstance(row, dict) or type(row.get("step")) is not int or json_depth_exceeds(row):
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
