"""Feature extractor: raw joint positions -> ``motion_values`` for :class:`MotionPatchModel`."""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from .motion_patches import (
    PATCH_ROWS,
    MotionInputError,
    MotionInputWarning,
    as_batch_array,
    as_motion_array,
    chain_interpolation_matrix,
    check_finite,
    check_joint_count,
    check_skeleton_plausible,
    crop_starts,
    is_nested_list_motion,
    motions_to_patches,
    patch_attention_mask,
    resample_fps,
    to_body_frame,
)
from .skeletons import REFERENCE_POSES, Skeleton, get_skeleton


class MotionPatchFeatureExtractor(FeatureExtractionMixin):
    r"""Turns skeleton motions ``(frames, joints, 3)`` into motion-patch images for a ViT.

    Steps, all vectorised over the batch: frame-rate conversion to ``fps`` (when ``input_fps`` differs),
    z-score per (joint, axis) with ``mean``/``std`` of shape ``(joints, 3)``, resampling of the skeleton's five
    chains to ``points_per_part`` points each, crop to ``max_frames`` (the first frames, or a random window
    when ``training=True``) or zero-padding at the end (after normalisation, so padding is the mean pose).
    Before normalisation every motion is put in one body frame (``body_frame=True``, HumanML3D's convention: the
    pelvis above the origin on the first frame, facing +Z, the floor at ``y = 0``; see
    :func:`~.motion_patches.to_body_frame`), so that clips from any capture source meet the model alike.

    Motions shorter than one patch row (``frames_per_patch`` frames) are padded like any other short motion and
    their first patch row counts as valid; set ``min_frames`` to reject shorter motions with an error instead.

    The patch geometry (``max_frames``, ``points_per_part``, ``frames_per_patch``, ``points_per_patch``) must be the
    model's (``MotionPatchConfig.max_frames`` etc.); ``motion_attention_mask`` has one entry per ViT patch.

    Args:
        skeleton (`str` or `dict`): a registered skeleton name (``"humanml3d"``, ``"kit"``) or a skeleton spec
            (``Skeleton.to_dict()``), stored in full so the file is self-contained.
        mean, std (`array-like` of shape `(joints, 3)`, *optional*): normalisation statistics; identity when omitted.
        max_frames (`int`, defaults to 224): frames per image, a multiple of ``frames_per_patch``.
        points_per_part (`int`, defaults to 16): points each chain is resampled to.
        frames_per_patch (`int`, defaults to 16): frames per ViT patch row (the model's patch height,
            ``MotionPatchConfig.frames_per_patch``); files saved before it existed use 16.
        points_per_patch (`int`, *optional*): point columns per ViT patch (the model's patch width,
            ``MotionPatchConfig.points_per_patch``), a divisor of ``points_per_part``; defaults to
            ``points_per_part`` (one patch per body part and row).
        fps (`float`, defaults to 20.0): the model's frame rate.
        input_fps (`float`, *optional*): frame rate of incoming motions when it differs from ``fps``
            (e.g. 12.5 for KIT-ML); can be overridden per call.
        fps_mode (`str`, defaults to ``"nearest"``): ``"nearest"`` (reference behaviour) or ``"linear"``.
        min_frames (`int`, defaults to 1): motions with fewer frames raise a ``ValueError``.
        std_epsilon (`float`, defaults to 1e-8): floor applied to ``std`` to avoid division by zero.
        num_persons (`int`, defaults to 1): persons per sample. With 2 (two-person interactions), each sample is a
            pair of motions; outputs gain a person axis after the batch axis and both persons share one crop window.
        body_frame (`bool`, defaults to `True`): put every motion in the body frame first (single persons only: the
            persons of a pair keep their shared frame, whose relative placement is part of the interaction).
            HumanML3D's ``new_joints`` are already in it and come out unchanged (< 1e-6 m).
        check_skeleton (`bool`, defaults to `True`): check that plain arrays can be the skeleton in metres, Y up and
            its joint order (body size, pelvis-to-head direction, bone proportions and their constancy) against a
            reference pose of it, for skeletons that have one (``humanml3d``); a failed check is a
            ``SkeletonMismatchError`` that says what looks wrong and how to fix it (``joint_names=``, a scale, the
            up axis). Random arrays fail it: pass `False` for those.
    """

    model_input_names = ["motion_values", "motion_attention_mask"]

    def __init__(
        self,
        skeleton: str | Mapping[str, Any] | Skeleton = "humanml3d",
        mean: Sequence | np.ndarray | None = None,
        std: Sequence | np.ndarray | None = None,
        max_frames: int = 224,
        points_per_part: int = 16,
        frames_per_patch: int = PATCH_ROWS,
        points_per_patch: int | None = None,
        fps: float = 20.0,
        input_fps: float | None = None,
        fps_mode: str = "nearest",
        min_frames: int = 1,
        std_epsilon: float = 1e-8,
        num_persons: int = 1,
        body_frame: bool = True,
        check_skeleton: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        skel = get_skeleton(skeleton)
        points_per_patch = points_per_part if points_per_patch is None else points_per_patch
        if frames_per_patch <= 0 or points_per_part <= 0 or points_per_patch <= 0:
            raise ValueError(
                f"frames_per_patch ({frames_per_patch}), points_per_part ({points_per_part}) and points_per_patch "
                f"({points_per_patch}) must be positive."
            )
        if max_frames <= 0 or max_frames % frames_per_patch:
            raise ValueError(
                f"max_frames must be a positive multiple of {frames_per_patch} (frames_per_patch, the model's patch "
                f"height), got {max_frames}; take both from the model config (config.max_frames, "
                "config.frames_per_patch)."
            )
        if points_per_part % points_per_patch:
            raise ValueError(
                f"points_per_part ({points_per_part}) must be a multiple of points_per_patch ({points_per_patch}, the "
                "model's patch width): a patch must not straddle two body parts; take both from the model config "
                "(config.points_per_part, config.points_per_patch)."
            )
        if fps_mode not in ("nearest", "linear"):
            raise ValueError(f"fps_mode must be 'nearest' or 'linear', got {fps_mode!r}.")
        for what, rate in (("fps", fps), ("input_fps", input_fps)):
            if rate is not None and not 0 < float(rate) < math.inf:  # also refuses NaN
                raise ValueError(f"{what} must be a positive, finite frame rate, got {rate!r}.")
        if min_frames < 1:
            raise ValueError(f"min_frames must be at least 1, got {min_frames}.")
        self.skeleton = skel.to_dict()
        self.max_frames = int(max_frames)
        self.points_per_part = int(points_per_part)
        self.frames_per_patch = int(frames_per_patch)
        self.points_per_patch = int(points_per_patch)
        self.fps = float(fps)
        self.input_fps = None if input_fps is None else float(input_fps)
        self.fps_mode = fps_mode
        self.min_frames = int(min_frames)
        self.std_epsilon = float(std_epsilon)
        if num_persons < 1:
            raise ValueError(f"num_persons must be at least 1, got {num_persons}.")
        self.num_persons = int(num_persons)
        self.body_frame = bool(body_frame)
        self.check_skeleton = bool(check_skeleton)
        self.set_statistics(mean, std)

    # ----------------------------------------------------------------- state
    def set_statistics(self, mean=None, std=None) -> None:
        """Set the per-(joint, axis) normalisation statistics (``None`` = zeros / ones)."""
        j = len(self.skeleton["joint_names"])
        arrays = []
        for what, value, default in (("mean", mean, 0.0), ("std", std, 1.0)):
            arr = np.full((j, 3), default, dtype=np.float32) if value is None else np.asarray(value, dtype=np.float32)
            if arr.shape != (j, 3):
                raise ValueError(
                    f"{what} has shape {arr.shape}; expected ({j}, 3) for skeleton {self.skeleton['name']!r} "
                    f"({j} joints x 3 axes). Compute it with "
                    "`modeling_motionpatch.apps.motion_statistics.compute_statistics`."
                )
            if not np.isfinite(arr).all():
                raise ValueError(f"{what} contains NaN or Inf values.")
            arrays.append(arr)
        if (arrays[1] < 0).any():
            raise ValueError("std has negative entries.")
        self.mean = arrays[0]
        self.std = arrays[1]

    @property
    def skeleton_obj(self) -> Skeleton:
        return get_skeleton(self.skeleton)

    @property
    def num_joints(self) -> int:
        return len(self.skeleton["joint_names"])

    @property
    def patch_grid(self) -> tuple[int, int]:
        """``(patch rows, patch columns)`` of the images this extractor makes (the model's ``config.patch_grid``)."""
        columns = len(self.skeleton["chains"]) * (self.points_per_part // self.points_per_patch)
        return self.max_frames // self.frames_per_patch, columns

    @property
    def num_patches(self) -> int:
        """Entries of ``motion_attention_mask`` per motion: one per ViT patch."""
        rows, columns = self.patch_grid
        return rows * columns

    def _cached(self) -> tuple[np.ndarray, tuple[int, int, int, int], int]:
        """The chain interpolation matrix, the facing joints and the pelvis of the skeleton (computed once)."""
        key = (tuple(map(tuple, self.skeleton["chains"])), self.num_joints, self.points_per_part)
        cache = self.__dict__.get("_cache")
        if cache is None or cache[0] != key:
            w = chain_interpolation_matrix(self.skeleton["chains"], self.num_joints, self.points_per_part)
            skeleton = self.skeleton_obj
            cache = (key, w, skeleton.facing_joints(), skeleton.pelvis)
            self.__dict__["_cache"] = cache
        return cache[1:]

    def _weights(self) -> np.ndarray:
        return self._cached()[0]

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("_cache", None)
        out["mean"] = np.asarray(self.mean).tolist()
        out["std"] = np.asarray(self.std).tolist()
        return out

    def _flatten_groups(self, motions) -> list:
        """``[(a, b), ...]`` or a ``(persons, T, J, 3)`` array per sample -> a flat list of motions."""
        persons = self.num_persons
        if hasattr(motions, "shape") and getattr(motions, "ndim", 0) == 4:  # one sample (persons, T, J, 3)
            motions = [motions]
        flat = []
        if not isinstance(motions, (list, tuple)):
            raise MotionInputError(
                f"got a {type(motions).__name__}; this extractor expects a list of samples of {persons} motions each "
                "(num_persons), or one (persons, frames, joints, 3) array."
            )
        for i, group in enumerate(motions):
            if not hasattr(group, "__len__") or isinstance(group, (str, bytes)) or len(group) != persons:
                size = len(group) if hasattr(group, "__len__") else type(group).__name__
                raise MotionInputError(
                    f"sample {i} has {size} motions; this extractor expects {persons} per sample (num_persons)."
                )
            flat.extend(group)
        return flat

    @staticmethod
    def _as_batch(motions) -> list[np.ndarray]:
        """One motion or a batch of them (a list, or a stacked ``(B, T, J, 3)`` array) -> a list of float32 arrays."""
        if isinstance(motions, (list, tuple)) and not is_nested_list_motion(motions):
            if len(motions) == 0:
                raise MotionInputError("got an empty list of motions.")
            return [as_motion_array(m, i) for i, m in enumerate(motions)]
        if getattr(motions, "ndim", None) == 4:  # an already-stacked (B, T, J, 3) batch of equal lengths
            if len(motions) == 0:
                raise MotionInputError(f"got an empty batch of shape {tuple(motions.shape)}.")
            return list(as_batch_array(motions))
        return [as_motion_array(motions)]

    def _map_by_name(self, batch: list[np.ndarray], joint_names, joint_map) -> list[np.ndarray]:
        try:  # mapping rigs by joint name is the package's (modeling_motionpatch.apps.joint_maps), not model code
            from modeling_motionpatch.apps.joint_maps import JointMapError, map_joints
        except ImportError:
            raise ValueError(
                "joint_names= / joint_map= (joints mapped by name) need the motionpatch package (pip install "
                "motionpatch), which this environment lacks; or pass the joints in the skeleton's order: "
                f"{list(self.skeleton['joint_names'])}."
            ) from None
        if joint_names is None:
            raise JointMapError("joint_map= needs joint_names= (the input's joint names) to map the joints by name.")
        shared = not len(joint_names) or isinstance(joint_names[0], str)
        if not shared and len(joint_names) != len(batch):
            raise JointMapError(f"joint_names holds {len(joint_names)} lists for {len(batch)} motions; give one list "
                                "of names for all motions or one per motion.")
        return [map_joints(m, joint_names if shared else joint_names[i], self.skeleton, joint_map)
                for i, m in enumerate(batch)]

    # ----------------------------------------------------------------- call
    def __call__(
        self,
        motions,
        return_tensors: str | None = None,
        training: bool = False,
        generator: np.random.Generator | int | None = None,
        input_fps: float | None = None,
        body_frame: bool | None = None,
        joint_names: Sequence[str] | Sequence[Sequence[str]] | None = None,
        joint_map: Mapping[str, Any] | None = None,
        check_skeleton: bool | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Build a batch of motion patches.

        Args:
            motions: one ``(T, J, 3)`` array (numpy, torch or nested lists) or a list of them (ragged lengths).
            return_tensors: ``"pt"``, ``"np"`` or ``None`` (numpy).
            training: crop a random window of ``max_frames`` from longer motions instead of the first frames.
            generator: ``numpy.random.Generator`` or seed for the random crop.
            input_fps: frame rate of ``motions`` (defaults to the extractor's ``input_fps``, else ``fps``).
            body_frame: overrides the extractor's ``body_frame`` for this call (training code that augments motions
                already put in the body frame passes ``False``).
            joint_names: the input's joint names (one list for all motions, or one list per motion): each motion is
                first mapped by name onto the extractor's skeleton (``joint_maps.py``; a ``JointMapError`` says which
                joints are missing). Without it, the joint axis must already be in the skeleton's order.
            joint_map: explicit ``{skeleton joint: input joint name(s)}`` entries for the mapping by name.
            check_skeleton: overrides the extractor's ``check_skeleton`` for this call.

        Returns:
            `BatchFeature` with ``motion_values`` ``(B, 3, max_frames, 5 * points_per_part)`` float32,
            ``motion_lengths`` ``(B,)`` (valid frames after cropping) and ``motion_attention_mask``
            ``(B, num_patches)``, one entry per ViT patch in its row-major order (``max_frames // frames_per_patch``
            rows of ``5 * points_per_part // points_per_patch`` patches; 1 for patches of rows holding real frames).
        """
        if kwargs:
            raise TypeError(f"Unexpected arguments for MotionPatchFeatureExtractor: {sorted(kwargs)}.")
        persons = self.num_persons
        if persons > 1:
            motions = self._flatten_groups(motions)
        batch = self._as_batch(motions)
        if joint_names is not None or joint_map is not None:  # joints by name -> the skeleton's order, first
            batch = self._map_by_name(batch, joint_names, joint_map)
        j = self.num_joints
        name = self.skeleton["name"]
        for i, m in enumerate(batch):
            check_joint_count(m, j, name, i if len(batch) > 1 else None)
        check_finite(batch)
        reference = REFERENCE_POSES.get(name)
        if reference is not None and (self.check_skeleton if check_skeleton is None else check_skeleton):
            torso = self.skeleton["chains"][2]
            check_skeleton_plausible(batch, name, self.skeleton["parents"], (torso[0], torso[-1]),
                                     np.asarray(reference, dtype=np.float32), indexed=len(batch) > 1)
        src_fps = input_fps if input_fps is not None else (self.input_fps or self.fps)
        if src_fps != self.fps:
            batch = [resample_fps(m, src_fps, self.fps, self.fps_mode) for m in batch]
        if (self.body_frame if body_frame is None else body_frame) and persons == 1:
            _, facing, pelvis = self._cached()
            batch = to_body_frame(batch, facing, pelvis)
        lengths = np.fromiter((m.shape[0] for m in batch), dtype=np.int64, count=len(batch))
        if (lengths < self.min_frames).any():
            i = int(np.argmax(lengths < self.min_frames))
            raise MotionInputError(
                f"motion {i} has {lengths[i]} frames at {self.fps:g} fps, fewer than min_frames={self.min_frames}."
            )
        rows = self.frames_per_patch
        short = np.flatnonzero(lengths < rows)
        if len(short):
            warnings.warn(
                f"{len(short)} of {len(batch)} motions have fewer than {rows} frames at {self.fps:g} fps "
                f"(indices {short[:10].tolist()}, shortest {int(lengths[short].min())}): their one patch row is "
                f"mostly mean-pose padding. Set min_frames={rows} to refuse such motions instead.",
                MotionInputWarning,
                stacklevel=2,
            )
        rng = generator if isinstance(generator, np.random.Generator) or generator is None else np.random.default_rng(generator)
        if persons > 1:  # one crop window per group, shared by its persons
            group_lengths = lengths.reshape(-1, persons).max(axis=1)
            starts = np.repeat(crop_starts(group_lengths, self.max_frames, random=training, generator=rng), persons)
            starts = np.minimum(starts, lengths - 1)
        else:
            starts = crop_starts(lengths, self.max_frames, random=training, generator=rng)
        values, kept = motions_to_patches(
            batch, self._weights(), self.mean, np.maximum(self.std, self.std_epsilon), self.max_frames, starts
        )
        mask = patch_attention_mask(
            kept, self.max_frames, len(self.skeleton["chains"]), rows, self.points_per_part // self.points_per_patch
        )
        if persons > 1:
            values = values.reshape(-1, persons, *values.shape[1:])
            kept = kept.reshape(-1, persons)
            mask = mask.reshape(-1, persons, mask.shape[-1])
        data = {"motion_values": values, "motion_lengths": kept, "motion_attention_mask": mask}
        return BatchFeature(data=data, tensor_type=return_tensors)


__all__ = ["MotionPatchFeatureExtractor"]
