"""Left/right mirroring of motions and captions — the one implementation used everywhere.

Mirroring a motion swaps every left joint with its right counterpart (``skeleton.mirror_permutation()``)
and negates the lateral coordinate (``skeleton.lateral_axis``, x for SMPL/HumanML3D). Both are exact in
floating point, so mirroring twice gives back the identical array. It works on NumPy arrays and torch
tensors of shape ``(..., J, 3)`` — one pose, a ``(T, J, 3)`` motion or a ``(B, T, J, 3)`` batch — without
any Python loop, so training can import :func:`mirror_motion` for on-the-fly augmentation.

Captions and labels are mirrored by swapping side words (:data:`SIDE_WORDS`): left <-> right,
leftward(s) <-> rightward(s), leftmost <-> rightmost, lefthand(ed) <-> righthand(ed), clockwise <->
counterclockwise (and the anticlockwise / counter-clockwise / anti-clockwise spellings, which all become
"clockwise"). Matching is case-insensitive on whole words (hyphenated compounds such as "left-hand" are
covered because ``-`` is a word boundary) and the case of the original is kept ("Left" -> "Right",
"LEFT" -> "RIGHT"). Known limitation, shared with HumanML3D's own mirrored captions: every "left"/"right"
is swapped, including "left" as the past tense of "leave" and "right" meaning "correct" / "right away".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeVar

import datasets
import numpy as np
import torch

from modeling_motionpatch import Skeleton, get_skeleton

from .io import SplitBuilder

ArrayT = TypeVar("ArrayT")

#: word -> mirrored word (lower case). Each pair is listed once per direction.
SIDE_WORDS: dict[str, str] = {
    "left": "right",
    "right": "left",
    "leftward": "rightward",
    "rightward": "leftward",
    "leftwards": "rightwards",
    "rightwards": "leftwards",
    "leftmost": "rightmost",
    "rightmost": "leftmost",
    "lefthand": "righthand",
    "righthand": "lefthand",
    "lefthanded": "righthanded",
    "righthanded": "lefthanded",
    "clockwise": "counterclockwise",
    "counterclockwise": "clockwise",
    "anticlockwise": "clockwise",
    "counter-clockwise": "clockwise",
    "anti-clockwise": "clockwise",
    "counter clockwise": "clockwise",
    "anti clockwise": "clockwise",
}

# whole words only; longest first, so that "counter-clockwise" wins over its "clockwise" tail
_SIDE_RE = re.compile(
    r"(?<!\w)(" + "|".join(re.escape(w) for w in sorted(SIDE_WORDS, key=len, reverse=True)) + r")(?!\w)",
    re.IGNORECASE,
)


def _match_case(source: str, target: str) -> str:
    if len(source) > 1 and source.isupper():
        return target.upper()
    if source[:1].isupper():
        return target[:1].upper() + target[1:]
    return target


def mirror_text(text: str) -> str:
    """Swap side words in a caption or label, keeping case (``"Waves the LEFT hand"`` -> ``"Waves the RIGHT hand"``)."""
    return _SIDE_RE.sub(lambda m: _match_case(m.group(0), SIDE_WORDS[m.group(0).lower()]), text)


def mirror_texts(texts: Sequence[str]) -> list[str]:
    """:func:`mirror_text` applied to each string of a list."""
    return [mirror_text(t) for t in texts]


def mirror_motion(motion: ArrayT, skeleton: Skeleton | str) -> ArrayT:
    """Mirror joint positions of shape ``(..., J, 3)`` (NumPy array or torch tensor; same type out).

    Swaps left/right joints and negates ``skeleton.lateral_axis``. ``mirror_motion(mirror_motion(x)) == x``
    exactly.
    """
    skel = get_skeleton(skeleton)
    shape = tuple(motion.shape)
    if len(shape) < 2 or shape[-1] != 3 or shape[-2] != skel.num_joints:
        raise ValueError(
            f"mirror_motion expects (..., {skel.num_joints}, 3) joint positions for skeleton {skel.name!r}, got "
            f"shape {shape}. Convert feature vectors to joint positions first, or pass the matching skeleton."
        )
    perm = skel.mirror_permutation()
    sign = np.ones(3, dtype=np.float32)
    sign[skel.lateral_axis] = -1.0
    if hasattr(motion, "detach"):  # torch tensor
        index = torch.as_tensor(perm, device=motion.device)
        return motion.index_select(-2, index) * torch.as_tensor(sign, dtype=motion.dtype, device=motion.device)
    arr = np.asarray(motion)
    return arr[..., perm, :] * sign.astype(arr.dtype if arr.dtype.kind == "f" else np.float32)


def mirror_example(example: dict[str, Any], skeleton: Skeleton | str, id_prefix: str = "M") -> dict[str, Any]:
    """Mirrored copy of one dataset row: motions, captions, labels, ``id = id_prefix + id``, ``mirrored=True``."""
    out = dict(example)
    for col in ("motion", "motion_a", "motion_b"):
        if col in out:
            out[col] = mirror_motion(np.asarray(out[col], dtype=np.float32), skeleton)
    out["captions"] = mirror_texts(out.get("captions") or [])
    out["labels"] = mirror_texts(out.get("labels") or [])
    out["id"] = f"{id_prefix}{out['id']}"
    out["mirrored"] = True
    return out


def add_mirrored(
    dataset: datasets.DatasetDict | datasets.Dataset,
    skeleton: Skeleton | str,
    id_prefix: str = "M",
    batch_size: int = 256,
) -> tuple[datasets.DatasetDict | datasets.Dataset, int]:
    """Append a mirrored copy of every non-mirrored sample whose ``{id_prefix}{id}`` is not already present.

    The copy stays in the same split as its original (as HumanML3D's provided ``M`` copies do), so no
    motion leaks across splits. Returns the extended dataset and the number of copies added.
    """
    if isinstance(dataset, datasets.DatasetDict):
        total = 0
        out = {}
        for split, ds in dataset.items():
            out[split], n = add_mirrored(ds, skeleton, id_prefix, batch_size)
            total += n
        return datasets.DatasetDict(out), total
    ids = dataset["id"]
    flags = dataset["mirrored"]
    present = set(ids)
    chosen = [i for i, (sid, m) in enumerate(zip(ids, flags)) if not m and f"{id_prefix}{sid}" not in present]
    if not chosen:
        return dataset, 0
    builder = SplitBuilder(dataset.features, split=str(dataset.split) if dataset.split else None)
    motion_cols = [c for c in ("motion", "motion_a", "motion_b") if c in dataset.features]
    subset = dataset.select(chosen).with_format("numpy", columns=motion_cols, output_all_columns=True)
    for batch in subset.iter(batch_size=batch_size):
        for k in range(len(batch["id"])):
            builder.add(**mirror_example({c: batch[c][k] for c in batch}, skeleton, id_prefix))
    return datasets.concatenate_datasets([dataset, builder.finish()]), len(chosen)


__all__ = ["SIDE_WORDS", "add_mirrored", "mirror_example", "mirror_motion", "mirror_text", "mirror_texts"]
