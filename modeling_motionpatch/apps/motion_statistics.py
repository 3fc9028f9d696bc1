"""Per-(joint, axis) normalisation statistics of a prepared dataset, and their ``statistics.json``.

The mean and std that :class:`~modeling_motionpatch.MotionPatchFeatureExtractor` uses for its z-score are
computed over every frame of the training split (default) or of all splits (``splits="all"``, what the
reference MotionPatches code did), in one streaming pass: motions are read from Arrow in batches and fed to
:func:`compute_statistics` (a one-pass Chan et al. update in float64), so memory
holds one batch at a time. Two-person datasets pool both people (``motion_a`` and ``motion_b``).

Saved as ``statistics.json`` next to a prepared dataset (:func:`save_statistics`), read back with
:func:`read_statistics` / :func:`load_statistics` and installed with ``feature_extractor.set_statistics(mean, std)``.
This module is the one implementation: the dataset builders and the checkpoint converter both use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..motion_patches import MotionInputError, as_motion_array

if TYPE_CHECKING:  # datasets is imported when statistics are computed, not when the model is loaded
    import datasets

STATISTICS_FILE = "statistics.json"


@dataclass
class MotionStatistics:
    """Mean / std per (joint, axis), shape ``(J, 3)``, and what they were computed over."""

    mean: np.ndarray
    std: np.ndarray
    splits: list[str] = field(default_factory=list)
    num_motions: int = 0
    num_frames: int = 0
    columns: list[str] = field(default_factory=lambda: ["motion"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": np.asarray(self.mean, dtype=np.float32).tolist(),
            "std": np.asarray(self.std, dtype=np.float32).tolist(),
            "splits": list(self.splits),
            "num_motions": int(self.num_motions),
            "num_frames": int(self.num_frames),
            "columns": list(self.columns),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MotionStatistics:
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float32),
            std=np.asarray(data["std"], dtype=np.float32),
            splits=list(data.get("splits", [])),
            num_motions=int(data.get("num_motions", 0)),
            num_frames=int(data.get("num_frames", 0)),
            columns=list(data.get("columns", ["motion"])),
        )


def compute_statistics(motions: Iterable) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per (joint, axis) over all frames of an iterable of ``(T, J, 3)`` motions, in one pass.

    Uses float64 sums per motion (Chan et al.'s parallel update), so memory stays at one motion at a time.
    Returns ``(mean, std)`` as float32 arrays of shape ``(J, 3)`` (population std).
    """
    count = 0
    mean = m2 = None
    for i, motion in enumerate(motions):
        arr = as_motion_array(motion, i).astype(np.float64)
        if not np.isfinite(arr).all():
            raise MotionInputError(f"motion {i} contains NaN or Inf values; clean it before computing statistics.")
        n = arr.shape[0]
        m = arr.mean(axis=0)
        s = ((arr - m) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2 = n, m, s
            continue
        if m.shape != mean.shape:
            raise MotionInputError(f"motion {i} has {m.shape[0]} joints; earlier motions had {mean.shape[0]}.")
        total = count + n
        delta = m - mean
        mean = mean + delta * (n / total)
        m2 = m2 + s + delta**2 * (count * n / total)
        count = total
    if mean is None:
        raise ValueError("compute_statistics got no motions.")
    return mean.astype(np.float32), np.sqrt(m2 / count).astype(np.float32)


def _motion_columns(features: Mapping[str, Any]) -> list[str]:
    return [k for k in ("motion", "motion_a", "motion_b") if k in features]


def _select_splits(dataset: datasets.DatasetDict | datasets.Dataset, splits: str | Sequence[str]) -> dict:
    import datasets

    if isinstance(dataset, datasets.Dataset):
        return {dataset.split and str(dataset.split) or "dataset": dataset}
    if splits == "all":
        names = list(dataset)
    elif isinstance(splits, str):
        names = [splits]
    else:
        names = list(splits)
    missing = [s for s in names if s not in dataset]
    if missing:
        raise ValueError(
            f"statistics split(s) {missing} not in the dataset (it has {list(dataset)}); use "
            "splits='all' (--statistics all) or name existing splits."
        )
    return {s: dataset[s] for s in names}


def compute_dataset_statistics(
    dataset: datasets.DatasetDict | datasets.Dataset,
    splits: str | Sequence[str] = "train",
    columns: Sequence[str] | None = None,
    batch_size: int = 64,
) -> MotionStatistics:
    """Stream the motions of ``splits`` through :func:`compute_statistics`.

    Args:
        dataset: a ``DatasetDict`` (or a single ``Dataset``, then ``splits`` is ignored).
        splits: ``"train"`` (default), ``"all"``, or a list of split names.
        columns: motion columns to pool (default: ``motion``, or ``motion_a`` + ``motion_b``).
        batch_size: rows read from Arrow at a time.
    """
    parts = _select_splits(dataset, splits)
    first = next(iter(parts.values()))
    cols = list(columns) if columns else _motion_columns(first.features)
    if not cols:
        raise ValueError(f"no motion column in features {list(first.features)}; expected 'motion' or 'motion_a'/'motion_b'.")
    counter = {"motions": 0, "frames": 0}

    def motions() -> Iterator[np.ndarray]:
        for ds in parts.values():
            for batch in ds.with_format("numpy", columns=cols).iter(batch_size=batch_size):
                for col in cols:
                    for m in batch[col]:
                        counter["motions"] += 1
                        counter["frames"] += int(m.shape[0])
                        yield m

    if sum(len(d) for d in parts.values()) == 0:
        raise ValueError(f"splits {list(parts)} are empty; cannot compute statistics. Use --statistics all.")
    mean, std = compute_statistics(motions())
    return MotionStatistics(mean, std, splits=list(parts), num_motions=counter["motions"],
                            num_frames=counter["frames"], columns=cols)


def save_statistics(statistics: MotionStatistics, directory: str | os.PathLike) -> Path:
    """Write ``statistics.json`` into ``directory``."""
    path = Path(directory) / STATISTICS_FILE
    path.write_text(json.dumps(statistics.to_dict(), indent=1))
    return path


def read_statistics(dataset_dir: str | os.PathLike) -> MotionStatistics:
    """The full :class:`MotionStatistics` saved with a prepared dataset."""
    path = Path(dataset_dir) / STATISTICS_FILE
    if not path.exists():
        raise ValueError(
            f"{path} does not exist; prepare the dataset with motionpatch-prepare (statistics are computed by "
            "default) or compute them with compute_dataset_statistics."
        )
    return MotionStatistics.from_dict(json.loads(path.read_text()))


def load_statistics(dataset_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` float32 ``(J, 3)`` arrays of a prepared dataset, for ``feature_extractor.set_statistics``."""
    stats = read_statistics(dataset_dir)
    return stats.mean, stats.std


__all__ = [
    "compute_statistics",
    "STATISTICS_FILE",
    "MotionStatistics",
    "compute_dataset_statistics",
    "load_statistics",
    "read_statistics",
    "save_statistics",
]
