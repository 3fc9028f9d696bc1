"""Precompute ``motion_values`` for a whole dataset with ``datasets.Dataset.map``, cached by fingerprint.

:func:`add_motion_values` runs :class:`~modeling_motionpatch.MotionPatchFeatureExtractor` over the motions of a
schema dataset (the ``motion`` column, or ``motion_a`` + ``motion_b`` for a two-person extractor) with
``Dataset.map(batched=True, num_proc=N)`` and adds three columns, exactly what the extractor returns for each row:

| column | type |
|---|---|
| ``motion_values`` | float32 ``(3, max_frames, 5 * points_per_part)`` (a person axis first for two persons) |
| ``motion_attention_mask`` | int64 ``(num_patches,)``, one entry per ViT patch (per person for two persons) |
| ``motion_lengths`` | int64 (per person for two persons) |

The result is written to the dataset's cache folder under a fingerprint derived from the input dataset's
fingerprint and the extractor's full state (``to_json_string()``: skeleton, statistics, ``max_frames``, frame rates,
...): a second call with the same dataset and an equal extractor reloads the cached Arrow file instead of
recomputing, and any change of the extractor (other statistics, another ``max_frames``) computes anew. Motions are
cropped to their first ``max_frames`` frames (no random crop, as at evaluation); training-time random crops need the
raw motions.

Only ``numpy``, ``transformers`` (through the extractor) and ``datasets`` (imported when called) are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..feature_extraction_motionpatch import MotionPatchFeatureExtractor

if TYPE_CHECKING:  # datasets is imported when the function runs, not when the model is loaded
    import datasets

__all__ = ["MOTION_VALUE_COLUMNS", "add_motion_values", "motion_values_fingerprint"]

#: the columns :func:`add_motion_values` adds
MOTION_VALUE_COLUMNS = ("motion_values", "motion_attention_mask", "motion_lengths")
# bump when the columns this module writes change for the same extractor state (invalidates old caches)
_CACHE_FORMAT = 1


def _as_extractor(feature_extractor: Any) -> MotionPatchFeatureExtractor:
    fe = getattr(feature_extractor, "feature_extractor", feature_extractor)  # a MotionPatchProcessor
    if not isinstance(fe, MotionPatchFeatureExtractor):
        raise ValueError(  # noqa: TRY004  (the package reports bad arguments as ValueError)
            f"add_motion_values needs a MotionPatchFeatureExtractor (or a MotionPatchProcessor), got "
            f"{type(feature_extractor).__name__}; load one with AutoFeatureExtractor.from_pretrained(model_folder)."
        )
    return fe


def _motion_columns(fe: MotionPatchFeatureExtractor, column_names: Sequence[str], columns: Any) -> list[str]:
    if columns is None:
        columns = ["motion"] if fe.num_persons == 1 else ["motion_a", "motion_b"]
    elif isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    if len(columns) != fe.num_persons:
        raise ValueError(
            f"the feature extractor takes {fe.num_persons} motion(s) per sample (num_persons) but columns={columns} "
            "names a different number; pass one column per person, e.g. columns=['motion_a', 'motion_b']."
        )
    missing = [c for c in columns if c not in column_names]
    if missing:
        raise ValueError(
            f"the dataset has no column {missing[0]!r} (columns: {list(column_names)}); pass columns= with the "
            "motion column(s) of the dataset."
        )
    clash = [c for c in MOTION_VALUE_COLUMNS if c in column_names]
    if clash:
        raise ValueError(
            f"the dataset already has a {clash[0]!r} column; remove it first (dataset.remove_columns({clash})) "
            "to recompute the motion values."
        )
    return columns


def _output_features(fe: MotionPatchFeatureExtractor) -> dict[str, Any]:
    import datasets

    width = len(fe.skeleton["chains"]) * fe.points_per_part
    patches = fe.num_patches  # one mask entry per ViT patch
    if fe.num_persons == 1:
        return {
            "motion_values": datasets.Array3D(shape=(3, fe.max_frames, width), dtype="float32"),
            "motion_attention_mask": datasets.List(datasets.Value("int64"), length=patches),
            "motion_lengths": datasets.Value("int64"),
        }
    p = fe.num_persons
    return {
        "motion_values": datasets.Array4D(shape=(p, 3, fe.max_frames, width), dtype="float32"),
        "motion_attention_mask": datasets.Array2D(shape=(p, patches), dtype="int64"),
        "motion_lengths": datasets.List(datasets.Value("int64"), length=p),
    }


def _encode_batch(
    *arrays: Any,
    feature_extractor: MotionPatchFeatureExtractor,
    num_motion_columns: int,
    input_fps: float | None,
) -> dict[str, np.ndarray]:
    """``Dataset.map`` batch function: the motion column(s) (and ``fps``) -> the extractor's three outputs."""
    fe = feature_extractor
    motions = arrays[:num_motion_columns]
    n = len(motions[0])
    samples = list(motions[0]) if num_motion_columns == 1 else [tuple(m[i] for m in motions) for i in range(n)]
    if input_fps is not None or len(arrays) == num_motion_columns:
        rates = np.full(n, np.nan if input_fps is None else float(input_fps))
    else:
        rates = np.asarray(arrays[num_motion_columns], dtype=np.float64)
    uniq = np.unique(rates)  # one extractor call per frame rate in the batch (usually one)
    out: dict[str, np.ndarray] = {}
    for rate in uniq:
        rows = np.flatnonzero(rates == rate) if not np.isnan(rate) else np.flatnonzero(np.isnan(rates))
        enc = fe([samples[i] for i in rows], return_tensors="np", input_fps=None if np.isnan(rate) else float(rate))
        if len(uniq) == 1:
            return {k: np.asarray(enc[k]) for k in MOTION_VALUE_COLUMNS}
        for k in MOTION_VALUE_COLUMNS:
            value = np.asarray(enc[k])
            if k not in out:
                out[k] = np.empty((n, *value.shape[1:]), dtype=value.dtype)
            out[k][rows] = value
    return out


def motion_values_fingerprint(
    dataset: datasets.Dataset,
    feature_extractor: Any,
    columns: str | Sequence[str] | None = None,
    input_fps: float | None = None,
    remove_columns: Sequence[str] | None = None,
) -> str:
    """The fingerprint :func:`add_motion_values` gives its output (and names its cache file after).

    It hashes the input dataset's fingerprint, the extractor's ``to_json_string()``, the motion columns, the frame
    rate and the removed columns: equal inputs give equal fingerprints in any process, any change gives another.
    """
    from datasets.fingerprint import Hasher

    import modeling_motionpatch

    fe = _as_extractor(feature_extractor)
    return Hasher.hash(
        {
            "dataset": dataset._fingerprint,
            "feature_extractor": fe.to_json_string(),
            "columns": columns if columns is None or isinstance(columns, str) else list(columns),
            "input_fps": None if input_fps is None else float(input_fps),
            "remove_columns": sorted(remove_columns or []),
            "format": _CACHE_FORMAT,
            "motionpatch": getattr(modeling_motionpatch, "__version__", "unknown"),
        }
    )


def add_motion_values(
    dataset: datasets.Dataset | datasets.DatasetDict,
    feature_extractor: Any,
    *,
    columns: str | Sequence[str] | None = None,
    num_proc: int | None = None,
    batch_size: int = 64,
    input_fps: float | None = None,
    remove_columns: Sequence[str] | None = None,
    load_from_cache_file: bool | None = None,
    writer_batch_size: int | None = 64,
    desc: str | None = "motion_values",
) -> datasets.Dataset | datasets.DatasetDict:
    """Add ``motion_values``, ``motion_attention_mask`` and ``motion_lengths`` columns with ``Dataset.map``.

    Args:
        dataset: a schema ``Dataset`` (``motion`` column, or ``motion_a`` / ``motion_b``) or a ``DatasetDict``
            (every split is processed).
        feature_extractor: a :class:`MotionPatchFeatureExtractor` or a processor holding one; its state decides
            the fingerprint (see :func:`motion_values_fingerprint`).
        columns: the motion column(s); default ``motion`` (``["motion_a", "motion_b"]`` for a two-person extractor).
        num_proc: worker processes of ``Dataset.map`` (``None``: this process); the values do not depend on it.
        batch_size: rows per extractor call.
        input_fps: frame rate of all motions; by default each row's ``fps`` column (the schema's), else the
            extractor's ``input_fps`` / ``fps``.
        remove_columns: columns to drop from the output (e.g. ``["motion"]`` to keep only the patches).
        load_from_cache_file: ``Dataset.map``'s flag (``None``: reuse the cache when caching is enabled).
        writer_batch_size: rows per Arrow write; one row of ``motion_values`` is ``3 * max_frames * 80 * 4`` bytes
            (215 KB at 224 frames), so the default keeps each process's buffer near 14 MB.
        desc: progress-bar label.

    Returns:
        the dataset (or ``DatasetDict``) with the three columns, in the input's format. The values equal
        ``feature_extractor(motions, input_fps=fps)`` row for row (first ``max_frames`` frames, no random crop).
        Feed the model with ``dataset.with_format("torch", columns=["motion_values", "motion_attention_mask"])``.

    Caching: a dataset backed by Arrow files (``load_from_disk``, ``load_dataset``, ``motionpatch-prepare``
    folders) gets a ``cache-<fingerprint>.arrow`` file beside them (one per process with ``num_proc``), reused by
    the next call with the same dataset and an equal extractor; an in-memory dataset is recomputed each time, as
    with any ``Dataset.map``.
    """
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict({
            name: add_motion_values(
                split, feature_extractor, columns=columns, num_proc=num_proc, batch_size=batch_size,
                input_fps=input_fps, remove_columns=remove_columns, load_from_cache_file=load_from_cache_file,
                writer_batch_size=writer_batch_size, desc=desc,
            )
            for name, split in dataset.items()
        })
    if not isinstance(dataset, datasets.Dataset):
        raise ValueError(  # noqa: TRY004
            f"add_motion_values takes a datasets.Dataset or DatasetDict, got {type(dataset).__name__}."
        )
    fe = _as_extractor(feature_extractor)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
        raise ValueError(f"num_proc must be None or a positive integer, got {num_proc!r}.")
    if input_fps is not None and not 0 < float(input_fps) < float("inf"):
        raise ValueError(f"input_fps must be a positive, finite frame rate, got {input_fps!r}.")
    motion_cols = _motion_columns(fe, dataset.column_names, columns)
    remove = list(remove_columns or [])
    unknown = [c for c in remove if c not in dataset.column_names]
    if unknown:
        raise ValueError(f"remove_columns names {unknown}, which the dataset does not have ({dataset.column_names}).")
    fingerprint = motion_values_fingerprint(dataset, fe, columns, input_fps, remove)
    use_fps_column = input_fps is None and "fps" in dataset.column_names
    inputs = motion_cols + (["fps"] if use_fps_column else [])
    features = datasets.Features({k: v for k, v in dataset.features.items() if k not in remove})
    features.update(_output_features(fe))
    fmt = dataset.format
    out = dataset.with_format("numpy", columns=inputs).map(
        _encode_batch,
        input_columns=inputs,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        fn_kwargs={"feature_extractor": fe, "num_motion_columns": len(motion_cols), "input_fps": input_fps},
        features=features,
        remove_columns=remove or None,
        load_from_cache_file=load_from_cache_file,
        writer_batch_size=writer_batch_size,
        new_fingerprint=fingerprint,
        desc=desc,
    )
    columns_fmt = None if fmt["columns"] is None or set(fmt["columns"]) >= set(dataset.column_names) else [
        c for c in fmt["columns"] if c not in remove
    ]
    return out.with_format(fmt["type"], columns=columns_fmt, output_all_columns=fmt["output_all_columns"],
                           **fmt["format_kwargs"])
