"""Skeletons from a joint hierarchy: the five body-part chains and the left/right pairs, derived.

A BVH file or a new rig gives joint names, parents and rest offsets; :func:`skeleton_from_hierarchy` finds the chains
the motion patches need (:func:`derive_chains`). Saved feature extractors store the chains, so the model's code never
needs this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..skeletons import Skeleton, SkeletonError


def skeleton_from_hierarchy(
    name: str,
    joint_names: Sequence[str],
    parents: Sequence[int],
    offsets: np.ndarray | Sequence[Sequence[float]] | None = None,
    chains: Sequence[Sequence[int]] | None = None,
    lateral_axis: int = 0,
    up_axis: int = 1,
) -> Skeleton:
    """Build a skeleton from a joint hierarchy, deriving the five chains when not given.

    Rules (see :func:`derive_chains`): the pelvis is the first joint from the root that has three
    branches (two legs and the spine); the spine runs from the pelvis to the head through the
    first joint above it with three branches (the chest, where the arms start); left and right are
    read from the joint names (``_L``, ``Left``, ``l_``, ``.L`` ...) or, failing that, from the sign
    of the lateral coordinate of the rest-pose ``offsets`` (positive = left, the SMPL convention).
    """
    joint_names = [str(n) for n in joint_names]
    parents = [int(p) for p in parents]
    if chains is None:
        chains = derive_chains(joint_names, parents, offsets, lateral_axis=lateral_axis, up_axis=up_axis)
    pairs = derive_left_right_pairs(joint_names, chains)
    return Skeleton(
        name=name,
        joint_names=tuple(joint_names),
        parents=tuple(parents),
        chains=tuple(tuple(c) for c in chains),
        left_right_pairs=tuple(pairs),
        lateral_axis=lateral_axis,
        up_axis=up_axis,
    )


# ---------------------------------------------------------------------------
# chain derivation
# ---------------------------------------------------------------------------
_LEFT_RE = re.compile(r"(^|[^a-z])(l|left)([^a-z]|$)|left", re.IGNORECASE)
_RIGHT_RE = re.compile(r"(^|[^a-z])(r|right)([^a-z]|$)|right", re.IGNORECASE)
_HEAD_WORDS = ("head", "neck", "skull", "nose")


def _split_camel(name: str) -> str:
    # "LeftArm" -> "Left_Arm", "l_hand" stays; "UpperArm_L" -> "Upper_Arm_L"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)


def side_of(name: str) -> str | None:
    """'left', 'right' or None, read from a joint name (``Hand_L``, ``LeftHand``, ``l_wrist``, ``RightUpLeg``)."""
    n = _split_camel(name)
    left = bool(_LEFT_RE.search(n))
    right = bool(_RIGHT_RE.search(n))
    if left == right:
        return None
    return "left" if left else "right"


def _children(parents: Sequence[int]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parents]
    for i, p in enumerate(parents):
        if p >= 0:
            kids[p].append(i)
    return kids


def _path_to_deepest_leaf(start: int, kids: list[list[int]]) -> list[int]:
    """Joints from ``start`` down to the leaf with the most joints on the way (first child wins ties)."""

    def depth(j: int) -> int:
        return 1 + max((depth(c) for c in kids[j]), default=0)

    path = [start]
    while kids[path[-1]]:
        path.append(max(kids[path[-1]], key=depth))  # max keeps the first of equal depths
    return path


def _subtree(j: int, kids: list[list[int]]) -> set[int]:
    out, stack = set(), [j]
    while stack:
        k = stack.pop()
        out.add(k)
        stack.extend(kids[k])
    return out


def _first_branching(j: int, kids: list[list[int]]) -> int | None:
    """The first joint from ``j`` down a single-child path that has three or more children (``None``: none)."""
    while True:
        if len(kids[j]) >= 3:
            return j
        if len(kids[j]) != 1:
            return None
        j = kids[j][0]


def _find_pelvis(root: int, kids: list[list[int]], names: list[str]) -> int:
    """The first joint, walking down from the root, with three branches (two legs and the spine)."""
    pelvis = root
    while len(kids[pelvis]) < 3:
        if len(kids[pelvis]) != 1:
            raise SkeletonError(
                f"Cannot find the pelvis: joint {names[pelvis]!r} has {len(kids[pelvis])} children before any "
                "joint with three branches (two legs and the spine). Pass `chains=` explicitly."
            )
        pelvis = kids[pelvis][0]
    return pelvis


def _head_branch(chest: int, kids: list[list[int]], names: list[str], offs: np.ndarray | None, up_axis: int) -> int:
    """Of the chest's children, the head branch: by name, else the most upward offset, else the shortest."""
    chest_kids = kids[chest]
    by_name = [c for c in chest_kids
               if any(w in names[k].lower() for k in _subtree(c, kids) for w in _HEAD_WORDS)]
    if len(by_name) == 1:
        return by_name[0]
    if offs is not None:
        return max(chest_kids, key=lambda c: offs[c, up_axis])
    sizes = sorted((len(_subtree(c, kids)), c) for c in chest_kids)
    if sizes[0][0] == sizes[1][0]:
        raise SkeletonError(
            f"Cannot tell the head branch at the chest {names[chest]!r}: no joint is named like a neck or head, "
            "no rest offsets were given and two branches are equally long. Pass `offsets=` or `chains=`."
        )
    return sizes[0][1]


def _left_right(branches: list[int], what: str, anchor: int, kids: list[list[int]], names: list[str],
                offs: np.ndarray | None, lateral_axis: int) -> tuple[int, int]:
    """``(left, right)`` of two branches at ``anchor``: from the joint names, else the rest-pose lateral offsets."""
    if len(branches) != 2:
        raise SkeletonError(
            f"Expected two {what} at {names[anchor]!r}, found {len(branches)} "
            f"({[names[b] for b in branches]}). Pass `chains=` explicitly."
        )
    named = [next((side for k in _path_to_deepest_leaf(b, kids) if (side := side_of(names[k]))), None)
             for b in branches]  # the first joint of each branch that carries a side
    if sorted(s or "" for s in named) == ["left", "right"]:
        left = branches[named.index("left")]
    elif offs is not None:
        # lateral coordinate of each branch's end in the rest pose, relative to the anchor
        lat = [sum(offs[k, lateral_axis] for k in _path_to_deepest_leaf(b, kids)) for b in branches]
        if np.isclose(lat[0], lat[1]):
            raise SkeletonError(f"Cannot tell left from right {what} at {names[anchor]!r}: equal lateral offsets.")
        left = branches[int(np.argmax(lat))]
    else:
        raise SkeletonError(
            f"Cannot tell left from right {what} at {names[anchor]!r}: joint names "
            f"{[names[b] for b in branches]} carry no side (_L/_R, Left/Right, l_/r_) and no rest offsets were "
            "given. Rename the joints, pass `offsets=`, or pass `chains=` explicitly."
        )
    return left, branches[0] if branches[1] == left else branches[1]


def derive_chains(
    joint_names: Sequence[str],
    parents: Sequence[int],
    offsets: np.ndarray | Sequence[Sequence[float]] | None = None,
    lateral_axis: int = 0,
    up_axis: int = 1,
) -> list[list[int]]:
    """Derive the five chains (right leg, left leg, torso, right arm, left arm) of a hierarchy.

    Raises:
        SkeletonError: when the pelvis, the chest, the head branch or the sides cannot be decided.
    """
    names = list(joint_names)
    kids = _children(parents)
    roots = [i for i, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        raise SkeletonError(f"A skeleton needs exactly one root joint (parent -1); found {len(roots)}.")
    offs = None if offsets is None else np.asarray(offsets, dtype=np.float64)
    pelvis = _find_pelvis(roots[0], kids, names)
    spine_children = [c for c in kids[pelvis] if _first_branching(c, kids) is not None]
    if len(spine_children) != 1:
        raise SkeletonError(
            f"Cannot tell the spine from the legs at the pelvis {names[pelvis]!r}: {len(spine_children)} of its "
            "branches contain a joint with three branches (the chest). Pass `chains=` explicitly."
        )
    spine_child = spine_children[0]
    chest = _first_branching(spine_child, kids)
    head_child = _head_branch(chest, kids, names, offs, up_axis)
    legs = [c for c in kids[pelvis] if c != spine_child]
    arms = [c for c in kids[chest] if c != head_child]
    left_leg, right_leg = _left_right(legs, "legs", pelvis, kids, names, offs, lateral_axis)
    left_arm, right_arm = _left_right(arms, "arms", chest, kids, names, offs, lateral_axis)
    spine = [pelvis]
    j = spine_child
    while j != chest:
        spine.append(j)
        j = kids[j][0]
    torso = spine + _path_to_deepest_leaf(chest, kids)[:1] + _path_to_deepest_leaf(head_child, kids)
    return [
        [pelvis] + _path_to_deepest_leaf(right_leg, kids),
        [pelvis] + _path_to_deepest_leaf(left_leg, kids),
        torso,
        [chest] + _path_to_deepest_leaf(right_arm, kids),
        [chest] + _path_to_deepest_leaf(left_arm, kids),
    ]


def derive_left_right_pairs(joint_names: Sequence[str], chains: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Pair the joints of the left and right chains position by position (they mirror each other)."""
    pairs: list[tuple[int, int]] = []
    for right, left in ((chains[0], chains[1]), (chains[3], chains[4])):
        for r, l in zip(right, left):
            if r != l:
                pairs.append((l, r))
    return pairs


__all__ = ["derive_chains", "derive_left_right_pairs", "side_of", "skeleton_from_hierarchy"]
