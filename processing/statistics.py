"""The dataset card's summary of a prepared dataset's normalisation statistics.

The statistics themselves (:class:`MotionStatistics`, the streaming :func:`compute_dataset_statistics`, and
reading / writing ``statistics.json``) live in :mod:`modeling_motionpatch.apps.motion_statistics`.
"""

from __future__ import annotations

import numpy as np

from modeling_motionpatch import Skeleton
from modeling_motionpatch.apps.motion_statistics import (
    MotionStatistics,
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


__all__ = ["statistics_markdown"]
