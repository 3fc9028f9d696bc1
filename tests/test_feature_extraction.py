"""Feature extractor and processor: statistics, persistence, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_motions

from modeling_motionpatch import (
    MotionInputError,
    MotionPatchFeatureExtractor,
    MotionPatchProcessor,
    SkeletonError,
    get_skeleton,
)
from modeling_motionpatch.apps.motion_statistics import compute_statistics
from modeling_motionpatch.apps.skeleton_hierarchy import skeleton_from_hierarchy


def test_compute_statistics_streaming_equals_numpy():
    motions = random_motions(7, lengths=(3, 50), seed=3)
    mean, std = compute_statistics(iter(motions))
    cat = np.concatenate(motions).astype(np.float64)
    np.testing.assert_allclose(mean, cat.mean(0), atol=1e-6)
    np.testing.assert_allclose(std, cat.std(0), atol=1e-6)


def test_save_and_load_keeps_skeleton_and_statistics(tmp_path):
    skel = skeleton_from_hierarchy(
        "toy", ["hips", "spine", "chest", "neck", "head", "l_arm", "l_hand", "r_arm", "r_hand",
                "l_leg", "l_foot", "r_leg", "r_foot"],
        [-1, 0, 1, 2, 3, 2, 5, 2, 7, 0, 9, 0, 11],
    )
    mean = np.arange(39, dtype=np.float32).reshape(13, 3)
    std = np.full((13, 3), 2.0, np.float32)
    fe = MotionPatchFeatureExtractor(skel.to_dict(), mean=mean, std=std, max_frames=32, input_fps=30.0, fps_mode="linear")
    fe.save_pretrained(tmp_path)
    loaded = MotionPatchFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.skeleton_obj == skel
    np.testing.assert_array_equal(loaded.mean, mean)
    np.testing.assert_array_equal(loaded.std, std)
    assert (loaded.max_frames, loaded.input_fps, loaded.fps_mode) == (32, 30.0, "linear")
    m = random_motions(2, joints=13)
    np.testing.assert_array_equal(fe(m)["motion_values"], loaded(m)["motion_values"])


def test_processor_text_only_motion_only_and_both(tiny_processor):
    text = tiny_processor(text=["a person walks", "someone jumps"], return_tensors="pt")
    assert set(text) >= {"input_ids", "attention_mask"} and "motion_values" not in text
    motion = tiny_processor(motions=random_motions(2), return_tensors="pt")
    assert set(motion) == {"motion_values", "motion_lengths", "motion_attention_mask"}
    both = tiny_processor(text="a person walks", motions=random_motions(1)[0], return_tensors="pt")
    assert both["input_ids"].shape[0] == 1 and both["motion_values"].shape == (1, 3, 64, 80)
    decoded = tiny_processor.batch_decode(text["input_ids"], skip_special_tokens=True)
    assert decoded == ["a person walks", "someone jumps"]


@pytest.mark.parametrize(
    "motion, message",
    [
        (np.zeros((30, 21, 3), np.float32), "21 joints but skeleton 'humanml3d' has 22"),
        (np.zeros((30, 22, 2), np.float32), "last dimension 2"),
        (np.zeros((0, 22, 3), np.float32), "zero frames"),
        (np.zeros((22, 3), np.float32), "expected (frames, joints, 3)"),
    ],
)
def test_bad_motion_shapes_raise_clear_errors(motion, message):
    fe = MotionPatchFeatureExtractor("humanml3d")
    with pytest.raises(ValueError) as err:
        fe(motion)
    assert message in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused_and_located(bad):
    motions = random_motions(3)
    motions[1][0, 5, 2] = bad
    with pytest.raises(MotionInputError, match=r"motions \[1\] contain NaN or Inf"):
        MotionPatchFeatureExtractor("humanml3d")(motions)


def test_non_finite_value_in_a_joint_outside_every_chain_is_still_refused():
    # Bandai-like skeleton: joint 0 (a ground root) is in no chain, so patches would never show it
    fe = MotionPatchFeatureExtractor("humanml3d")
    m = random_motions(1)[0]
    m[3, 0, 0] = np.nan
    with pytest.raises(MotionInputError):
        fe(m)


def test_short_motions_are_padded_by_default_and_refused_with_min_frames():
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=32, check_skeleton=False)  # a constant array
    out = fe(np.ones((5, 22, 3), np.float32))
    assert out["motion_lengths"][0] == 5
    np.testing.assert_array_equal(out["motion_attention_mask"][0], [1] * 5 + [0] * 5)
    strict = MotionPatchFeatureExtractor("humanml3d", max_frames=32, min_frames=16, check_skeleton=False)
    with pytest.raises(MotionInputError, match="fewer than min_frames=16"):
        strict(np.ones((5, 22, 3), np.float32))


def test_statistics_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"mean has shape \(21, 3\); expected \(22, 3\)"):
        MotionPatchFeatureExtractor("humanml3d", mean=np.zeros((21, 3)))
    with pytest.raises(ValueError, match=r"std has shape \(66,\)"):
        MotionPatchFeatureExtractor("humanml3d", std=np.ones(66))


def test_unknown_skeleton_and_bad_max_frames():
    with pytest.raises(SkeletonError, match="Unknown skeleton 'smplx'.*humanml3d"):
        MotionPatchFeatureExtractor("smplx")
    with pytest.raises(ValueError, match="multiple of 16"):
        MotionPatchFeatureExtractor("humanml3d", max_frames=100)


@pytest.mark.parametrize("captions, message", [([""], "caption 0 is empty"), (["ok", "   "], "caption 1 is empty"), ([], "empty list")])
def test_empty_captions_are_refused(tiny_processor, captions, message):
    with pytest.raises(ValueError, match=message):
        tiny_processor(text=captions)


def test_processor_needs_an_input(tiny_processor):
    with pytest.raises(ValueError, match="needs `text`, `motions` or both"):
        tiny_processor()


def test_skeleton_derivation_matches_the_registry_and_fails_clearly():
    for name in ("humanml3d", "kit"):
        ref = get_skeleton(name)
        derived = skeleton_from_hierarchy("x", ref.joint_names, ref.parents)
        assert derived.chains == ref.chains
        assert set(derived.left_right_pairs) == set(ref.left_right_pairs)
    # no side in the names and no offsets: refuse to guess
    parents = [-1, 0, 1, 2, 2, 4, 2, 6, 0, 8, 0, 10]  # head = leaf 3; arms 4-5, 6-7; legs 8-9, 10-11
    names = [f"j{i}" for i in range(12)]
    with pytest.raises(SkeletonError, match="Cannot tell left from right"):
        skeleton_from_hierarchy("anon", names, parents)
    # ... but rest offsets decide it (positive lateral axis = left)
    offsets = np.zeros((12, 3))
    offsets[[4, 8], 0], offsets[[6, 10], 0] = 0.2, -0.2
    skel = skeleton_from_hierarchy("anon", names, parents, offsets)
    assert skel.chains == ((0, 10, 11), (0, 8, 9), (0, 1, 2, 3), (2, 6, 7), (2, 4, 5))
    # two equally long branches at the chest and nothing named like a head: refuse to guess
    with pytest.raises(SkeletonError, match="Cannot tell the head branch"):
        skeleton_from_hierarchy("anon", [f"j{i}" for i in range(13)], [-1, 0, 1, 2, 3, 2, 5, 2, 7, 0, 9, 0, 11])
    with pytest.raises(SkeletonError, match="Cannot find the pelvis"):
        skeleton_from_hierarchy("chain", ["a", "b", "c"], [-1, 0, 1])


def test_processor_round_trip(tmp_path, tiny_processor):
    from transformers import AutoProcessor

    import modeling_motionpatch  # noqa: F401  (registers the Auto classes)

    tiny_processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, MotionPatchProcessor)
    motions = random_motions(2)
    a = tiny_processor(text=["a person walks"], motions=motions)
    b = loaded(text=["a person walks"], motions=motions)
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
