"""The compact real motion-capture subset embedded in the package: Bandai-Namco, CC BY-NC 4.0.

``processing/data/bandai_namco_h22.npz`` holds every clip of Bandai-Namco dataset 1 (174 clips, 16 contents x 15
styles) and a stratified subset of dataset 2 (:data:`DS2_TAKES_PER_PAIR` evenly spaced takes of each of its 70
content x style pairs), as 22 SMPL/HumanML3D joints at 20 fps. Positions are stored as int16 millimetres,
differenced along time within each clip (the first frame absolute), which zlib packs to about half the size of
float16; :func:`load_embedded_clips` undoes it exactly (1 mm resolution, finer than the source's float16).

Build (or check) it from the converted arrays of the full dataset:

    python -m motionpatch_processing.embedded_bandai --root ../shared/data/bandai-namco --output processing/data

Splits are fixed in the file (``split`` array) so that every user of the subset holds out the same takes:

* dataset 1: styles :data:`DS1_TEST_STYLES` and take 001 of style ``normal`` (which holds the one kick, the
  punches, calls and slashes) are ``test``; :data:`DS1_VALIDATION_STYLES` are ``validation``; the rest ``train``;
* dataset 2: by take number (``take % 10 == 9`` validation, ``== 0`` test), as ``motionpatch-prepare`` splits it.

The data derives from the Bandai-Namco Research Motion Dataset (Kobayashi et al., 2023), licence CC BY-NC 4.0:
models trained on it carry that restriction (their cards say so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from .bandai_labels import paraphrase_captions
from .clip_splits import split_of_take, take_number
from .io import write_arrow_splits
from .schema import motion_features

__all__ = [
    "DS1_TEST_STYLES",
    "DS1_VALIDATION_STYLES",
    "DS2_TAKES_PER_PAIR",
    "EMBEDDED_DIR",
    "EMBEDDED_FILE",
    "EmbeddedClips",
    "build_embedded_subset",
    "embedded_dataset_dict",
    "load_embedded_clips",
]

EMBEDDED_DIR = Path(__file__).resolve().parent / "data"
EMBEDDED_FILE = EMBEDDED_DIR / "bandai_namco_h22.npz"
DS2_TAKES_PER_PAIR = 20
DS1_TEST_STYLES = ("angry", "old")
DS1_VALIDATION_STYLES = ("sad", "proud")
_MM = 1000.0


@dataclass
class EmbeddedClips:
    """The clips of the embedded subset: ``joints[offsets[i]:offsets[i] + lengths[i]]`` is clip ``i`` (metres)."""

    joints: np.ndarray  # (frames, 22, 3) float32
    lengths: np.ndarray
    offsets: np.ndarray
    names: np.ndarray
    content: np.ndarray
    style: np.ndarray
    dataset: np.ndarray  # "ds1" / "ds2"
    split: np.ndarray

    def clip(self, i: int) -> np.ndarray:
        return self.joints[self.offsets[i] : self.offsets[i] + self.lengths[i]]

    def __len__(self) -> int:
        return len(self.lengths)


def _encode(joints: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Metres -> int16 millimetres, differenced along time within each clip (first frame absolute)."""
    q = np.round(joints.astype(np.float64) * _MM).astype(np.int32)
    if np.abs(q).max() > 32767:
        raise ValueError("a joint lies more than 32.7 m from the origin; it cannot be stored as int16 millimetres.")
    d = q.copy()
    d[1:] -= q[:-1]
    d[offsets] = q[offsets]
    if np.abs(d).max() > 32767:
        raise ValueError("a joint moves more than 32.7 m between two frames; the clip is corrupt.")
    return d.astype(np.int16)


def _decode(deltas: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_encode`: one cumulative sum over every frame, minus each clip's carry-in."""
    total = np.cumsum(deltas, axis=0, dtype=np.int32)
    carry = np.where(offsets[:, None, None] > 0, total[np.maximum(offsets - 1, 0)], 0)
    return ((total - np.repeat(carry, lengths, axis=0)) / _MM).astype(np.float32)


def _read_source(root: Path, prefix: str) -> tuple[dict[str, np.ndarray], list[dict]]:
    with np.load(root / f"{prefix}_h22_20fps.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in ("joints", "lengths", "offsets", "names", "content", "style")}
    with open(root / f"{prefix}_index.jsonl", encoding="utf-8") as fh:
        index = [json.loads(line) for line in fh if line.strip()]
    if [r["name"] for r in index] != [str(n) for n in arrays["names"]]:
        raise ValueError(f"{root}/{prefix}_index.jsonl does not list the clips of {prefix}_h22_20fps.npz in order.")
    return arrays, index


def _ds1_split(style: str, take: int) -> str:
    if style in DS1_TEST_STYLES or (style == "normal" and take == 1):
        return "test"
    return "validation" if style in DS1_VALIDATION_STYLES else "train"


def _ds2_selection(names: np.ndarray, content: np.ndarray, style: np.ndarray, per_pair: int) -> np.ndarray:
    """Indices of about ``per_pair`` takes of every (content, style) pair: 10 % of them (at least one) from each
    held-out split of :func:`split_of_take` and the rest from ``train``, evenly spaced over the take numbers."""
    takes = np.array([take_number(str(n)) for n in names])
    held_out = max(1, round(0.1 * per_pair))
    quota = {"train": per_pair - 2 * held_out, "validation": held_out, "test": held_out}
    keep = []
    for pair in sorted(set(zip(content.tolist(), style.tolist()))):
        members = np.flatnonzero((content == pair[0]) & (style == pair[1]))
        members = members[np.argsort(takes[members], kind="stable")]
        for split, n in quota.items():
            pool = members[np.array([split_of_take(t) == split for t in takes[members]], dtype=bool)]
            if len(pool):
                keep.append(pool[np.unique(np.linspace(0, len(pool) - 1, min(n, len(pool))).round().astype(int))])
    return np.sort(np.concatenate(keep))


def build_embedded_subset(root: str | os.PathLike, per_pair: int = DS2_TAKES_PER_PAIR) -> dict[str, np.ndarray]:
    """The arrays of the embedded subset, built from ``root`` (the folder with ``ds1_h22_20fps.npz``,
    ``ds2_h22_20fps.npz`` and their index files)."""
    root = Path(root)
    parts = []
    for prefix in ("ds1", "ds2"):
        arrays, _ = _read_source(root, prefix)
        names, content, style = (arrays[k].astype(str) for k in ("names", "content", "style"))
        chosen = np.arange(len(names)) if prefix == "ds1" else _ds2_selection(names, content, style, per_pair)
        takes = [take_number(str(n)) for n in names[chosen]]
        split = [
            _ds1_split(s, t) if prefix == "ds1" else split_of_take(t) for s, t in zip(style[chosen].tolist(), takes)
        ]
        clips = [arrays["joints"][arrays["offsets"][i] : arrays["offsets"][i] + arrays["lengths"][i]] for i in chosen]
        parts.append((clips, names[chosen], content[chosen], style[chosen], [prefix] * len(chosen), split))
    clips = [c for p in parts for c in p[0]]
    lengths = np.array([len(c) for c in clips], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    joints = np.concatenate(clips).astype(np.float32)
    return {
        "joints_mm_delta": _encode(joints, offsets),
        "lengths": lengths,
        "offsets": offsets,
        "names": np.concatenate([p[1] for p in parts]),
        "content": np.concatenate([p[2] for p in parts]),
        "style": np.concatenate([p[3] for p in parts]),
        "dataset": np.array([d for p in parts for d in p[4]]),
        "split": np.array([s for p in parts for s in p[5]]),
    }


def load_embedded_clips(path: str | os.PathLike = EMBEDDED_FILE) -> EmbeddedClips:
    """Read the embedded subset (decoded to float32 metres; about 40 MB in memory)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    joints = _decode(arrays.pop("joints_mm_delta"), arrays["offsets"], arrays["lengths"])
    return EmbeddedClips(joints=joints, **{k: v.astype(str) if v.dtype.kind == "U" else v for k, v in arrays.items()})


def embedded_dataset_dict(
    datasets_: Sequence[str] = ("ds1", "ds2"),
    path: str | os.PathLike = EMBEDDED_FILE,
    splits: Mapping[str, str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """The embedded clips of ``datasets_`` as a dataset in motionpatch's schema (22 SMPL joints, 20 fps), with the
    file's splits, labels ``[content, style]`` and every phrasing of the label-derived caption
    (:func:`~.bandai_labels.paraphrase_captions`; the first is the template sentence that evaluation uses).

    ``splits`` remaps whole parts, e.g. ``{"ds1": "test"}`` makes every dataset-1 clip a test clip (the
    cross-source benchmark: train on dataset 2, test on dataset 1)."""
    clips = load_embedded_clips(path)
    unknown = sorted(set(datasets_) - set(clips.dataset.tolist()))
    if unknown:
        raise ValueError(f"the embedded subset has no part {unknown}; its parts are {sorted(set(clips.dataset))}.")
    remap = dict(splits or {})

    def rows():
        for i in np.flatnonzero(np.isin(clips.dataset, list(datasets_))):
            content, style = str(clips.content[i]), str(clips.style[i])
            yield remap.get(str(clips.dataset[i]), str(clips.split[i])), {
                "id": str(clips.names[i]),
                "motion": clips.clip(i),
                "fps": 20.0,
                "skeleton": "humanml3d",
                "captions": paraphrase_captions(content, style),
                "labels": [content, style],
                "source": f"bandai-namco-embedded#{clips.names[i]}",
                "mirrored": False,
            }

    return write_arrow_splits(rows(), motion_features(22), cache_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data/bandai-namco", help="folder with ds1/ds2 _h22_20fps.npz")
    parser.add_argument("--output", default=str(EMBEDDED_DIR), help="folder to write bandai_namco_h22.npz into")
    parser.add_argument("--check", action="store_true", help="rebuild and compare with the file in --output")
    args = parser.parse_args(argv)
    arrays = build_embedded_subset(args.root)
    target = Path(args.output) / EMBEDDED_FILE.name
    if args.check:
        with np.load(target, allow_pickle=False) as z:
            same = set(z.files) == set(arrays) and all(np.array_equal(z[k], arrays[k]) for k in arrays)
        print(f"{target}: {'identical to' if same else 'DIFFERS from'} a rebuild from {args.root}")
        return 0 if same else 1
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(target, **arrays)
    counts = {s: int((arrays["split"] == s).sum()) for s in ("train", "validation", "test")}
    print(f"wrote {target}: {len(arrays['lengths'])} clips, {int(arrays['lengths'].sum())} frames, "
          f"{target.stat().st_size / 1e6:.2f} MB; splits {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
