"""Files the project writes and reads back: checkpoints and JSON records, verified and never executable.

Checkpoints (training state: weights, optimizer state, RNG states, step) are safetensors files.
Safetensors holds tensors and a JSON header, nothing that runs when read (unlike a pickle,
which ``torch.load`` executes). A checkpoint's nested structure (dicts, lists, numbers,
strings) is kept as JSON in the header with each tensor replaced by a reference, and a SHA-256
over that JSON and every tensor's dtype, shape and bytes is stored beside it and checked on
every read. JSON records (``result.json``) carry the SHA-256 of their own canonical form in a
``checksum`` field.

Every failure to read (missing, truncated, bit-flipped, wrong format, pickle) is a
``CorruptFileError`` naming the file: one clear line, never a traceback.

Records, checkpoints, logs, dataset metadata, reference-score files and suites are read through
``read_regular_file`` (or ``read_json``): only a regular file of a bounded size is read, so a FIFO
never blocks a command and ``/dev/zero`` (or a sparse giant) never fills the memory.

Writes are atomic (a temporary file in the same directory, then ``os.replace``), so a kill at
any moment leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4rl_lite.errors import D4RLLiteError

CHECKPOINT_FORMAT = "d4rl_lite.state/1"
_TENSOR, _TUPLE, _ITEMS = "$tensor", "$tuple", "$items"


class CorruptFileError(D4RLLiteError, ValueError):
    """A file the project wrote does not read back intact (truncated, altered, or not ours)."""


# -- bounded reads of regular files ------------------------------------------------------------
# Our files are kilobytes (JSON) to megabytes (logs, checkpoints); the limits only stop a hostile
# or damaged file from making a command allocate without bound.
MAX_JSON_BYTES = 64 * 2**20  # metadata, records, suites, reference files, cards
MAX_LOG_BYTES = 2**30  # a run's JSONL log: one line per logged step
MAX_CHECKPOINT_BYTES = 8 * 2**30
MAX_JSON_DEPTH = 64  # ours nest about 10 deep; a deeper file is not ours (and 100k deep overflows the stack)

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


class UnreadableFileError(CorruptFileError):
    """Not a regular file of a plausible size (a FIFO, a device, a directory, a giant), or unreadable."""

    def __init__(self, path: Path, what: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {what} {problem}")


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file; d4rl-lite reads only regular files (replace it with the file itself)"


def regular_file_size(path: str | Path, what: str = "file") -> int:
    """The size of ``path`` if it is a regular file, looked at without opening it (for readers that
    open the file themselves, as h5py does). Missing: ``FileNotFoundError``; else ``UnreadableFileError``."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise UnreadableFileError(path, what, f"cannot be read ({e.strerror or e})") from None
    problem = _not_regular(st.st_mode)
    if problem:
        raise UnreadableFileError(path, what, problem)
    return st.st_size


def regular_file_exists(path: str | Path, what: str = "file") -> bool:
    """Whether a regular file is at ``path`` (False when nothing is); a FIFO, device or directory there
    is an ``UnreadableFileError`` saying what it is, not "missing" (``Path.is_file`` would say False)."""
    try:
        regular_file_size(path, what)
    except FileNotFoundError:
        return False
    return True


def read_regular_file(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Checked before opening (opening some devices has effects) and again on the descriptor, opened
    non-blocking (a FIFO would block ``open`` until a writer appears). A missing file raises
    ``FileNotFoundError`` as ``open`` would; anything else wrong is an ``UnreadableFileError``.
    """
    path = Path(path)
    regular_file_size(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            problem = _not_regular(st.st_mode)
            if problem:  # swapped between the two looks
                raise UnreadableFileError(path, what, problem)
            if st.st_size > limit:
                raise UnreadableFileError(path, what, f"is {st.st_size:,} bytes, more than the {limit:,} such a file "
                                                      "can hold; not read (it is damaged or not ours)")
            data = f.read(st.st_size + 1)  # one byte more: a file growing while read is caught below
    except (FileNotFoundError, UnreadableFileError):
        raise
    except OSError as e:
        raise UnreadableFileError(path, what, f"cannot be read ({e.strerror or e})") from None
    if len(data) > st.st_size:
        raise UnreadableFileError(path, what, "grew while it was read (another process is writing it); try again")
    return data


def json_depth_exceeds(obj: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``obj`` nests containers more than ``limit`` deep (iterative: no recursion to overflow)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return False


def read_json(path: str | Path, what: str = "file", advice: str = "", limit: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file read with ``read_regular_file``; not JSON, or nested deeper than any file
    of ours, is one ``CorruptFileError`` (``advice`` appended). A missing file raises FileNotFoundError."""
    path = Path(path)
    data = read_regular_file(path, limit, what)
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        kind = "nested too deep" if isinstance(e, RecursionError) else type(e).__name__
        raise CorruptFileError(f"{path}: {what} is not valid JSON ({kind}). {advice}".rstrip()) from None
    if json_depth_exceeds(obj):
        raise CorruptFileError(f"{path}: {what} nests more than {MAX_JSON_DEPTH} levels deep, which no file of "
                               f"d4rl-lite does (damaged or not ours). {advice}".rstrip())
    return obj


# -- atomic writes --------------------------------------------------------------------------
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


# -- nested training state <-> safetensors --------------------------------------------------
def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON skeleton of ``obj``; tensors go to ``tensors`` under a generated key."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(obj, np.ndarray):
        return _encode(torch.from_numpy(np.ascontiguousarray(obj)), tensors)
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {_ITEMS: [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (plain containers, numbers, strings and tensors only)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if _TENSOR in obj:
            return tensors[obj[_TENSOR]]
        if _TUPLE in obj:
            return tuple(_decode(v, tensors) for v in obj[_TUPLE])
        if _ITEMS in obj:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj[_ITEMS]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    return obj


def _digest(skeleton: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(skeleton.encode())
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a nested training state atomically as a verified safetensors file."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.dumps(_encode(state, tensors), allow_nan=True)
    metadata = {"format": CHECKPOINT_FORMAT, "skeleton": skeleton, "sha256": _digest(skeleton, tensors)}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify a state written by ``save_state``; any defect is one ``CorruptFileError``."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    advice = "It cannot be used: delete it (or the run directory) and train again, or restore it from a copy."
    try:
        data = read_regular_file(path, MAX_CHECKPOINT_BYTES, "checkpoint")
    except FileNotFoundError:
        raise CorruptFileError(f"{path}: checkpoint not found") from None
    # A safetensors file is an 8-byte header length, then the JSON header ("{"). Its first byte is
    # that length's low byte, which can be 0x80 like a pickle's: look at the structure first.
    looks_like_safetensors = len(data) > 9 and data[8:9] == b"{" and int.from_bytes(data[:8], "little") <= len(data) - 8
    if not looks_like_safetensors and (data[:1] == b"\x80" or data[:2] == b"PK"):  # pickle / torch.save zip: never read
        raise CorruptFileError(f"{path}: is a pickle-based torch checkpoint, which this version does not read "
                               "(a pickle can run code when loaded). Re-train, or convert it in a trusted session.")
    try:
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        metadata = header.get("__metadata__") or {}
        if metadata.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a d4rl_lite checkpoint")
        tensors = load(data)
        skeleton = metadata["skeleton"]
        if _digest(skeleton, tensors) != metadata["sha256"]:
            raise CorruptFileError(f"{path}: checksum mismatch: the checkpoint was altered or damaged after it was "
                                   f"written. {advice}")
        structure = json.loads(skeleton)
        if json_depth_exceeds(structure):  # _decode recurses
            raise ValueError(f"its state nests more than {MAX_JSON_DEPTH} levels deep")
        state = _decode(structure, tensors)
    except CorruptFileError:
        raise
    except (SafetensorError, ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError,
            RecursionError) as e:
        raise CorruptFileError(f"{path}: not a readable d4rl_lite checkpoint ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:120] if str(e) else 'malformed'}). {advice}") from None
    if not isinstance(state, dict):
        raise CorruptFileError(f"{path}: not a d4rl_lite checkpoint (no state inside). {advice}")
    return _to_device(state, map_location)


def _to_device(obj: Any, device: str | torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_device(v, device) for v in obj)
    return obj


# -- JSON records with their own checksum --------------------------------------------------------
def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in record.items() if k != "checksum"}, sort_keys=True, allow_nan=True).encode()


def write_record(path: str | Path, record: dict[str, Any]) -> None:
    """A JSON object with ``checksum`` = SHA-256 of its canonical form, written atomically."""
    record = {k: v for k, v in record.items() if k != "checksum"}
    record = json.loads(json.dumps(record))  # tuples -> lists, as read back
    record["checksum"] = "sha256:" + hashlib.sha256(_canonical(record)).hexdigest()
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def read_record(path: str | Path, what: str = "record") -> dict[str, Any]:
    """Read and verify a JSON object written by ``write_record``; defects are one ``CorruptFileError``."""
    path = Path(path)
    try:
        record = read_json(path, what, "It was truncated or damaged: re-run the run that wrote it.")
    except FileNotFoundError:
        raise CorruptFileError(f"{path}: {what} not found") from None
    if not isinstance(record, dict):
        raise CorruptFileError(f"{path}: {what} must be a JSON object, found {type(record).__name__}. "
                               "Re-run the run that wrote it.")
    expected = "sha256:" + hashlib.sha256(_canonical(record)).hexdigest()
    if record.get("checksum") != expected:
        problem = "has no checksum" if "checksum" not in record else "checksum mismatch: it was edited or damaged"
        raise CorruptFileError(f"{path}: {what} {problem}. Re-run the run that wrote it "
                               "(results are only read as written by d4rl-lite).")
    return record
