"""Skeleton renders: the chain colours land where the limbs are, animations have the requested frames, one camera."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="skeleton rendering needs matplotlib (pip install 'motionpatch[viz]')")

from modeling_motionpatch import Skeleton, get_skeleton  # noqa: E402
from modeling_motionpatch.apps.skeleton_hierarchy import skeleton_from_hierarchy  # noqa: E402
from modeling_motionpatch.apps.visualization import (  # noqa: E402
    CHAIN_COLORS,
    SkeletonRenderer,
    render_keyframes,
    render_motion_patches,
    save_animation,
)
from modeling_motionpatch.skeletons import CHAIN_NAMES  # noqa: E402


def _clip(action: str = "raise both arms", seed: int = 0) -> np.ndarray:
    from motionpatch_processing.synthetic_motion import generate_motion

    return generate_motion(action, np.random.default_rng(seed))[0]


def _near(image: np.ndarray, xy: np.ndarray, color, radius: int = 3, tol: float = 40.0) -> bool:
    """Whether a pixel within ``radius`` of ``xy`` (column, row) has ``color`` (Euclidean RGB distance < tol)."""
    c, r = int(round(xy[0])), int(round(xy[1]))
    patch = image[max(r - radius, 0) : r + radius + 1, max(c - radius, 0) : c + radius + 1].astype(float)
    return bool((np.linalg.norm(patch - np.asarray(color, float), axis=-1) < tol).any())


def _color_mask(image: np.ndarray, color, tol: float = 40.0) -> np.ndarray:
    return np.linalg.norm(image.astype(float) - np.asarray(color, float), axis=-1) < tol


def test_arm_colours_are_drawn_on_the_arms():
    skel = get_skeleton("humanml3d")
    left_arm, right_arm = skel.chains[CHAIN_NAMES.index("left_arm")], skel.chains[CHAIN_NAMES.index("right_arm")]
    motion = _clip()
    renderer = SkeletonRenderer(motion, skel, size=(200, 240), azimuth=0.0, elevation=0.0, trace=False)
    frame = motion.shape[0] // 2
    image = renderer.render(frame)
    assert image.shape == (240, 200, 3) and image.dtype == np.uint8
    px = renderer.joint_pixels(frame)
    left_mid = (px[left_arm[-2]] + px[left_arm[-1]]) / 2  # the forearm (elbow -> wrist)
    right_mid = (px[right_arm[-2]] + px[right_arm[-1]]) / 2
    assert _near(image, left_mid, CHAIN_COLORS["left_arm"])
    assert _near(image, right_mid, CHAIN_COLORS["right_arm"])
    assert not _near(image, left_mid, CHAIN_COLORS["right_arm"])
    assert not _near(image, right_mid, CHAIN_COLORS["left_arm"])
    # seen from the front, the person's left (+x) is on the right of the picture
    assert left_mid[0] > right_mid[0] + 10
    # every left-arm pixel lies on the left arm's side of the body
    _, cols = np.nonzero(_color_mask(image, CHAIN_COLORS["left_arm"], tol=20))
    assert len(cols) > 20
    centre = px[list(skel.chains[CHAIN_NAMES.index("torso")])][:, 0].mean()
    assert (cols > centre).mean() > 0.95
    # the legs have their own colours too
    for part, chain in (("left_leg", skel.chains[1]), ("right_leg", skel.chains[0])):
        assert _near(image, (px[chain[-3]] + px[chain[-2]]) / 2, CHAIN_COLORS[part])


def test_camera_is_fixed_over_the_clip_and_frames_differ():
    motion = _clip("walk")
    renderer = SkeletonRenderer(motion, "humanml3d", size=(160, 160), follow=False)
    a, b = renderer.render(0), renderer.render(len(motion) - 1)
    assert not np.array_equal(a, b)
    # a fixed camera: every joint of every frame is inside the picture
    px = renderer.to_pixels(renderer._points)
    assert (px >= 0).all() and (px[..., 0] < 160).all() and (px[..., 1] < 160).all()
    # rendering is deterministic: the same frame twice gives the same pixels (the background is restored)
    assert np.array_equal(renderer.render(0), a)


def test_animation_has_the_requested_frame_count(tmp_path):
    from PIL import Image

    motion = _clip("jump")
    path = save_animation(motion, tmp_path / "jump.gif", "humanml3d", num_frames=12, size=(96, 96))
    with Image.open(path) as gif:
        assert gif.n_frames == 12
        assert gif.size == (96, 96)
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    # the animation keeps the clip's duration (20 fps)
    assert sum(durations) == pytest.approx(1000 * len(motion) / 20, rel=0.1)
    short = motion[:7]
    with Image.open(save_animation(short, tmp_path / "all.gif", "humanml3d", size=(64, 64))) as gif:
        assert gif.n_frames == 7
    with pytest.raises(ValueError, match="GIF"):
        save_animation(motion, tmp_path / "x.mp4", "humanml3d")


def test_keyframe_strip_and_derived_skeleton(tmp_path):
    base = get_skeleton("humanml3d")
    derived = skeleton_from_hierarchy("derived-smpl", base.joint_names, base.parents)  # chains derived, not given
    motion = _clip("squat")
    image = render_keyframes(motion, derived, num_keyframes=4, size=(120, 160), path=tmp_path / "strip.png")
    assert image.size == (480, 160)
    arr = np.asarray(image)
    tiles = [arr[:, i * 120 : (i + 1) * 120] for i in range(4)]
    assert not np.array_equal(tiles[0], tiles[2])
    assert (tmp_path / "strip.png").stat().st_size > 0
    for part in CHAIN_NAMES:
        assert _color_mask(arr, CHAIN_COLORS[part], tol=20).sum() > 5, part


def test_renderer_rejects_bad_motions():
    with pytest.raises(ValueError, match="21 joints but skeleton 'humanml3d' has 22"):
        SkeletonRenderer(np.zeros((5, 21, 3)), "humanml3d")
    bad = _clip()[:10].copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SkeletonRenderer(bad, "humanml3d")


def test_patch_image_part_band_uses_the_chain_colours():
    values = np.random.default_rng(0).normal(size=(3, 32, 80)).astype(np.float32)
    plain = np.asarray(render_motion_patches(values, scale=2))
    banded = np.asarray(render_motion_patches(values, scale=2, part_colors=True))
    assert banded.shape[1] == plain.shape[1] and banded.shape[0] > plain.shape[0]
    width = 16 * 2 + 1  # a part's columns plus its white separator
    for k, part in enumerate(CHAIN_NAMES):
        assert tuple(banded[0, k * width + 5]) == CHAIN_COLORS[part]
    assert np.array_equal(banded[-plain.shape[0] :], plain)


def _with_floor_root(motion: np.ndarray) -> tuple[np.ndarray, Skeleton]:
    """The motion with an extra root joint fixed on the floor at the origin, parent of the pelvis (Bandai-Namco's
    ``joint_Root``)."""
    skel = get_skeleton("humanml3d")
    floor = motion[..., 1].min()
    root = np.zeros((len(motion), 1, 3), np.float32)
    root[..., 1] = floor
    parents = [-1] + [p + 1 for p in skel.parents]
    parents[1] = 0
    return np.concatenate([root, motion], axis=1), skeleton_from_hierarchy("floor-root", ["joint_Root", *skel.joint_names], parents)


def test_a_static_floor_root_is_not_drawn_and_the_camera_follows_the_body():
    walk = _clip("walk")
    assert np.ptp(walk[:, 0, 2]) > 3  # the clip travels several metres
    motion, skel = _with_floor_root(walk)
    renderer = SkeletonRenderer(motion, skel, size=(160, 160))
    assert renderer.hidden_bones.tolist() == [1] and renderer.body_root == 1  # the bone root -> pelvis; trace of the pelvis
    assert renderer.follow
    for frame in (0, len(motion) // 2, len(motion) - 1):
        segments = renderer.bone_segments(frame)
        assert len(segments) == skel.num_joints - 2
        assert not np.isclose(segments, renderer._points[frame, 0]).all(axis=-1).any()  # no bone ends at the root
        px = renderer.joint_pixels(frame)[1:]
        assert (px >= 0).all() and (px < 160).all()
        assert np.ptp(px[:, 1]) > 0.6 * 160  # the body stays a readable size (a fixed camera: < 30 %)
        image = renderer.render(frame)
        assert _near(image, px[skel.joint_names.index("head")], (38, 38, 38), radius=2, tol=60)
    fixed = SkeletonRenderer(motion, skel, size=(160, 160), follow=False)
    assert np.ptp(fixed.joint_pixels(0)[1:, 1]) < 0.3 * 160
    # a skeleton whose root moves with the body hides nothing, and an in-place clip keeps one camera
    assert SkeletonRenderer(walk, "humanml3d", size=(64, 64)).hidden_bones.size == 0
    assert not SkeletonRenderer(_clip(), "humanml3d", size=(64, 64)).follow


def test_real_bandai_root_is_hidden_and_a_dash_is_followed():
    from pathlib import Path

    from modeling_motionpatch.apps.bvh import read_bvh

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bandai-namco" / "ds1-bvh" / "data"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    for name, follows in (("dataset-1_dash_proud_001", True), ("dataset-1_bow_active_001", False)):
        bvh = read_bvh(data / f"{name}.bvh", scale=0.01)
        skel = bvh.skeleton("bandai-native")
        renderer = SkeletonRenderer(bvh.positions, skel, size=(120, 120))
        assert [skel.joint_names[j] for j in renderer.hidden_bones] == ["Hips"]  # the bone joint_Root -> Hips
        assert renderer.follow == follows, name
