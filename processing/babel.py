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
* missing / unreadable / wrong-joint-count / NaN motions, segments shorter than ``min_segment_frames``,
  sequences without labels and malformed entries (not an object, labels without finite, non-negative
  ``start_t``/``end_t``) are skipped and counted (one warning; counts and first ids in the card). An
  annotation or class-list file that is not UTF-8 JSON is a ``ValueError`` naming the file and line.

BABEL-60 / BABEL-120: the official class lists are not shipped here because this code was written without
access to them and a wrong list would silently change class indices (``motionpatch-zero-shot --candidate-labels
babel60`` has a list that is explicitly unverified and warns so). Pass the official list with
``class_names=read_class_names(path)``, or ``top_k=60`` for the 60 most frequent categories of *your*
training split (close to, but not guaranteed identical with, BABEL-60).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from modeling_motionpatch import Skeleton, get_skeleton, resample_fps

from .humanml3d import MISSING, crop_segment, read_joint_file
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
MALFORMED_ENTRY = "malformed annotation entry"
NO_CLASS = "segment without a label in class_names"
CLAMPED = "segment end past the motion end (clamped)"


def read_class_names(path: str | Path) -> list[str]:
    """Class names from a JSON list, a JSON ``{name: index}`` mapping (ordered by index) or a text file (one per line)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"class list {path} does not exist; pass a JSON list, a JSON {{name: index}} or a text file.")
    if path.suffix == ".json":
        data = _read_json(path, "class list")
        try:
            if isinstance(data, Mapping):
                return [str(k) for k, _ in sorted(data.items(), key=lambda kv: int(kv[1]))]
        except (TypeError, ValueError):
            raise ValueError(f"{path}: the {{name: index}} mapping has an index that is not an integer.") from None
        if isinstance(data, list):
            return [str(x) for x in data]
        raise ValueError(f"{path}: expected a JSON list of names or a {{name: index}} mapping.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"class list {path} is not UTF-8 text (byte {exc.start}); re-save it as UTF-8.") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _read_json(path: Path, what: str) -> Any:
    """``json.load`` of a UTF-8 file; a ``ValueError`` naming the file, line and column when it is not valid."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {exc.start}); re-download it.") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what} {path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); the file is "
            "truncated or was edited by hand. Re-download it."
        ) from None


Segment = tuple[float | None, float | None, list[str], str]


def _segments(entry: Any, label_field: str, use_seq_ann: bool) -> list[Segment] | None:
    """``(start_t, end_t, labels, proc_label)`` of one BABEL sequence (times ``None`` = whole sequence);
    ``None`` when the entry is malformed (not an object, labels without finite times ``0 <= start_t``)."""
    try:
        out: list[Segment] = []
        frame_ann = entry.get("frame_ann")
        if frame_ann and frame_ann.get("labels"):
            for lab in frame_ann["labels"]:
                start, end = float(lab["start_t"]), float(lab["end_t"])
                if not (math.isfinite(start) and math.isfinite(end) and start >= 0):
                    return None
                out.append((start, end, _as_list(lab.get(label_field)), str(lab.get("proc_label") or "")))
        elif use_seq_ann and entry.get("seq_ann") and entry["seq_ann"].get("labels"):
            for lab in entry["seq_ann"]["labels"]:
                out.append((None, None, _as_list(lab.get(label_field)), str(lab.get("proc_label") or "")))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return out


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"labels must be a string or a list, got {type(value).__name__}")
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
    annotations = {s: _read_annotations(root / f) for s, f in present.items()}
    classes = _class_list(annotations, label_field, use_seq_ann, class_names, top_k)
    report.class_names = classes
    rules = _SegmentRules(skel, motion_fps, target_fps, fps_mode, min_segment_frames, set(classes), bool(captions_from))

    builders = {s: SplitBuilder(motion_features(skel.num_joints), split=s) for s in present}
    for split, ann in annotations.items():
        for sid in sorted(ann, key=_natural):
            entry = ann[sid]
            segs = _segments(entry, label_field, use_seq_ann)
            if segs is None:
                report.skipped.add(MALFORMED_ENTRY, sid)
                continue
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
            rules.add_samples(builders[split], str(sid), motion, segs, str(rel), report)
    dataset_dict = dataset_dict_from_builders(builders, report)
    report.finalize(dataset_dict)
    report.warn_skipped(stacklevel=3)
    check_not_empty(dataset_dict, report)
    return dataset_dict, report


def _read_annotations(path: Path) -> Mapping[str, Any]:
    data = _read_json(path, "annotation file")
    if not isinstance(data, Mapping):
        raise ValueError(
            f"annotation file {path}: expected a JSON object {{sid: {{feat_p, frame_ann, seq_ann, ...}}}}, got a "
            f"{type(data).__name__}. Pass BABEL's train.json / val.json."
        )
    return data


def _class_list(
    annotations: Mapping[str, Mapping[str, Any]], label_field: str, use_seq_ann: bool,
    class_names: Sequence[str] | None, top_k: int | None,
) -> list[str]:
    """``class_names`` if given, else the labels by training-split frequency (the ``top_k`` first, or all)."""
    if class_names is not None:
        return [str(c) for c in class_names]
    freq: Counter[str] = Counter()
    seen: set[str] = set()
    for split, ann in annotations.items():
        for entry in ann.values():
            for *_, labels, _ in _segments(entry, label_field, use_seq_ann) or ():
                seen.update(labels)
                if split == "train" or "train" not in annotations:
                    freq.update(labels)
    ranked = sorted(freq, key=lambda name: (-freq[name], name))
    if top_k:
        return ranked[:top_k]
    return ranked + sorted(seen - set(ranked))  # labels seen only outside train, so that nothing is dropped


@dataclass(frozen=True)
class _SegmentRules:
    """How the labelled segments of one loaded sequence become samples."""

    skeleton: Skeleton
    motion_fps: float
    target_fps: float
    fps_mode: str
    min_segment_frames: int
    classes: set[str]
    keep_captions: bool

    def add_samples(
        self, builder: SplitBuilder, sid: str, motion: np.ndarray, segs: list[Segment], rel: str, report: PrepareReport
    ) -> None:
        t = motion.shape[0]
        groups: dict[str, tuple[int, int, list[str], list[str]]] = {}
        for start, end, labels, proc in segs:  # segments with the same times share one sample
            whole = start is None
            key = sid if whole else segment_id(sid, start, end)
            span = (0, t) if whole else (int(start * self.motion_fps), int(end * self.motion_fps))
            g = groups.setdefault(key, (*span, [], []))
            g[2].extend(lab for lab in labels if lab not in g[2])
            if self.keep_captions and proc and proc not in g[3]:
                g[3].append(proc)
        for key, (f0, f1, labels, caps) in groups.items():
            kept = [lab for lab in labels if lab in self.classes]
            if not kept:
                report.skipped.add(NO_CLASS, key)
                continue
            piece = crop_segment(motion, f0, f1, key, report, self.min_segment_frames, clamped=CLAMPED)
            if piece is None:
                continue
            builder.add(
                id=key, motion=resample_fps(piece, self.motion_fps, self.target_fps, self.fps_mode),
                fps=float(self.target_fps), skeleton=self.skeleton.name, captions=caps, labels=kept, source=rel,
                mirrored=False,
            )


def _natural(sid: str) -> tuple[int, str]:
    return (int(sid), "") if str(sid).isdigit() else (1 << 62, str(sid))


def _find_motion(motions: Path, sid: str, feat_p: Any) -> Path | None:
    candidates = [Path(f"{sid}.npy")]
    if isinstance(feat_p, str) and feat_p and not Path(feat_p).is_absolute() and ".." not in Path(feat_p).parts:
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
