"""BABEL-style labelled action segments -> a classification dataset (labels = action names).

Supported layout (BABEL's published annotation files plus joint arrays you provide)::

    root/train.json, root/val.json[, root/test.json]
        {sid: {"feat_p": "CMU/CMU/86/86_05_poses.npz", "dur": 37.0,
               "frame_ann": {"labels": [{"proc_label": "walk", "act_cat": ["walk"],
                                         "start_t": 0.0, "end_t": 2.3}, ...]} or null,
               "seq_ann":   {"labels": [{"proc_label": ..., "act_cat": [...]}, ...]}}}
    motions/ (default root/motions)
        {sid}.npy                       or
        {feat_p with the extension replaced by .npy}   e.g. CMU/CMU/86/86_05_poses.npy

BABEL ships labels only; the motions are AMASS sequences, which must be converted to joint positions
(``(T, J, 3)`` float32 in metres, Y up, in the order of ``skeleton``, SMPL-22 = HumanML3D by default) at
``motion_fps`` by the user (e.g. with HumanML3D's AMASS processing) and stored as above. No BABEL data
ships with motionpatch; the loader is tested on folders generated in the tests.

Rules:

* every ``frame_ann`` label becomes a segment ``[int(start_t * motion_fps), int(end_t * motion_fps))``
  with id ``{sid}_{start}_{end}`` (:func:`~.io.segment_id`); labels with the same times share one sample
  (multi-label). Sequences whose ``frame_ann`` is null use their ``seq_ann`` labels on the whole motion
  (id ``sid``) when ``use_seq_ann`` (default).
* ``labels`` = the label field (``act_cat``, BABEL's action categories, by default; or ``proc_label``);
  ``captions`` = the ``proc_label`` strings when ``captions_from="proc_label"`` (label-derived text, flagged
  in the card), else empty.
* ``class_names``: given (e.g. read with :func:`read_class_names` from BABEL's own class list), else the
  ``top_k`` most frequent labels of the training split, else every label; ordered by training-split
  frequency (descending, then name). Labels outside ``class_names`` are dropped from a segment; a segment
  left without labels is skipped and counted.
* missing / unreadable / wrong-joint-count / NaN motions, segments shorter than ``min_segment_frames`` and
  sequences without labels are skipped and counted (one warning; counts and first ids in the card).

BABEL-60 / BABEL-120: the official class lists are not shipped here because this code was written without
access to them and a wrong list would silently change class indices. Pass the official list with
``class_names=read_class_names(path)``, or ``top_k=60`` for the 60 most frequent categories of *your*
training split (close to, but not guaranteed identical with, BABEL-60).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from modeling_motionpatch import Skeleton, get_skeleton, resample_fps

from .humanml3d import MISSING, SHORT_SEGMENT, read_joint_file
from .io import (
    PrepareReport,
    SplitBuilder,
    check_not_empty,
    dataset_dict_from_builders,
    segment_id,
)
from .schema import motion_features

#: split name -> BABEL annotation file
BABEL_SPLIT_FILES: dict[str, str] = {"train": "train.json", "validation": "val.json", "test": "test.json"}
NO_LABELS = "sequence without labels"
NO_CLASS = "segment without a label in class_names"
CLAMPED = "segment end past the motion end (clamped)"


def read_class_names(path: str | Path) -> list[str]:
    """Class names from a JSON list, a JSON ``{name: index}`` mapping (ordered by index) or a text file (one per line)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        if isinstance(data, Mapping):
            return [k for k, _ in sorted(data.items(), key=lambda kv: int(kv[1]))]
        if isinstance(data, list):
            return [str(x) for x in data]
        raise ValueError(f"{path}: expected a JSON list of names or a {{name: index}} mapping.")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _segments(entry: Mapping[str, Any], label_field: str, use_seq_ann: bool) -> list[tuple[float | None, float | None, list[str], str]]:
    """``(start_t, end_t, labels, proc_label)`` of one BABEL sequence (times ``None`` = whole sequence)."""
    out = []
    frame_ann = entry.get("frame_ann")
    if frame_ann and frame_ann.get("labels"):
        for lab in frame_ann["labels"]:
            out.append((float(lab["start_t"]), float(lab["end_t"]), _as_list(lab.get(label_field)), str(lab.get("proc_label") or "")))
    elif use_seq_ann and entry.get("seq_ann") and entry["seq_ann"].get("labels"):
        for lab in entry["seq_ann"]["labels"]:
            out.append((None, None, _as_list(lab.get(label_field)), str(lab.get("proc_label") or "")))
    return out


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def load_babel(
    root: str | Path,
    motions_dir: str | Path | None = None,
    *,
    motion_fps: float = 20.0,
    target_fps: float = 20.0,
    fps_mode: str = "linear",
    skeleton: Skeleton | str = "humanml3d",
    label_field: str = "act_cat",
    captions_from: str | None = "proc_label",
    class_names: Sequence[str] | None = None,
    top_k: int | None = None,
    use_seq_ann: bool = True,
    min_segment_frames: int = 1,
    split_files: Mapping[str, str] | None = None,
) -> tuple[datasets.DatasetDict, PrepareReport]:
    """Build a BABEL-style classification dataset; ``report.class_names`` holds the class list.

    Args:
        root: folder with ``train.json`` / ``val.json`` / ``test.json``.
        motions_dir: folder of joint arrays (default ``root/motions``), see the module docstring.
        motion_fps: frame rate of the joint arrays; ``target_fps`` / ``fps_mode``: output frame rate.
        skeleton: skeleton of the joint arrays (joint count enforced).
        label_field: ``"act_cat"`` (action categories) or ``"proc_label"``.
        captions_from: ``"proc_label"`` to keep the processed label text as a caption, ``None`` for none.
        class_names / top_k: the class list (see the module docstring).
        use_seq_ann: label whole sequences that have no frame annotation with their sequence labels.
        min_segment_frames: shorter segments (at ``motion_fps``) are skipped and counted.
        split_files: split -> annotation file (default :data:`BABEL_SPLIT_FILES`).
    """
    root = Path(root)
    motions = Path(motions_dir) if motions_dir is not None else root / "motions"
    skel = get_skeleton(skeleton)
    if label_field not in ("act_cat", "proc_label", "raw_label"):
        raise ValueError(f"label_field must be 'act_cat', 'proc_label' or 'raw_label', got {label_field!r}.")
    if captions_from not in (None, "proc_label"):
        raise ValueError(f"captions_from must be 'proc_label' or None, got {captions_from!r}.")
    if not motions.is_dir():
        raise ValueError(
            f"babel: motion folder {motions} does not exist. BABEL ships labels only: convert the AMASS sequences "
            "to joint positions and save them as {sid}.npy or {feat_p as .npy} there (or pass --motions DIR)."
        )
    split_files = dict(split_files or BABEL_SPLIT_FILES)
    present = {s: f for s, f in split_files.items() if (root / f).is_file()}
    if not present:
        raise ValueError(f"babel: none of {list(split_files.values())} exists in {root}; pass BABEL's folder with --root.")
    report = PrepareReport(
        source="babel", root=str(root), skeleton=skel, fps=float(target_fps),
        parameters={
            "motions_dir": str(motions), "motion_fps": motion_fps, "target_fps": target_fps, "fps_mode": fps_mode,
            "label_field": label_field, "captions_from": captions_from, "top_k": top_k, "use_seq_ann": use_seq_ann,
            "min_segment_frames": min_segment_frames,
        },
    )
    absent = [f for s, f in split_files.items() if s not in present]
    if absent:
        report.messages.append(f"annotation file(s) {absent} absent: those splits are not included")
    annotations = {s: json.loads((root / f).read_text(encoding="utf-8")) for s, f in present.items()}

    # class list from the training split's label frequencies (JSON only, no motion read yet)
    freq: Counter[str] = Counter()
    for split, ann in annotations.items():
        for entry in ann.values():
            for *_, labels, _ in _segments(entry, label_field, use_seq_ann):
                if split == "train" or "train" not in annotations:
                    freq.update(labels)
    if class_names is not None:
        classes = [str(c) for c in class_names]
    else:
        ranked = sorted(freq, key=lambda name: (-freq[name], name))
        classes = ranked[:top_k] if top_k else ranked
        if not top_k:  # labels seen only outside train, appended so nothing is dropped
            others = sorted({lab for ann in annotations.values() for e in ann.values()
                             for *_, labs, _ in _segments(e, label_field, use_seq_ann) for lab in labs} - set(classes))
            classes += others
    class_set = set(classes)
    report.class_names = classes

    features = motion_features(skel.num_joints)
    builders = {s: SplitBuilder(features, split=s) for s in present}
    for split, ann in annotations.items():
        builder = builders[split]
        for sid in sorted(ann, key=_natural):
            entry = ann[sid]
            segs = _segments(entry, label_field, use_seq_ann)
            if not segs:
                report.skipped.add(NO_LABELS, sid)
                continue
            rel = _find_motion(motions, str(sid), entry.get("feat_p"))
            if rel is None:
                report.skipped.add(MISSING, sid)
                continue
            motion, reason = read_joint_file(motions / rel, skel.num_joints)
            if motion is None:
                report.skipped.add(reason, sid)
                continue
            groups: dict[str, list] = {}
            for start, end, labels, proc in segs:
                whole = start is None
                key = str(sid) if whole else segment_id(str(sid), start, end)
                g = groups.setdefault(key, [0 if whole else int(start * motion_fps),
                                            motion.shape[0] if whole else int(end * motion_fps), [], []])
                g[2].extend(lab for lab in labels if lab not in g[2])
                if captions_from and proc and proc not in g[3]:
                    g[3].append(proc)
            for key, (f0, f1, labels, caps) in groups.items():
                kept = [lab for lab in labels if lab in class_set]
                if not kept:
                    report.skipped.add(NO_CLASS, key)
                    continue
                if f1 > motion.shape[0]:
                    report.remarks.add(CLAMPED, key)
                piece = motion[max(f0, 0) : min(f1, motion.shape[0])]
                if piece.shape[0] < min_segment_frames:
                    report.skipped.add(SHORT_SEGMENT, key)
                    continue
                builder.add(
                    id=key, motion=resample_fps(piece, motion_fps, target_fps, fps_mode), fps=float(target_fps),
                    skeleton=skel.name, captions=caps, labels=kept, source=str(rel), mirrored=False,
                )
    dataset_dict = dataset_dict_from_builders(builders, report)
    report.finalize(dataset_dict)
    report.warn_skipped(stacklevel=3)
    check_not_empty(dataset_dict, report)
    return dataset_dict, report


def _natural(sid: str) -> tuple[int, str]:
    return (int(sid), "") if str(sid).isdigit() else (1 << 62, str(sid))


def _find_motion(motions: Path, sid: str, feat_p: str | None) -> Path | None:
    candidates = [Path(f"{sid}.npy")]
    if feat_p:
        candidates.append(Path(feat_p).with_suffix(".npy"))
    for rel in candidates:
        if (motions / rel).is_file():
            return rel
    return None


def class_index(labels: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Multi-hot ``(len(class_names),)`` float32 vector of a sample's labels (labels outside the list ignored)."""
    index = {name: i for i, name in enumerate(class_names)}
    out = np.zeros(len(class_names), dtype=np.float32)
    hits = [index[lab] for lab in labels if lab in index]
    out[hits] = 1.0
    return out


__all__ = ["BABEL_SPLIT_FILES", "class_index", "load_babel", "read_class_names"]
