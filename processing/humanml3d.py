"""HumanML3D and KIT-ML from their published folder layout, and HumanML3D's 263-d feature recovery.

Layout (the HumanML3D repository's output; KIT-ML processed by the same scripts has the same layout)::

    root/
      new_joints/{id}.npy        (T, J, 3) float32 joint positions (HumanML3D: 22 joints, 20 fps;
                                 KIT-ML: 21 joints, 12.5 fps, millimetres)
      new_joint_vecs/{id}.npy    (T, 12 J - 1) feature vectors (263-d for 22 joints, 251-d for 21), used
                                 for ids without a `new_joints` file (converted by `recover_from_ric`)
      texts/{id}.txt             one caption per line: `caption#tokens#start#end`
      train.txt val.txt test.txt one id per line (val.txt becomes the `validation` split)

Rules (all counts, with the first ids, end up in one warning per load and in the dataset card):

* **Captions.** ``start``/``end`` in seconds; ``0``/``0`` (or NaN) means the whole clip. Any other pair
  makes the caption its own sample: frames ``[int(start * fps), int(end * fps))`` of the clip at its source
  frame rate, id ``{id}_{start}_{end}`` (:func:`~.io.segment_id`: times rounded to milliseconds, 1-3
  decimals, e.g. ``000001_1.5_3.25``). Captions with the same (start, end) share one segment sample.
  Segments with fewer than ``min_segment_frames`` frames (default 1: only empty segments) are skipped
  and counted; pass 40 (HumanML3D) / 24 (KIT-ML) for the T2M evaluators' 2-second minimum. A segment
  that ends past the clip end is clamped (remark). The whole clip is always kept, with its whole-clip
  captions (possibly none: a remark), so no motion is lost.
* **Malformed caption lines** (fewer or more than four ``#`` fields, unparsable times, empty caption):
  the line is skipped and counted (id ``{id}:{line}``); the clip's other lines are kept. Blank lines are
  ignored. A clip without a caption file is kept with no captions (remark).
* **Mirrored copies.** Ids starting with ``M`` are HumanML3D's provided mirrored copies: kept, with
  ``mirrored=True``.
* **Bad files.** Ids listed in a split file whose motion is missing, unreadable, empty, of an unexpected
  shape, of the wrong joint count, or contains NaN/Inf are skipped and counted (the load raises a
  ``ValueError`` only when *nothing* is left, e.g. a KIT folder loaded as HumanML3D). Duplicate ids
  within a split file are counted and kept once.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import datasets
import numpy as np
import torch

from modeling_motionpatch import Skeleton, get_skeleton, resample_fps

from .io import (
    PrepareReport,
    SplitBuilder,
    check_not_empty,
    dataset_dict_from_builders,
    segment_id,
)
from .schema import motion_features

ArrayT = TypeVar("ArrayT")

#: split name -> split file, as published by HumanML3D / KIT-ML
SPLIT_FILES: dict[str, str] = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}

# skip / remark reasons (the keys used in reports and cards)
MISSING = "missing motion file"
UNREADABLE = "unreadable motion file"
BAD_SHAPE = "unexpected array shape"
WRONG_JOINTS = "wrong joint count"
NON_FINITE = "non-finite values (NaN/Inf)"
EMPTY = "empty motion (0 frames)"
MALFORMED = "malformed caption line"
UNREADABLE_TEXT = "unreadable or non-UTF-8 caption file (clip kept without its captions)"
EMPTY_CAPTION_FILE = "empty caption file (kept without captions)"
SHORT_SEGMENT = "segment shorter than min_segment_frames"
DUPLICATE = "duplicate id in split file"
NO_CAPTION_FILE = "no caption file (kept without captions)"
NO_WHOLE_CAPTION = "only segment captions (whole clip kept without captions)"
FROM_VECS = "joints recovered from new_joint_vecs"
CLAMPED = "segment end past the clip end (clamped)"
MULTI_SPLIT = "id listed in more than one split"


def crop_segment(motion, f0: int, f1: int, key: str, report, min_frames: int, clamped: str = CLAMPED):
    """Frames ``[f0, f1)`` of ``motion``, the end clamped to the motion (a remark), or ``None`` (a counted skip)
    when fewer than ``min_frames`` frames remain."""
    t = motion.shape[0]
    if f1 > t:
        report.remarks.add(clamped, key)
    piece = motion[max(f0, 0) : min(f1, t)]
    if piece.shape[0] < min_frames:
        report.skipped.add(SHORT_SEGMENT, key)
        return None
    return piece


# ---------------------------------------------------------------------------
# 263-d features -> joint positions
# ---------------------------------------------------------------------------
def joints_from_feature_dim(dim: int) -> int:
    """Joint count of a HumanML3D-style feature vector: ``dim = 4 + 3(J-1) + 6(J-1) + 3J + 4 = 12J - 1``."""
    if (dim + 1) % 12:
        raise ValueError(
            f"feature dimension {dim} is not a HumanML3D-style vector (12 * joints - 1: 263 for 22 joints, "
            "251 for 21)."
        )
    return (dim + 1) // 12


def recover_from_ric(features: ArrayT, num_joints: int | None = None) -> ArrayT:
    """Joint positions ``(..., T, J, 3)`` from HumanML3D feature vectors ``(..., T, D)`` (``D = 12 J - 1``).

    Standard HumanML3D recovery, vectorised over frames (and any leading batch axes):

    * root rotation angle ``a_t`` = cumulative sum of the rotation velocity (feature 0) of the *previous*
      frames (``a_0 = 0``); the root rotation is the quaternion ``(cos a, 0, sin a, 0)``, i.e. a rotation
      by ``2a`` about Y, and its inverse rotates by ``-2a``;
    * root XZ = cumulative sum of the previous frames' linear velocities (features 1:3) rotated by the
      inverse root rotation; root height (Y) = feature 3;
    * joints 1..J-1 = root-relative positions ``features[4 : 4 + 3 (J-1)]`` rotated by the inverse root
      rotation, then offset by the root XZ (their Y is kept).

    NumPy input is computed in float64 and returned as float32; torch input stays torch (same dtype and
    device, differentiable).
    """
    if num_joints is None:
        num_joints = joints_from_feature_dim(int(features.shape[-1]))
    if features.shape[-1] < 4 + 3 * (num_joints - 1):
        raise ValueError(
            f"features have {features.shape[-1]} dims; {4 + 3 * (num_joints - 1)}+ are needed for {num_joints} joints."
        )
    is_torch = hasattr(features, "detach")
    if is_torch:
        f = features
        cat = lambda xs, axis: torch.cat(xs, dim=axis)
        cumsum = lambda x, axis: torch.cumsum(x, dim=axis)
        stack = lambda xs, axis: torch.stack(xs, dim=axis)
        cos, sin = torch.cos, torch.sin
    else:
        f = np.asarray(features, dtype=np.float64)
        cat = lambda xs, axis: np.concatenate(xs, axis=axis)
        cumsum = lambda x, axis: np.cumsum(x, axis=axis)
        stack = lambda xs, axis: np.stack(xs, axis=axis)
        cos, sin = np.cos, np.sin

    def shifted(x):  # value of the previous frame, 0 at t = 0
        return cat([x[..., :1] * 0, x[..., :-1]], -1)

    angle = cumsum(shifted(f[..., 0]), -1)  # (..., T)
    c, s = cos(2 * angle), sin(2 * angle)

    def inverse_rotate(x, z, c, s):  # rotation by -2a about Y of (x, z)
        return x * c - z * s, x * s + z * c

    vx, vz = inverse_rotate(shifted(f[..., 1]), shifted(f[..., 2]), c, s)
    root_x, root_z = cumsum(vx, -1), cumsum(vz, -1)
    local = f[..., 4 : 4 + 3 * (num_joints - 1)]
    local = local.reshape(tuple(local.shape[:-1]) + (num_joints - 1, 3))
    jx, jz = inverse_rotate(local[..., 0], local[..., 2], c[..., None], s[..., None])
    joints = stack([jx + root_x[..., None], local[..., 1], jz + root_z[..., None]], -1)
    root = stack([root_x, f[..., 3], root_z], -1)[..., None, :]
    out = cat([root, joints], -2)
    return out if is_torch else out.astype(np.float32)


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------
def read_joint_file(path: Path, num_joints: int, features: bool = False) -> tuple[np.ndarray | None, str | None]:
    """Load one ``.npy`` motion as float32 ``(T, J, 3)``; returns ``(array, None)`` or ``(None, skip_reason)``.

    ``features=True`` reads a HumanML3D feature file ``(T, 12 J - 1)`` and recovers the joints.
    """
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception:  # noqa: BLE001 - any unreadable file is a counted skip, whatever the cause
        return None, UNREADABLE
    if features:
        if arr.ndim != 2:
            return None, BAD_SHAPE
        if arr.shape[-1] != 12 * num_joints - 1:
            return None, WRONG_JOINTS if (arr.shape[-1] + 1) % 12 == 0 else BAD_SHAPE
    elif arr.ndim != 3 or arr.shape[-1] != 3:
        return None, BAD_SHAPE
    elif arr.shape[1] != num_joints:
        return None, WRONG_JOINTS
    if arr.shape[0] == 0:
        return None, EMPTY
    if not np.isfinite(arr).all():
        return None, NON_FINITE
    motion = recover_from_ric(arr, num_joints) if features else arr.astype(np.float32, copy=False)
    if not np.isfinite(motion).all():
        return None, NON_FINITE
    return motion, None


def read_split_file(path: Path) -> list[str]:
    """Ids of a split file (one per line; blank lines and surrounding spaces ignored).

    Raises:
        ValueError: naming the file and the byte offset when it is not UTF-8 text.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"split file {path} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 4]!r}); it "
            "should list one clip id per line. Re-download it or re-save it as UTF-8."
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_caption_lines(text: str) -> tuple[list[tuple[str, float, float]], list[int]]:
    """Parse a HumanML3D caption file: ``[(caption, start, end)]`` and the 1-based numbers of malformed lines.

    A line must have exactly four ``#`` fields (``caption#tokens#start#end``), a non-empty caption and
    finite (or NaN: whole clip) times that are not negative. Blank lines are ignored.
    """
    good: list[tuple[str, float, float]] = []
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().split("#")
        if len(fields) != 4 or not fields[0].strip():
            bad.append(number)
            continue
        try:
            start, end = float(fields[2]), float(fields[3])
        except ValueError:
            bad.append(number)
            continue
        if math.isinf(start) or math.isinf(end) or start < 0 or end < 0:
            bad.append(number)
            continue
        good.append((fields[0].strip(), start, end))
    return good, bad


def _is_whole(start: float, end: float) -> bool:
    return math.isnan(start) or math.isnan(end) or (start == 0.0 and end == 0.0)


# ---------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------
def load_text_motion_folder(
    root: str | Path,
    *,
    source: str,
    skeleton: Skeleton | str,
    source_fps: float,
    target_fps: float = 20.0,
    fps_mode: str = "nearest",
    length_scale: float = 1.0,
    motion_dir: str = "auto",
    min_segment_frames: int = 1,
    split_files: Mapping[str, str] | None = None,
    text_dir: str = "texts",
) -> tuple[datasets.DatasetDict, PrepareReport]:
    """Load any folder in the HumanML3D layout (see the module docstring for every rule).

    Args:
        root: the dataset folder.
        source: source name for the report and card (``"humanml3d"``, ``"kit"``).
        skeleton: skeleton of the motion files (its joint count is enforced).
        source_fps: frame rate of the files; segment times are converted with it.
        target_fps: frame rate of the output; conversion with :func:`resample_fps` (``fps_mode``).
        length_scale: factor applied to positions (0.001 turns millimetres into metres).
        motion_dir: ``"auto"`` (``new_joints/{id}.npy``, else ``new_joint_vecs/{id}.npy`` recovered with
            :func:`recover_from_ric`), ``"new_joints"`` or ``"new_joint_vecs"``.
        min_segment_frames: segments shorter than this (at ``source_fps``) are skipped and counted.
        split_files: split -> file name (default :data:`SPLIT_FILES`).
        text_dir: caption folder.

    Returns:
        ``(DatasetDict, PrepareReport)``; splits whose file is absent are left out (noted in the report).
    """
    root = Path(root)
    skel = get_skeleton(skeleton)
    j = skel.num_joints
    if motion_dir not in ("auto", "new_joints", "new_joint_vecs"):
        raise ValueError(f"motion_dir must be 'auto', 'new_joints' or 'new_joint_vecs', got {motion_dir!r}.")
    if min_segment_frames < 1:
        raise ValueError(f"min_segment_frames must be at least 1, got {min_segment_frames}.")
    if not root.is_dir():
        raise ValueError(f"{source}: root {root} is not a folder; pass the dataset folder with --root.")
    split_files = dict(split_files or SPLIT_FILES)
    report = PrepareReport(
        source=source,
        root=str(root),
        skeleton=skel,
        fps=float(target_fps),
        parameters={
            "source_fps": source_fps, "target_fps": target_fps, "fps_mode": fps_mode, "length_scale": length_scale,
            "motion_dir": motion_dir, "min_segment_frames": min_segment_frames,
        },
    )

    def listing(name: str) -> set[str]:  # one directory listing instead of one stat per id
        d = root / name
        return {f[:-4] for f in os.listdir(d) if f.endswith(".npy")} if d.is_dir() else set()

    joint_ids = listing("new_joints") if motion_dir in ("auto", "new_joints") else set()
    vec_ids = listing("new_joint_vecs") if motion_dir in ("auto", "new_joint_vecs") else set()
    if not joint_ids and not vec_ids:
        wanted = {"auto": "new_joints/ or new_joint_vecs/", "new_joints": "new_joints/", "new_joint_vecs": "new_joint_vecs/"}
        raise ValueError(
            f"{source}: no .npy motions in {root}/{wanted[motion_dir]}; is --root the {source} folder "
            "(it should hold new_joints/, texts/ and train.txt/val.txt/test.txt)?"
        )
    text_ids = {f[:-4] for f in os.listdir(root / text_dir) if f.endswith(".txt")} if (root / text_dir).is_dir() else set()

    present = {s: f for s, f in split_files.items() if (root / f).is_file()}
    absent = [f for s, f in split_files.items() if s not in present]
    if not present:
        raise ValueError(f"{source}: none of the split files {list(split_files.values())} exists in {root}.")
    if absent:
        report.messages.append(f"split file(s) {absent} absent in the source folder: those splits are not included")
    features = motion_features(j)
    builders = {s: SplitBuilder(features, split=s) for s in present}
    clip = _ClipRules(skel, source_fps, target_fps, fps_mode, min_segment_frames)
    seen_split: dict[str, str] = {}
    root_heights: list[float] = []
    for split, fname in present.items():
        for cid in _unique_ids(read_split_file(root / fname), split, seen_split, report):
            if cid in joint_ids:
                rel, from_vecs = f"new_joints/{cid}.npy", False
            elif cid in vec_ids:
                rel, from_vecs = f"new_joint_vecs/{cid}.npy", True
            else:
                report.skipped.add(MISSING, cid)
                continue
            motion, reason = read_joint_file(root / rel, j, features=from_vecs)
            if motion is None:
                report.skipped.add(reason, cid)
                continue
            if from_vecs:
                report.remarks.add(FROM_VECS, cid)
            if length_scale != 1.0:
                motion = motion * np.float32(length_scale)
            root_heights.append(float(np.median(motion[:, 0, skel.up_axis])))
            if cid in text_ids:
                captions = _read_captions(root / text_dir / f"{cid}.txt", cid, report)
            else:
                report.remarks.add(NO_CAPTION_FILE, cid)
                captions = []
            clip.add_samples(builders[split], cid, motion, rel, captions, report)
    dataset_dict = dataset_dict_from_builders(builders, report)
    report.finalize(dataset_dict)
    report.warn_skipped(stacklevel=3)
    check_not_empty(dataset_dict, report)
    _check_units(root_heights, length_scale, report, warn=source == "kit")
    return dataset_dict, report


def _check_units(root_heights: list[float], length_scale: float, report: PrepareReport, warn: bool) -> None:
    """Note (and with ``warn``, warn) when the median root height is far from 1 m: wrong length units."""
    if not root_heights:
        return
    h = float(np.median(root_heights))
    if not 0.2 <= abs(h) <= 3.0:
        msg = (
            f"median root height is {h:.3g} after length_scale={length_scale}; expected about 1 m. The "
            "motions are probably not in metres: set length_scale (--length-scale) accordingly."
        )
        report.messages.append(msg)
        if warn:
            warnings.warn(f"{report.source} ({report.root}): {msg}", UserWarning, stacklevel=4)


def _unique_ids(ids: list[str], split: str, seen_split: dict[str, str], report: PrepareReport) -> list[str]:
    """The ids of a split file once each (duplicates counted), noting ids already listed in another split."""
    unique: dict[str, None] = {}
    for cid in ids:
        if cid in unique:
            report.skipped.add(DUPLICATE, f"{split}:{cid}")
        unique[cid] = None
    for cid in unique:
        if cid in seen_split:
            report.remarks.add(MULTI_SPLIT, f"{cid} ({seen_split[cid]}, {split})")
        seen_split.setdefault(cid, split)
    return list(unique)


@dataclass(frozen=True)
class _ClipRules:
    """How a loaded clip becomes samples: the whole clip plus one sample per captioned segment."""

    skeleton: Skeleton
    source_fps: float
    target_fps: float
    fps_mode: str
    min_segment_frames: int

    def add_samples(
        self, builder: SplitBuilder, cid: str, motion: np.ndarray, rel: str,
        captions: list[tuple[str, float, float]], report: PrepareReport,
    ) -> None:
        whole: list[str] = []
        segments: dict[str, tuple[int, int, list[str]]] = {}
        for caption, start, end in captions:
            if _is_whole(start, end):
                whole.append(caption)
                continue
            sid = segment_id(cid, start, end)
            if sid not in segments:
                segments[sid] = (int(start * self.source_fps), int(end * self.source_fps), [])
            segments[sid][2].append(caption)
        if captions and not whole:
            report.remarks.add(NO_WHOLE_CAPTION, cid)
        self._add(builder, cid, motion, whole, rel)
        for sid, (f0, f1, caps) in segments.items():
            piece = crop_segment(motion, f0, f1, sid, report, self.min_segment_frames, clamped=CLAMPED)
            if piece is not None:
                self._add(builder, sid, piece, caps, rel)

    def _add(self, builder: SplitBuilder, sid: str, motion: np.ndarray, captions: list[str], rel: str) -> None:
        builder.add(
            id=sid, motion=resample_fps(motion, self.source_fps, self.target_fps, self.fps_mode),
            fps=float(self.target_fps), skeleton=self.skeleton.name, captions=captions, labels=[], source=rel,
            mirrored=sid.startswith("M"),
        )


def read_text_or_skip(path: Path, cid: str, report: PrepareReport) -> str | None:
    """The UTF-8 text of a caption file; an unreadable or non-UTF-8 file is counted as skipped (``None``)."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        report.skipped.add(UNREADABLE_TEXT, cid)
        return None


def _read_captions(path: Path, cid: str, report: PrepareReport) -> list[tuple[str, float, float]]:
    text = read_text_or_skip(path, cid, report)
    if text is None:
        return []
    if not text.strip():
        report.remarks.add(EMPTY_CAPTION_FILE, cid)
        return []
    good, bad = parse_caption_lines(text)
    report.skipped.extend(MALFORMED, (f"{cid}:{n}" for n in bad))
    return good


def load_humanml3d(
    root: str | Path,
    *,
    motion_dir: str = "auto",
    min_segment_frames: int = 1,
    split_files: Mapping[str, str] | None = None,
) -> tuple[datasets.DatasetDict, PrepareReport]:
    """HumanML3D (22 joints, 20 fps) from its folder layout; see the module docstring for the rules."""
    return load_text_motion_folder(
        root, source="humanml3d", skeleton="humanml3d", source_fps=20.0, target_fps=20.0,
        motion_dir=motion_dir, min_segment_frames=min_segment_frames, split_files=split_files,
    )


def load_kit_ml(
    root: str | Path,
    *,
    fps_mode: str = "nearest",
    length_scale: float = 0.001,
    motion_dir: str = "auto",
    min_segment_frames: int = 1,
    split_files: Mapping[str, str] | None = None,
) -> tuple[datasets.DatasetDict, PrepareReport]:
    """KIT-ML (21 joints) in the HumanML3D layout, converted from 12.5 to 20 fps.

    ``fps_mode="nearest"`` repeats frames as the reference code did (``resample_fps(..., 12.5, 20.0)``);
    ``"linear"`` interpolates. KIT-ML's ``new_joints`` are in millimetres, hence ``length_scale=0.001``
    (a warning is raised when the median root height does not come out near 1 m).
    """
    return load_text_motion_folder(
        root, source="kit", skeleton="kit", source_fps=12.5, target_fps=20.0, fps_mode=fps_mode,
        length_scale=length_scale, motion_dir=motion_dir, min_segment_frames=min_segment_frames,
        split_files=split_files,
    )


__all__ = [
    "SPLIT_FILES",
    "joints_from_feature_dim",
    "load_humanml3d",
    "load_kit_ml",
    "load_text_motion_folder",
    "parse_caption_lines",
    "read_joint_file",
    "read_split_file",
    "read_text_or_skip",
    "recover_from_ric",
]
