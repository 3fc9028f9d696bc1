"""`add_motion_values`: `Dataset.map` precomputation of `motion_values`, equal to the extractor, cached by fingerprint."""

from __future__ import annotations

import warnings
from unittest import mock

import datasets
import numpy as np
import pytest
from motionpatch_processing.schema import motion_features

from modeling_motionpatch import MotionPatchFeatureExtractor
from modeling_motionpatch.apps.dataset_motion_values import (
    add_motion_values,
    motion_values_fingerprint,
)
from modeling_motionpatch.motion_patches import MotionInputWarning

from conftest import random_poses

N = 24


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MotionInputWarning)  # a few motions are shorter than one patch row
        yield


def _rows(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 90, n)
    return {
        "id": [f"m{i:03d}" for i in range(n)],
        "motion": [random_poses(int(t), rng) for t in lengths],
        "fps": [20.0] * (n - 4) + [30.0] * 4,  # the last rows need a frame-rate conversion
        "skeleton": ["humanml3d"] * n,
        "captions": [["a person walks"]] * n,
        "labels": [[]] * n,
        "source": [""] * n,
        "mirrored": [False] * n,
    }


@pytest.fixture()
def disk_dataset(tmp_path):
    """A schema dataset backed by an Arrow file, so that Dataset.map writes its cache beside it."""
    rows = _rows(N)
    datasets.Dataset.from_dict(rows, features=motion_features(22)).save_to_disk(tmp_path / "ds")
    return datasets.load_from_disk(str(tmp_path / "ds")), rows


def _extractor(**kw) -> MotionPatchFeatureExtractor:
    rng = np.random.default_rng(1)
    kw.setdefault("mean", rng.normal(size=(22, 3)).astype(np.float32))
    kw.setdefault("std", rng.uniform(0.5, 2.0, size=(22, 3)).astype(np.float32))
    return MotionPatchFeatureExtractor(max_frames=kw.pop("max_frames", 64), **kw)


def _values(ds) -> dict[str, np.ndarray]:
    return ds.with_format("numpy", columns=["motion_values", "motion_attention_mask", "motion_lengths"])[:]


def test_values_equal_the_extractor_and_num_proc_2_equals_1(disk_dataset):
    ds, rows = disk_dataset
    fe = _extractor()
    # two worker processes write one cache shard each
    two = add_motion_values(ds, fe, batch_size=5, num_proc=2)
    assert [f["filename"].rsplit("_", 3)[-3:] for f in two.cache_files] == [
        ["00000", "of", "00002.arrow"], ["00001", "of", "00002.arrow"]]
    assert two.column_names == ds.column_names + ["motion_values", "motion_attention_mask", "motion_lengths"]
    assert two.format["type"] is None and two[0]["id"] == "m000"  # the input's format, other columns kept
    at20 = fe(rows["motion"][: N - 4], return_tensors="np")
    at30 = fe(rows["motion"][N - 4 :], return_tensors="np", input_fps=30.0)
    # one process (recomputed, not read from the shards) gives the same values, equal to calling the extractor
    one = add_motion_values(ds, fe, batch_size=5, load_from_cache_file=False)
    for got in (_values(one), _values(two)):
        for key in ("motion_attention_mask", "motion_lengths"):
            np.testing.assert_array_equal(got[key], np.concatenate([at20[key], at30[key]]))
        # the patch GEMM's blocking differs with the batch size (batches of 5 here): float32 rounding only
        np.testing.assert_allclose(got["motion_values"], np.concatenate([at20["motion_values"], at30["motion_values"]]),
                                   rtol=0, atol=2e-6)
        assert got["motion_values"].dtype == np.float32 and got["motion_values"].shape == (N, 3, 64, 80)


def test_cache_is_reused_and_invalidated_by_the_extractor_state(disk_dataset):
    ds, rows = disk_dataset
    fe = _extractor()
    first = add_motion_values(ds, fe)
    cache = first.cache_files[0]["filename"]
    assert cache.endswith(f"cache-{motion_values_fingerprint(ds, fe)}.arrow")
    # an equal extractor (a fresh object, reloaded from its JSON) is a cache hit: the extractor is never called
    same = MotionPatchFeatureExtractor.from_dict(fe.to_dict())
    assert motion_values_fingerprint(ds, same) == motion_values_fingerprint(ds, fe)
    with mock.patch.object(MotionPatchFeatureExtractor, "__call__", side_effect=AssertionError("recomputed")):
        again = add_motion_values(ds, same)
    assert again.cache_files == first.cache_files
    # other statistics or another max_frames: another fingerprint, another cache file, other values
    other_stats = _extractor(mean=np.zeros((22, 3), np.float32))
    shorter = _extractor(max_frames=32)
    prints = {motion_values_fingerprint(ds, x) for x in (fe, other_stats, shorter)}
    assert len(prints) == 3
    changed = add_motion_values(ds, other_stats)
    assert changed.cache_files[0]["filename"] != cache
    assert not np.array_equal(_values(changed)["motion_values"], _values(first)["motion_values"])
    expected = other_stats(rows["motion"][:2])["motion_values"]
    np.testing.assert_allclose(_values(changed)["motion_values"][:2], expected, rtol=0, atol=2e-6)  # GEMM blocking
    assert _values(add_motion_values(ds, shorter))["motion_values"].shape == (N, 3, 32, 80)
    # the frame rate and the removed columns are part of the fingerprint too
    assert motion_values_fingerprint(ds, fe, input_fps=30.0) != motion_values_fingerprint(ds, fe)
    slim = add_motion_values(ds, fe, remove_columns=["motion"])
    assert "motion" not in slim.column_names and slim.cache_files[0]["filename"] != cache


def test_processor_dataset_dict_and_errors(disk_dataset):
    ds, _ = disk_dataset
    fe = _extractor()
    processor = mock.Mock(feature_extractor=fe)  # anything holding .feature_extractor, as MotionPatchProcessor does
    dd = add_motion_values(datasets.DatasetDict({"train": ds, "test": ds.select(range(3))}), processor)
    assert dd["test"].num_rows == 3 and "motion_values" in dd["train"].column_names
    with pytest.raises(ValueError, match="needs a MotionPatchFeatureExtractor"):
        add_motion_values(ds, object())
    with pytest.raises(ValueError, match="no column 'pose'"):
        add_motion_values(ds, fe, columns="pose")
    with pytest.raises(ValueError, match="already has a 'motion_values' column"):
        add_motion_values(dd["test"], fe)
    with pytest.raises(ValueError, match="num_motion|num_persons"):
        add_motion_values(ds, fe, columns=["motion", "motion"])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        add_motion_values(ds, fe, batch_size=0)
    with pytest.raises(ValueError, match="remove_columns names"):
        add_motion_values(ds, fe, remove_columns=["nope"])


def test_two_person_extractor(tmp_path):
    rng = np.random.default_rng(2)
    a = [random_poses(t, rng) for t in (20, 40, 33)]
    b = [random_poses(t, rng) for t in (20, 40, 33)]
    ds = datasets.Dataset.from_dict({"id": ["x", "y", "z"], "motion_a": a, "motion_b": b})
    fe = MotionPatchFeatureExtractor(max_frames=48, num_persons=2)
    out = _values(add_motion_values(ds, fe))
    ref = fe(list(zip(a, b)), return_tensors="np")
    assert out["motion_values"].shape == (3, 2, 3, 48, 80)
    for key in ("motion_values", "motion_attention_mask", "motion_lengths"):
        np.testing.assert_array_equal(out[key], ref[key])
