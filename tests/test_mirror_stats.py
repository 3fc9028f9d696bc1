"""Mirroring (motions, captions, datasets), statistics and the save -> load -> patches round trip."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from motionpatch_processing.io import SplitBuilder, load_prepared, save_prepared
from motionpatch_processing.mirror import (
    SIDE_WORDS,
    add_mirrored,
    mirror_motion,
    mirror_text,
)
from motionpatch_processing.schema import motion_features
from modeling_motionpatch.apps.motion_statistics import (
    compute_dataset_statistics,
    load_statistics,
    read_statistics,
)

from modeling_motionpatch import MotionPatchFeatureExtractor, get_skeleton

from conftest import random_poses

HML = get_skeleton("humanml3d")


def motions(n: int, joints: int = 22, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if joints == 22:  # body-like SMPL motions (the feature extractor checks those)
        return [random_poses(int(rng.integers(10, 50)), rng) for _ in range(n)]
    return [rng.normal(size=(int(rng.integers(10, 50)), joints, 3)).astype(np.float32) for _ in range(n)]


def small_dataset(seed: int = 0) -> datasets.DatasetDict:
    out = {}
    for k, (split, n) in enumerate((("train", 5), ("validation", 2), ("test", 3))):
        b = SplitBuilder(motion_features(22), split=split, chunk_rows=2)  # several chunks
        for i, m in enumerate(motions(n, seed=seed + k)):
            b.add(id=f"{split}{i}", motion=m, fps=20.0, skeleton="humanml3d",
                  captions=[f"a person waves the left hand {i}"], labels=["wave-left-hand"], source=f"{split}{i}.npy",
                  mirrored=False)
        out[split] = b.finish()
    return datasets.DatasetDict(out)


# ---------------------------------------------------------------------------
# motions
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("skeleton", ["humanml3d", "kit"])
def test_mirror_twice_is_identity_numpy_torch_batches(skeleton):
    j = get_skeleton(skeleton).num_joints
    x = np.random.default_rng(1).normal(size=(2, 3, 17, j, 3)).astype(np.float32)  # (..., T, J, 3)
    once = mirror_motion(x, skeleton)
    assert once.shape == x.shape and once.dtype == x.dtype and not np.array_equal(once, x)
    assert np.array_equal(mirror_motion(once, skeleton), x)
    assert np.array_equal(mirror_motion(mirror_motion(x[0, 0], skeleton), skeleton), x[0, 0])  # (T, J, 3)
    t = torch.from_numpy(x)
    t_once = mirror_motion(t, skeleton)
    assert isinstance(t_once, torch.Tensor) and torch.equal(t_once, torch.from_numpy(once))
    assert torch.equal(mirror_motion(t_once, skeleton), t)


def test_mirror_swaps_pairs_and_negates_lateral_axis():
    x = np.random.default_rng(2).normal(size=(5, 22, 3)).astype(np.float32)
    m = mirror_motion(x, "humanml3d")
    for left, right in HML.left_right_pairs:
        assert np.array_equal(m[:, left, 0], -x[:, right, 0]) and np.array_equal(m[:, left, 1:], x[:, right, 1:])
    assert np.array_equal(m[:, 0], x[:, 0] * np.array([-1, 1, 1], np.float32))  # pelvis: x negated only
    with pytest.raises(ValueError, match=r"\(\.\.\., 22, 3\)"):
        mirror_motion(np.zeros((5, 21, 3)), "humanml3d")


def test_left_wrist_motion_becomes_right_wrist_motion():
    t = np.arange(40, dtype=np.float32) / 20
    rest = np.zeros((22, 3), np.float32)
    rest[:, 0] = np.where([("left" in n) for n in HML.joint_names], 0.2, np.where([("right" in n) for n in HML.joint_names], -0.2, 0.0))
    rest[:, 1] = np.linspace(0.1, 1.6, 22)
    motion = np.repeat(rest[None], len(t), axis=0)
    assert HML.joint_names[20] == "left_wrist" and HML.joint_names[21] == "right_wrist"
    motion[:, 20, 1] += 0.3 * np.sin(2 * np.pi * t)  # the left wrist waves
    motion[:, 20, 0] += 0.1 * t  # and drifts further left (+x)
    mirrored = mirror_motion(motion, HML)
    moving = lambda m, j: float(np.ptp(m[:, j], axis=0).max())
    assert moving(motion, 20) > 0.5 and moving(motion, 21) == 0.0
    assert moving(mirrored, 21) > 0.5 and moving(mirrored, 20) == 0.0
    np.testing.assert_array_equal(mirrored[:, 21, 1], motion[:, 20, 1])
    assert mirrored[-1, 21, 0] < mirrored[0, 21, 0] < 0  # the right wrist, on the -x side, drifts right (-x)


# ---------------------------------------------------------------------------
# captions
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("a person waves the left hand", "a person waves the right hand"),
        ("Left foot forward, then RIGHT.", "Right foot forward, then LEFT."),
        ("raises the left-hand side, left-handed", "raises the right-hand side, right-handed"),
        ("moves leftward then rightwards", "moves rightward then leftwards"),
        ("turns clockwise", "turns counterclockwise"),
        ("turns counterclockwise", "turns clockwise"),
        ("spins anticlockwise and Counter-Clockwise", "spins clockwise and Clockwise"),
        ("the leftmost step", "the rightmost step"),
        ("bright leftovers, cleft, wrights", "bright leftovers, cleft, wrights"),  # not whole words: untouched
        ("no side at all", "no side at all"),
    ],
)
def test_mirror_text(text, expected):
    assert mirror_text(text) == expected


def test_side_words_are_symmetric_where_invertible():
    for word, target in SIDE_WORDS.items():
        if word in ("anticlockwise", "counter-clockwise", "anti-clockwise", "counter clockwise", "anti clockwise"):
            assert target == "clockwise"
        else:
            assert SIDE_WORDS[target] == word and mirror_text(mirror_text(word)) == word


# ---------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------
def test_add_mirrored_only_adds_missing_copies_in_the_same_split():
    dd = small_dataset()
    b = SplitBuilder(motion_features(22), split="train")
    for r in dd["train"].with_format("numpy", columns=["motion"], output_all_columns=True):
        b.add(**r)
    present = mirror_motion(dd["train"].with_format("numpy")[1]["motion"], HML)
    b.add(id="Mtrain1", motion=present, fps=20.0, skeleton="humanml3d", captions=["x"], labels=[], source="s",
          mirrored=True)
    dd["train"] = b.finish()
    out, added = add_mirrored(dd, HML)
    assert added == 4 + 2 + 3
    ids = list(out["train"]["id"])
    assert ids[:6] == ["train0", "train1", "train2", "train3", "train4", "Mtrain1"]
    assert ids[6:] == ["Mtrain0", "Mtrain2", "Mtrain3", "Mtrain4"]
    assert list(out["test"]["id"])[3:] == ["Mtest0", "Mtest1", "Mtest2"]
    r = {x["id"]: x for x in out["train"].with_format("numpy")}
    assert np.array_equal(r["Mtrain0"]["motion"], mirror_motion(r["train0"]["motion"], HML))
    assert list(r["Mtrain0"]["captions"]) == ["a person waves the right hand 0"]
    assert list(r["Mtrain0"]["labels"]) == ["wave-right-hand"] and bool(r["Mtrain0"]["mirrored"])
    assert out["train"].features == motion_features(22)
    again, added_again = add_mirrored(out, HML)
    assert added_again == 0 and len(again["train"]) == len(out["train"])


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------
def test_statistics_train_and_all_match_numpy():
    dd = small_dataset()
    stats = compute_dataset_statistics(dd, batch_size=2)
    frames = np.concatenate(list(dd["train"].with_format("numpy")["motion"])).astype(np.float64)
    np.testing.assert_allclose(stats.mean, frames.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats.std, frames.std(0), atol=1e-5)
    assert stats.splits == ["train"] and stats.num_motions == 5 and stats.num_frames == len(frames)
    every = compute_dataset_statistics(dd, splits="all")
    allf = np.concatenate([np.concatenate(list(dd[s].with_format("numpy")["motion"])) for s in dd]).astype(np.float64)
    np.testing.assert_allclose(every.mean, allf.mean(0), atol=1e-5)
    np.testing.assert_allclose(every.std, allf.std(0), atol=1e-5)
    with pytest.raises(ValueError, match="--statistics all"):
        compute_dataset_statistics(datasets.DatasetDict({"test": dd["test"]}))


# ---------------------------------------------------------------------------
# save -> load -> feature extractor -> patches
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_round_trip_to_patches(tmp_path, fmt):
    dd = small_dataset(seed=3)
    stats = compute_dataset_statistics(dd)
    out = save_prepared(dd, tmp_path / "ds", "humanml3d", statistics=stats, format=fmt)
    if fmt == "arrow":
        reloaded = datasets.load_from_disk(str(out))
    else:
        assert sorted(p.name for p in (out / "data").iterdir()) == [
            "test-00000-of-00001.parquet", "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
        reloaded = load_prepared(out).dataset
    assert reloaded["train"].features == motion_features(22)
    assert json.loads((out / "skeleton.json").read_text()) == HML.to_dict()
    mean, std = load_statistics(out)
    np.testing.assert_array_equal(mean, stats.mean)
    np.testing.assert_array_equal(std, stats.std)
    assert read_statistics(out).num_motions == 5

    prepared = load_prepared(out)
    fe = prepared.feature_extractor(max_frames=64)
    batch_motions = list(reloaded["train"].with_format("numpy")["motion"])  # ragged list, no frame loop
    values = fe(batch_motions, return_tensors="np")["motion_values"]
    ref_fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64)
    ref_fe.set_statistics(stats.mean, stats.std)
    originals = list(dd["train"].with_format("numpy")["motion"])
    np.testing.assert_array_equal(values, ref_fe(originals, return_tensors="np")["motion_values"])
    assert values.shape == (5, 3, 64, 80)
    np.testing.assert_array_equal(fe.mean, mean)


def test_save_refuses_non_empty_output(tmp_path):
    dd = small_dataset()
    save_prepared(dd, tmp_path / "ds", "humanml3d")
    with pytest.raises(ValueError, match="not empty"):
        save_prepared(dd, tmp_path / "ds", "humanml3d")
    (tmp_path / "ds" / "mine.txt").write_text("keep me")
    save_prepared(dd, tmp_path / "ds", "humanml3d", format="parquet", overwrite=True)
    assert (tmp_path / "ds" / "mine.txt").exists() and not (tmp_path / "ds" / "dataset_dict.json").exists()
    assert len(load_prepared(tmp_path / "ds").dataset["train"]) == 5
