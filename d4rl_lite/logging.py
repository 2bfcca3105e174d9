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
_WANDB_COMPLETE_WAIT_S = 30.0
_WANDB_BLOCK = 32768  # LevelDB log blocks, counted from byte 0 of the file: the header sits in the first block


class _IncompleteWandbFile(Exception):
    """The run file ends early: wandb-core is still writing it (or was killed before it finished)."""


def read_wandb_offline(path: str | Path) -> list[dict[str, Any]]:
    """History rows of an offline W&B run (its ``run-*.wandb`` file, or the run directory).

    The file is a 7-byte header (``:W&B``, magic 0xBEE1, version) followed by a LevelDB-style record log:
    32 KiB blocks counted from the start of the file, chunks with a 7-byte header (CRC-32 IEEE of the type
    byte and payload, little-endian length, type: full / first / middle / last), records split across blocks.
    Each record is one of wandb's protobuf ``Record`` messages; every ``history`` record is returned as
    ``{key: value}`` (nested keys joined with "/").

    A file that is still being written (no ``exit`` record yet, or cut mid-record) is re-read until it is
    complete, for up to ``_WANDB_COMPLETE_WAIT_S`` seconds, then a ``ValueError``; a damaged file (CRC
    mismatch, bad chunk sequence, undecodable record) is a ``ValueError`` at once.
    """
    import time

    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("run-*.wandb"))
        if not found:
            raise FileNotFoundError(f"{path}: no run-*.wandb file in this W&B run directory")
        path = found[0]
    deadline = time.monotonic() + _WANDB_COMPLETE_WAIT_S
    while True:
        try:
            records = _wandb_records(path)
            break
        except _IncompleteWandbFile as e:
            if time.monotonic() >= deadline:
                raise ValueError(f"{path}: incomplete W&B run file ({e}) after waiting {_WANDB_COMPLETE_WAIT_S:g} s: "
                                 "wandb is still writing it, or the run was killed before wandb finished it") from None
            time.sleep(0.05)
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            rows.append({(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def _wandb_records(path: Path) -> list[Any]:
    """Every record of a complete run file, CRC-checked; raises ``_IncompleteWandbFile`` or ``ValueError``."""
    import struct
    import zlib

    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    if len(data) < 7:
        if not b":W&B".startswith(data[:4]):
            raise ValueError(f"{path} is not a W&B run file")
        raise _IncompleteWandbFile("shorter than its 7-byte header")
    ident, magic, version = struct.unpack_from("<4sHB", data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B run file")
    if version not in (0, 1):
        raise ValueError(f"{path}: W&B run file format version {version} is not supported")
    view, size = memoryview(data), len(data)
    pos, payloads, fragments, fragment_at = 7, [], None, 0
    while pos < size:
        block_end = (pos // _WANDB_BLOCK + 1) * _WANDB_BLOCK
        if block_end - pos < 7:  # too small for a chunk header: zero padding up to the next block
            if any(view[pos:block_end]):
                raise ValueError(f"{path}: corrupt W&B run file: non-zero block padding at byte {pos}")
            if size < block_end:
                raise _IncompleteWandbFile(f"ends in the padding of the block at byte {pos}")
            pos = block_end
            continue
        if size - pos < 7:
            raise _IncompleteWandbFile(f"ends inside the chunk header at byte {pos}")
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if crc == 0 and length == 0 and kind == 0 and fragments is None and not any(view[pos:block_end]):
            pos = block_end  # a zero-filled block tail between records (LevelDB readers skip it)
            continue
        end = pos + 7 + length
        if end > block_end:
            raise ValueError(f"{path}: corrupt W&B run file: the chunk at byte {pos} (length {length}) overruns its "
                             "32 KiB block")
        if end > size:
            raise _IncompleteWandbFile(f"ends inside the chunk at byte {pos}")
        if zlib.crc32(view[pos + 6 : end]) != crc:
            raise ValueError(f"{path}: corrupt W&B run file: CRC mismatch in the chunk at byte {pos}")
        payload = view[pos + 7 : end]
        if kind == 1 and fragments is None:  # a full record
            payloads.append((pos, bytes(payload)))
        elif kind == 2 and fragments is None:  # first of several chunks
            fragments, fragment_at = [payload], pos
        elif kind in (3, 4) and fragments is not None:  # middle / last chunk
            fragments.append(payload)
            if kind == 4:
                payloads.append((fragment_at, b"".join(fragments)))
                fragments = None
        else:
            raise ValueError(f"{path}: corrupt W&B run file: chunk type {kind} at byte {pos} is out of sequence")
        pos = end
    if fragments is not None:
        raise _IncompleteWandbFile(f"ends inside the record that starts at byte {fragment_at}")
    records = []
    for at, raw in payloads:
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(raw)
        except DecodeError as e:
            raise ValueError(f"{path}: corrupt W&B run file: the record at byte {at} does not decode ({e})") from None
        records.append(record)
    if not any(r.WhichOneof("record_type") == "exit" for r in records):
        raise _IncompleteWandbFile("no exit record yet")
    return records


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
