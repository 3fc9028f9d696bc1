"""Render motion patches as RGB images (x, y, z -> red, green, blue), like the paper's Figure 4."""

from __future__ import annotations

import os

import numpy as np

from .skeletons import CHAIN_NAMES


def motion_patches_to_rgb(motion_values, length: int | None = None) -> np.ndarray:
    """Map one ``(3, frames, points)`` motion-patch image to ``(frames, points, 3)`` uint8 colours.

    Each channel is scaled to [0, 255] with its own min and max over the valid frames (``length``), so the image
    shows the motion's own range; frames after ``length`` (padding) are drawn black.
    """
    values = np.asarray(motion_values.detach().cpu() if hasattr(motion_values, "detach") else motion_values, np.float32)
    if values.ndim != 3 or values.shape[0] != 3:
        raise ValueError(f"expected one motion-patch image of shape (3, frames, points), got {values.shape}.")
    frames = values.shape[1] if length is None else int(length)
    if not 0 < frames <= values.shape[1]:
        raise ValueError(f"length {length} is outside 1..{values.shape[1]}.")
    valid = values[:, :frames]
    lo = valid.min(axis=(1, 2), keepdims=True)
    hi = valid.max(axis=(1, 2), keepdims=True)
    scaled = (valid - lo) / np.maximum(hi - lo, 1e-8)
    rgb = np.zeros((values.shape[1], values.shape[2], 3), dtype=np.uint8)
    rgb[:frames] = np.round(scaled.transpose(1, 2, 0) * 255).astype(np.uint8)
    return rgb


def render_motion_patches(
    motion_values,
    length: int | None = None,
    scale: int = 4,
    separators: bool = True,
    path: str | os.PathLike | None = None,
):
    """Render a motion-patch image as a PIL image (and save it as PNG when ``path`` is given).

    Rows are frames (time runs downwards), columns the 5 x 16 chain points in the order right leg, left leg,
    torso, right arm, left arm; ``separators`` draws a white line between body parts.

    Example:

    ```python
    >>> fe = MotionPatchFeatureExtractor("humanml3d", mean=mean, std=std)
    >>> batch = fe(joints)
    >>> render_motion_patches(batch["motion_values"][0], batch["motion_lengths"][0], path="walk.png")
    ```
    """
    from PIL import Image

    rgb = motion_patches_to_rgb(motion_values, length)
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    if separators:
        parts = len(CHAIN_NAMES)
        width = rgb.shape[1] // parts
        cols = [k * width for k in range(1, parts)]
        rgb = np.insert(rgb, cols, 255, axis=1)
    image = Image.fromarray(rgb)
    if path is not None:
        image.save(path, format="PNG")
    return image


__all__ = ["motion_patches_to_rgb", "render_motion_patches"]
