"""Motion patches: pure, vectorised array functions from joint positions to ViT input images.

A motion of ``T`` frames and ``J`` joints (``(T, J, 3)``) becomes an image of shape ``(3, T, 5 * N)``:

* channel ``c`` is the coordinate (x, y, z) after a z-score per (joint, axis),
* row ``t`` is frame ``t``,
* column ``N * part + point`` is point ``point`` (of ``N`` = 16) of body part ``part`` in the order
  right leg, left leg, torso, right arm, left arm; each chain of ``L`` joints is resampled to ``N``
  points by linear interpolation along the joint index with half-pixel centres and edge clamping,
  exactly as ``torch.nn.functional.interpolate(mode="linear", align_corners=False)``.

Resampling is linear in the joints, so it is one ``(5N, J)`` matrix applied to every frame at once.
None of these functions loops over frames or joints in Python.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

#: frames per patch row (the ViT patch height) of the default geometry and of saved extractors that predate
#: ``frames_per_patch``; the model config (``MotionPatchConfig.frames_per_patch``) is where a model's geometry lives
PATCH_ROWS = 16


class MotionInputError(ValueError):
    """A motion array cannot be turned into patches (wrong shape, non-finite values, too short...)."""


# ---------------------------------------------------------------------------
# chain resampling
# ---------------------------------------------------------------------------
def chain_sample_positions(length: int, points: int = 16) -> np.ndarray:
    """Fractional joint positions sampled along a chain of ``length`` joints.

    Same rule as ``F.interpolate(mode="linear", align_corners=False)``: ``x = (i + 0.5) * L / N - 0.5``
    clamped to ``[0, L - 1]``. For ``L = 5, N = 16``: 0, 0, 0.28125, 0.59375, ..., 3.71875, 4, 4.
    """
    if length < 1 or points < 1:
        raise ValueError(f"chain length and points must be positive, got length={length}, points={points}.")
    x = (np.arange(points, dtype=np.float64) + 0.5) * (length / points) - 0.5
    return np.clip(x, 0.0, length - 1)


def chain_interpolation_matrix(
    chains: Sequence[Sequence[int]], num_joints: int, points: int = 16, dtype=np.float32
) -> np.ndarray:
    """The ``(len(chains) * points, num_joints)`` matrix ``W`` such that ``W @ joints`` resamples every chain."""
    weights = np.zeros((len(chains) * points, num_joints), dtype=np.float64)
    for part, chain in enumerate(chains):  # 5 chains: a loop over body parts, not over data
        chain = np.asarray(chain, dtype=np.int64)
        x = chain_sample_positions(len(chain), points)
        lo = np.floor(x).astype(np.int64)
        hi = np.minimum(lo + 1, len(chain) - 1)
        frac = x - lo
        rows = part * points + np.arange(points)
        np.add.at(weights, (rows, chain[lo]), 1.0 - frac)
        np.add.at(weights, (rows, chain[hi]), frac)
    return weights.astype(dtype)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
ACCEPTED_MOTION_TYPES = "a (frames, joints, 3) numpy array, torch tensor or nested list of real numbers"


class MotionInputWarning(UserWarning):
    """A motion was accepted but is probably not what the caller meant (e.g. shorter than one patch row)."""


def _as_float32(motion, where: str) -> np.ndarray:
    """A numpy array / torch tensor / nested list -> float32 ndarray; anything else is a :class:`MotionInputError`."""
    if isinstance(motion, (str, bytes, os.PathLike)):
        raise MotionInputError(
            f"{where} is a {type(motion).__name__} ({str(motion)[:80]!r}); expected {ACCEPTED_MOTION_TYPES}. "
            "Load files first (e.g. np.load); the zero-shot pipeline also accepts .npy / .npz paths."
        )
    if hasattr(motion, "detach"):  # torch tensor, without importing torch
        if motion.is_complex():
            raise MotionInputError(f"{where} is a complex tensor ({motion.dtype}); expected real coordinates.")
        motion = motion.detach().cpu().float().numpy()
    elif not isinstance(motion, (np.ndarray, list, tuple)):
        raise MotionInputError(f"{where} is a {type(motion).__name__}; expected {ACCEPTED_MOTION_TYPES}.")
    if isinstance(motion, np.ndarray) and motion.dtype.kind not in "biuf":
        raise MotionInputError(f"{where} has dtype {motion.dtype}; expected real numbers (float, int or bool).")
    try:
        with np.errstate(over="ignore"):  # float64 beyond the float32 range becomes Inf, reported by check_finite
            return np.asarray(motion, dtype=np.float32)
    except (TypeError, ValueError, OverflowError) as err:
        raise MotionInputError(
            f"{where} cannot be read as a numeric array ({err}); expected {ACCEPTED_MOTION_TYPES} with rows of equal "
            "length."
        ) from None


def as_motion_array(motion, index: int | None = None) -> np.ndarray:
    """Convert a numpy array / torch tensor / nested list to a float32 ``(T, J, 3)`` array, checking its type and shape.

    Anything else (a path, a string, ``None``, complex or non-numeric values, ragged nested lists) raises a
    :class:`MotionInputError` naming the motion. Values are not checked here: see :func:`check_finite`.
    """
    where = "motion" if index is None else f"motion {index}"
    arr = _as_float32(motion, where)
    if arr.ndim != 3:
        raise MotionInputError(
            f"{where} has shape {arr.shape}; expected (frames, joints, 3). A single pose needs a frame axis: "
            "use motion[None]."
        )
    if arr.shape[-1] != 3:
        raise MotionInputError(
            f"{where} has last dimension {arr.shape[-1]}; expected 3 coordinates (x, y, z) per joint. "
            "Feature vectors (e.g. HumanML3D's 263-d `new_joint_vecs`) must first be converted to joint positions."
        )
    if arr.shape[0] == 0:
        raise MotionInputError(f"{where} has zero frames.")
    return arr


def is_nested_list_motion(motions: list | tuple) -> bool:
    """Whether a list is one motion written as nested lists (``[[[x, y, z], ...], ...]``), not a list of motions."""
    depth, item = 0, motions
    while isinstance(item, (list, tuple)) and len(item):
        depth, item = depth + 1, item[0]
    return depth == 3 and isinstance(item, (int, float, bool, np.number, np.bool_))


def as_batch_array(motions) -> list[np.ndarray]:
    """A stacked ``(B, T, J, 3)`` array or tensor -> a list of ``B`` float32 ``(T, J, 3)`` arrays (one conversion)."""
    return [as_motion_array(m, i) for i, m in enumerate(_as_float32(motions, "the stacked batch of motions"))]


def check_finite(motions: Sequence[np.ndarray]) -> None:
    """Raise a :class:`MotionInputError` naming the motions (and the first frame and joint) holding NaN or Inf."""
    finite = np.fromiter((np.isfinite(m).all() for m in motions), dtype=bool, count=len(motions))
    if finite.all():
        return
    bad = np.flatnonzero(~finite)
    frame, joint, _ = np.argwhere(~np.isfinite(motions[bad[0]]))[0]
    raise MotionInputError(
        f"motions {bad[:10].tolist()} contain NaN or Inf values ({len(bad)} of {len(motions)}; motion {bad[0]} at "
        f"frame {frame}, joint {joint}; float64 values beyond the float32 range also become Inf); clean or drop them before calling the "
        "feature extractor."
    )


def check_joint_count(motion: np.ndarray, num_joints: int, skeleton_name: str, index: int | None = None) -> None:
    if motion.shape[1] != num_joints:
        where = "motion" if index is None else f"motion {index}"
        raise MotionInputError(
            f"{where} has {motion.shape[1]} joints but skeleton {skeleton_name!r} has {num_joints}. Use the "
            "processor of the matching skeleton (e.g. 'humanml3d' = 22 joints, 'kit' = 21), or reorder the joints."
        )


class SkeletonMismatchError(MotionInputError):
    """A plain array does not look like the skeleton it is read as: other units, another up axis, another joint order."""


#: limits of the plausibility checks: body size as a factor of the reference skeleton's, the share of frames whose
#: pelvis-to-head direction is within 60 degrees of +Y, and the median deviation of the bone proportions (a factor)
#: and of the bone lengths over time (a fraction). Real captures of any person: size 0.5-1.5, proportions within a
#: factor of 1.2, lengths within 1 %; another rig's or a shuffled joint order: proportions off by 2.5x or more.
PLAUSIBLE_SIZE = (0.3, 3.0)
PLAUSIBLE_UPRIGHT_SHARE = 0.1
PLAUSIBLE_PROPORTIONS = 1.5
PLAUSIBLE_LENGTH_CHANGE = 0.1
PLAUSIBLE_FRAME_STEP = 4


def check_skeleton_plausible(
    motions: Sequence[np.ndarray], skeleton_name: str, parents: Sequence[int], spine: tuple[int, int],
    reference: np.ndarray, indexed: bool = True,
) -> None:
    """Check that each ``(T, J, 3)`` motion can be the skeleton ``skeleton_name`` in metres, Y up, in its joint order,
    against a ``reference`` pose of it: the bone proportions and their constancy over time (the joint order), the
    size of the body (units) and the direction from the pelvis to the head (the up axis). A failed check raises a
    :class:`SkeletonMismatchError` for the first failing motion that says what looks wrong and how to fix it. Every
    motion at once (per-motion sums with ``np.add.reduceat``), on every :data:`PLAUSIBLE_FRAME_STEP`-th frame."""
    parents = np.asarray(parents)
    child = np.flatnonzero(parents >= 0)
    reference_bones = np.linalg.norm(reference[child] - reference[parents[child]], axis=-1)
    full = np.fromiter((len(m) for m in motions), dtype=np.int64, count=len(motions))
    flat = np.concatenate(motions, axis=0) if len(motions) > 1 else motions[0]
    step = PLAUSIBLE_FRAME_STEP  # bones and posture change little from one frame to the next: a sample suffices
    flat = flat[np.flatnonzero((np.arange(len(flat)) - np.repeat(np.cumsum(full) - full, full)) % step == 0)]
    lengths = (full + step - 1) // step
    starts = np.cumsum(lengths) - lengths
    bones = np.linalg.norm(flat[:, child] - flat[:, parents[child]], axis=-1).astype(np.float64)  # (frames, bones)
    n = lengths[:, None].astype(np.float64)
    mean = np.add.reduceat(bones, starts, axis=0) / n  # (motions, bones)
    spread = np.sqrt(np.maximum(np.add.reduceat(bones**2, starts, axis=0) / n - mean**2, 0.0))
    direction = flat[:, spine[1]] - flat[:, spine[0]]
    upright = np.add.reduceat((direction[:, 1] > 0.5 * np.linalg.norm(direction, axis=-1)).astype(np.float64), starts) / n[:, 0]
    size = mean.sum(axis=1) / reference_bones.sum()
    ratios = (mean / np.maximum(mean.sum(axis=1, keepdims=True), 1e-12)) / (reference_bones / reference_bones.sum())
    proportions = np.exp(np.median(np.abs(np.log(np.maximum(ratios, 1e-6))), axis=1))
    change = np.median(spread / np.maximum(mean, 1e-12), axis=1)
    body_like = (proportions <= PLAUSIBLE_PROPORTIONS) & (change <= PLAUSIBLE_LENGTH_CHANGE)
    wrong_size = (size < PLAUSIBLE_SIZE[0]) | (size > PLAUSIBLE_SIZE[1])
    failing = ~body_like | wrong_size | (upright < PLAUSIBLE_UPRIGHT_SHARE)
    if not failing.any():
        return
    i = int(np.argmax(failing))
    where = f"motion {i}" if indexed else "the motion"
    if body_like[i] and wrong_size[i]:  # a body, at another scale: its units
        factor = 10.0 ** round(math.log10(size[i])) if size[i] > 0 else 0.0
        unit = {100.0: "centimetres", 1000.0: "millimetres", 10.0: "decimetres"}.get(factor)
        guess = (f"It looks like {unit}: multiply by {1 / factor:g} (`motion * {1 / factor:g}`, or `scale={1 / factor:g}` "
                 "for a BVH file)." if unit else "Convert it to metres.")
        raise SkeletonMismatchError(
            f"{where} has the proportions of a {skeleton_name!r} body but {size[i]:.3g} times its size (the sum of its "
            f"bone lengths): it is not in metres. {guess}"
        )
    if not body_like[i] or wrong_size[i]:
        raise SkeletonMismatchError(
            f"{where} does not look like a {skeleton_name!r} skeleton in its joint order, in metres: its bone "
            f"proportions differ from the skeleton's by a factor of {proportions[i]:.2f} in the median bone, its bone "
            f"lengths change by {change[i]:.0%} over time (a body keeps them) and its size is {size[i]:.3g} times the "
            "skeleton's. If it comes from another rig (a BVH file, another dataset), pass joint_names=[...] so that "
            "its joints are mapped by name, or reorder them; check_skeleton=False skips this check."
        )
    mean_direction = direction[starts[i] : starts[i] + lengths[i]].mean(axis=0)
    axis = int(np.argmax(np.abs(mean_direction)))
    raise SkeletonMismatchError(
        f"{where}: its pelvis-to-head direction points along {'+' if mean_direction[axis] > 0 else '-'}{'XYZ'[axis]}, "
        f"not +Y, in {1 - upright[i]:.0%} of its frames; motions are read with Y up. Rotate it so that Y is up (a Z-up "
        "array: `motion[..., [0, 2, 1]] * [1, 1, -1]`), or pass `up_axis=` for a BVH file; a motion that really never "
        "stands upright can skip the check with check_skeleton=False."
    )


# ---------------------------------------------------------------------------
# frame rate
# ---------------------------------------------------------------------------
def resample_fps(motion: np.ndarray, source_fps: float, target_fps: float = 20.0, mode: str = "nearest") -> np.ndarray:
    """Change the frame rate of a ``(T, ...)`` array.

    ``mode="nearest"`` (the reference behaviour for KIT-ML's 12.5 fps): output frame ``k`` is source frame
    ``floor(k * source_fps / target_fps)``, for ``k < floor(T * target_fps / source_fps)``, so frames are
    duplicated when upsampling. ``mode="linear"``: output frame ``k`` is at time ``k / target_fps``, for
    ``k = 0 .. floor((T - 1) * target_fps / source_fps)``, linearly interpolated between the two nearest
    source frames.
    """
    if not (0 < source_fps < math.inf and 0 < target_fps < math.inf):  # also refuses NaN
        raise ValueError(f"frame rates must be positive and finite, got source_fps={source_fps}, target_fps={target_fps}.")
    if math.isclose(source_fps, target_fps):
        return motion
    t = motion.shape[0]
    ratio = source_fps / target_fps
    if mode == "nearest":
        n = max(1, int(math.floor(t / ratio + 1e-9)))
        idx = np.minimum(np.floor(np.arange(n) * ratio + 1e-9).astype(np.int64), t - 1)
        return motion[idx]
    if mode == "linear":
        n = int(math.floor((t - 1) / ratio + 1e-9)) + 1
        pos = np.arange(n, dtype=np.float64) * ratio
        lo = np.minimum(np.floor(pos).astype(np.int64), t - 1)
        hi = np.minimum(lo + 1, t - 1)
        w = (pos - lo).astype(motion.dtype).reshape((-1,) + (1,) * (motion.ndim - 1))
        return motion[lo] * (1 - w) + motion[hi] * w
    raise ValueError(f"Unknown frame-rate conversion mode {mode!r}; use 'nearest' or 'linear'.")


# ---------------------------------------------------------------------------
# body frame
# ---------------------------------------------------------------------------
#: a frame whose lowest joint lies more than this below the clip's typical lowest point (its 10th percentile, in
#: metres) is taken for a capture glitch when the floor is placed
FLOOR_GLITCH_METRES = 0.05


def floor_heights(lowest: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The floor height of each clip from the height of its lowest joint in every frame (``lowest``, the clips
    concatenated): the lowest frame that is not more than :data:`FLOOR_GLITCH_METRES` below the clip's 10th
    percentile (nearest rank). On clean data this is the lowest point of the clip (HumanML3D's floor); a few glitched
    frames far below the floor (some real takes start a metre under it) are ignored. One sort for every clip."""
    clip = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    ordered = lowest[np.lexsort((lowest, clip))]  # each clip's heights, ascending, clips in order
    typical = ordered[starts + (lengths - 1) // 10]
    kept = np.where(lowest >= np.repeat(typical - FLOOR_GLITCH_METRES, lengths), lowest, np.inf)
    return np.minimum.reduceat(kept, starts).astype(np.float32)


def to_body_frame(motions: Sequence[np.ndarray], facing: Sequence[int], root: int) -> list[np.ndarray]:
    """Put every ``(T, J, 3)`` motion (metres, Y up) in HumanML3D's body frame: the ``root`` joint above the origin
    on the first frame, the body facing +Z on the first frame, the floor at ``y = 0``.

    The facing direction is ``cross(across, up)`` with ``across = (left_hip - right_hip) + (left_shoulder -
    right_shoulder)`` (``facing`` gives these four joints), HumanML3D's rule; the rotation is about the vertical
    axis only. The floor is :func:`floor_heights`. Motions already in this frame (HumanML3D's ``new_joints``) are
    left unchanged up to float32 rounding. Vectorised over every frame of the batch at once.
    """
    lengths = np.fromiter((m.shape[0] for m in motions), dtype=np.int64, count=len(motions))
    flat = np.concatenate(motions, axis=0) if len(motions) > 1 else motions[0]
    first = flat[np.cumsum(lengths) - lengths]  # (B, J, 3): every clip's first frame
    left_hip, right_hip, left_shoulder, right_shoulder = facing
    across = first[:, left_hip] - first[:, right_hip] + first[:, left_shoulder] - first[:, right_shoulder]
    forward_x, forward_z = -across[:, 2], across[:, 0]  # cross(across, +Y)
    norm = np.hypot(forward_x, forward_z)
    turned = norm > 1e-6  # a degenerate pose (all four joints on a vertical line) keeps its heading
    cos = np.where(turned, forward_z / np.where(turned, norm, 1.0), 1.0).astype(np.float32)
    sin = np.where(turned, forward_x / np.where(turned, norm, 1.0), 0.0).astype(np.float32)
    floor = floor_heights(flat[:, :, 1].min(axis=1), lengths)
    per_frame = np.repeat(np.stack([cos, sin, first[:, root, 0], first[:, root, 2], floor], axis=1), lengths, axis=0)
    c, s, x0, z0, y0 = (per_frame[:, k, None] for k in range(5))
    x, z = flat[:, :, 0] - x0, flat[:, :, 2] - z0
    out = np.stack([x * c - z * s, flat[:, :, 1] - y0, x * s + z * c], axis=-1).astype(np.float32, copy=False)
    return np.split(out, np.cumsum(lengths)[:-1])


# ---------------------------------------------------------------------------
# batch construction
# ---------------------------------------------------------------------------
def crop_starts(
    lengths: np.ndarray, max_frames: int, random: bool = False, generator: np.random.Generator | None = None
) -> np.ndarray:
    """Start frame of the kept window of each motion: 0, or uniform in ``[0, T - max_frames]`` when ``random``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    excess = np.maximum(lengths - max_frames, 0)
    if not random:
        return np.zeros_like(lengths)
    rng = generator if generator is not None else np.random.default_rng()
    return rng.integers(0, excess + 1)


def motions_to_patches(
    motions: Sequence[np.ndarray],
    weights: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    max_frames: int,
    starts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalise, resample and crop/pad a ragged list of ``(T_i, J, 3)`` float32 motions in one pass.

    Returns ``motion_values`` ``(B, 3, max_frames, P)`` float32 (zeros after each motion's end, i.e. the
    mean pose) and the kept ``lengths`` ``(B,)``.
    """
    b = len(motions)
    if b == 0:
        raise MotionInputError("got no motions; give at least one (frames, joints, 3) array.")
    lengths = np.fromiter((m.shape[0] for m in motions), dtype=np.int64, count=b)
    if starts is None:
        starts = np.zeros(b, dtype=np.int64)
    kept = np.minimum(lengths - starts, max_frames)
    if np.all(starts == 0) and np.all(kept == lengths):
        flat = np.concatenate(motions, axis=0) if b > 1 else motions[0]
    else:
        flat = np.concatenate([m[s : s + k] for m, s, k in zip(motions, starts, kept)], axis=0)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, per motion
        # z-score per (joint, axis), then resample every chain of every frame with one matrix product
        normed = (flat - mean) / std  # (N, J, 3)
        n, j, _ = normed.shape
        # one GEMM for the whole batch: (N * 3, J) @ (J, P) -> (N, 3, P)
        patches = (normed.transpose(0, 2, 1).reshape(n * 3, j) @ weights.T).reshape(n, 3, -1)
    batch_index = np.repeat(np.arange(b), kept)
    if not np.isfinite(patches).all():  # finite inputs far from the mean overflow float32 once divided by std
        bad = np.unique(batch_index[~np.isfinite(patches).all(axis=(1, 2))])
        raise MotionInputError(
            f"motions {bad[:10].tolist()} overflow float32 after normalisation ((x - mean) / std is beyond 3.4e38); "
            "check their units and the extractor's mean/std."
        )
    out = np.zeros((b, 3, max_frames, weights.shape[0]), dtype=np.float32)
    offsets = np.cumsum(kept) - kept
    frame_index = np.arange(batch_index.shape[0]) - np.repeat(offsets, kept)
    out[batch_index, :, frame_index, :] = patches
    return out, kept


def patch_attention_mask(
    lengths: np.ndarray, max_frames: int, num_parts: int = 5, rows: int = PATCH_ROWS, patches_per_part: int = 1
) -> np.ndarray:
    """Per-patch mask ``(B, max_frames // rows * num_parts * patches_per_part)`` in the ViT's row-major patch order.

    ``rows`` is the patch height (frames per patch row); ``num_parts * patches_per_part`` is the number of patch
    columns of one row (``patches_per_part = points_per_part / patch width``). A patch row is valid (1) when it
    holds at least one real frame; every patch of a row shares its row's value.
    """
    grid_rows = max_frames // rows
    valid_rows = (np.arange(grid_rows)[None, :] * rows) < np.asarray(lengths)[:, None]
    return np.repeat(valid_rows, num_parts * patches_per_part, axis=1).astype(np.int64)
