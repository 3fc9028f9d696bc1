"""Plain arrays are checked against the skeleton they are read as: a rig's joints in another order, centimetres,
millimetres, Z up and shuffled joints are named errors; every real clip we have passes."""

from __future__ import annotations

import numpy as np
import pytest

from modeling_motionpatch import MotionPatchFeatureExtractor
from modeling_motionpatch.apps.bvh import read_bvh
from modeling_motionpatch.motion_patches import SkeletonMismatchError, check_skeleton_plausible
from modeling_motionpatch.skeletons import HUMANML3D, REFERENCE_POSES
from motionpatch_processing.synthetic import synthetic_sample

from conftest import random_poses, shared_path

REFERENCE = np.asarray(REFERENCE_POSES["humanml3d"], dtype=np.float32)


def check(motions):
    check_skeleton_plausible(motions, "humanml3d", HUMANML3D.parents, (0, 15), REFERENCE)


@pytest.fixture(scope="module")
def bandai_clips():
    with np.load(shared_path("bandai-namco", "ds1_h22_20fps.npz")) as z:
        joints, offsets, lengths = z["joints"].astype(np.float32), z["offsets"], z["lengths"]
    return [joints[o : o + n] for o, n in zip(offsets, lengths)]


def test_every_real_and_synthetic_clip_passes(bandai_clips):
    check(bandai_clips)  # all 174 clips of Bandai-Namco dataset 1, converted to SMPL-22
    with np.load(shared_path("bandai-namco", "ds2_h22_20fps.npz")) as z:
        joints, offsets, lengths = z["joints"], z["offsets"], z["lengths"]
    check([joints[o : o + n].astype(np.float32) for o, n in zip(offsets, lengths)])  # all 2,902 of dataset 2
    for name in ("000000", "012314"):
        check([np.load(shared_path("humanml3d-sample", "new_joints", f"{name}.npy"))])
    check([synthetic_sample(i)["motion"] for i in range(0, 2000, 40)])
    check([random_poses(30, np.random.default_rng(s)) for s in range(20)])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m * 100, r"85\.\d times its size.*centimetres: multiply by 0.01"),
        (lambda m: m * 1000, r"millimetres: multiply by 0.001"),
        (lambda m: m[..., [0, 2, 1]] * np.array([1, -1, 1], np.float32), r"points along \+Z, not \+Y"),
        (lambda m: m * np.array([1, -1, 1], np.float32), r"points along -Y"),
        (lambda m: m[:, np.random.default_rng(0).permutation(22)], r"does not look like a 'humanml3d' skeleton"),
        (lambda m: m[:, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 16, 18, 19, 20, 21]][:, ::-1],
         r"joint_names=\[\.\.\.\]"),
    ],
)
def test_wrong_units_axes_and_orders_are_named(bandai_clips, mutate, message):
    motion = bandai_clips[5]  # a real walk
    fe = MotionPatchFeatureExtractor("humanml3d")
    with pytest.raises(SkeletonMismatchError, match=message):
        fe(mutate(motion))
    fe(mutate(motion), check_skeleton=False)  # the explicit opt-out reads it as it is
    with pytest.raises(SkeletonMismatchError, match=r"motion 1\b"):  # the batch index is named
        fe([motion, mutate(motion)])


def test_a_bvh_passed_as_a_plain_array_is_refused_and_mapped_by_name():
    path = shared_path("bandai-namco", "ds1-bvh", "data", "dataset-1_bow_active_001.bvh")
    bvh = read_bvh(path, scale=0.01)
    assert bvh.positions.shape[1] == 22  # as many joints as SMPL-22: the count alone cannot tell them apart
    fe = MotionPatchFeatureExtractor("humanml3d")
    with pytest.raises(SkeletonMismatchError, match=r"differ from the skeleton's by a factor of [\d.]+.*joint_names"):
        fe(bvh.positions, input_fps=bvh.fps)
    named = fe(bvh.positions, input_fps=bvh.fps, joint_names=list(bvh.joint_names))["motion_values"]
    assert np.isfinite(named).all()


def test_skeletons_without_a_reference_pose_and_saved_extractors():
    kit = MotionPatchFeatureExtractor("kit")
    kit(np.random.default_rng(0).normal(size=(30, 21, 3)).astype(np.float32))  # no reference pose: not checked
    off = MotionPatchFeatureExtractor("humanml3d", check_skeleton=False)
    assert MotionPatchFeatureExtractor(**off.to_dict()).check_skeleton is False
    assert MotionPatchFeatureExtractor().check_skeleton is True
