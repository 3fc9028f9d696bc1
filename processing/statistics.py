"""Normalisation statistics of a prepared dataset: the card summary, and the library's statistics re-exported.

The statistics themselves (:class:`MotionStatistics`, the streaming :func:`compute_dataset_statistics`, and
reading / writing ``statistics.json``) live once, in :mod:`modeling_motionpatch.motion_statistics`, the
library the feature extractor and the checkpoint converter use; they are re-exported here. This module adds
:func:`statistics_markdown`, the summary of the dataset card.
"""

from __future__ import annotations

import numpy as np

from modeling_motionpatch import Skeleton
from modeling_motionpatch.motion_statistics import (
    STATISTICS_FILE,
    MotionStatistics,
    compute_dataset_statistics,
    load_statistics,
    read_statistics,
    save_statistics,
)


def statistics_markdown(statistics: MotionStatistics, skeleton: Skeleton | None = None) -> str:
    """A markdown summary (what it was computed over + a per-joint mean/std table) for the dataset card."""
    mean = np.asarray(statistics.mean)
    std = np.asarray(statistics.std)
    if skeleton is not None and skeleton.num_joints == mean.shape[0]:
        names = list(skeleton.joint_names)
    else:
        names = [str(i) for i in range(mean.shape[0])]
    over = ", ".join(statistics.splits) or "unknown splits"
    lines = [
        (
            f"Per-(joint, axis) mean and population std over **{over}** ({statistics.num_motions} motions, "
            f"{statistics.num_frames} frames; columns {', '.join(statistics.columns)}), stored in `statistics.json`."
        ),
        "",
        "| joint | mean x | mean y | mean z | std x | std y | std z |",
        "|---|---|---|---|---|---|---|",
    ]
    body = np.concatenate([mean, std], axis=1)
    lines += [f"| {n} | " + " | ".join(f"{v:.4f}" for v in row) + " |" for n, row in zip(names, body)]
    return "\n".join(lines)


__all__ = [
    "STATISTICS_FILE",
    "MotionStatistics",
    "compute_dataset_statistics",
    "load_statistics",
    "read_statistics",
    "save_statistics",
    "statistics_markdown",
]
