"""Looking at a dataset's HDF5 file before any array is read from it.

HDF5 can make a read fetch bytes from elsewhere: a dataset's raw data may live in *external*
files (any path, a FIFO included), a link may point into another HDF5 file, and a *virtual*
dataset maps other datasets, in this file or another. A file may also declare a shape far larger
than it holds (reading it allocates that much, filled with zeros). d4rl_lite writes none of that
except one form: Minari's ``episode_<i>`` datasets are virtual views over our own flat arrays,
source file ``"."`` (this file). So before reading, every link and dataset is inspected through
h5py's low-level API (which reads no data) and anything else is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from d4rl_lite.datasets.workspace import available_memory
from d4rl_lite.errors import DatasetError

# The flat arrays (``storage.FLAT_GROUP``) and the rows each must have: T transitions, E episodes
# (an episode's observations hold its final one too, so T + E rows).
FLAT_ROWS = {"actions": "T", "rewards": "T", "terminations": "T", "truncations": "T", "episode_lengths": "E",
             "observations": "T+E"}
_KINDS = "fiub"  # numbers and booleans; never strings, references, compounds or variable-length data
_OBJECTS_PER_EPISODE = 16  # an episode group and its views (a dict observation adds one per key)


def check_hdf5_file(f: h5py.File, path: Path, flat_group: str, steps: int, episodes: int, file_size: int,
                    advice: str, views: bool = True) -> None:
    """Refuse, before reading any data, what could make reading ``f`` touch another file, block, or
    allocate more than the file holds; ``steps``/``episodes`` are the metadata's counts.

    Every link and the flat arrays (what d4rl_lite reads) are always checked. ``views`` checks each
    episode view too (what Minari's API reads; d4rl_lite never does): about 0.15 ms a view, 6 to 9
    views an episode, so it is part of a verified load, not of the fast unverified one.
    """
    def refuse(problem: str, field: str | None = None) -> None:
        raise DatasetError(f"{problem}; refused before reading (d4rl_lite writes no such file)", path=path,
                           field=field, advice=advice)

    names = _hard_links(f, refuse, limit=_OBJECTS_PER_EPISODE * episodes + 64)
    flat = {name[len(flat_group) + 1:]: obj for name in names if name.startswith(flat_group + "/")
            and isinstance(obj := f[name], h5py.Dataset)}
    rows = {"T": steps, "E": episodes, "T+E": steps + episodes}
    declared = 0
    for key, dset in flat.items():
        name = f"{flat_group}/{key}"
        expected = rows.get(FLAT_ROWS.get(key.split("/")[0], ""))
        plist = dset.id.get_create_plist()
        if plist.get_external_count():
            refuse(f"stores its data in another file ({plist.get_external(0)[0].decode(errors='replace')})", name)
        if plist.get_layout() != h5py.h5d.CONTIGUOUS or plist.get_nfilters():
            refuse("is not one contiguous, uncompressed array of this file" + (
                f" (a virtual view of {_sources(plist)})" if plist.get_layout() == h5py.h5d.VIRTUAL else ""), name)
        if expected is None:
            refuse("is not one of the flat arrays d4rl_lite writes", name)
        if dset.dtype.kind not in _KINDS or dset.dtype.itemsize > 8:
            refuse(f"holds data of type {dset.dtype}, not numbers", name)
        if dset.ndim not in (1, 2) or dset.shape[0] != expected:
            refuse(f"declares shape {dset.shape}, but the metadata's {steps:,} transitions in {episodes:,} episodes "
                   f"need {expected:,} rows", name)
        nbytes = int(np.prod(dset.shape, dtype=np.int64)) * dset.dtype.itemsize
        if dset.id.get_storage_size() != nbytes:
            refuse(f"declares {nbytes:,} bytes but stores {dset.id.get_storage_size():,}", name)
        declared += nbytes
    if declared > file_size:
        refuse(f"its arrays declare {declared:,} bytes, more than the file's {file_size:,}")
    _check_memory(declared, path, advice)
    if views:
        shapes = {key: d.shape for key, d in flat.items()}
        for name in names:
            if not name.startswith(flat_group + "/"):
                _check_view(f, name, shapes, flat_group, refuse)


def _hard_links(f: h5py.File, refuse: Any, limit: int) -> list[str]:
    """The path of every object of ``f``, walked by HDF5 without opening one; any link but a hard link
    (an external link into another file, a soft link) is refused, and more objects than its episodes need."""
    names: list[str] = []
    bad: list[tuple[str, int]] = []

    def visit(name: bytes, info: Any) -> bool | None:  # True stops the walk (HDF5 cannot carry an exception)
        if info.type != h5py.h5l.TYPE_HARD:
            bad.append((name.decode(errors="replace"), info.type))
            return True
        names.append(name.decode(errors="replace"))
        return len(names) > limit or None

    f.id.links.visit(visit, info=True)
    if bad:
        name, kind = bad[0]
        if kind == h5py.h5l.TYPE_EXTERNAL:
            filename, target = _external_target(f, name)
            refuse(f"is a link to {target!r} in another file ({filename})", name)
        refuse("is a soft or user-defined link, not an array or group of this file", name)
    if len(names) > limit:
        refuse(f"holds more than the {limit:,} objects its episodes need")
    return names


def _external_target(f: h5py.File, name: str) -> tuple[str, str]:
    link = f.get(name, getlink=True)
    return getattr(link, "filename", "?"), getattr(link, "path", "?")


def _sources(plist: Any) -> str:
    return ", ".join(f"{plist.get_virtual_dsetname(i)!r} in {plist.get_virtual_filename(i)!r}"
                     for i in range(min(plist.get_virtual_count(), 3)))


def _check_view(f: h5py.File, name: str, flat: dict[str, tuple[int, ...]], flat_group: str, refuse: Any) -> None:
    """An object outside the flat arrays: a group, or a virtual view mapping rows of our own flat
    arrays, in this file, within their bounds (low-level calls: the checks read no data)."""
    oid = h5py.h5o.open(f.id, name.encode())
    if isinstance(oid, h5py.h5g.GroupID):
        return
    if not isinstance(oid, h5py.h5d.DatasetID):
        refuse("is neither an array nor a group", name)
    plist = oid.get_create_plist()
    if plist.get_external_count():
        refuse(f"stores its data in another file ({plist.get_external(0)[0].decode(errors='replace')})", name)
    if plist.get_layout() != h5py.h5d.VIRTUAL:
        refuse("is an array outside the flat arrays and the episodes' views of them", name)
    shape, count = oid.get_space().shape, plist.get_virtual_count()
    if not count:
        refuse("is a virtual view of nothing", name)
    for i in range(count):
        file_name, target = plist.get_virtual_filename(i), plist.get_virtual_dsetname(i).lstrip("/")
        key = target[len(flat_group) + 1:] if target.startswith(flat_group + "/") else None
        if file_name != "." or key not in flat:
            refuse(f"is a virtual view of {target!r} in {file_name!r}; only views of this file's own "
                   f"{flat_group} arrays are read", name)
        for space, extent, what in ((plist.get_virtual_srcspace(i), flat[key], target),
                                    (plist.get_virtual_vspace(i), shape, name)):
            try:
                start, end = space.get_select_bounds()
            except Exception:  # noqa: BLE001  an empty or unreadable selection
                refuse(f"maps a selection of {what} that cannot be read", name)
            if len(end) != len(extent) or any(e >= n for e, n in zip(end, extent)):
                refuse(f"maps rows {tuple(start)}..{tuple(end)} of {what}, outside its shape {extent}", name)
        if not shape or shape[0] > flat[key][0]:  # Minari reads a view whole: no more rows than its source
            refuse(f"declares shape {shape}, more rows than its source {target!r} holds", name)


def _check_memory(nbytes: int, path: Path, advice: str) -> None:
    available = available_memory()
    if available is not None and nbytes > available:
        raise DatasetError(f"reading its arrays needs {nbytes / 1e9:.1f} GB of memory; {available / 1e9:.1f} GB is "
                           "available", path=path, advice="Load it on a machine with more memory.")
