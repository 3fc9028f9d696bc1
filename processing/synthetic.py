"""Synthetic, procedural motion-text data: the embedded default dataset of motionpatch.

**This is not human motion capture.** Every clip is produced by a hand-written procedural rig
(sinusoids and keyframe curves driving joint rotations, then forward kinematics) and every caption
comes from a template. It exists so that a fresh install can train and evaluate end to end on CPU
with no download: the demo job and quick tests use it when no real dataset is given. The data is
*learnable* (captions are generated from the same parameters as the motion: action, side, direction,
style, count), so a model should reach retrieval well above chance on it, but **numbers measured on it
say nothing about real data** (HumanML3D, KIT-ML, ...). Use it for demos and tests only.

The generator lives in two modules, and this one builds the dataset from them:
:mod:`motionpatch_processing.synthetic_motion` (the procedural rig, forward kinematics and
:func:`generate_motion`) and :mod:`motionpatch_processing.synthetic_captions` (the caption templates).

Each sample depends only on ``(seed, index)`` (``numpy.random.default_rng([seed, index])``), so any
sample can be regenerated alone (:func:`synthetic_sample`) and the splits of
:func:`build_synthetic_dataset_dict` are fixed index blocks that do not move when other splits change
size.

Example::

    from motionpatch_processing.synthetic import build_synthetic_dataset_dict
    from motionpatch_processing.synthetic_motion import generate_motion
    dd = build_synthetic_dataset_dict(num_train=2000, num_validation=250, num_test=250, seed=0)
    motion, captions, labels = generate_motion("wave left hand", np.random.default_rng(0), style="slowly")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np

from .schema import motion_features
from .synthetic_motion import (
    _ACTION_TABLE,
    ACTIONS,
    FPS,
    NUM_JOINTS,
    SKELETON,
    generate_motion,
)

__all__ = ["SPLIT_OFFSETS", "build_synthetic_dataset_dict", "generate_synthetic_dataset", "synthetic_sample"]


def synthetic_sample(
    index: int,
    seed: int = 0,
    actions: Sequence[str] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Sample ``index`` of the synthetic dataset with ``seed``, as one row of the schema.

    The action is ``actions[index % len(actions)]`` (default :data:`ACTIONS`), the rest is drawn from
    ``numpy.random.default_rng([seed, index])``; ``params`` are passed to :func:`generate_motion`.
    """
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be non-negative, got index={index}, seed={seed}.")
    actions = _check_actions(actions)
    action = actions[index % len(actions)]
    motion, captions, labels = generate_motion(action, np.random.default_rng([seed, index]), **params)
    return {
        "id": f"synthetic-{index:06d}",
        "motion": motion,
        "fps": FPS,
        "skeleton": SKELETON,
        "captions": captions,
        "labels": labels,
        "source": "synthetic",
        "mirrored": False,
    }


def _check_actions(actions: Sequence[str] | None) -> tuple[str, ...]:
    if actions is None:
        return ACTIONS
    actions = tuple(actions)
    unknown = [a for a in actions if a not in _ACTION_TABLE]
    if unknown or not actions:
        raise ValueError(f"Unknown or no actions {unknown or actions}. Known actions: {list(ACTIONS)}.")
    return actions


def generate_synthetic_dataset(
    num_samples: int = 2000,
    seed: int = 0,
    *,
    start_index: int = 0,
    actions: Sequence[str] | None = None,
    **params: Any,
) -> datasets.Dataset:
    """A ``datasets.Dataset`` of ``num_samples`` procedural clips in the motionpatch schema.

    Rows are samples ``start_index ... start_index + num_samples - 1`` (see :func:`synthetic_sample`):
    ids ``synthetic-{index:06d}``, fps 20, skeleton ``humanml3d``, source ``synthetic``, not mirrored.
    Actions cycle through ``actions`` (default all of :data:`ACTIONS`), so every action is equally frequent.
    ``params`` (``style``, ``noise``, ``stature``, ...) go to :func:`generate_motion` for every clip.
    Synthetic, procedural data for demos and tests only (see the module docstring).
    """
    if num_samples < 0 or start_index < 0:
        raise ValueError(
            f"num_samples and start_index must be non-negative, got {num_samples}, {start_index}."
        )
    actions = _check_actions(actions)
    rows = [
        synthetic_sample(i, seed, actions, **params) for i in range(start_index, start_index + num_samples)
    ]
    columns = {key: [row[key] for row in rows] for key in motion_features(NUM_JOINTS)}
    return datasets.Dataset.from_dict(columns, features=motion_features(NUM_JOINTS))


#: First sample index of each split: fixed blocks, so a split's content does not depend on the others' sizes.
SPLIT_OFFSETS = {"train": 0, "validation": 800_000, "test": 900_000}


def build_synthetic_dataset_dict(
    num_train: int | None = 2000,
    num_validation: int | None = 250,
    num_test: int | None = 250,
    seed: int = 0,
    **kwargs: Any,
) -> datasets.DatasetDict:
    """Train/validation/test splits of the synthetic dataset, with disjoint sample indices.

    Split ``s`` holds samples ``SPLIT_OFFSETS[s] + i`` (train from 0, validation from 800000, test from
    900000), so ids never collide and each split stays the same when another one changes size; a split whose
    size is None is left out (not generated). ``kwargs`` (``actions``, ``style``, ``noise``, ...) go to
    :func:`generate_synthetic_dataset`.
    """
    sizes = {"train": num_train, "validation": num_validation, "test": num_test}
    limits = {"train": 800_000, "validation": 100_000, "test": 100_000}
    for split, n in sizes.items():
        if n is not None and not 0 <= n <= limits[split]:
            raise ValueError(f"num_{split} must be between 0 and {limits[split]}, got {n}.")
    return datasets.DatasetDict(
        {
            split: generate_synthetic_dataset(n, seed, start_index=SPLIT_OFFSETS[split], **kwargs)
            for split, n in sizes.items()
            if n is not None
        }
    )
