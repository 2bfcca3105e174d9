"""Every bad-input case raises one clear error naming file, field and first bad index."""

import json
import shutil

import h5py
import numpy as np
import pytest

import d4rl_lite
from conftest import hand_made_episodes
from d4rl_lite.datasets.storage import metadata_checksum, write_dataset
from d4rl_lite.errors import ChecksumMismatchError, DatasetError, TaskMismatchError, UnknownNameError
from d4rl_lite.tasks import get_task

H5 = "data/main_data.hdf5"


def test_truncated_hdf5_file(hopper_copy):
    f = hopper_copy / H5
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError) as err:
        d4rl_lite.load_dataset(hopper_copy)
    msg = str(err.value)
    assert str(f) in msg and "truncated or corrupt" in msg and "d4rl-lite build hopper-random-v0 --force" in msg


def test_flipped_bytes_are_caught_by_the_checksum(hopper_copy):
    f = hopper_copy / H5
    with h5py.File(f, "r") as h:
        offset = h["d4rl_lite_flat/observations"].id.get_offset() + 4 * 11 * 40  # row 40, first value
    raw = bytearray(f.read_bytes())
    raw[offset] ^= 0x01  # lowest mantissa bit of the first float32: still a finite, plausible number
    f.write_bytes(bytes(raw))
    with pytest.raises(ChecksumMismatchError) as err:
        d4rl_lite.load_dataset(hopper_copy)
    msg = str(err.value)
    assert str(f) in msg and "field 'arrays'" in msg and "changed after it was written" in msg and "--force" in msg
    # The damaged file is left where it was for the user to inspect; nothing is deleted.
    assert f.exists()


def test_nan_reward_names_file_field_and_index(hopper_copy):
    with h5py.File(hopper_copy / H5, "a") as h:
        lengths = [h[f"episode_{i}/rewards"].shape[0] for i in range(3)]
        h["episode_2/rewards"][1] = np.nan  # written through Minari's per-episode view
    index = lengths[0] + lengths[1] + 1
    with pytest.raises(DatasetError, match=rf"main_data.hdf5, field 'rewards', index {index}: non-finite value \(nan\)"):
        d4rl_lite.load_dataset(hopper_copy)


def test_wrong_observation_size_for_the_task_on_write(root):
    raw = hand_made_episodes()
    raw.observations = np.zeros((10, 12), np.float32)
    with pytest.raises(DatasetError, match=r"field 'observations'.*observation size mismatch for task 'hopper'.*\(7, 11\).*\(7, 12\)"):
        write_dataset("d4rl_lite/hopper/random-v0", get_task("hopper"), raw, {}, root=root)
    assert not (root / "d4rl_lite").exists()


def test_metadata_edits_are_caught_by_the_metadata_checksum(hopper_copy):
    meta_file = hopper_copy / "data/metadata.json"
    for key, value in (("task", "halfcheetah"), ("kind", "expert"), ("flat_observation", ["observation"])):
        original = meta_file.read_text()
        meta = json.loads(original)
        meta["d4rl_lite"][key] = value  # a hopper file whose metadata claims something else
        meta_file.write_text(json.dumps(meta))
        with pytest.raises(ChecksumMismatchError, match=r"metadata.json.*metadata was edited or damaged"):
            d4rl_lite.load_dataset(hopper_copy)
        meta_file.write_text(original)
    meta = json.loads(meta_file.read_text())
    meta["ref_max_score"] = 1.0  # the Minari-level reference scores are covered too
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ChecksumMismatchError, match="metadata was edited"):
        d4rl_lite.load_dataset(hopper_copy)


def test_wrong_observation_size_for_the_task_on_load(hopper_copy):
    meta_file = hopper_copy / "data/metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["d4rl_lite"]["task"] = "halfcheetah"  # a forgery consistent with its metadata checksum
    meta["d4rl_lite"]["metadata_checksum"] = metadata_checksum(meta)
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"field 'observations'.*observation size mismatch for task 'halfcheetah'.*17\).*11\)"):
        d4rl_lite.load_dataset(hopper_copy)


def test_dataset_opened_as_another_task(hopper_copy, root):
    with pytest.raises(TaskMismatchError, match=r"built for task 'hopper', but was opened as task 'walker2d'"):
        d4rl_lite.load_dataset(hopper_copy, task="walker2d")
    # A hopper file sitting where walker2d-random-v0 belongs is refused by name as well.
    shutil.copytree(hopper_copy, root / "d4rl_lite/walker2d/random-v0")
    env = d4rl_lite.make("walker2d-random-v0")
    with pytest.raises(TaskMismatchError, match="built for task 'hopper'"):
        env.get_dataset()


@pytest.mark.parametrize(
    "name, match",
    [
        ("hopper-medum-v0", r"unknown dataset 'hopper-medum-v0'\. Did you mean 'hopper-medium-v0'"),
        ("cheetah-random-v0", r"Did you mean 'halfcheetah-random-v0'"),
        ("d4rl_lite/hopper/expret-v0", r"Did you mean 'd4rl_lite/hopper/expert-v0'"),
        ("hopper-stitch-v0", r"unknown dataset 'hopper-stitch-v0'"),  # a maze kind on a locomotion task
    ],
)
def test_unknown_dataset_names(name, match):
    with pytest.raises(UnknownNameError, match=match):
        d4rl_lite.load_dataset(name)


def test_dataset_not_built_says_how_to_build():
    with pytest.raises(d4rl_lite.DatasetNotFoundError, match="d4rl-lite build ant-random-v0"):
        d4rl_lite.load_dataset("ant-random-v0")
    with pytest.raises(d4rl_lite.DatasetNotFoundError, match="d4rl-lite build walker2d-expert-v0"):
        d4rl_lite.make("walker2d-expert-v0").get_dataset()


def _write(raw, root, task="hopper"):
    write_dataset(f"d4rl_lite/{task}/random-v0", get_task(task), raw, {}, root=root)


def test_terminal_inside_an_episode(root):
    raw = hand_made_episodes()
    raw.terminations[1] = True
    with pytest.raises(DatasetError, match=r"field 'terminals', index 1: terminal flag inside an episode"):
        _write(raw, root)


def test_terminal_and_timeout_on_the_same_step(root):
    raw = hand_made_episodes()
    raw.truncations[2] = True
    with pytest.raises(DatasetError, match=r"field 'timeouts', index 2: transition is marked both terminal and timeout"):
        _write(raw, root)


def test_episode_end_without_flag(root):
    raw = hand_made_episodes()
    raw.truncations[4] = False
    with pytest.raises(DatasetError, match=r"index 4: episode ends with neither a terminal nor a timeout"):
        _write(raw, root)


def test_terminal_in_a_task_that_never_terminates(root):
    with pytest.raises(DatasetError, match=r"index 2: terminal flag, but task 'halfcheetah' never terminates"):
        _write(hand_made_episodes("halfcheetah"), root, "halfcheetah")


def test_action_outside_bounds(root):
    raw = hand_made_episodes()
    raw.actions[5, 1] = 1.5
    with pytest.raises(DatasetError, match=r"field 'actions', index 5: action .*1\.5.* outside the action space"):
        _write(raw, root)


def test_episode_longer_than_the_horizon(root):
    raw = hand_made_episodes("pointmaze-umaze", lengths=(301,), ends=("timeout",))
    raw.observations = {"observation": np.zeros((302, 4)), "desired_goal": np.zeros((302, 2)),
                        "achieved_goal": np.zeros((302, 2))}
    with pytest.raises(DatasetError, match=r"episode 0 has 301 steps, more than the limit of 300"):
        _write(raw, root, "pointmaze-umaze")


def test_corrupt_metadata_json(hopper_copy):
    (hopper_copy / "data/metadata.json").write_text("{ not json")
    with pytest.raises(DatasetError, match=r"metadata.json: metadata is not valid JSON.*--force"):
        d4rl_lite.load_dataset(hopper_copy)


def test_missing_checksum(hopper_copy):
    meta_file = hopper_copy / "data/metadata.json"
    meta = json.loads(meta_file.read_text())
    del meta["d4rl_lite"]["checksum"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="metadata was edited"):
        d4rl_lite.load_dataset(hopper_copy)
    meta["d4rl_lite"]["metadata_checksum"] = metadata_checksum(meta)  # consistent with the edit
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="no array checksum"):
        d4rl_lite.load_dataset(hopper_copy)


def test_path_without_a_dataset(tmp_path):
    with pytest.raises(d4rl_lite.DatasetNotFoundError, match=r"no dataset at .*metadata.json"):
        d4rl_lite.load_dataset(tmp_path)
