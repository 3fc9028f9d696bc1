"""Motion patches: exact parity with an explicit-loop reference, layout, crop/pad, frame rates, real clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_motionpatch import MotionPatchFeatureExtractor, get_skeleton
from modeling_motionpatch.apps.motion_statistics import compute_statistics
from modeling_motionpatch.motion_patches import (
    chain_interpolation_matrix,
    chain_sample_positions,
    patch_attention_mask,
    resample_fps,
)

from conftest import random_motions, shared_path


def test_chain_order_and_sample_positions_are_literal():
    h = get_skeleton("humanml3d")
    assert h.chains == ((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20))
    k = get_skeleton("kit")
    assert k.chains == ((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7), (3, 8, 9, 10))
    expected = [0, 0, 0.28125, 0.59375, 0.90625, 1.21875, 1.53125, 1.84375,
                2.15625, 2.46875, 2.78125, 3.09375, 3.40625, 3.71875, 4, 4]
    np.testing.assert_array_equal(chain_sample_positions(5, 16), expected)


@pytest.mark.parametrize("length", [2, 3, 4, 5, 6, 16, 20])
def test_interpolation_matrix_equals_torch_interpolate(length):
    rng = np.random.default_rng(length)
    x = rng.normal(size=(7, length, 3)).astype(np.float32)  # frames, chain joints, xyz
    w = chain_interpolation_matrix([list(range(length))], length, 16)
    ours = np.einsum("pj,tjc->tcp", w, x)
    ref = F.interpolate(torch.from_numpy(x).permute(0, 2, 1), size=16, mode="linear", align_corners=False).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def reference_patches(joints, chains, mean, std, max_frames, points=16):
    """Straightforward reference: explicit loops and explicit sample positions (no shared code)."""
    t_total = joints.shape[0]
    out = np.zeros((3, max_frames, len(chains) * points), dtype=np.float64)
    for t in range(min(t_total, max_frames)):
        for part, chain in enumerate(chains):
            n = len(chain)
            for p in range(points):
                x = (p + 0.5) * n / points - 0.5
                x = min(max(x, 0.0), n - 1)
                lo = int(math.floor(x))
                hi = min(lo + 1, n - 1)
                a = x - lo
                for c in range(3):
                    v_lo = (joints[t, chain[lo], c] - mean[chain[lo], c]) / std[chain[lo], c]
                    v_hi = (joints[t, chain[hi], c] - mean[chain[hi], c]) / std[chain[hi], c]
                    out[c, t, part * points + p] = (1 - a) * v_lo + a * v_hi
    return out


def test_patch_parity_on_real_humanml3d_clip():
    joints = np.load(shared_path("humanml3d-sample", "new_joints", "000000.npy")).astype(np.float32)
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(22, 3)).astype(np.float32) * 0.1
    std = rng.uniform(0.5, 1.5, size=(22, 3)).astype(np.float32)
    fe = MotionPatchFeatureExtractor("humanml3d", mean=mean, std=std)
    values = fe(joints)["motion_values"][0]
    ref = reference_patches(joints, get_skeleton("humanml3d").chains, mean, std, 224)
    assert values.shape == (3, 224, 80)
    np.testing.assert_allclose(values, ref, atol=1e-5)
    # rows after the clip's end are zeros (the mean pose after normalisation)
    n = joints.shape[0]
    if n < 224:
        assert np.all(values[:, n:] == 0)


def test_crop_pad_lengths_and_mask():
    # constant arrays, exact values: neither the body frame nor the skeleton check applies to them
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64, body_frame=False, check_skeleton=False)
    motions = [np.ones((10, 22, 3), np.float32), np.ones((40, 22, 3), np.float32), np.ones((100, 22, 3), np.float32)]
    out = fe(motions)
    assert out["motion_values"].shape == (3, 3, 64, 80)
    np.testing.assert_array_equal(out["motion_lengths"], [10, 40, 64])
    # 4 patch rows x 5 parts, row-major: rows holding real frames are 1
    np.testing.assert_array_equal(out["motion_attention_mask"][0], [1] * 5 + [0] * 15)
    np.testing.assert_array_equal(out["motion_attention_mask"][1], [1] * 15 + [0] * 5)
    np.testing.assert_array_equal(out["motion_attention_mask"][2], [1] * 20)
    assert np.all(out["motion_values"][0, :, 10:] == 0) and np.all(out["motion_values"][0, :, :10] == 1)


def test_eval_crop_takes_first_frames_and_training_crop_is_seeded():
    motion = np.arange(300, dtype=np.float32)[:, None, None] * np.ones((1, 22, 3), np.float32)
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64, body_frame=False, check_skeleton=False)  # a ramp
    first = fe(motion)["motion_values"][0, 0, :, 0]
    np.testing.assert_array_equal(first, np.arange(64))
    a = fe([motion] * 4, training=True, generator=123)["motion_values"][:, 0, 0, 0]
    b = fe([motion] * 4, training=True, generator=np.random.default_rng(123))["motion_values"][:, 0, 0, 0]
    c = fe([motion] * 4, training=True, generator=7)["motion_values"][:, 0, 0, 0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all((a >= 0) & (a <= 300 - 64))


def test_batch_equals_one_by_one():
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64)
    motions = random_motions(5, lengths=(5, 120))
    batch = fe(motions)["motion_values"]
    for i, m in enumerate(motions):
        np.testing.assert_allclose(batch[i], fe(m)["motion_values"][0], atol=1e-6)  # GEMM blocking differs


def test_attention_mask_helper_rounds_partial_rows_up():
    np.testing.assert_array_equal(patch_attention_mask(np.array([1, 16, 17]), 48, num_parts=1), [[1, 0, 0], [1, 0, 0], [1, 1, 0]])


def test_fps_nearest_duplicates_frames_like_the_reference():
    motion = np.arange(10, dtype=np.float32)
    out = resample_fps(motion, 12.5, 20.0, mode="nearest")
    np.testing.assert_array_equal(out, np.floor(np.arange(16) * 12.5 / 20.0))
    assert len(out) == 16


def test_fps_linear_matches_time_grid():
    motion = np.arange(31, dtype=np.float32) * 2.0  # value = 2 * source frame
    out = resample_fps(motion, 30.0, 20.0, mode="linear")
    assert len(out) == 21  # k = 0 .. floor(30 * 20 / 30)
    np.testing.assert_allclose(out, np.arange(21) * 1.5 * 2.0, atol=1e-5)


def test_kit_input_fps_is_converted_by_the_extractor():
    fe = MotionPatchFeatureExtractor("kit", input_fps=12.5, max_frames=64)
    out = fe(np.zeros((25, 21, 3), np.float32))
    assert out["motion_lengths"][0] == 40


def test_torch_and_numpy_inputs_agree():
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=32)
    m = random_motions(1)[0]
    np.testing.assert_array_equal(fe(m)["motion_values"], fe(torch.from_numpy(m))["motion_values"])
    pt = fe([m, m[:20]], return_tensors="pt")
    assert isinstance(pt["motion_values"], torch.Tensor) and pt["motion_values"].dtype == torch.float32


def test_all_bandai_ds1_clips_become_finite_patches():
    data = np.load(shared_path("bandai-namco", "ds1_h22_20fps.npz"))
    joints, offsets, lengths = data["joints"].astype(np.float32), data["offsets"], data["lengths"]
    motions = [joints[o : o + n] for o, n in zip(offsets, lengths)]
    assert len(motions) == 174
    mean, std = compute_statistics(motions)
    out = MotionPatchFeatureExtractor("humanml3d", mean=mean, std=std)(motions)
    assert out["motion_values"].shape == (174, 3, 224, 80)
    assert np.isfinite(out["motion_values"]).all()
    np.testing.assert_array_equal(out["motion_lengths"], np.minimum(lengths, 224))


def test_render_motion_patches_png(tmp_path):
    from PIL import Image

    from modeling_motionpatch.apps.visualization import motion_patches_to_rgb, render_motion_patches

    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=32)
    batch = fe(random_motions(1, lengths=(20, 21))[0])
    rgb = motion_patches_to_rgb(batch["motion_values"][0], batch["motion_lengths"][0])
    assert rgb.shape == (32, 80, 3) and rgb.dtype == np.uint8
    assert rgb[:20].min() == 0 and rgb[:20].max() == 255 and np.all(rgb[20:] == 0)  # padding is black
    image = render_motion_patches(batch["motion_values"][0], 20, scale=2, path=tmp_path / "m.png")
    assert image.size == (80 * 2 + 4, 64)  # 4 white separators between 5 parts
    assert Image.open(tmp_path / "m.png").size == image.size
    with pytest.raises(ValueError, match="shape \\(3, frames, points\\)"):
        motion_patches_to_rgb(np.zeros((2, 4, 4)))
