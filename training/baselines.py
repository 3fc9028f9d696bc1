"""Baselines and ablations of the motion-patch input, for accuracy studies (not part of the library).

* :class:`RawJointsFeatureExtractor` - the z-scored joint positions themselves as a ``(3, frames, joints)`` "image",
  without the chain resampling: with :func:`raw_joints_motion_config` (a ViT whose patch is one whole frame,
  ``patch_size = (1, joints)``) the motion tower becomes the classic **transformer over raw joints**: a linear
  embedding of each frame's ``joints * 3`` coordinates, a learned position embedding per frame, transformers'
  own ViT encoder blocks, mean pooling, and the same projection head and loss as the motion-patch model.
* :func:`shuffled_chains_skeleton` - the same skeleton with its joints relabelled by a random permutation inside
  the five chains, so the motion-patch image keeps its shape but loses the body-part ordering of its columns.

Both reuse :func:`modeling_motionpatch.motion_patches.motions_to_patches` (crop, pad, z-score), so the baseline
sees exactly the frames, crops, mirroring and statistics the motion-patch model sees; only the tokenisation
differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from transformers import ViTConfig, ViTModel

from modeling_motionpatch import MotionPatchFeatureExtractor, Skeleton, get_skeleton

__all__ = [
    "RawJointsFeatureExtractor",
    "count_motion_tower_parameters",
    "raw_joints_motion_config",
    "shuffled_chains_skeleton",
]


class RawJointsFeatureExtractor(MotionPatchFeatureExtractor):
    """``motion_values`` of shape ``(B, 3, max_frames, joints)``: the z-scored joints, no chain resampling.

    Every other step (frame rate, statistics, crop, padding with the mean pose, checks) is the motion-patch
    extractor's. ``motion_attention_mask`` still counts patch rows of 16 frames x 5 parts and is meant to be
    ignored (``mask_motion_padding=False``).
    """

    def _weights(self) -> np.ndarray:
        return np.eye(self.num_joints, dtype=np.float32)


def shuffled_chains_skeleton(skeleton: str | Mapping[str, Any] | Skeleton, seed: int) -> Skeleton:
    """``skeleton`` with every joint index in its chains replaced through a seeded random permutation.

    The chains keep their lengths and their shared joints (a joint that starts three chains is replaced by the
    same joint in all three), so the image has the same shape and the same multiset of joints; only *which*
    joints sit next to each other changes. Names, parents and left/right pairs are unchanged (mirroring still
    works on the motions).
    """
    base = get_skeleton(skeleton)
    perm = np.random.default_rng(seed).permutation(base.num_joints)
    spec = base.to_dict()
    spec["name"] = f"{base.name}-shuffled-{seed}"
    spec["chains"] = [[int(perm[j]) for j in chain] for chain in base.chains]
    return Skeleton.from_dict(spec)


def count_motion_tower_parameters(config: ViTConfig) -> int:
    """Parameters of ``ViTModel(config, add_pooling_layer=False)`` (the motion tower), counted on a built model."""
    return sum(p.numel() for p in ViTModel(config, add_pooling_layer=False).parameters())


def raw_joints_motion_config(patch_config: ViTConfig | Mapping[str, Any], num_joints: int) -> tuple[ViTConfig, dict[str, int]]:
    """The raw-joints transformer with the parameter budget of the motion-patch ViT ``patch_config``.

    Same width, depth, heads and frames; ``image_size = (frames, num_joints)`` and ``patch_size = (1,
    num_joints)`` (one token per frame). A frame token's linear embedding (``3 * joints`` inputs) is much smaller
    than a 16 x 16 patch's (768 inputs), and there are more position embeddings (one per frame), so the MLP width
    (``intermediate_size``) is adjusted until the two towers have the same number of parameters (to within one
    MLP unit per layer, ``2 * hidden + 1`` parameters each).

    Returns the config and ``{"patches": n, "raw_joints": m}``, the two parameter counts.
    """
    base = patch_config if isinstance(patch_config, ViTConfig) else ViTConfig(**dict(patch_config))
    image = base.image_size if not isinstance(base.image_size, int) else [base.image_size, base.image_size]
    frames = int(image[0])
    raw = ViTConfig(**{**base.to_dict(), "image_size": [frames, int(num_joints)], "patch_size": [1, int(num_joints)]})
    target = count_motion_tower_parameters(base)
    per_unit = base.num_hidden_layers * (2 * base.hidden_size + 1)  # one more MLP unit in every layer
    first = count_motion_tower_parameters(raw)
    raw.intermediate_size = max(1, round(base.intermediate_size + (target - first) / per_unit))
    return raw, {"patches": target, "raw_joints": count_motion_tower_parameters(raw)}
