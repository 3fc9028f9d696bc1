"""The prepared Bandai-Namco ``ds*_h22_20fps.npz`` (+ ``ds*_index.jsonl``) as a motionpatch dataset.

:func:`dataset_from_npz` streams the clips batch by batch from the compressed ``joints.npy`` member into
Arrow, so that peak memory stays far below the size of the motion arrays. Splits follow
:mod:`motionpatch_processing.clip_splits`; captions the index file, else :mod:`motionpatch_processing.bandai_labels`.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from modeling_motionpatch.skeletons import Skeleton, get_skeleton

from .bandai_labels import BANDAI_CAPTION_TEMPLATE, BANDAI_PHRASES, make_caption
from .clip_splits import assign_splits
from .io import write_arrow_splits
from .schema import motion_features

__all__ = ["dataset_from_npz"]


def _stream_npz_rows(
    path: Path, offsets: np.ndarray, lengths: np.ndarray, order: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(clip, joints)`` for the clips in ``order`` (ascending), reading ``joints.npy`` sequentially
    from the zip member so that the whole array is never in memory."""
    with zipfile.ZipFile(path) as zf, zf.open("joints.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        if fortran:
            raise ValueError(f"{path}: joints.npy is Fortran-ordered and cannot be streamed; re-save it C-ordered.")
        row = int(np.prod(shape[1:])) * dtype.itemsize
        here = 0
        for k in order:
            start, n = int(offsets[k]), int(lengths[k])
            if start < here:
                raise ValueError(f"{path}: clip {k} starts at row {start}, inside the previous clip; offsets overlap.")
            if start > here:
                fh.read((start - here) * row)
            buf = fh.read(n * row)
            if len(buf) != n * row:
                raise ValueError(f"{path}: joints.npy ends inside clip {k}; the file is truncated.")
            here = start + n
            yield k, np.frombuffer(buf, dtype=dtype).reshape((n,) + tuple(shape[1:])).astype(np.float32)


def dataset_from_npz(
    path: str | os.PathLike,
    index_path: str | os.PathLike | None = None,
    splits: str | Callable[[str], str] | Mapping[str, str] = "auto",
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    caption_template: str = BANDAI_CAPTION_TEMPLATE,
    phrases: Mapping[str, Mapping[str, str]] | None = None,
    fps: float = 20.0,
    skeleton: str = "humanml3d",
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
) -> tuple[datasets.DatasetDict, Skeleton]:
    """Build the schema dataset from a prepared ``ds*_h22_20fps.npz`` (``joints``, ``lengths``, ``offsets``,
    ``names``, ``content``, ``style``) and its ``ds*_index.jsonl``.

    Clips are streamed from the compressed ``joints.npy`` member in file order, ``batch_size`` at a time,
    and written to Arrow per split, so peak memory is a few batches, not the whole array (the float16
    array is converted to float32 clip by clip).

    Args:
        path: the ``.npz``.
        index_path: the index (one JSON line per clip, same order; its ``caption_template`` becomes the
            caption). Default: ``<prefix>_index.jsonl`` next to the npz (``ds2_h22_20fps.npz`` ->
            ``ds2_index.jsonl``) when it exists; without an index, captions come from
            ``caption_template`` and ``phrases`` (Bandai phrasing by default).
        splits, seed, fractions: see the module docstring; the take number is the end of the clip name.
        fps, skeleton: the frame rate and registered skeleton of the arrays.
        cache_dir, batch_size: where and in what batches the Arrow files are written.
    """
    path = Path(path)
    skel = get_skeleton(skeleton)
    with np.load(path, allow_pickle=False) as z:
        need = {"joints", "lengths", "offsets", "names"}
        if not need <= set(z.files):
            raise ValueError(
                f"{path} lacks arrays {sorted(need - set(z.files))}; expected {sorted(need)} (+ content, style)."
            )
        lengths = z["lengths"].astype(np.int64)
        offsets = z["offsets"].astype(np.int64)
        names = [str(n) for n in z["names"]]
        content = [str(c) for c in z["content"]] if "content" in z.files else None
        style = [str(s) for s in z["style"]] if "style" in z.files else None
    if index_path is None:
        guess = path.with_name(path.name.split("_")[0] + "_index.jsonl")
        index_path = guess if guess.is_file() else None
    index = None
    if index_path is not None:
        with open(index_path, encoding="utf-8") as fh:
            index = [json.loads(line) for line in fh if line.strip()]
        if [r.get("name") for r in index] != names:
            raise ValueError(
                f"{index_path} does not list the clips of {path} in the same order ({len(index)} lines, {len(names)} clips); "
                "pass the matching index or index_path=None."
            )
    split_list = assign_splits(names, splits, seed, fractions)  # the names end in the take number

    def captions_of(k: int) -> list[str]:
        if index is not None and index[k].get("caption_template"):
            return [index[k]["caption_template"]]
        if content is None or style is None:
            return []
        return [make_caption(caption_template, {"content": content[k], "style": style[k]}, phrases or BANDAI_PHRASES)]

    def labels_of(k: int) -> list[str]:
        return [x[k] for x in (content, style) if x is not None]

    contiguous = bool(len(offsets) == 0 or (offsets[0] >= 0 and np.all(offsets[1:] >= offsets[:-1] + lengths[:-1])))
    if not contiguous:
        raise ValueError(f"{path}: clip offsets are not in ascending, non-overlapping order; cannot stream the clips.")

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        # one sequential pass over the compressed joints.npy
        for k, joints in _stream_npz_rows(path, offsets, lengths, np.arange(len(names))):
            if joints.shape[1:] != (skel.num_joints, 3):
                raise ValueError(
                    f"{path}: clip {names[k]} has shape {joints.shape}; skeleton {skel.name!r} needs (T, {skel.num_joints}, 3)."
                )
            yield (
                split_list[k],
                {
                    "id": names[k],
                    "motion": joints,
                    "fps": float(fps),
                    "skeleton": skel.name,
                    "captions": captions_of(k),
                    "labels": labels_of(k),
                    "source": f"{path.name}#{names[k]}",
                    "mirrored": False,
                },
            )

    return write_arrow_splits(rows(), motion_features(skel.num_joints), cache_dir, batch_size), skel
