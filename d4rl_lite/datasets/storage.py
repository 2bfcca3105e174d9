"""Minari-format (HDF5) storage: atomic, validated writes and a fast, verified direct-HDF5 load path.

About 340 lines: the write and the verified read of one format, each read against the other.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from d4rl_lite.datasets.episodes import EpisodeArrays
from d4rl_lite.datasets.locations import DATA_DIR, MAIN_FILE, METADATA_FILE, NAMESPACE_FILE, datasets_root, rebuild_advice
from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.datasets.hdf5_safety import check_hdf5_file
from d4rl_lite.datasets.validation import check_metadata, checksum, validate_dataset, verify_checksum
from d4rl_lite.datasets.workspace import TMP_PREFIX, estimated_bytes, temporary_lock_dir
from d4rl_lite.files import CorruptFileError, read_json, regular_file_size
from d4rl_lite.errors import ChecksumMismatchError, DatasetError, TaskMismatchError, UnknownNameError
from d4rl_lite.tasks import Task, get_task

OUR_KEY = "d4rl_lite"  # our block inside Minari's metadata.json
FLAT_GROUP = "d4rl_lite_flat"  # the flat arrays inside main_data.hdf5
FORMAT_VERSION = 1


def read_metadata(data_dir: Path) -> dict[str, Any]:
    meta_path = data_dir / METADATA_FILE
    advice = "The metadata file is damaged. " + rebuild_advice(data_dir)
    try:
        meta = read_json(meta_path, "metadata")
    except FileNotFoundError:
        raise DatasetError("metadata file is missing", path=meta_path, advice=advice) from None
    except CorruptFileError as e:  # not a regular file, too large, not JSON, nested too deep
        raise DatasetError(str(e).removeprefix(f"{meta_path}: "), path=meta_path, advice=advice) from None
    if not isinstance(meta, dict):
        raise DatasetError(f"metadata must be a JSON object, found {type(meta).__name__}", path=meta_path, advice=advice)
    if not isinstance(meta.get(OUR_KEY), dict):
        raise DatasetError(
            f"not a d4rl_lite dataset (metadata has no {OUR_KEY!r} block); d4rl_lite validates only the "
            "datasets it wrote. Read foreign Minari datasets with minari.load_dataset",
            path=meta_path,
            field=OUR_KEY,
        )
    return meta


# -- reading ---------------------------------------------------------------------------------
def read_episode_arrays(data_dir: Path, num_episodes: int, num_steps: int, advice: str = "",
                        views: bool = True) -> EpisodeArrays:
    """Read the flat arrays straight from HDF5: one contiguous read per array (the fast path), after
    ``check_hdf5_file`` has looked at every link and array (and with ``views``, Minari's episode views)."""
    h5_path = data_dir / MAIN_FILE
    rebuild = advice or rebuild_advice(data_dir)
    advice = "The file is truncated or corrupt. " + rebuild
    try:
        size = regular_file_size(h5_path, "HDF5 data file")  # h5py would block on a FIFO
        f = h5py.File(h5_path, "r")
    except FileNotFoundError:
        raise DatasetError("HDF5 data file is missing", path=h5_path, advice=advice) from None
    except CorruptFileError as e:  # not a regular file
        raise DatasetError(str(e).removeprefix(f"{h5_path}: "), path=h5_path, advice=rebuild) from None
    except OSError as e:
        raise DatasetError(f"cannot open the HDF5 file ({e})", path=h5_path, advice=advice) from None
    with f:
        try:
            check_hdf5_file(f, h5_path, FLAT_GROUP, num_steps, num_episodes, size, rebuild, views)
            flat = f[FLAT_GROUP]
            if f"episode_{num_episodes - 1}" not in f or f"episode_{num_episodes}" in f:
                raise DatasetError(f"the file's episode groups do not match the {num_episodes} episodes in the metadata",
                                   path=h5_path, field="episodes", advice=advice)
            obs = flat["observations"]
            observations: Any = ({k: v[()] for k, v in obs.items()} if isinstance(obs, h5py.Group) else obs[()])
            return EpisodeArrays(
                observations=observations,
                actions=flat["actions"][()],
                rewards=flat["rewards"][()],
                terminations=flat["terminations"][()],
                truncations=flat["truncations"][()],
                episode_lengths=flat["episode_lengths"][()],
            )
        except DatasetError:
            raise
        except KeyError as e:
            raise DatasetError(f"array missing from the file ({e})", path=h5_path, field=FLAT_GROUP, advice=advice) from None
        except (OSError, RuntimeError, ValueError, TypeError) as e:
            raise DatasetError(f"cannot read the arrays ({type(e).__name__}: {e})", path=h5_path, advice=advice) from None


# Top-level Minari metadata that decides how the data is read or scored; with our whole block,
# covered by ``metadata_checksum`` (the arrays have their own ``checksum``).
INTERPRETATION_KEYS = ("dataset_id", "total_episodes", "total_steps", "ref_min_score", "ref_max_score")


def metadata_checksum(meta: dict[str, Any]) -> str:
    covered = {OUR_KEY: {k: v for k, v in meta[OUR_KEY].items() if k != "metadata_checksum"},
               **{k: meta.get(k) for k in INTERPRETATION_KEYS}}
    return "sha256:" + hashlib.sha256(json.dumps(covered, sort_keys=True, allow_nan=True).encode()).hexdigest()


def read_verified_metadata(data_dir: Path) -> dict[str, Any]:
    """``read_metadata``, then its checksum: task, kind, observation layout and reference scores
    decide how the arrays are read and scored, so an edit to any of them is caught before use."""
    meta = read_metadata(data_dir)
    ours = meta[OUR_KEY]
    if ours.get("metadata_checksum") != metadata_checksum(meta):
        problem = ("metadata has no metadata checksum (written by an older d4rl-lite)" if "metadata_checksum" not in ours
                   else "metadata was edited or damaged after it was written (its checksum does not match)")
        raise ChecksumMismatchError(problem, path=data_dir / METADATA_FILE, field="d4rl_lite.metadata_checksum",
                                    advice=rebuild_advice(data_dir, ours))
    check_metadata(meta, data_dir / METADATA_FILE, rebuild_advice(data_dir, ours))
    return meta


def load_from_dir(data_dir: Path, expected_task: str | None = None, verify: bool = True) -> OfflineDataset:
    """Load, validate and checksum a d4rl_lite dataset stored in ``data_dir``."""
    meta = read_verified_metadata(data_dir)
    ours = meta[OUR_KEY]
    advice = rebuild_advice(data_dir, ours)
    try:
        task = get_task(str(ours.get("task", "<missing>")))
    except UnknownNameError as e:
        raise DatasetError(f"metadata names an unknown task ({e})", path=data_dir / METADATA_FILE, field="d4rl_lite.task") from None
    if expected_task is not None and expected_task != task.name:
        raise TaskMismatchError(
            f"dataset was built for task {task.name!r}, but was opened as task {expected_task!r}",
            path=data_dir,
            field="d4rl_lite.task",
            advice=f"Open it as {task.name!r}, or pick a dataset of task {expected_task!r} (see `d4rl-lite list`).",
        )
    # Counts checked by check_metadata; Minari's episode views (not read here) are checked when verifying.
    raw = read_episode_arrays(data_dir, meta["total_episodes"], meta["total_steps"], advice, views=verify)
    if not verify:
        flat = raw.to_offline(task, metadata=ours)
    else:
        # Hashing runs in a second thread (hashlib releases the GIL) while the arrays are
        # flattened and validated; content errors are reported before a checksum mismatch.
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(checksum, raw.leaves())
            flat = raw.to_offline(task, metadata=ours)
            validate_dataset(flat, task, path=data_dir / MAIN_FILE, advice=advice,
                             max_episode_steps=ours.get("max_episode_steps"), check_successors=False)
            verify_checksum(digest.result(), ours.get("checksum"), data_dir / MAIN_FILE, advice)
    flat.metadata["path"] = str(data_dir.parent)
    return flat


# -- writing ---------------------------------------------------------------------------------
def _float32_space(space: gym.Space) -> gym.Space:
    """The env's observation space with float32 boxes: what the stored arrays really are."""
    if isinstance(space, gym.spaces.Dict):
        return gym.spaces.Dict({k: _float32_space(s) for k, s in space.spaces.items()})
    if isinstance(space, gym.spaces.Box):
        return gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), space.shape, np.float32)
    return space


def _write_hdf5(h5_path: Path, raw: EpisodeArrays) -> None:
    """Write the arrays once, flat, and expose each episode to Minari as virtual datasets.

    Minari reads ``episode_<i>/observations`` etc.; here those are HDF5 virtual datasets
    mapping slices of the flat arrays in ``d4rl_lite_flat``. So there is one copy of the
    data: what Minari's API returns is exactly the bytes our fast path reads and checksums.
    """
    lengths = raw.episode_lengths
    ends = np.cumsum(lengths)
    starts = ends - lengths
    with h5py.File(h5_path, "w", libver=("v110", "latest")) as f:
        flat = f.create_group(FLAT_GROUP)
        leaves = raw.leaves()
        for key, arr in leaves.items():
            flat.create_dataset(key, data=arr)
        sources = {key: h5py.VirtualSource(".", f"{FLAT_GROUP}/{key}", shape=arr.shape, dtype=arr.dtype)
                   for key, arr in leaves.items() if key != "episode_lengths"}
        for e, (s, t) in enumerate(zip(starts.tolist(), ends.tolist())):
            group = f.create_group(f"episode_{e}")
            group.attrs["id"] = e
            group.attrs["total_steps"] = t - s
            for key, src in sources.items():
                # Episode e's observations (T + 1 rows, the final one included) start at row s + e.
                lo, hi = (s + e, t + e + 1) if key.startswith("observations") else (s, t)
                layout = h5py.VirtualLayout(shape=(hi - lo, *src.shape[1:]), dtype=src.dtype)
                layout[:] = src[lo:hi]
                group.create_virtual_dataset(key, layout)


def _write_namespace_files(root: Path, dataset_id: str) -> None:
    """Minari lists a namespace only if each level holds a namespace_metadata.json."""
    parts = dataset_id.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        f = root.joinpath(*parts[:i]) / NAMESPACE_FILE
        if not f.exists():
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps({"description": "datasets generated by d4rl_lite"} if i == 1 else {}))


def _fsync_tree(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def write_dataset(
    dataset_id: str,
    task: Task,
    raw: EpisodeArrays,
    our_metadata: dict[str, Any],
    *,
    root: str | os.PathLike | None = None,
    overwrite: bool = False,
    minari_metadata: dict[str, Any] | None = None,
) -> Path:
    """Validate ``raw`` and write it as a Minari dataset ``dataset_id`` under ``root``; return its dir.

    The dataset is assembled in a hidden temporary directory next to its destination and moved
    into place by rename, so a crash leaves either the old dataset or the new one, never half
    of one. Bad data raises before anything is written; an existing dataset is kept unless
    ``overwrite``.
    """
    from d4rl_lite.locking import RunDirLock

    root = datasets_root(root)
    final = root / dataset_id
    if final.exists() and not overwrite:
        raise FileExistsError(f"dataset {dataset_id} already exists at {final}; pass --force (overwrite=True) to replace it")
    ours = _our_block(dataset_id, task, raw, our_metadata)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    lock = RunDirLock(temporary_lock_dir(tmp), what="temporary dataset")
    try:
        lock.acquire()  # marks tmp live for remove_stale_temporaries
        tmp.mkdir()
        _write_minari_dir(tmp / DATA_DIR, dataset_id, task, raw, ours, our_metadata, minari_metadata)
        # Read back what is on disk before it replaces anything.
        load_from_dir(tmp / DATA_DIR, expected_task=task.name, verify=True)
        _fsync_tree(tmp)
        _move_into_place(tmp, final, dataset_id, overwrite)
        _write_namespace_files(root, dataset_id)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise _disk_full(dataset_id, task, raw, root) from None
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        lock.release()
        shutil.rmtree(temporary_lock_dir(tmp), ignore_errors=True)
    return final


def _our_block(dataset_id: str, task: Task, raw: EpisodeArrays, our_metadata: dict[str, Any]) -> dict[str, Any]:
    """Validate the arrays (nothing is written yet), then d4rl_lite's block of the metadata: the
    builder's fields, the arrays' checksum, the observation layout, the reference scores, the card."""
    from d4rl_lite.datasets.card import compute_card

    flat = raw.to_offline(task)
    validate_dataset(flat, task, path=f"{dataset_id} (not written)", advice="The builder produced bad data; nothing was written.",
                     max_episode_steps=our_metadata.get("max_episode_steps"), check_successors=False)
    ours = {
        "format_version": FORMAT_VERSION,
        **our_metadata,
        "dataset_id": dataset_id,
        "task": task.name,
        "checksum": checksum(raw.leaves()),
        "flat_observation": list(task.flat_observation_keys) if isinstance(raw.observations, dict) else None,
        "reference": {key: {"value": ref.value, "provisional": ref.provisional, "how": ref.how, **ref.details}
                      for key, ref in (("ref_min", task.ref_min), ("ref_max", task.ref_max))},
    }
    ours["card"] = {**compute_card(flat, task), **ours.pop("card_extras", {})}
    return ours


def _write_minari_dir(data_dir: Path, dataset_id: str, task: Task, raw: EpisodeArrays, ours: dict[str, Any],
                      our_metadata: dict[str, Any], minari_metadata: dict[str, Any] | None) -> None:
    """Write the arrays and Minari's metadata.json (with ``ours`` in it) into ``data_dir``, then the
    metadata checksum over the metadata as it reads back."""
    from minari import __version__ as minari_version
    from minari.dataset.minari_storage import MinariStorage

    storage = MinariStorage.new(
        data_dir,
        observation_space=_float32_space(task.observation_space),
        action_space=task.action_space,
        env_spec=task.make_env().spec,
        data_format="hdf5",
    )
    meta = {
        "dataset_id": dataset_id,
        "minari_version": minari_version,
        "author": {"d4rl_lite"},
        "algorithm_name": str(our_metadata.get("kind", "unknown")),
        "description": our_metadata.get("description", f"d4rl_lite {dataset_id}"),
        "num_episodes_average_score": 100,
        OUR_KEY: ours,
        **(minari_metadata or {}),
    }
    ref = ours["reference"]
    if ref["ref_min"]["value"] is not None:
        meta["ref_min_score"] = ref["ref_min"]["value"]
    if ref["ref_max"]["value"] is not None:
        meta["ref_max_score"] = ref["ref_max"]["value"]
    _write_hdf5(data_dir / MAIN_FILE, raw)
    meta["total_episodes"] = len(raw.episode_lengths)
    meta["total_steps"] = int(raw.episode_lengths.sum())
    storage.update_metadata(meta)
    on_disk = read_metadata(data_dir)  # hash what reads back, as Minari serialized it
    storage.update_metadata({OUR_KEY: {**on_disk[OUR_KEY], "metadata_checksum": metadata_checksum(on_disk)}})
    storage.update_metadata({"dataset_size": storage.get_size()})


def _move_into_place(tmp: Path, final: Path, dataset_id: str, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``final``; an old dataset there (with ``overwrite``) is renamed
    aside first and removed after, so ``final`` is always one whole dataset."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        if not overwrite:  # appeared while this one was built
            raise FileExistsError(f"dataset {dataset_id} already exists at {final} (written while this build ran); "
                                  "pass --force (overwrite=True) to replace it")
        trash = final.parent / f"{TMP_PREFIX}old-{uuid.uuid4().hex}"
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, final)


def _disk_full(dataset_id: str, task: Task, raw: EpisodeArrays, root: Path) -> DatasetError:
    """The error for a write that ran out of disk: about how much it needs and how much is free."""
    need = estimated_bytes(task, int(raw.episode_lengths.sum())) // 3
    return DatasetError(f"the disk is full: writing {dataset_id} needs about {need / 1e6:,.0f} MB and "
                        f"{shutil.disk_usage(root).free / 1e6:,.0f} MB is free; nothing was replaced",
                        path=root, advice="Free space or pass another --root, then build again.")
