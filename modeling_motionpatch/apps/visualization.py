"""Pictures of motions: motion-patch images (x, y, z -> red, green, blue, like the paper's Figure 4) and skeleton
renders (key-frame strips and animated GIFs).

The skeleton renderer needs matplotlib (``pip install "motionpatch[viz]"``); it is imported only when a skeleton is
rendered, so the rest of the package (and the Hub remote code) does not depend on it. It draws with matplotlib's Agg
canvas into numpy arrays: one figure per clip, its artists updated in place for each frame and blitted over a cached
background (ground plane, full root trace), so no figure is created per frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..skeletons import CHAIN_NAMES, Skeleton, get_skeleton

#: one colour per body part, shared by the skeleton renders and the part band of :func:`render_motion_patches`
CHAIN_COLORS: dict[str, tuple[int, int, int]] = {
    "right_leg": (214, 39, 40),  # red
    "left_leg": (31, 119, 180),  # blue
    "torso": (148, 103, 189),  # purple
    "right_arm": (255, 127, 14),  # orange
    "left_arm": (44, 160, 44),  # green
}
#: bones outside the five chains (fingers, extra spine branches ...)
OTHER_BONE_COLOR = (127, 127, 127)


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
    part_colors: bool = False,
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
    if part_colors:
        parts = len(CHAIN_NAMES)
        width = rgb.shape[1] if not separators else rgb.shape[1] - (parts - 1)
        part_of_col = np.repeat(np.arange(parts), width // parts)
        if separators:
            part_of_col = np.insert(part_of_col, [k * (width // parts) for k in range(1, parts)], -1)
        palette = np.array([CHAIN_COLORS[c] for c in CHAIN_NAMES] + [(255, 255, 255)], dtype=np.uint8)
        band = np.repeat(palette[part_of_col][None], max(2 * scale, 4), axis=0)
        rgb = np.concatenate([band, np.full((max(scale, 2), rgb.shape[1], 3), 255, np.uint8), rgb], axis=0)
    image = Image.fromarray(rgb)
    if path is not None:
        image.save(path, format="PNG")
    return image


# ---------------------------------------------------------------------------
# skeleton renders
# ---------------------------------------------------------------------------
def _import_matplotlib():
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(
            "rendering skeletons needs matplotlib: install it with `pip install \"motionpatch[viz]\"` "
            "(or `pip install matplotlib`)."
        ) from err
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    return matplotlib, Figure, FigureCanvasAgg, LineCollection


def bone_colors(skeleton: Skeleton) -> np.ndarray:
    """``(num_joints, 3)`` uint8 colour of the bone from each joint to its parent: the colour of the chain that holds
    both ends (:data:`CHAIN_COLORS`), else :data:`OTHER_BONE_COLOR`. The root's row is unused."""
    colors = np.tile(np.array(OTHER_BONE_COLOR, np.uint8), (skeleton.num_joints, 1))
    for name, chain in zip(CHAIN_NAMES, skeleton.chains):
        links = set(zip(chain[:-1], chain[1:])) | set(zip(chain[1:], chain[:-1]))
        for j in chain:
            p = skeleton.parents[j]
            if p >= 0 and (p, j) in links:
                colors[j] = CHAIN_COLORS[name]
    return colors


def _camera_axes(azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray]:
    """Screen-right and screen-up unit vectors (canonical frame: x lateral = the body's left, y up, z forward) of an
    orthographic camera at ``azimuth`` degrees around the up axis from the front (+z) and ``elevation`` above."""
    az, el = np.radians(azimuth), np.radians(elevation)
    toward_camera = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    right = np.cross([0.0, 1.0, 0.0], toward_camera)
    right /= np.linalg.norm(right)
    up = np.cross(toward_camera, right)
    return right, up


def detached_bones(skeleton: Skeleton, positions: np.ndarray, up_axis: int | None = None) -> np.ndarray:
    """Joints (children) whose bone to their parent does not belong to the body, so it is not drawn: a bone whose
    length changes by more than 20 % over the clip (a rigid body keeps its bone lengths), and every bone of a root
    that stays on the floor under a standing body (e.g. Bandai-Namco's ``joint_Root`` at the origin while the hips
    travel). Vectorised over frames and bones."""
    parents = np.asarray(skeleton.parents)
    up = skeleton.up_axis if up_axis is None else up_axis
    bones = np.flatnonzero(parents >= 0)
    lengths = np.linalg.norm(positions[:, bones] - positions[:, parents[bones]], axis=-1)  # (T, B)
    stretch = np.ptp(lengths, axis=0) / np.maximum(np.median(lengths, axis=0), 1e-6)
    hide = stretch > 0.2
    root = int(np.flatnonzero(parents < 0)[0])
    height = positions[..., up]
    others = np.delete(height, root, axis=1)
    body_height = float(np.median(others.max(1) - others.min(1))) if others.size else 0.0
    ground = float(height.min())
    on_floor = (height[:, root] - ground).max() < 0.05 * body_height
    children_above = (height[:, parents == root].min() - ground) > 0.3 * body_height if (parents == root).any() else False
    if on_floor and children_above:
        hide |= parents[bones] == root
    return bones[hide]


def _checked_positions(motion, skel: Skeleton) -> np.ndarray:
    """``motion`` as a float64 ``(frames, joints, 3)`` array of the skeleton's joint count, finite and non-empty."""
    positions = np.asarray(motion.detach().cpu() if hasattr(motion, "detach") else motion, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(f"expected a motion of shape (frames, joints, 3), got {positions.shape}.")
    if positions.shape[1] != skel.num_joints:
        raise ValueError(
            f"the motion has {positions.shape[1]} joints but skeleton {skel.name!r} has {skel.num_joints}; "
            "render it with its own skeleton."
        )
    if positions.shape[0] == 0:
        raise ValueError("the motion has no frames.")
    if not np.isfinite(positions).all():
        raise ValueError("the motion contains NaN or Inf positions; clean it before rendering.")
    return positions


class SkeletonRenderer:
    """Renders the frames of one motion: bones coloured by chain, the root's ground path as a trace, and a camera that
    keeps the body a readable size.

    Camera: fixed over the clip when the body stays in place; for a clip that travels (its root moves further than
    half the body's own box), a fixed-size box follows the body's root each frame over the fixed ground grid. Bones that
    do not move with the body (:func:`detached_bones`, e.g. a static root on the floor) are not drawn.

    Args:
        motion: ``(frames, joints, 3)`` joint positions (metres).
        skeleton: a registered name, a spec dict or a :class:`Skeleton` (e.g. one derived from a BVH hierarchy);
            bones are drawn from its parents, coloured by chain (:data:`CHAIN_COLORS`).
        size: ``(width, height)`` in pixels.
        azimuth, elevation: camera direction in degrees (0, 0 = straight at the body's front at frame 0).
        trace: draw the root's trajectory on the ground (the whole path faint, the path so far dark).
        title: text drawn at the top left (e.g. the clip id); the time and frame counter at the bottom right.
        fps: frame rate, for the time shown with the frame counter.
        linewidth: bone width in points.
        follow: ``True``/``False`` forces the following / the fixed camera; ``None`` (default) decides as above.

    Example:

    ```python
    >>> renderer = SkeletonRenderer(joints, "humanml3d")
    >>> frames = renderer.render_frames(range(0, len(joints), 2))      # (N, H, W, 3) uint8
    ```
    """

    def __init__(
        self,
        motion,
        skeleton: str | Mapping[str, Any] | Skeleton = "humanml3d",
        *,
        size: tuple[int, int] = (320, 320),
        azimuth: float = 30.0,
        elevation: float = 15.0,
        trace: bool = True,
        title: str | None = None,
        fps: float = 20.0,
        linewidth: float = 3.0,
        follow: bool | None = None,
    ) -> None:
        skel = skeleton if isinstance(skeleton, Skeleton) else get_skeleton(skeleton)
        positions = _checked_positions(motion, skel)
        width, height = int(size[0]), int(size[1])
        if width < 16 or height < 16:
            raise ValueError(f"size must be at least 16 x 16 pixels, got {size}.")
        self.skeleton, self.fps, self.num_frames = skel, float(fps), positions.shape[0]
        # canonical axes: x = lateral (the body's left), y = up, z = forward
        forward_axis = 3 - skel.lateral_axis - skel.up_axis
        canon = positions[..., [skel.lateral_axis, skel.up_axis, forward_axis]]
        right, up = _camera_axes(azimuth, elevation)
        view = np.stack([right, up], axis=1)  # (3, 2)
        self._points = canon @ view  # (T, J, 2): every frame projected at once
        self._select_bones(canon)
        grid2d, corners2d = self._ground(canon, view)
        self._place_camera(width / height, corners2d, follow)
        self._draw_static((width, height), grid2d, corners2d, trace, title, linewidth)

    def _select_bones(self, canon: np.ndarray) -> None:
        """The bones drawn (not :func:`detached_bones`), the joints of the body and its root."""
        skel = self.skeleton
        parents = np.asarray(skel.parents)
        self.hidden_bones = detached_bones(skel, canon, up_axis=1)
        bones = np.array([j for j in np.flatnonzero(parents >= 0) if j not in set(self.hidden_bones.tolist())], np.int64)
        self._bones, self._bone_parents = bones, parents[bones]
        # the joints of the body (a root whose every bone is hidden is not), and its root for the trace and camera
        visible = np.zeros(skel.num_joints, dtype=bool)
        visible[self._bones] = visible[self._bone_parents] = True
        if not bones.size:
            visible[:] = True
        self._visible = np.flatnonzero(visible)
        root = int(np.flatnonzero(parents < 0)[0])
        while not visible[root]:
            root = int(np.flatnonzero(parents == root)[0])
        self.body_root = root

    def _ground(self, canon: np.ndarray, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ground grid and its corners on screen (the clip's lowest point, its horizontal extent plus a margin),
        and the root's ground trace."""
        body = canon[:, self._visible]
        ground = canon[..., 1].min()
        lo = body[..., [0, 2]].reshape(-1, 2).min(0) - 0.3
        hi = body[..., [0, 2]].reshape(-1, 2).max(0) + 0.3
        step = 0.5
        xs = np.arange(np.floor(lo[0] / step) * step, hi[0] + step, step)
        zs = np.arange(np.floor(lo[1] / step) * step, hi[1] + step, step)
        grid = [[(x, ground, zs[0]), (x, ground, zs[-1])] for x in xs] + [[(xs[0], ground, z), (xs[-1], ground, z)] for z in zs]
        corners = np.array([(xs[0], ground, zs[0]), (xs[-1], ground, zs[0]), (xs[-1], ground, zs[-1]), (xs[0], ground, zs[-1])])
        root_ground = canon[:, self.body_root].copy()
        root_ground[:, 1] = ground
        self._trace = root_ground @ view  # (T, 2)
        return np.asarray(grid) @ view, corners @ view

    def _place_camera(self, aspect: float, corners2d: np.ndarray, follow: bool | None) -> None:
        """A fixed box over the whole clip, or a fixed-size box centred on the body's root every frame."""
        pts2d = self._points[:, self._visible]
        centre = self._trace  # the root's ground point: the box holds the body and its footing
        offsets = np.concatenate([pts2d - centre[:, None], np.zeros((len(centre), 1, 2))], axis=1)
        near, far = offsets.min(axis=(0, 1)), offsets.max(axis=(0, 1))  # the body around its root, over the clip
        box = (far - near) / 2 * np.array([1.15, 1.1]) + 0.05
        pts = np.concatenate([pts2d.reshape(-1, 2), corners2d])
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        travel = np.ptp(centre, axis=0)  # how far the root's ground point moves on the screen
        self.follow = bool((travel > box).any()) if follow is None else bool(follow)
        if self.follow:
            half_w, half_h = max(box[0], box[1] * aspect), max(box[1], box[0] / aspect)
            self._centres = centre + (near + far) / 2
        else:
            half_w, half_h = (x1 - x0) / 2 * 1.05, (y1 - y0) / 2 * 1.08
            half_w, half_h = max(half_w, half_h * aspect), max(half_h, half_w / aspect)
            self._centres = np.tile([(x0 + x1) / 2, (y0 + y1) / 2], (self.num_frames, 1))
        self._half = (half_w, half_h)

    def _draw_static(self, size: tuple[int, int], grid2d: np.ndarray, corners2d: np.ndarray, trace: bool,
                     title: str | None, linewidth: float) -> None:
        """The figure, the ground, the trace and the title, drawn once; the animated artists (bones, joints, path so
        far, clock) are blitted per frame over the saved background."""
        _, Figure, FigureCanvasAgg, LineCollection = _import_matplotlib()
        dpi = 100
        self._fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, facecolor="white")
        self._canvas = FigureCanvasAgg(self._fig)
        ax = self._fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        self._ax = ax
        self._set_view(0)
        ax.fill(*corners2d.T, color=(0.93, 0.93, 0.93), zorder=0)
        ax.add_collection(LineCollection(grid2d, colors=[(0.8, 0.8, 0.8)], linewidths=0.8, zorder=1))
        if trace:
            ax.plot(*self._trace.T, color=(0.75, 0.75, 0.75), linewidth=1.2, zorder=2)
        if title:
            ax.text(0.02, 0.98, str(title), transform=ax.transAxes, ha="left", va="top", fontsize=9)
        self._path = ax.plot([], [], color=(0.2, 0.2, 0.2), linewidth=1.5, zorder=3, animated=True)[0] if trace else None
        colors = bone_colors(self.skeleton)[self._bones] / 255.0
        self._lines = LineCollection([], colors=colors, linewidths=linewidth, capstyle="round", zorder=4, animated=True)
        ax.add_collection(self._lines)
        self._joints = ax.plot([], [], "o", color=(0.15, 0.15, 0.15), markersize=2.5, zorder=5, animated=True)[0]
        self._clock = ax.text(0.98, 0.02, "", transform=ax.transAxes, ha="right", va="bottom", fontsize=8, animated=True)
        self._canvas.draw()
        self._background = self._canvas.copy_from_bbox(self._fig.bbox)

    def _set_view(self, frame: int) -> None:
        (cx, cy), (half_w, half_h) = self._centres[frame], self._half
        self._ax.set_xlim(cx - half_w, cx + half_w)
        self._ax.set_ylim(cy - half_h * 0.97, cy + half_h * 1.03)

    @property
    def size(self) -> tuple[int, int]:
        w, h = self._canvas.get_width_height()
        return int(w), int(h)

    def bone_segments(self, frame: int) -> np.ndarray:
        """``(bones, 2, 2)`` projected data coordinates of the bones at ``frame`` (child joint, parent joint)."""
        p = self._points[frame]
        return np.stack([p[self._bones], p[self._bone_parents]], axis=1)

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Projected data coordinates ``(..., 2)`` -> pixel ``(..., 2)`` as ``(column, row)`` from the top left."""
        xy = np.asarray(xy, dtype=np.float64)
        disp = self._ax.transData.transform(xy.reshape(-1, 2))
        disp[:, 1] = self.size[1] - disp[:, 1]
        return disp.reshape(xy.shape)

    def joint_pixels(self, frame: int) -> np.ndarray:
        """``(joints, 2)`` pixel ``(column, row)`` of every joint at ``frame`` (in that frame's view)."""
        if self.follow:
            self._set_view(int(frame) % self.num_frames)
        return self.to_pixels(self._points[frame])

    def render(self, frame: int) -> np.ndarray:
        """One frame as an ``(height, width, 3)`` uint8 array."""
        if not -self.num_frames <= frame < self.num_frames:
            raise IndexError(f"frame {frame} is outside the clip's {self.num_frames} frames.")
        frame = int(frame) % self.num_frames
        if self.follow:  # the box moves with the body: redraw the static artists (grid, trace) under it
            self._set_view(frame)
            self._canvas.draw()
        else:
            self._canvas.restore_region(self._background)
        if self._path is not None:
            self._path.set_data(self._trace[: frame + 1, 0], self._trace[: frame + 1, 1])
            self._ax.draw_artist(self._path)
        self._lines.set_segments(self.bone_segments(frame))
        self._joints.set_data(self._points[frame, self._visible, 0], self._points[frame, self._visible, 1])
        self._clock.set_text(f"{frame / self.fps:5.2f} s  {frame + 1}/{self.num_frames}")
        for artist in (self._lines, self._joints, self._clock):
            self._ax.draw_artist(artist)
        return np.asarray(self._canvas.buffer_rgba())[..., :3].copy()

    def render_frames(self, frames: Sequence[int] | None = None) -> np.ndarray:
        """Several frames (all by default) as ``(N, height, width, 3)`` uint8."""
        frames = range(self.num_frames) if frames is None else frames
        return np.stack([self.render(int(f)) for f in frames])


def evenly_spaced_frames(num_frames: int, count: int | None) -> np.ndarray:
    """``count`` frame indices spread evenly over ``num_frames`` (first and last included); all when ``count`` is
    None. Asking for more frames than the clip has repeats none: the clip's own frames are returned."""
    if count is None or count >= num_frames:
        return np.arange(num_frames)
    if count < 1:
        raise ValueError(f"the number of frames must be at least 1, got {count}.")
    return np.unique(np.round(np.linspace(0, num_frames - 1, count)).astype(np.int64))


def render_keyframes(
    motion, skeleton: str | Mapping[str, Any] | Skeleton = "humanml3d", num_keyframes: int = 6,
    path: str | os.PathLike | None = None, size: tuple[int, int] = (240, 320), **renderer_kwargs: Any,
):
    """A PIL image of ``num_keyframes`` evenly spaced frames side by side, one camera for all (saved as PNG when
    ``path`` is given)."""
    from PIL import Image

    renderer = SkeletonRenderer(motion, skeleton, size=size, **renderer_kwargs)
    frames = renderer.render_frames(evenly_spaced_frames(renderer.num_frames, num_keyframes))
    image = Image.fromarray(np.concatenate(list(frames), axis=1))
    if path is not None:
        image.save(path, format="PNG")
    return image


def save_animation(
    motion, path: str | os.PathLike, skeleton: str | Mapping[str, Any] | Skeleton = "humanml3d",
    num_frames: int | None = None, fps: float = 20.0, size: tuple[int, int] = (320, 320), **renderer_kwargs: Any,
) -> Path:
    """Write an animated GIF of the motion (Pillow; plays in any browser, no video codec needed).

    Args:
        motion: ``(frames, joints, 3)`` positions at ``fps``.
        path: the ``.gif`` to write.
        num_frames: frames in the animation, evenly spaced over the clip (all frames by default); the animation
            keeps the clip's duration (each frame shows for ``duration / num_frames``).
        fps: the motion's frame rate.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"save_animation writes GIF files; got {str(path)!r} (use a .gif name).")
    renderer = SkeletonRenderer(motion, skeleton, size=size, fps=fps, **renderer_kwargs)
    indices = evenly_spaced_frames(renderer.num_frames, num_frames)
    frames = renderer.render_frames(indices)
    first = Image.fromarray(frames[0]).quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    images = [first] + [
        Image.fromarray(f).quantize(palette=first, dither=Image.Dither.NONE) for f in frames[1:]
    ]
    duration_ms = max(int(round(1000 * renderer.num_frames / fps / len(indices))), 20)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


__all__ = [
    "CHAIN_COLORS",
    "OTHER_BONE_COLOR",
    "SkeletonRenderer",
    "bone_colors",
    "detached_bones",
    "evenly_spaced_frames",
    "motion_patches_to_rgb",
    "render_keyframes",
    "render_motion_patches",
    "save_animation",
]
