"""The embedded synthetic dataset: determinism, body plausibility, left/right semantics, schema, speed of use.

The data is procedural (not motion capture); these tests check that it is well formed, that captions
match the motion (so that it is learnable) and that its skeleton resembles the real HumanML3D one.
"""

from __future__ import annotations

import numpy as np
import pytest

from motionpatch_processing import synthetic as S
from motionpatch_processing import synthetic_motion as M
from motionpatch_processing.schema import SPLITS, motion_features

from conftest import shared_path

REQUIRED = (
    "walk",
    "run",
    "jump",
    "squat",
    "wave left hand",
    "wave right hand",
    "kick left leg",
    "kick right leg",
    "turn left",
    "turn right",
    "raise both arms",
    "sit down",
)
LEFT_RIGHT = {
    "wave left hand": "left", "wave right hand": "right", "kick left leg": "left", "kick right leg": "right",
    "turn left": "left", "turn right": "right", "side step left": "left", "side step right": "right",
}
BONES = [(j, M._PARENTS[j]) for j in range(1, M.NUM_JOINTS)]


def bone_lengths(motion: np.ndarray) -> np.ndarray:
    """``(T, 21)`` lengths of every bone in every frame."""
    return np.stack([np.linalg.norm(motion[:, j] - motion[:, p], axis=-1) for j, p in BONES], axis=1)


def path_length(motion: np.ndarray, joint: int) -> float:
    """Distance travelled by ``joint`` relative to the pelvis."""
    rel = motion[:, joint] - motion[:, 0]
    return float(np.linalg.norm(np.diff(rel, axis=0), axis=-1).sum())


@pytest.fixture(scope="module")
def clips() -> dict[str, list[tuple[np.ndarray, list[str], list[str]]]]:
    """Four random variations of every action."""
    return {
        a: [M.generate_motion(a, np.random.default_rng([7, i, k])) for k in range(4)]
        for i, a in enumerate(M.ACTIONS)
    }


def test_action_list():
    assert len(M.ACTIONS) >= 12 and len(set(M.ACTIONS)) == len(M.ACTIONS)
    assert set(REQUIRED) <= set(M.ACTIONS)


def test_parents_match_the_registered_skeleton():
    from modeling_motionpatch.skeletons import HUMANML3D

    assert M._PARENTS == HUMANML3D.parents


def test_determinism_by_seed():
    a = M.generate_motion("walk", np.random.default_rng(3))
    b = M.generate_motion("walk", np.random.default_rng(3))
    c = M.generate_motion("walk", np.random.default_rng(4))
    assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    assert a[0].shape != c[0].shape or not np.allclose(a[0], c[0])
    # a dataset row depends only on (seed, index): regenerating it alone gives the same sample
    ds = S.generate_synthetic_dataset(6, seed=5, start_index=10)
    again = S.generate_synthetic_dataset(6, seed=5, start_index=10)
    alone = S.synthetic_sample(13, seed=5)
    for key in ("id", "captions", "labels"):
        assert ds[3][key] == alone[key] == again[3][key]
    np.testing.assert_array_equal(np.asarray(ds[3]["motion"], dtype=np.float32), alone["motion"])
    other = S.synthetic_sample(13, seed=6)
    assert other["motion"].shape != alone["motion"].shape or not np.allclose(other["motion"], alone["motion"])


def test_every_action_is_well_formed_and_plausible(clips):
    for action, variants in clips.items():
        for motion, captions, labels in variants:
            assert motion.dtype == np.float32 and motion.ndim == 3 and motion.shape[1:] == (22, 3), action
            assert M.MIN_FRAMES <= len(motion) <= M.MAX_FRAMES, (action, len(motion))
            assert np.isfinite(motion).all(), action
            # feet on the ground, nothing below it
            assert motion[..., 1].min() >= -0.05, action
            feet = motion[:, [M.L_ANKLE, M.R_ANKLE, M.L_FOOT, M.R_FOOT], 1].min(axis=1)
            if action not in ("jump", "jumping jacks", "run"):
                assert feet.max() < 0.15, action  # always a foot on the ground
            # standing height: head joint ~0.925 x stature (1.57 m here), top of the head ~1.7 m
            head = motion[:, M.HEAD, 1].max()
            assert 1.45 <= head <= (1.95 if action == "jump" else 1.75), (action, head)
            assert abs(motion[:, :, 0]).max() < 25 and abs(motion[:, :, 2]).max() < 25, action
            # canonical start: root at x = z = 0, facing +Z
            np.testing.assert_allclose(motion[0, 0, [0, 2]], 0.0, atol=1e-5)
            assert abs(M.facing_angle(motion)[0]) < 1e-3
            assert 1 <= len(captions) <= 3 and all(isinstance(c, str) and c for c in captions)
            assert labels[0] == action and (len(labels) == 1 or labels[1] in M.STYLES)


def test_bone_lengths_are_constant_and_scale_with_stature(clips):
    rest = np.linalg.norm(M.rest_offsets()[1:], axis=-1)
    for action, variants in clips.items():
        lengths = bone_lengths(variants[0][0])
        np.testing.assert_allclose(lengths, np.broadcast_to(rest, lengths.shape), atol=2e-5, err_msg=action)
    tall, _, _ = M.generate_motion("walk", np.random.default_rng(0), stature=1.87)
    np.testing.assert_allclose(bone_lengths(tall), np.broadcast_to(rest * 1.1, (len(tall), 21)), atol=2e-5)


def test_bone_lengths_resemble_the_real_humanml3d_skeleton():
    """Synthetic segments vs the real clip 000000 (table in the module docstring): all within 9 %."""
    real = np.load(shared_path("humanml3d-sample", "new_joints", "000000.npy"))
    ratio = np.linalg.norm(M.rest_offsets()[1:], axis=-1) / bone_lengths(real).mean(axis=0)
    assert np.all((ratio > 0.9) & (ratio < 1.1)), dict(
        zip([M._PARENTS[j] for j in range(1, 22)], ratio.round(3))
    )
    assert abs(ratio - 1).mean() < 0.06
    synthetic_stand = M.generate_motion("stand still", np.random.default_rng(0), noise=0.0)[0]
    assert abs(synthetic_stand[0, M.HEAD, 1] - real[0, M.HEAD, 1]) < 0.05


def test_left_and_right_actions_move_the_correct_side(clips):
    for motion, *_ in clips["wave left hand"]:
        assert path_length(motion, M.L_WRIST) > 3 * path_length(motion, M.R_WRIST)
    for motion, *_ in clips["wave right hand"]:
        assert path_length(motion, M.R_WRIST) > 3 * path_length(motion, M.L_WRIST)
    for motion, *_ in clips["kick left leg"]:
        for left, right in ((M.L_ANKLE, M.R_ANKLE), (M.L_FOOT, M.R_FOOT)):
            assert path_length(motion, left) > 3 * path_length(motion, right)
        assert motion[:, M.L_FOOT, 2].max() - motion[:, M.R_FOOT, 2].max() > 0.3  # kicks forward (+Z)
    for motion, *_ in clips["kick right leg"]:
        for left, right in ((M.L_ANKLE, M.R_ANKLE), (M.L_FOOT, M.R_FOOT)):
            assert path_length(motion, right) > 3 * path_length(motion, left)
    for motion, *_ in clips["side step left"]:
        assert motion[-1, 0, 0] > 0.3  # left = +X
    for motion, *_ in clips["side step right"]:
        assert motion[-1, 0, 0] < -0.3


def test_turns_rotate_the_facing_direction_with_opposite_signs(clips):
    for motion, *_ in clips["turn left"]:
        assert np.degrees(np.unwrap(M.facing_angle(motion))[-1]) > 60  # counterclockwise from above
    for motion, *_ in clips["turn right"]:
        assert np.degrees(np.unwrap(M.facing_angle(motion))[-1]) < -60
    for action, sign in (("turn left", 1), ("turn right", -1)):
        for degrees in (90, 180):
            motion, captions, _ = M.generate_motion(
                action, np.random.default_rng(1), degrees=degrees, style=None
            )
            turned = np.degrees(np.unwrap(M.facing_angle(motion))[-1])
            assert abs(turned - sign * degrees) < 15, (action, degrees, turned)
            if degrees == 180:
                assert all("around" in c for c in captions)


def test_directions_match_the_motion():
    walk, captions, _ = M.generate_motion(
        "walk", np.random.default_rng(0), direction="forward", num_frames=100
    )
    assert walk[-1, 0, 2] > 2.0 and abs(walk[-1, 0, 0]) < 0.6
    back, _, _ = M.generate_motion("walk backwards", np.random.default_rng(0), num_frames=100)
    assert back[-1, 0, 2] < -1.0
    for direction, sign in (
        ("diagonal left", 1),
        ("diagonal right", -1),
        ("curve left", 1),
        ("curve right", -1),
    ):
        m, captions, _ = M.generate_motion(
            "run", np.random.default_rng(0), direction=direction, num_frames=100
        )
        assert np.sign(m[-1, 0, 0]) == sign and m[-1, 0, 2] > 2.0, direction
        assert all(direction.split()[1] in c for c in captions)
    jump, _, _ = M.generate_motion("jump", np.random.default_rng(0), direction="forward", count=2)
    assert jump[-1, 0, 2] > 0.6 and jump[:, 0, 1].max() - jump[0, 0, 1] > 0.15
    up, _, _ = M.generate_motion("raise both arms", np.random.default_rng(0), direction="overhead")
    assert up[:, [M.L_WRIST, M.R_WRIST], 1].max() > up[0, M.HEAD, 1] + 0.1
    seated, _, _ = M.generate_motion("sit down", np.random.default_rng(0))
    assert seated[-1, 0, 1] < 0.7 < seated[0, 0, 1]
    standing, _, _ = M.generate_motion("stand up", np.random.default_rng(0))
    assert standing[0, 0, 1] < 0.7 < standing[-1, 0, 1]


def test_captions_name_the_correct_side_style_and_count():
    for action, side in LEFT_RIGHT.items():
        other = "right" if side == "left" else "left"
        for k in range(6):
            _, captions, _ = M.generate_motion(action, np.random.default_rng(k), num_captions=3)
            for caption in captions:
                assert side in caption.split() or f"{side}." in caption, (action, caption)
                assert other not in caption, (action, caption)
    _, captions, labels = M.generate_motion(
        "squat", np.random.default_rng(0), style="slowly", count=2, num_captions=3
    )
    assert labels == ["squat", "slowly"]
    assert all("slowly" in c for c in captions) and any("twice" in c or "two" in c for c in captions)
    _, captions, labels = M.generate_motion("clap", np.random.default_rng(0), style=None)
    assert labels == ["clap"] and not any(w in c for c in captions for w in M.STYLES if w)


def test_clear_errors():
    with pytest.raises(ValueError, match="Known actions: .*'walk'"):
        M.generate_motion("moonwalk", np.random.default_rng(0))
    with pytest.raises(ValueError, match="Known styles"):
        M.generate_motion("walk", np.random.default_rng(0), style="gracefully")
    with pytest.raises(ValueError, match="Known directions"):
        M.generate_motion("walk", np.random.default_rng(0), direction="up")
    with pytest.raises(ValueError, match="takes no count"):
        M.generate_motion("walk", np.random.default_rng(0), count=2)
    with pytest.raises(ValueError, match="num_frames"):
        M.generate_motion("walk", np.random.default_rng(0), num_frames=5)
    with pytest.raises(ValueError, match="Known actions"):
        S.generate_synthetic_dataset(3, actions=["walk", "fly"])


def test_requested_length_and_count_are_respected():
    for action in M.ACTIONS:
        motion, _, _ = M.generate_motion(action, np.random.default_rng(0), num_frames=64)
        assert motion.shape == (64, 22, 3), action
    _, captions, _ = M.generate_motion(
        "jump", np.random.default_rng(0), count=3, num_frames=60, num_captions=3
    )
    assert any("three" in c for c in captions)


def test_dataset_dict_splits_schema_and_stability():
    dd = S.build_synthetic_dataset_dict(num_train=30, num_validation=8, num_test=9, seed=0)
    assert tuple(dd) == SPLITS
    assert {s: len(dd[s]) for s in SPLITS} == {"train": 30, "validation": 8, "test": 9}
    ids = [set(dd[s]["id"]) for s in SPLITS]
    assert sum(map(len, ids)) == 47 and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert dd["train"][0]["id"] == "synthetic-000000"
    for split in SPLITS:
        assert dd[split].features == motion_features(22)
    row = dd["validation"][0]
    assert (row["fps"], row["skeleton"], row["source"], row["mirrored"]) == (
        20.0,
        "humanml3d",
        "synthetic",
        False,
    )
    assert np.asarray(row["motion"]).shape[1:] == (22, 3)
    # all actions appear, evenly, in a split of len(ACTIONS) samples
    labels = [r[0] for r in S.generate_synthetic_dataset(len(M.ACTIONS))["labels"]]
    assert sorted(labels) == sorted(M.ACTIONS)
    # a split does not change when another split changes size
    other = S.build_synthetic_dataset_dict(num_train=5, num_validation=2, num_test=9, seed=0)
    assert other["test"]["id"] == dd["test"]["id"] and other["test"]["captions"] == dd["test"]["captions"]


def test_motion_patches_have_no_nan():
    from modeling_motionpatch import MotionPatchFeatureExtractor
    from modeling_motionpatch.apps.motion_statistics import compute_statistics

    ds = S.generate_synthetic_dataset(len(M.ACTIONS), seed=1).with_format("numpy")
    motions = [np.asarray(m, dtype=np.float32) for m in ds["motion"]]
    fe = MotionPatchFeatureExtractor("humanml3d")
    fe.set_statistics(*compute_statistics(motions))
    out = fe(motions, return_tensors="np")
    assert out["motion_values"].shape == (len(motions), 3, 224, 80)
    assert np.isfinite(out["motion_values"]).all()


def test_actions_are_recoverable_from_motion():
    """Learnability smoke check: nearest centroids on crude motion statistics beat chance by far."""

    def features(motion: np.ndarray) -> np.ndarray:
        rel = motion - motion[:, :1] * np.array([1.0, 0.0, 1.0])
        turn = np.unwrap(M.facing_angle(motion))[-1]
        return np.concatenate([rel.mean(0).ravel(), rel.std(0).ravel(), motion[-1, 0] - motion[0, 0], [turn]])

    def split(start: int, n: int):
        rows = [S.synthetic_sample(i, seed=0) for i in range(start, start + n)]
        return np.stack([features(r["motion"]) for r in rows]), np.array(
            [M.ACTIONS.index(r["labels"][0]) for r in rows]
        )

    n = len(M.ACTIONS)
    x_train, y_train = split(0, 12 * n)
    x_test, y_test = split(S.SPLIT_OFFSETS["test"], 5 * n)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    centroids = np.stack([((x_train - mean) / std)[y_train == k].mean(0) for k in range(n)])
    dist = ((((x_test - mean) / std)[:, None, :] - centroids[None]) ** 2).sum(-1)
    accuracy = float((dist.argmin(1) == y_test).mean())
    assert accuracy > 0.7, accuracy  # chance is 1/21
