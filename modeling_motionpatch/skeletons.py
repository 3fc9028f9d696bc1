"""Skeletons: joint names, parents, the five body-part chains and left/right pairs.

A motion patch image is built from five kinematic chains, always in this order (from the
body centre outward, as the original MotionPatches checkpoints expect):

    0 right leg, 1 left leg, 2 torso to head, 3 right arm, 4 left arm

Built-in skeletons are registered by name (``humanml3d``, ``kit``); any other hierarchy is
described by joint names, parent indices and its five chains (which
:func:`modeling_motionpatch.apps.skeleton_hierarchy.skeleton_from_hierarchy` derives from a hierarchy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

CHAIN_NAMES = ("right_leg", "left_leg", "torso", "right_arm", "left_arm")


class SkeletonError(ValueError):
    """A skeleton specification is invalid or its chains cannot be derived."""


@dataclass(frozen=True)
class Skeleton:
    """A joint hierarchy and its five body-part chains.

    Args:
        name: registry name (or a free name for user skeletons).
        joint_names: one name per joint, in the order of the joint axis of motion arrays.
        parents: parent index of each joint, ``-1`` for the root.
        chains: five tuples of joint indices, ordered right leg, left leg, torso, right arm, left arm;
            each chain starts at the joint it branches from.
        left_right_pairs: ``(left, right)`` joint index pairs swapped by mirroring.
        lateral_axis: index of the left/right coordinate axis (negated by mirroring); 0 = x.
        up_axis: index of the vertical axis; 1 = y.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    chains: tuple[tuple[int, ...], ...]
    left_right_pairs: tuple[tuple[int, int], ...] = ()
    lateral_axis: int = 0
    up_axis: int = 1
    description: str = field(default="", compare=False)

    def __post_init__(self):
        object.__setattr__(self, "joint_names", tuple(str(n) for n in self.joint_names))
        object.__setattr__(self, "parents", tuple(int(p) for p in self.parents))
        object.__setattr__(self, "chains", tuple(tuple(int(j) for j in c) for c in self.chains))
        object.__setattr__(self, "left_right_pairs", tuple((int(a), int(b)) for a, b in self.left_right_pairs))
        self.validate()

    # ------------------------------------------------------------------ checks
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def validate(self) -> None:
        j = self.num_joints
        where = f"skeleton {self.name!r}"
        if j == 0:
            raise SkeletonError(f"{where}: no joints given.")
        if len(self.parents) != j:
            raise SkeletonError(
                f"{where}: {j} joint names but {len(self.parents)} parents; give one parent index per joint."
            )
        for i, p in enumerate(self.parents):
            if p < -1 or p >= j or p == i:
                raise SkeletonError(f"{where}: joint {i} ({self.joint_names[i]!r}) has invalid parent {p}.")
        if len(self.chains) != 5:
            raise SkeletonError(
                f"{where}: {len(self.chains)} chains given; exactly 5 are needed, in the order {CHAIN_NAMES}."
            )
        for name, chain in zip(CHAIN_NAMES, self.chains):
            if len(chain) < 2:
                raise SkeletonError(f"{where}: chain {name} has {len(chain)} joint(s); at least 2 are needed.")
            bad = [k for k in chain if not 0 <= k < j]
            if bad:
                raise SkeletonError(f"{where}: chain {name} names joints {bad} outside 0..{j - 1}.")
        for a, b in self.left_right_pairs:
            if not (0 <= a < j and 0 <= b < j) or a == b:
                raise SkeletonError(f"{where}: invalid left/right pair ({a}, {b}).")
        if self.lateral_axis not in (0, 1, 2) or self.up_axis not in (0, 1, 2):
            raise SkeletonError(f"{where}: lateral_axis and up_axis must be 0, 1 or 2.")

    # ----------------------------------------------------------- conveniences
    def chain_names(self) -> dict[str, list[str]]:
        """The chains as joint names, keyed by body part."""
        return {part: [self.joint_names[k] for k in chain] for part, chain in zip(CHAIN_NAMES, self.chains)}

    def facing_joints(self) -> tuple[int, int, int, int]:
        """``(left_hip, right_hip, left_shoulder, right_shoulder)``: the joints that give the body's facing direction.

        The hips are the second joint of each leg chain; the shoulders the upper-arm joint of each arm chain (the third
        joint when the chain runs chest, collar, shoulder, elbow, wrist, else the second), as HumanML3D's
        preprocessing uses them (SMPL joints 1, 2, 16, 17; KIT 16, 11, 8, 5).
        """
        rleg, lleg, _, rarm, larm = self.chains

        def upper_arm(chain):
            return chain[2] if len(chain) >= 5 else chain[1]

        return lleg[1], rleg[1], upper_arm(larm), upper_arm(rarm)

    @property
    def pelvis(self) -> int:
        """The joint the legs and the spine branch from (the first joint of the leg chains)."""
        return self.chains[0][0]

    def mirror_permutation(self) -> np.ndarray:
        """Joint permutation that swaps every left joint with its right counterpart."""
        perm = np.arange(self.num_joints)
        for a, b in self.left_right_pairs:
            perm[a], perm[b] = b, a
        return perm

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "parents": list(self.parents),
            "chains": [list(c) for c in self.chains],
            "left_right_pairs": [list(p) for p in self.left_right_pairs],
            "lateral_axis": self.lateral_axis,
            "up_axis": self.up_axis,
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "Skeleton":
        known = {"name", "joint_names", "parents", "chains", "left_right_pairs", "lateral_axis", "up_axis", "description"}
        unknown = set(spec) - known
        if unknown:
            raise SkeletonError(f"Unknown skeleton fields {sorted(unknown)}; expected a subset of {sorted(known)}.")
        if spec.get("chains") is None:
            raise SkeletonError(
                f"skeleton {spec.get('name', 'custom')!r} has no chains; give the five body-part chains, or derive them "
                "from the hierarchy with modeling_motionpatch.apps.skeleton_hierarchy.skeleton_from_hierarchy."
            )
        return cls(**dict(spec))


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------
_SMPL22_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
_SMPL22_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

_KIT_NAMES = (
    "root", "torso", "chest", "neck", "head", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "right_heel",
    "right_toe", "left_hip", "left_knee", "left_ankle", "left_heel", "left_toe",
)
_KIT_PARENTS = (-1, 0, 1, 2, 3, 3, 5, 6, 3, 8, 9, 0, 11, 12, 13, 14, 0, 16, 17, 18, 19)

HUMANML3D = Skeleton(
    name="humanml3d",
    joint_names=_SMPL22_NAMES,
    parents=_SMPL22_PARENTS,
    chains=((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20)),
    left_right_pairs=((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21)),
    description="SMPL body, 22 joints (HumanML3D `new_joints`), 20 fps, metres, Y up, facing +Z, left = +X.",
)

KIT = Skeleton(
    name="kit",
    joint_names=_KIT_NAMES,
    parents=_KIT_PARENTS,
    chains=((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7), (3, 8, 9, 10)),
    left_right_pairs=((8, 5), (9, 6), (10, 7), (16, 11), (17, 12), (18, 13), (19, 14), (20, 15)),
    description="KIT-ML / MMM reduced body, 21 joints, 12.5 fps in the source data.",
)

#: A standing pose of a skeleton (metres, Y up, facing +Z): the bone lengths and proportions that the feature extractor
#: checks plain arrays against (:func:`~.motion_patches.check_skeleton_plausible`). ``humanml3d``: the first frame of
#: HumanML3D clip 000000, to the millimetre.
REFERENCE_POSES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "humanml3d": (
        (0.0, 0.942, 0.0), (0.062, 0.861, -0.017), (-0.055, 0.847, -0.002), (-0.006, 1.066, -0.043),
        (0.155, 0.48, -0.047), (-0.12, 0.462, -0.022), (0.007, 1.205, -0.013), (0.145, 0.049, -0.08),
        (-0.094, 0.043, -0.088), (0.004, 1.262, -0.004), (0.214, 0.01, 0.039), (-0.151, 0.003, 0.044),
        (-0.001, 1.48, -0.029), (0.076, 1.378, -0.014), (-0.069, 1.382, -0.029), (0.001, 1.571, 0.018),
        (0.192, 1.32, -0.035), (-0.177, 1.327, -0.049), (0.214, 1.065, -0.059), (-0.211, 1.067, -0.039),
        (0.263, 0.825, 0.044), (-0.279, 0.834, 0.079),
    ),
}

_REGISTRY: dict[str, Skeleton] = {}


def register_skeleton(skeleton: Skeleton, overwrite: bool = False) -> Skeleton:
    """Add a skeleton to the registry so that it can be referred to by name."""
    if skeleton.name in _REGISTRY and not overwrite and _REGISTRY[skeleton.name] != skeleton:
        raise SkeletonError(
            f"A different skeleton named {skeleton.name!r} is already registered; pass overwrite=True to replace it."
        )
    _REGISTRY[skeleton.name] = skeleton
    return skeleton


def available_skeletons() -> list[str]:
    return sorted(_REGISTRY)


def get_skeleton(spec: "str | Skeleton | Mapping[str, Any]") -> Skeleton:
    """Resolve a registry name, a :class:`Skeleton` or a ``to_dict()`` mapping into a skeleton."""
    if isinstance(spec, Skeleton):
        return spec
    if isinstance(spec, str):
        try:
            return _REGISTRY[spec]
        except KeyError:
            raise SkeletonError(
                f"Unknown skeleton {spec!r}. Registered skeletons: {available_skeletons()}. Register a new one with "
                "`register_skeleton(skeleton_from_hierarchy(name, joint_names, parents))` or pass its dict spec."
            ) from None
    if isinstance(spec, Mapping):
        return Skeleton.from_dict(spec)
    raise SkeletonError(f"Expected a skeleton name, a Skeleton or a dict, got {type(spec).__name__}.")


register_skeleton(HUMANML3D)
register_skeleton(KIT)
