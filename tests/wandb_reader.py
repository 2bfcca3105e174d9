"""A reader of W&B's offline run files (``run-*.wandb``), for tests: wandb ships no Python reader.

The file is a 7-byte header and a LevelDB-style log (32 KiB blocks counted from byte 0, 7-byte
chunk headers with a CRC-32 (IEEE) of type + payload) of wandb's protobuf ``Record`` messages.
``wandb.finish()`` returns before wandb-core has written the file's end, so a reader waits for
the ``exit`` record rather than reading whatever is there.
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path
from typing import Any

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
