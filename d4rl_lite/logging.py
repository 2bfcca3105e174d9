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
            self._wandb = wandb.init(mode=mode, reinit="finish_previous", **kwargs)
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
    """Drop log lines after ``last_step`` (a resumed run rewrites them, exactly as before)."""
    path = Path(path)
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf
    return v



def read_wandb_offline(path: str | Path) -> list[dict[str, Any]]:
    """History rows of an offline W&B run (its ``run-*.wandb`` file, or the run directory).

    The file is a LevelDB-style record log (32 KiB blocks, 7-byte record headers) of wandb's own
    protobuf ``Record`` messages; we decode the records with wandb's schema and return each
    ``history`` record as ``{key: value}`` (nested keys joined with "/").
    """
    import struct

    from wandb.proto import wandb_internal_pb2

    path = Path(path)
    if path.is_dir():
        path = next(path.glob("run-*.wandb"))
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    block, pos, chunks, partial = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # full record
            chunks.append(payload)
        elif kind == 2:  # first / middle / last fragments
            partial = payload
        elif kind == 3:
            partial += payload
        elif kind == 4:
            chunks.append(partial + payload)
    rows = []
    for raw in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append({(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def log_benchmark_to_wandb(suite: str, rows: list[dict[str, Any]], images: list[Path], results_dir: Path,
                           project: str = "d4rl-lite") -> Path | None:
    """One W&B run per benchmark report: the table as a wandb.Table and the plots as images.

    Returns the W&B run directory, or None when W&B failed (reported, never fatal).
    """
    logger = RunLogger(results_dir / "wandb_report.jsonl",
                       {"project": project, "group": "benchmark", "name": f"{suite}-table", "dir": str(results_dir),
                        "job_type": "report"})
    if logger._wandb is None:
        logger.close()
        return None
    try:
        import wandb

        columns = list(rows[0])
        payload: dict[str, Any] = {"benchmark/table": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])}
        for img in images:
            payload[f"benchmark/{img.stem}"] = wandb.Image(str(img))
        logger._wandb.log(payload)
        run_dir = Path(logger._wandb.dir).parent
    except Exception as e:  # noqa: BLE001
        logger._disable_wandb(e)
        run_dir = None
    logger.close()
    return run_dir
