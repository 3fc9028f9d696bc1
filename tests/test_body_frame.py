"""One body frame for every source: HumanML3D's convention (pelvis above the origin and facing +Z on the first frame,
the floor at y = 0), applied by the feature extractor; HumanML3D's own clips pass through unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeling_motionpatch import MotionPatchFeatureExtractor, get_skeleton
from modeling_motionpatch.motion_patches import to_body_frame
from motionpatch_processing.synthetic_motion import generate_motion

from conftest import shared_path

SMPL = get_skeleton("humanml3d")


def body_frame(motions):
    return to_body_frame(motions, SMPL.facing_joints(), SMPL.pelvis)


def moved(motion: np.ndarray, yaw: float, offset) -> np.ndarray:
    """The motion turned by ``yaw`` radians about +Y and moved by ``offset`` (another capture's world frame)."""
    c, s = np.cos(yaw), np.sin(yaw)
    rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float32)
    return (motion @ rotation.T + np.asarray(offset, np.float32)).astype(np.float32)


def facing(first_frame: np.ndarray) -> np.ndarray:
    lh, rh, ls, rs = SMPL.facing_joints()
    across = first_frame[lh] - first_frame[rh] + first_frame[ls] - first_frame[rs]
    forward = np.cross(across, [0.0, 1.0, 0.0])
    return forward / np.linalg.norm(forward)


@pytest.fixture(scope="module")
def walk():
    return generate_motion("walk", np.random.default_rng(3))[0]


def test_facing_joints_are_humanml3d_preprocessing_joints():
    assert SMPL.facing_joints() == (1, 2, 16, 17) and SMPL.pelvis == 0
    assert get_skeleton("kit").facing_joints() == (16, 11, 8, 5)  # HumanML3D's KIT face_joint_indx, left first


@pytest.mark.parametrize("yaw", [0.0, 0.7, np.pi, -2.0])
def test_any_heading_and_offset_give_the_same_body_frame(walk, yaw):
    reference = body_frame([walk])[0]
    got = body_frame([moved(walk, yaw, [3.0, 0.4, -12.0])])[0]
    np.testing.assert_allclose(got, reference, atol=2e-5)
    np.testing.assert_allclose(facing(got[0]), [0, 0, 1], atol=1e-5)  # faces +Z on the first frame
    np.testing.assert_allclose(got[0, 0, [0, 2]], 0, atol=1e-5)  # pelvis above the origin
    assert abs(float(got[..., 1].min())) < 1e-6  # the lowest point of the clip on the floor


def test_a_motion_facing_minus_z_is_turned_round(walk):
    backwards = moved(body_frame([walk])[0], np.pi, [0, 0, 0])
    assert facing(backwards[0])[2] < -0.99
    assert facing(body_frame([backwards])[0][0])[2] > 0.99


def test_glitched_frames_below_the_floor_do_not_move_the_floor(walk):
    clean = body_frame([walk])[0]
    glitched = walk.copy()
    glitched[:2] -= [0, 1.0, 0]  # a take that starts a metre under the floor for two frames
    got = body_frame([glitched])[0]
    np.testing.assert_allclose(got[2:, :, 1], clean[2:, :, 1], atol=1e-5)


def test_batch_equals_one_by_one_and_degenerate_poses_keep_their_heading(walk):
    motions = [walk, moved(walk, 1.0, [1, 0, 1]), walk[:20]]
    batch = body_frame(motions)
    for got, m in zip(batch, motions):
        np.testing.assert_array_equal(got, body_frame([m])[0])
    collapsed = np.zeros((5, 22, 3), np.float32)  # every joint on one point: no heading to estimate
    np.testing.assert_array_equal(body_frame([collapsed])[0], collapsed)


def test_extractor_output_does_not_depend_on_where_a_clip_was_captured(walk):
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64)
    a = fe(walk)["motion_values"]
    b = fe(moved(walk, 2.5, [-4.0, 0.3, 7.0]))["motion_values"]
    np.testing.assert_allclose(a, b, atol=1e-4)
    off = MotionPatchFeatureExtractor("humanml3d", max_frames=64, body_frame=False)
    assert not np.allclose(off(walk)["motion_values"], off(moved(walk, 2.5, [-4.0, 0.3, 7.0]))["motion_values"])
    # per call and saved with the extractor
    np.testing.assert_array_equal(fe(walk, body_frame=False)["motion_values"], off(walk)["motion_values"])
    assert json.loads(off.to_json_string())["body_frame"] is False
    assert MotionPatchFeatureExtractor(**json.loads(fe.to_json_string())).body_frame is True


def test_interaction_pairs_keep_their_shared_frame(walk):
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64, num_persons=2)
    pair = (walk, moved(walk, 1.0, [1.5, 0, 0]))
    np.testing.assert_array_equal(fe([pair])["motion_values"], fe([pair], body_frame=False)["motion_values"])


def test_humanml3d_clips_are_already_in_the_body_frame():
    for name in ("000000", "012314"):
        joints = np.load(shared_path("humanml3d-sample", "new_joints", f"{name}.npy")).astype(np.float32)
        np.testing.assert_allclose(body_frame([joints])[0], joints, atol=1e-5)


def test_real_takes_that_start_facing_minus_z_face_plus_z():
    with np.load(shared_path("bandai-namco", "ds2_h22_20fps.npz")) as z:
        joints, offsets, lengths, content = z["joints"], z["offsets"], z["lengths"], z["content"]
    walks = np.flatnonzero(np.isin(content, ["walk", "run"]))
    clips = [joints[offsets[i] : offsets[i] + lengths[i]].astype(np.float32) for i in walks]
    before = np.array([facing(c[0])[2] for c in clips])
    assert (before < 0).mean() > 0.3  # many real walk / run takes start facing away
    after = np.array([facing(c[0])[2] for c in body_frame(clips)])
    assert after.min() > 0.999
