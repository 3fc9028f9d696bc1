"""InterHuman-style two-person interactions -> ``interaction_features(22)`` (``motion_a``, ``motion_b``).

Supported layout (InterHuman as released with InterGen, Liang et al. 2024)::

    root/
      motions/person1/{id}.npy    person 1; (T, 22, 3) joint positions, or (T, D >= 66) rows whose first
      motions/person2/{id}.npy    66 values are the 22 SMPL joints' xyz (the released raw layout)
                                  (``motions_processed/`` is accepted as the folder name too)
      annots/{id}.txt             one caption per line (blank lines ignored)
      split/train.txt, split/val.txt, split/test.txt   one id per line (val -> `validation`)
      ignore_list.txt             optional: ids to leave out (counted)

Without ``split/`` every id of ``motions/person1`` goes to ``train`` (noted in the card).

Frame rate: ``motion_fps`` (30 by default, the rate of the released files as far as we know; check your
copy) converted to ``target_fps`` (20) with ``resample_fps`` (``fps_mode``, linear by default). Axes: the
released files are, to our knowledge, Z-up; ``z_up=True`` turns them Y-up with the proper rotation
``(x, y, z) -> (x, z, -y)`` (no reflection, so left stays left). Verify on a few clips (the pelvis height
should come out on the Y axis) before training. Positions are used as they are (metres).

Both people are cropped to the shorter of the two lengths when they differ (remark with count and ids).
Missing, unreadable, wrong-shape and NaN files of either person are skipped and counted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import datasets
import numpy as np

from modeling_motionpatch import get_skeleton, resample_fps

from .humanml3d import (
    BAD_SHAPE,
    EMPTY,
    MISSING,
    NON_FINITE,
    UNREADABLE,
    WRONG_JOINTS,
    read_split_file,
    read_text_or_skip,
)
from .io import PrepareReport, SplitBuilder, check_not_empty, dataset_dict_from_builders
from .schema import interaction_features

INTERHUMAN_SPLIT_FILES: dict[str, str] = {"train": "split/train.txt", "validation": "split/val.txt", "test": "split/test.txt"}
NUM_JOINTS = 22
IGNORED = "listed in ignore_list.txt"
CROPPED = "person lengths differ (cropped to the shorter)"
NO_ANNOT = "no annotation file (kept without captions)"


def read_person_file(path: Path, num_joints: int = NUM_JOINTS) -> tuple[np.ndarray | None, str | None]:
    """One person's motion as float32 ``(T, J, 3)``: ``(array, None)`` or ``(None, skip_reason)``."""
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception:  # noqa: BLE001 - unreadable files are counted skips
        return None, UNREADABLE
    if arr.ndim == 3:
        if arr.shape[-1] != 3:
            return None, BAD_SHAPE
        if arr.shape[1] != num_joints:
            return None, WRONG_JOINTS
    elif arr.ndim == 2:
        if arr.shape[1] < num_joints * 3:
            return None, BAD_SHAPE
        arr = arr[:, : num_joints * 3].reshape(-1, num_joints, 3)
    else:
        return None, BAD_SHAPE
    if arr.shape[0] == 0:
        return None, EMPTY
    if not np.isfinite(arr).all():
        return None, NON_FINITE
    return arr.astype(np.float32, copy=False), None


def load_interhuman(
    root: str | Path,
    *,
    motion_fps: float = 30.0,
    target_fps: float = 20.0,
    fps_mode: str = "linear",
    z_up: bool = False,
    split_files: Mapping[str, str] | None = None,
) -> tuple[datasets.DatasetDict, PrepareReport]:
    """Load an InterHuman-style folder (see the module docstring); returns ``(DatasetDict, PrepareReport)``."""
    root = Path(root)
    skel = get_skeleton("humanml3d")
    motions = next((root / d for d in ("motions", "motions_processed") if (root / d / "person1").is_dir()), None)
    if motions is None:
        raise ValueError(
            f"interhuman: {root} has no motions/person1/ (or motions_processed/person1/) folder; pass the "
            "InterHuman folder with --root."
        )
    report = PrepareReport(
        source="interhuman", root=str(root), skeleton=skel, fps=float(target_fps),
        parameters={"motion_fps": motion_fps, "target_fps": target_fps, "fps_mode": fps_mode, "z_up": z_up},
    )
    ids1 = {f[:-4] for f in os.listdir(motions / "person1") if f.endswith(".npy")}
    ids2 = {f[:-4] for f in os.listdir(motions / "person2") if f.endswith(".npy")} if (motions / "person2").is_dir() else set()
    ignore = set(read_split_file(root / "ignore_list.txt")) if (root / "ignore_list.txt").is_file() else set()
    split_files = dict(split_files or INTERHUMAN_SPLIT_FILES)
    splits = {s: read_split_file(root / f) for s, f in split_files.items() if (root / f).is_file()}
    if not splits:
        splits = {"train": sorted(ids1, key=lambda s: (len(s), s))}
        report.messages.append("no split files found: every id of person1/ is in the train split")
    elif len(splits) < len(split_files):
        report.messages.append(f"split file(s) {[f for s, f in split_files.items() if s not in splits]} absent")
    rotate = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float32)  # row vectors: (x, y, z) @ R.T

    features = interaction_features(NUM_JOINTS)
    builders = {s: SplitBuilder(features, split=s) for s in splits}
    for split, ids in splits.items():
        for cid in dict.fromkeys(ids):
            if cid in ignore:
                report.skipped.add(IGNORED, cid)
                continue
            if cid not in ids1 or cid not in ids2:
                report.skipped.add(MISSING, cid)
                continue
            a, reason_a = read_person_file(motions / "person1" / f"{cid}.npy")
            b, reason_b = read_person_file(motions / "person2" / f"{cid}.npy")
            if a is None or b is None:
                report.skipped.add(reason_a or reason_b, cid)
                continue
            if a.shape[0] != b.shape[0]:
                report.remarks.add(CROPPED, cid)
                n = min(a.shape[0], b.shape[0])
                a, b = a[:n], b[:n]
            if z_up:
                a, b = a @ rotate.T, b @ rotate.T
            captions = []
            annot = root / "annots" / f"{cid}.txt"
            if annot.is_file():
                text = read_text_or_skip(annot, cid, report) or ""
                captions = [line.strip() for line in text.splitlines() if line.strip()]
            else:
                report.remarks.add(NO_ANNOT, cid)
            builders[split].add(
                id=cid,
                motion_a=resample_fps(a, motion_fps, target_fps, fps_mode),
                motion_b=resample_fps(b, motion_fps, target_fps, fps_mode),
                fps=float(target_fps), skeleton=skel.name, captions=captions, labels=[],
                source=f"{motions.name}/person{{1,2}}/{cid}.npy", mirrored=False,
            )
    dataset_dict = dataset_dict_from_builders(builders, report)
    report.finalize(dataset_dict)
    report.warn_skipped(stacklevel=3)
    check_not_empty(dataset_dict, report)
    return dataset_dict, report


__all__ = ["INTERHUMAN_SPLIT_FILES", "load_interhuman", "read_person_file"]
