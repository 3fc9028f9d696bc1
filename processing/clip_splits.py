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

For generalisation studies, :func:`held_out_group_splits` keeps whole groups (performers, take blocks) out of
training and :func:`held_out_combination_splits` holds out (content, style) pairs while every content and
every style stays in training.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

from .schema import SPLITS

__all__ = [
    "assign_splits",
    "clip_group",
    "held_out_combination_splits",
    "held_out_group_splits",
    "split_of_key",
    "split_of_take",
    "take_number",
]

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


# ---------------------------------------------------------------------------
# held-out splits for generalisation studies (benchmarks/accuracy)
# ---------------------------------------------------------------------------
def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"fractions must be three non-negative numbers (train, validation, test) summing to 1, got {fractions}."
        )
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def held_out_group_splits(
    groups: Sequence[Hashable], seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> list[str]:
    """Split whole groups (performers, sessions, blocks of takes...): no group has clips in two splits.

    The distinct groups are shuffled with ``numpy.random.default_rng(seed)`` and dealt to test, then to
    validation, each until it holds at least its fraction of the *clips*; the rest is train (at least one group
    is always left for train). Returns one split name per clip, in the order of ``groups``.

    Raises:
        ValueError: with fewer than 3 distinct groups, or fractions that are not three non-negative numbers
            summing to 1.
    """
    _, f_val, f_test = _check_fractions(fractions)
    keys = list(dict.fromkeys(groups))
    if len(keys) < 3:
        raise ValueError(f"held-out group splits need at least 3 distinct groups, got {len(keys)}: {keys}.")
    sizes = Counter(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    n = len(groups)
    split_of: dict[Hashable, str] = {}
    filled = {"test": 0, "validation": 0}
    k = 0
    for name, target in (("test", f_test * n), ("validation", f_val * n)):
        while filled[name] < target and k < len(order) - 1:
            key = keys[order[k]]
            split_of[key] = name
            filled[name] += sizes[key]
            k += 1
    return [split_of.get(g, "train") for g in groups]


def _linked_units(
    pairs: list[tuple[str, str]], linked_contents: Mapping[str, str] | Callable[[str], str] | None
) -> list[tuple[tuple[str, str], ...]]:
    """The (content, style) pairs grouped into units that are held out together (a pair and its mirror image)."""
    link = linked_contents.get if isinstance(linked_contents, Mapping) else linked_contents
    present = set(pairs)
    units, seen = [], set()
    for c, s in pairs:
        if (c, s) in seen:
            continue
        unit = [(c, s)]
        other = link(c) if link is not None else None
        if other is not None and other != c and (other, s) in present:
            unit.append((other, s))
        seen.update(unit)
        units.append(tuple(unit))
    return units


def held_out_combination_splits(
    contents: Sequence[str],
    styles: Sequence[str],
    seed: int = 0,
    fractions: Sequence[float] = (0.75, 0.1, 0.15),
    min_train_pairs: int = 2,
    linked_contents: Mapping[str, str] | Callable[[str], str] | None = None,
) -> list[str]:
    """Compositional splits: the tested (content, style) *pairs* are never seen in training, while every
    content and every style is.

    The distinct pairs are shuffled with ``numpy.random.default_rng(seed)``; a pair goes to test (then to
    validation) while that split holds fewer than its fraction of the pairs and removing it keeps at least
    ``min_train_pairs`` training pairs for its content and for its style. Returns one split name per clip.

    ``linked_contents`` maps a content to its mirror image (``"wave-left-hand"`` -> ``"wave-right-hand"``, e.g.
    ``motionpatch_processing.mirror.mirror_text``): a pair and its mirror pair are held out together, so that
    mirroring a training clip (augmentation) never produces a held-out pair.

    Raises:
        ValueError: when the labels have different lengths, or no pair can be held out under the constraint.
    """
    if len(contents) != len(styles):
        raise ValueError(f"contents has {len(contents)} labels but styles has {len(styles)}; give one of each per clip.")
    if min_train_pairs < 1:
        raise ValueError(f"min_train_pairs must be at least 1 (every content and style seen in training), got {min_train_pairs}.")
    _, f_val, f_test = _check_fractions(fractions)
    pairs = list(dict.fromkeys(zip(contents, styles)))
    units = _linked_units(pairs, linked_contents)
    order = np.random.default_rng(seed).permutation(len(units))
    train_per_content = Counter(c for c, _ in pairs)
    train_per_style = Counter(s for _, s in pairs)
    split_of: dict[tuple[str, str], str] = {}
    for name, fraction in (("test", f_test), ("validation", f_val)):
        target = round(fraction * len(pairs))
        taken = 0
        for k in order:
            unit = units[k]
            if taken >= target:
                break
            if unit[0] in split_of:
                continue
            c_need = Counter(c for c, _ in unit)
            s_need = Counter(s for _, s in unit)
            if any(train_per_content[c] - n < min_train_pairs for c, n in c_need.items()) or any(
                train_per_style[s] - n < min_train_pairs for s, n in s_need.items()
            ):
                continue
            for pair in unit:
                split_of[pair] = name
            train_per_content.subtract(c_need)
            train_per_style.subtract(s_need)
            taken += len(unit)
        if target > 0 and taken == 0:
            raise ValueError(
                f"no (content, style) pair can be held out for {name} while keeping {min_train_pairs} training "
                f"pairs per content and per style ({len(pairs)} pairs); lower min_train_pairs or add data."
            )
    return [split_of.get(p, "train") for p in zip(contents, styles)]
