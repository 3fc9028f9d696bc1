"""Joints by name: map a motion whose joints carry names onto the model's skeleton.

A ``(T, J, 3)`` array says nothing about which joint is which; 22 joints are not necessarily SMPL-22. With the
joint names of the input, :func:`joint_map_matrix` builds a ``(J_model, J_input)`` matrix (each model joint = the
mean of one or more input joints) and :func:`map_joints` applies it to every frame at once.

Names are compared case- and separator-insensitively (``Hand_L`` = ``hand.l`` = ``HAND-L``), after dropping a
namespace (``mixamorig:``, ``Character1:``), a Rigify ``DEF-``/``ORG-`` prefix and a 3ds Max ``Bip01``/``Bip001``
prefix. For the SMPL-22 (HumanML3D) skeleton, the rig of the input is recognised from :data:`RIGS` (SMPL, KIT,
CMU mocap BVH, Mixamo, Bandai-Namco, 3ds Max Biped, Blender/Rigify, Unreal); the rig whose joints are all present
wins, so a Mixamo ``LeftShoulder`` (a collar bone) is never read as SMPL's ``left_shoulder``. For any other
skeleton, joints are matched by their own names. Joints the input lacks are derived when well defined
(:data:`DERIVED`: SMPL's middle spine joint = mean of the lower and upper spine joints); otherwise
:class:`JointMapError` lists the unmapped joints, the input's names, and how to fix it: pass
``joint_map={"left_wrist": "MyHandL", "spine2": ["Spine", "Chest"], ...}`` (model joint -> input joint(s)).

Hub remote code: imports numpy and this package's ``motion_patches`` / ``skeletons`` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from ..motion_patches import MotionInputError
from ..skeletons import Skeleton, get_skeleton

__all__ = ["DERIVED", "RIGS", "JointMapError", "joint_map_matrix", "map_joints", "normalize_joint_name", "rig_groups"]

SMPL22 = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)


class JointMapError(MotionInputError):
    """The joints of a motion cannot be mapped by name onto the model's skeleton (the message says which and how)."""


def _rig(sides: tuple[str, str], **roles: str | tuple[str, ...] | None) -> dict[str, tuple[str, ...]]:
    """SMPL-22 joint -> source joint name(s) (their mean), ``{s}`` standing for the rig's left / right token.

    Roles: pelvis, spine1/2/3, neck, head (unsided); hip, knee, ankle, foot (toes), collar, shoulder, elbow, wrist
    (sided). A role given as None (or left out) is derived (:data:`DERIVED`) or reported missing."""
    table = {}
    for role, names in roles.items():
        if names is None:
            continue
        names = (names,) if isinstance(names, str) else names
        if any("{s}" in n for n in names):
            for side, token in zip(("left", "right"), sides):
                table[f"{side}_{role}"] = tuple(n.format(s=token) for n in names)
        else:
            table[role] = names
    return table


_LIMBS = ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist")

#: SMPL-22 joint -> source joint name(s) of common rigs (several names: their mean). Correspondences other than
#: SMPL's and Bandai-Namco's (checked against the converted data to 1e-3 m) are the nearest joints of each rig.
RIGS: dict[str, dict[str, tuple[str, ...]]] = {
    "smpl": _rig(("left", "right"), pelvis="pelvis", spine1="spine1", spine2="spine2", spine3="spine3", neck="neck",
                 head="head", **{r: "{s}_" + r for r in _LIMBS}),
    "smpl-short": _rig(("L", "R"), pelvis="Pelvis", spine1="Spine1", spine2="Spine2", spine3="Spine3", neck="Neck",
                       head="Head", **{r: "{s}_" + r.capitalize() for r in _LIMBS}),
    "bandai-namco": _rig(("L", "R"), pelvis="Hips", spine1="Spine", spine2=("Spine", "Chest"), spine3="Chest",
                         neck="Neck", head="Head", hip="UpperLeg_{s}", knee="LowerLeg_{s}", ankle="Foot_{s}",
                         foot="Toes_{s}", collar="Shoulder_{s}", shoulder="UpperArm_{s}", elbow="LowerArm_{s}",
                         wrist="Hand_{s}"),
    "mixamo": _rig(("Left", "Right"), pelvis="Hips", spine1="Spine", spine2="Spine1", spine3="Spine2", neck="Neck",
                   head="Head", hip="{s}UpLeg", knee="{s}Leg", ankle="{s}Foot", foot="{s}ToeBase",
                   collar="{s}Shoulder", shoulder="{s}Arm", elbow="{s}ForeArm", wrist="{s}Hand"),
    "cmu": _rig(("Left", "Right"), pelvis="Hips", spine1="Spine", spine2=None, spine3="Spine1",
                neck="Neck1", head="Head", hip="{s}UpLeg", knee="{s}Leg", ankle="{s}Foot", foot="{s}ToeBase",
                collar="{s}Shoulder", shoulder="{s}Arm", elbow="{s}ForeArm", wrist="{s}Hand"),
    "kit": _rig(("left", "right"), pelvis="root", spine1="torso", spine3="chest", neck="neck", head="head",
                hip="{s}_hip", knee="{s}_knee", ankle="{s}_ankle", foot="{s}_toe", collar=("neck", "{s}_shoulder"),
                shoulder="{s}_shoulder", elbow="{s}_elbow", wrist="{s}_wrist"),
    "3ds-max-biped": _rig(("L", "R"), pelvis="Bip01 Pelvis", spine1="Bip01 Spine", spine2="Bip01 Spine1",
                          spine3="Bip01 Spine2", neck="Bip01 Neck", head="Bip01 Head", hip="Bip01 {s} Thigh",
                          knee="Bip01 {s} Calf", ankle="Bip01 {s} Foot", foot="Bip01 {s} Toe0",
                          collar="Bip01 {s} Clavicle", shoulder="Bip01 {s} UpperArm", elbow="Bip01 {s} Forearm",
                          wrist="Bip01 {s} Hand"),
    "blender-rigify": _rig(("L", "R"), pelvis="spine", spine1="spine.001", spine2="spine.002", spine3="spine.003",
                           neck="spine.004", head="spine.006", hip="thigh.{s}", knee="shin.{s}", ankle="foot.{s}",
                           foot="toe.{s}", collar="shoulder.{s}", shoulder="upper_arm.{s}", elbow="forearm.{s}",
                           wrist="hand.{s}"),
    "unreal": _rig(("l", "r"), pelvis="pelvis", spine1="spine_01", spine2="spine_02", spine3="spine_03",
                   neck="neck_01", head="head", hip="thigh_{s}", knee="calf_{s}", ankle="foot_{s}", foot="ball_{s}",
                   collar="clavicle_{s}", shoulder="upperarm_{s}", elbow="lowerarm_{s}", wrist="hand_{s}"),
}

#: model joint -> the model joints whose mean it is, used when the input has no joint for it
DERIVED: dict[str, tuple[str, str]] = {"spine2": ("spine1", "spine3")}

_PREFIX_RE = re.compile(r"^(def|org)[-_. ]", re.IGNORECASE)


def normalize_joint_name(name: str) -> str:
    """The comparison key of a joint name: lower case, letters and digits only, without namespace / known prefixes."""
    key = _PREFIX_RE.sub("", str(name).rsplit(":", 1)[-1].strip())
    key = re.sub(r"[^a-z0-9]", "", key.lower())
    return re.sub(r"^bip0*1", "", key)


def rig_groups(rig: str) -> tuple[tuple[str, ...], ...]:
    """The source joints (native names) averaged into each of the 22 SMPL joints, for a rig of :data:`RIGS`
    that names all 22 (e.g. ``"bandai-namco"``)."""
    table = RIGS[rig]
    return tuple(table[t] for t in SMPL22)


def _freeze(joint_map) -> tuple:
    if joint_map is None:
        return ()
    if not isinstance(joint_map, Mapping):
        raise JointMapError(
            f"joint_map must be a dict {{model joint: input joint name or list of names}}, got {type(joint_map).__name__}."
        )
    return tuple((str(k), (v,) if isinstance(v, str) else tuple(map(str, v))) for k, v in joint_map.items())


def joint_map_matrix(
    source_names: Sequence[str], skeleton: str | Mapping | Skeleton = "humanml3d", joint_map: Mapping | None = None
) -> tuple[np.ndarray, str]:
    """``(W, how)``: the ``(J_model, J_input)`` float32 matrix taking input joints to the skeleton's joints (each row
    averages one or more input joints) and which rig / rule was used (``"smpl"``, ``"bandai-namco"``, ``"by name"``).

    Args:
        source_names: the input's joint names, in the order of its joint axis.
        skeleton: the model's skeleton (name, spec dict or :class:`Skeleton`).
        joint_map: explicit ``{model joint: input joint or [input joints]}`` entries; they take precedence.

    Raises:
        JointMapError: a model joint has no input joint (listing them, the input's names and the fix), names
            are ambiguous or an explicit entry names a joint that does not exist.
    """
    skel = get_skeleton(skeleton)
    return _matrix(tuple(map(str, source_names)), skel.joint_names, _freeze(joint_map))


@lru_cache(maxsize=64)
def _matrix(source: tuple[str, ...], target: tuple[str, ...], explicit: tuple) -> tuple[np.ndarray, str]:
    keys: dict[str, list[int]] = {}
    for i, n in enumerate(source):
        keys.setdefault(normalize_joint_name(n), []).append(i)
    target_keys = {normalize_joint_name(t): k for k, t in enumerate(target)}
    seen = f"the input's joints are {list(source)}"

    def lookup(names: tuple[str, ...]) -> list[int] | None:
        found = [keys.get(normalize_joint_name(n), []) for n in names]
        return [f[0] for f in found] if all(len(f) == 1 for f in found) else None

    fixed: dict[int, list[int]] = {}
    for model_joint, names in explicit:
        k = target_keys.get(normalize_joint_name(model_joint))
        if k is None:
            raise JointMapError(f"joint_map names the model joint {model_joint!r}, which the model's skeleton lacks; "
                                f"its joints are {list(target)}.")
        idx = lookup(names)
        if idx is None:
            raise JointMapError(f"joint_map maps {model_joint!r} to {list(names)}: not found (or found twice) among "
                                f"the input's joints; {seen}.")
        fixed[k] = idx
    # the SMPL-22 skeleton: the rig tables (their "smpl" entry is by name); any other skeleton: its own names
    candidates = list(RIGS.items()) if set(target) == set(SMPL22) else [("by name", {t: (t,) for t in target})]
    best = None
    for how, table in candidates:
        w = np.zeros((len(target), len(source)), dtype=np.float32)
        done = np.zeros(len(target), dtype=bool)
        for k, t in enumerate(target):
            idx = fixed.get(k) or (lookup(table[t]) if t in table else None)
            if idx is not None:
                np.add.at(w[k], idx, 1.0 / len(idx))
                done[k] = True
        for t, parts in DERIVED.items():
            k, ks = target_keys.get(t), [target_keys.get(p) for p in parts]
            if k is not None and not done[k] and all(p is not None and done[p] for p in ks):
                w[k], done[k] = w[ks].mean(axis=0), True
        if best is None or done.sum() > best[2].sum():
            best = (how, w, done)
    how, w, done = best
    missing = [t for k, t in enumerate(target) if not done[k]]
    if missing:
        dup = sorted(n for n, idx in keys.items() if len(idx) > 1)
        rig_names = sorted({n for v in RIGS[how].values() for n in v}) if how in RIGS else []
        rig = f" (closest known rig: {how}, which names {rig_names})" if rig_names else ""
        raise JointMapError(
            f"cannot map the input's joints onto the model's skeleton by name: no input joint for {missing}{rig}; "
            f"{seen}" + (f" (names equal up to case/separators: {dup})" if dup else "") + ". Pass an explicit "
            f"mapping, e.g. joint_map={{{missing[0]!r}: '<input joint name>'}} (a list of names takes their mean)."
        )
    w.setflags(write=False)
    return w, how


def map_joints(
    motion, joint_names: Sequence[str], skeleton: str | Mapping | Skeleton = "humanml3d", joint_map: Mapping | None = None
) -> np.ndarray:
    """``(T, J_input, 3)`` positions with named joints -> ``(T, J_model, 3)`` float32 in the skeleton's joint order
    (:func:`joint_map_matrix`; one matrix product over all frames)."""
    arr = np.asarray(motion, dtype=np.float32)
    names = list(joint_names) if not isinstance(joint_names, str) else None
    if names is None or not all(isinstance(n, str) for n in names):
        raise JointMapError(f"joint_names must be a list of joint names (strings), got {joint_names!r:.200}.")
    if arr.ndim != 3 or arr.shape[1] != len(names) or arr.shape[2] != 3:
        raise JointMapError(
            f"a motion of shape {arr.shape} came with {len(names)} joint names; expected (frames, {len(names)}, 3): "
            "one name per joint, in the order of the motion's joint axis."
        )
    w, _ = joint_map_matrix(names, skeleton, joint_map)
    return np.matmul(w, arr)
