"""The one schema of motion datasets prepared by motionpatch.

Single-person sources (HumanML3D, KIT-ML, BVH collections, Bandai-Namco, BABEL, the synthetic generator):

| column     | type                              | meaning                                              |
|------------|-----------------------------------|------------------------------------------------------|
| `id`       | string                            | unique sample id (segments: `{clip}_{start}_{end}`)  |
| `motion`   | float32 array (frames, joints, 3) | joint positions in metres, Y up                      |
| `fps`      | float32                           | frame rate of `motion`                               |
| `skeleton` | string                            | registry name of the skeleton (`modeling_motionpatch.get_skeleton`) |
| `captions` | list of strings                   | free-text or templated captions; may be empty        |
| `labels`   | list of strings                   | action / content / style labels; may be empty        |
| `source`   | string                            | origin file, relative to the source root             |
| `mirrored` | bool                              | the sample is a left/right mirrored copy             |

Two-person sources (InterHuman-style) use `motion_a`, `motion_b` instead of `motion`.
Splits are always named `train`, `validation`, `test`.
"""

from __future__ import annotations

import datasets

SPLITS = ("train", "validation", "test")


def motion_features(num_joints: int) -> datasets.Features:
    """Features of a single-person dataset whose skeleton has ``num_joints`` joints (frames are ragged)."""
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "motion": datasets.Array3D(shape=(None, num_joints, 3), dtype="float32"),
            "fps": datasets.Value("float32"),
            "skeleton": datasets.Value("string"),
            "captions": datasets.List(datasets.Value("string")),
            "labels": datasets.List(datasets.Value("string")),
            "source": datasets.Value("string"),
            "mirrored": datasets.Value("bool"),
        }
    )


def interaction_features(num_joints: int) -> datasets.Features:
    """Features of a two-person dataset (``motion_a``, ``motion_b`` of equal length)."""
    feats = dict(motion_features(num_joints))
    motion = feats.pop("motion")
    return datasets.Features({"id": feats.pop("id"), "motion_a": motion, "motion_b": motion, **feats})
