"""Deterministic train / validation / test splits of clip collections (BVH folders, prepared npz).

No take is ever in two splits:

* ``"take"``: the split depends only on the take number at the end of the file stem (``..._007`` -> 7):
  take % 10 == 9 -> ``validation``, take % 10 == 0 -> ``test``, otherwise ``train`` (80/10/10 of the take
  numbers). A take number, hence every take and every sample later derived from it (mirrors, crops),
  is in exactly one split, and each content x style pair with >= 10 takes appears in every split.
  Used for Bandai dataset 2 (17 to 104 takes per pair).
* ``"hash"``: the split of a clip is drawn from a seeded BLAKE2b hash of its *group* - the stem without
  the take suffix (``dataset-1_walk_happy_002`` -> ``dataset-1_walk_happy``) - against ``fractions``. The
  takes of one content x style pair stay together, so nothing recorded for a pair leaks across splits.
  Stable across runs and machines and when other files are added. Used for Bandai dataset 1 (one take
  per pair, two for 18 pairs) and ``ds2-bvh-sample`` (take 001 only), where the take rule would put
  everything in ``train``.
* ``"auto"`` (default): ``"take"`` when every stem ends in a take number and the largest is >= 10 (so
  that all three splits can be populated), else ``"hash"``.
* a callable ``stem -> split`` or a mapping ``stem -> split`` for anything else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .schema import SPLITS

__all__ = ["assign_splits", "clip_group", "split_of_key", "split_of_take", "take_number"]

_TAKE_RE = re.compile(r"_(\d+)$")


def take_number(stem: str) -> int | None:
    """The take number at the end of a file stem (``dataset-2_walk_active_007`` -> 7), or None."""
    m = _TAKE_RE.search(stem)
    return int(m.group(1)) if m else None


def clip_group(stem: str) -> str:
    """The stem without its take suffix (``dataset-1_walk_happy_002`` -> ``dataset-1_walk_happy``)."""
    return _TAKE_RE.sub("", stem)


def split_of_take(take: int) -> str:
    """Split of a take number: ``take % 10 == 9`` -> validation, ``== 0`` -> test, else train."""
    r = int(take) % 10
    return "validation" if r == 9 else "test" if r == 0 else "train"


def split_of_key(key: str, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
    """Split of a key from a seeded BLAKE2b hash: uniform in [0, 1) compared with cumulative ``fractions``."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"fractions must be three non-negative numbers (train, validation, test) summing to 1, got {fractions}."
        )
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "validation" if u < fractions[0] + fractions[1] else "test"


def assign_splits(
    stems: Sequence[str],
    splits: str | Callable[[str], str] | Mapping[str, str] = "auto",
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> list[str]:
    """Split of each stem under a rule (``auto``, ``take``, ``hash``, callable, mapping; see the module
    docstring); returns one of ``SPLITS`` per stem."""
    if callable(splits):
        out = [splits(s) for s in stems]
    elif isinstance(splits, Mapping):
        missing = [s for s in stems if s not in splits]
        if missing:
            raise ValueError(f"split mapping has no entry for {len(missing)} clips, e.g. {missing[:3]}.")
        out = [splits[s] for s in stems]
    elif splits in ("auto", "take"):
        takes = [take_number(s) for s in stems]
        if splits == "auto" and (not takes or any(t is None for t in takes) or max(takes) < 10):  # type: ignore[type-var]
            return assign_splits(stems, "hash", seed, fractions)
        bad = [s for s, t in zip(stems, takes) if t is None]
        if bad:
            raise ValueError(
                f"splits='take' needs a take number at the end of each file stem ('_001'); {len(bad)} have none, "
                f"e.g. {bad[:3]}. Use splits='hash' or pass a callable."
            )
        out = [split_of_take(t) for t in takes]  # type: ignore[arg-type]
    elif splits == "hash":
        out = [split_of_key(clip_group(s), seed, fractions) for s in stems]
    else:
        raise ValueError(f"unknown split rule {splits!r}; use 'auto', 'take', 'hash', a callable or a mapping.")
    bad = sorted({s for s in out if s not in SPLITS})
    if bad:
        raise ValueError(f"split rule returned {bad}; splits must be one of {SPLITS}.")
    return out
