"""The procedural motion generator of the synthetic dataset (:mod:`motionpatch_processing.synthetic`).

**This is not human motion capture.** Every clip is produced by a hand-written procedural rig (sinusoids
and keyframe curves driving joint rotations, then forward kinematics); :func:`generate_motion` returns it
with captions from :mod:`motionpatch_processing.synthetic_captions`, driven by the same parameters.

Conventions (those of HumanML3D ``new_joints`` and of the ``humanml3d`` skeleton of
:mod:`modeling_motionpatch.skeletons`): SMPL-22 joints, metres, 20 fps, Y up, the body faces +Z at
frame 0 with its root at x = z = 0, and the person's left is +X. The axes are right-handed
(X x Y = Z), so a rotation about +Y by a *positive* angle turns +Z towards +X, i.e. towards the
person's left; seen from above (looking down -Y) it is counterclockwise. Hence **"turn left" = positive
yaw = counterclockwise from above**, and the heading angle ``psi`` of a facing direction ``(fx, 0, fz)``
is ``atan2(fx, fz)``; "turn left" increases it, "turn right" decreases it.

Rest skeleton. Offsets are those of an adult of stature H = 1.70 m (scaled linearly by ``stature``):
vertical landmarks from Winter's anthropometric stature fractions (hip joint 0.53 H, knee 0.285 H,
ankle 0.039 H, elbow 0.63 H, wrist 0.485 H, neck at chin height 0.87 H, collar at acromion height
0.818 H), the SMPL shoulder joint (humeral head centre) ~4 cm below the acromion (0.778 H), the head
joint at 0.925 H (the top of the head, H, is not a joint), hip joint centres 12 cm apart, glenohumeral
centres 37 cm apart, and the three spine joints spaced like SMPL's. Segment lengths (metres) compared
with the real HumanML3D clip ``new_joints/000000.npy`` (mean over its frames; ``tests/test_synthetic.py``
recomputes the ratios when the clip is present)::

    segment          synthetic            real 000000          ratio
    hip      L / R   0.100                0.103 / 0.110        0.97 / 0.92
    thigh    L / R   0.410                0.394 / 0.390        1.04 / 1.05
    shank    L / R   0.421                0.432 / 0.426        0.97 / 0.99
    foot     L / R   0.142                0.143 / 0.149        0.99 / 0.95
    spine 1 / 2 / 3  0.121 / 0.133 / 0.053  0.132 / 0.143 / 0.057  0.92 / 0.93 / 0.93
    neck, head       0.203, 0.102         0.219, 0.103         0.93, 0.99
    collar   L / R   0.138                0.137 / 0.143        1.01 / 0.96
    shoulder L / R   0.131                0.132 / 0.123        0.99 / 1.07
    upper arm L / R  0.252                0.257 / 0.263        0.98 / 0.96
    forearm  L / R   0.247                0.266 / 0.270        0.93 / 0.92

Every segment is within 9 % of the real clip (mean absolute deviation 4.5 %); the standing head joint
is at 1.573 m (real: 1.571 m), the pelvis at 0.975 m (real: 0.942 m, knees slightly bent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .synthetic_captions import DIRECTIONS, generate_captions, num_templates

__all__ = [
    "ACTIONS",
    "FPS",
    "MAX_FRAMES",
    "MIN_FRAMES",
    "STYLES",
    "facing_angle",
    "generate_motion",
    "rest_offsets",
]

FPS = 20.0
SKELETON = "humanml3d"
NUM_JOINTS = 22
MIN_FRAMES = 40  # 2 s: shortest clip sampled by default
MAX_FRAMES = 200  # 10 s: longest clip sampled by default
REFERENCE_STATURE = 1.70

# SMPL-22 hierarchy, identical to modeling_motionpatch.skeletons.HUMANML3D.parents (a test checks it);
# repeated here so that generating motions does not import transformers/torch.
_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

(PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3, L_FOOT, R_FOOT, NECK,
 L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST,
 ) = range(22)

# Rest-pose joint positions (metres) of the reference 1.70 m adult, left side and midline; right = mirrored.
_REST_LEFT_AND_MID = {
    PELVIS: (0.0, 0.975, 0.0),
    L_HIP: (0.060, 0.895, -0.010),  # 0.53 H, hip centres 12 cm apart
    SPINE1: (0.0, 1.093, -0.025),
    L_KNEE: (0.068, 0.485, 0.005),  # 0.285 H
    SPINE2: (0.0, 1.224, 0.0),
    L_ANKLE: (0.072, 0.065, -0.025),  # 0.039 H
    SPINE3: (0.0, 1.277, 0.005),
    L_FOOT: (0.100, 0.015, 0.105),  # ball of the foot, toes slightly out
    NECK: (0.0, 1.479, -0.015),  # chin height 0.87 H
    L_COLLAR: (0.075, 1.392, -0.010),  # acromion height 0.818 H
    HEAD: (0.0, 1.5725, 0.025),  # 0.925 H
    L_SHOULDER: (0.185, 1.3226, -0.025),  # 0.778 H
    L_ELBOW: (0.190, 1.071, -0.035),  # 0.63 H
    L_WRIST: (0.195, 0.8245, -0.015),  # 0.485 H
}
_MIRROR = {R_HIP: L_HIP, R_KNEE: L_KNEE, R_ANKLE: L_ANKLE, R_FOOT: L_FOOT, R_COLLAR: L_COLLAR,
           R_SHOULDER: L_SHOULDER, R_ELBOW: L_ELBOW, R_WRIST: L_WRIST}
_HEEL_HEIGHT = 0.065  # ankle joint above the ground with the foot flat (reference stature)
_TOE_HEIGHT = 0.015  # foot joint (ball of the foot) above the ground
_LEG_LENGTH = 0.83  # hip joint to the ground, used for stride lengths


def _rest_positions() -> np.ndarray:
    pos = np.zeros((NUM_JOINTS, 3))
    for j, xyz in _REST_LEFT_AND_MID.items():
        pos[j] = xyz
    for right, left in _MIRROR.items():
        pos[right] = pos[left] * (-1.0, 1.0, 1.0)
    return pos


_REST_POSITIONS = _rest_positions()
_REST_OFFSETS = np.stack(
    [np.zeros(3)] + [_REST_POSITIONS[j] - _REST_POSITIONS[_PARENTS[j]] for j in range(1, NUM_JOINTS)]
)


def rest_offsets(stature: float = REFERENCE_STATURE) -> np.ndarray:
    """Rest offsets ``(22, 3)`` of each joint from its parent (row 0 is zero), for a body ``stature`` m tall.

    The rest pose stands upright, facing +Z, arms hanging; see the module docstring for the sources.
    """
    return _REST_OFFSETS * (float(stature) / REFERENCE_STATURE)


# style -> (speed factor, amplitude factor, extra trunk/neck flexion in degrees)
# style -> (speed factor, amplitude factor, extra trunk/neck flexion in degrees)
STYLES: dict[str | None, tuple[float, float, float]] = {
    None: (1.0, 1.0, 0.0),
    "slowly": (0.65, 0.85, 0.0),
    "quickly": (1.45, 1.05, 0.0),
    "energetically": (1.25, 1.3, -3.0),
    "tiredly": (0.75, 0.7, 12.0),
}
_STYLE_WORDS = tuple(s for s in STYLES if s is not None)

# ---------------------------------------------------------------------------
# curves
# ---------------------------------------------------------------------------
def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _keys(t: np.ndarray, times: Sequence[float], values: Sequence[Any]) -> np.ndarray:
    """Smooth (smoothstep-eased) interpolation of keyframes; constant outside the first and last key.

    ``values`` is ``(K,)`` or ``(K, C)``; the result is ``(T,)`` or ``(T, C)``.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    t0, t1 = times[i], times[i + 1]
    u = _smoothstep((t - t0) / np.maximum(t1 - t0, 1e-9))
    if values.ndim == 2:
        u = u[:, None]
    return values[i] + (values[i + 1] - values[i]) * u


def _window(t: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """1 inside ``[start, end]`` with smooth ramps of ``ramp`` seconds inside the interval, 0 outside."""
    ramp = max(min(ramp, (end - start) / 2), 1e-6)
    return _smoothstep((t - start) / ramp) * _smoothstep((end - t) / ramp)


# ---------------------------------------------------------------------------
# rig
# ---------------------------------------------------------------------------
_SIDES: dict[str, dict[str, Any]] = {
    "left": {"sign": 1.0, "hip": L_HIP, "knee": L_KNEE, "ankle": L_ANKLE, "foot": L_FOOT,
             "shoulder": L_SHOULDER, "elbow": L_ELBOW},
    "right": {"sign": -1.0, "hip": R_HIP, "knee": R_KNEE, "ankle": R_ANKLE, "foot": R_FOOT,
              "shoulder": R_SHOULDER, "elbow": R_ELBOW},
}
_X, _Y, _Z = 0, 1, 2
_BOTH_FEET = (L_ANKLE, R_ANKLE, L_FOOT, R_FOOT)


class _Rig:
    """Per-frame local joint rotations (Euler angles, radians) plus root displacement, for one clip.

    Local rotation of each joint: ``R = Ry(a_y) @ Rx(a_x) @ Rz(a_z)`` in its parent's frame (all frames
    coincide with the world in the rest pose). Sign conventions of the helpers (degrees, ``side`` is
    ``"left"``/``"right"``): positive hip/shoulder flexion swings the limb forward (+Z), positive abduction
    moves it away from the midline, positive knee flexion bends the shank backward, positive ankle
    dorsiflexion lifts the toes, positive elbow flexion brings the forearm forward, ``elbow_up`` lifts the
    forearm in the plane of an abducted arm, positive spine flexion bends forward, positive twist and yaw
    turn to the left (about +Y).
    """

    def __init__(self, num_frames: int):
        self.T = int(num_frames)
        self.t = np.arange(self.T) / FPS
        self.ang = np.zeros((self.T, NUM_JOINTS, 3))
        self.disp = np.zeros((self.T, 2))  # root displacement in the heading frame: (left, forward), metres
        self.lift = np.zeros(self.T)  # vertical offset added after ground contact (flight phases)
        self.plant: tuple[int, ...] | None = _BOTH_FEET  # joints kept fixed horizontally (None: free)

    def add(self, joint: int, axis: int, degrees) -> None:
        self.ang[:, joint, axis] += np.deg2rad(degrees)

    # legs
    def hip_flex(self, side: str, deg) -> None:
        self.add(_SIDES[side]["hip"], _X, -deg)

    def hip_abd(self, side: str, deg) -> None:
        self.add(_SIDES[side]["hip"], _Z, _SIDES[side]["sign"] * deg)

    def knee(self, side: str, deg) -> None:
        self.add(_SIDES[side]["knee"], _X, deg)

    def ankle(self, side: str, deg) -> None:
        self.add(_SIDES[side]["ankle"], _X, -deg)

    # arms
    def shoulder_flex(self, side: str, deg) -> None:
        self.add(_SIDES[side]["shoulder"], _X, -deg)

    def shoulder_abd(self, side: str, deg) -> None:
        self.add(_SIDES[side]["shoulder"], _Z, _SIDES[side]["sign"] * deg)

    def shoulder_hadd(self, side: str, deg) -> None:
        """Horizontal adduction: a raised arm swings towards the midline."""
        self.add(_SIDES[side]["shoulder"], _Y, -_SIDES[side]["sign"] * deg)

    def elbow(self, side: str, deg) -> None:
        self.add(_SIDES[side]["elbow"], _X, -deg)

    def elbow_up(self, side: str, deg) -> None:
        self.add(_SIDES[side]["elbow"], _Z, _SIDES[side]["sign"] * deg)

    # trunk
    def spine_flex(self, deg) -> None:
        for j, w in ((SPINE1, 0.35), (SPINE2, 0.35), (SPINE3, 0.3)):
            self.add(j, _X, w * np.asarray(deg))

    def spine_twist(self, deg) -> None:
        for j, w in ((SPINE1, 0.3), (SPINE2, 0.35), (SPINE3, 0.35)):
            self.add(j, _Y, w * np.asarray(deg))

    def spine_lean(self, deg) -> None:
        """Lateral bend, positive towards the person's left (+X)."""
        for j, w in ((SPINE1, 0.35), (SPINE2, 0.35), (SPINE3, 0.3)):
            self.add(j, _Z, -w * np.asarray(deg))

    def neck_flex(self, deg) -> None:
        self.add(NECK, _X, 0.5 * np.asarray(deg))
        self.add(HEAD, _X, 0.5 * np.asarray(deg))

    def pelvis_pitch(self, deg) -> None:
        """Tilt the pelvis (and everything above it) forward, keeping the thighs where they were."""
        self.add(PELVIS, _X, deg)
        self.hip_flex("left", deg)
        self.hip_flex("right", deg)

    def yaw(self, deg) -> None:
        self.add(PELVIS, _Y, deg)


def _euler_yxz(ang: np.ndarray) -> np.ndarray:
    """Local rotation matrices ``Ry(y) @ Rx(x) @ Rz(z)`` for angles ``(T, J, 3)`` ordered (x, y, z).

    Returned component-first, ``(3, 3, T, J)`` (``R[i, j]`` is a ``(T, J)`` array), which keeps every
    arithmetic step on contiguous arrays.
    """
    cx, cy, cz = np.cos(np.moveaxis(ang, -1, 0))
    sx, sy, sz = np.sin(np.moveaxis(ang, -1, 0))
    rot = np.empty((3, 3) + ang.shape[:-1], dtype=ang.dtype)
    sxsz, sxcz = sx * sz, sx * cz
    rot[0, 0] = cy * cz + sy * sxsz
    rot[0, 1] = sy * sxcz - cy * sz
    rot[0, 2] = sy * cx
    rot[1, 0] = cx * sz
    rot[1, 1] = cx * cz
    rot[1, 2] = -sx
    rot[2, 0] = cy * sxsz - sy * cz
    rot[2, 1] = sy * sz + cy * sxcz
    rot[2, 2] = cy * cx
    return rot


def _levels() -> list[tuple[np.ndarray, np.ndarray]]:
    depth = [0] * NUM_JOINTS
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[_PARENTS[j]] + 1
    out = []
    for d in range(1, max(depth) + 1):
        kids = np.array([j for j in range(NUM_JOINTS) if depth[j] == d])
        out.append((kids, np.array([_PARENTS[k] for k in kids])))
    return out


_LEVELS = _levels()  # joints grouped by depth in the tree: 7 vectorised FK steps instead of 21


def _forward_kinematics(ang: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Joint positions ``(T, 22, 3)`` float32 from local rotations ``(T, 22, 3)`` and offsets ``(22, 3)``.

    ``G_j = G_parent @ R_j`` and ``p_j = p_parent + G_parent @ offset_j`` with the root at the origin,
    level by level of the tree (vectorised over frames and over the joints of a level), in float32.
    """
    rot = _euler_yxz(ang.astype(np.float32))
    offsets = offsets.astype(np.float32)
    glob = np.empty_like(rot)
    pos = np.zeros((3,) + ang.shape[:2], dtype=np.float32)
    glob[..., 0] = rot[..., 0]
    for level, (kids, parents) in enumerate(_LEVELS):
        parent_rot = glob[..., parents]  # (3, 3, T, k)
        pos[:, :, kids] = pos[:, :, parents] + np.einsum("ijtk,kj->itk", parent_rot, offsets[kids])
        if level < len(_LEVELS) - 1:  # the last level holds only leaves (the wrists)
            glob[..., kids] = np.einsum("ijtk,jltk->iltk", parent_rot, rot[..., kids])
    return np.ascontiguousarray(pos.transpose(1, 2, 0))


# ---------------------------------------------------------------------------
# actions
# ---------------------------------------------------------------------------
@dataclass
class _Params:
    style: str | None
    speed: float
    amp: float
    num_frames: int | None
    direction: str | None
    count: int | None
    degrees: float | None


def _free_frames(rng: np.random.Generator, p: _Params, lo: float, hi: float) -> int:
    """Frames of a clip without discrete events: the requested length, or uniform in ``[lo, hi]`` seconds."""
    if p.num_frames is not None:
        return p.num_frames
    return int(rng.integers(round(lo * FPS), round(hi * FPS) + 1))


def _plan(rng: np.random.Generator, p: _Params, overhead: float, period: float, count_range: tuple[int, int]):
    """Lay out ``count`` repetitions of an event in a 2-10 s clip.

    Returns ``(rig, start, scale, count)``: events run from ``start`` seconds, their durations multiplied by
    ``scale`` (< 1 only when a requested ``num_frames`` or ``count`` does not fit at the natural pace).
    """
    budget = p.num_frames / FPS if p.num_frames is not None else MAX_FRAMES / FPS
    count = p.count
    if count is None:
        fit = int((0.92 * budget - overhead) // period) if period > 0 else count_range[1]
        hi = max(count_range[0], min(count_range[1], fit))
        count = int(rng.integers(count_range[0], hi + 1))
    active = overhead + count * period
    lead, tail = rng.uniform(0.15, 0.9, size=2)
    if p.num_frames is not None:
        total = budget
    else:
        total = float(np.clip(active + lead + tail, MIN_FRAMES / FPS, MAX_FRAMES / FPS))
    scale = min(1.0, 0.92 * total / active)
    spare = total - active * scale
    start = spare * lead / (lead + tail)
    rig = _Rig(round(total * FPS))
    return rig, start, scale, count


def _repeated_hold(
    rig: _Rig, start: float, k: float, count: int, period: float, rise: float, fall: float, peak: float = 1.0
) -> np.ndarray:
    """Eased curve ``(T,)`` of ``count`` repetitions laid out by :func:`_plan` (``start``, scale ``k``).

    Each repetition of ``period`` seconds rises from 0 to ``peak`` by ``rise`` seconds, holds it until ``fall``
    seconds, and is back at 0 at its end; the curve is 0 before the first and after the last.
    """
    times, vals = [0.0], [0.0]
    for i in range(count):
        s = start + i * period * k
        times += [s, s + rise * k, s + fall * k, s + period * k]
        vals += [0.0, peak, peak, 0.0]
    times.append(max(rig.t[-1], times[-1]) + 1.0)
    vals.append(0.0)
    return _keys(rig.t, times, vals)


def _gait(
    rig: _Rig,
    phase: np.ndarray,
    env: np.ndarray,
    hip: float,
    knee_swing: float,
    knee_stance: float,
    arm: float,
    elbow: float,
    backwards: bool = False,
    pelvis_yaw: float = 4.0,
) -> None:
    """Cyclic leg/arm swing: left hip flexion is ``hip * sin(phase)``, the right leg half a cycle later."""
    for side, offset in (("left", 0.0), ("right", math.pi)):
        ph = phase + offset
        s = np.sin(ph)
        swing = np.clip(-np.cos(ph - 0.3) if backwards else np.cos(ph + 0.3), 0.0, None) ** 1.5
        rig.hip_flex(side, env * hip * s)
        rig.knee(side, env * (knee_stance + knee_swing * swing))
        rig.ankle(side, env * 0.3 * knee_swing * swing)
        rig.shoulder_flex(side, -env * arm * s)
        rig.elbow(side, elbow + env * arm * 0.4 * (1.0 - s) / 2)
    s_left = np.sin(phase)
    rig.yaw(-pelvis_yaw * env * s_left)
    rig.spine_twist(1.2 * pelvis_yaw * env * s_left)
    lateral = -0.015 * env * np.cos(phase)  # weight over the stance leg
    rig.disp[:, 0] += lateral


def _heading_profile(rig: _Rig, rng: np.random.Generator, direction: str) -> np.ndarray:
    t = rig.t
    if direction == "forward":
        return np.full(rig.T, rng.uniform(-4, 4)) * _smoothstep(t / 1.0)
    sign = 1.0 if direction.endswith("left") else -1.0
    if direction.startswith("diagonal"):
        return sign * rng.uniform(35, 55) * _smoothstep(t / rng.uniform(0.6, 1.2))
    total = rng.uniform(60, 120)  # curve
    return sign * total * _smoothstep(t / max(t[-1], 1e-6))


def _locomotion(rng, p: _Params, kind: str):
    backwards = kind == "walk backwards"
    run = kind == "run"
    if run:
        T = _free_frames(rng, p, 2.0, 8.0)
    else:
        T = _free_frames(rng, p, 3.0, 10.0)
    rig = _Rig(T)
    rig.plant = None
    t = rig.t
    direction = None
    if not backwards:
        direction = p.direction or str(rng.choice(list(DIRECTIONS[kind])))
    ramp_in = rng.uniform(0.05, 0.6) if run is False else rng.uniform(0.05, 0.4)
    ramp_out = rng.uniform(0.05, 0.6)
    env = _smoothstep(t / ramp_in) * _smoothstep((t[-1] - t) / ramp_out)
    if run:
        freq, hip, knee_sw, knee_st, arm, elbow = 1.35, 30.0, 95.0, 22.0, 35.0, 85.0
    elif backwards:
        freq, hip, knee_sw, knee_st, arm, elbow = 0.8, 15.0, 45.0, 6.0, 10.0, 12.0
    else:
        freq, hip, knee_sw, knee_st, arm, elbow = 0.95, 20.0, 55.0, 5.0, 18.0, 12.0
    freq *= p.speed * rng.uniform(0.92, 1.08)
    hip *= min(p.amp, 1.5)
    phase = rng.uniform(0, 2 * math.pi) + 2 * math.pi * freq * t
    _gait(rig, phase, env, hip, knee_sw * min(p.amp, 1.3), knee_st, arm * p.amp, elbow, backwards=backwards)
    stride = 4.0 * _LEG_LENGTH * math.sin(math.radians(hip)) * freq * (1.4 if run else 1.0)
    velocity = env * stride * (-1.0 if backwards else 1.0)
    rig.disp[:, 1] = np.cumsum(velocity) / FPS
    if run:
        rig.spine_flex(8.0 + 6.0 * env)
        rig.lift += 0.07 * min(p.amp, 1.3) * env * np.clip(-np.cos(2 * phase), 0, None) ** 2
    if direction is not None:
        rig.yaw(_heading_profile(rig, rng, direction))
    return rig, {"dir": direction}


def _walk(rng, p):
    return _locomotion(rng, p, "walk")


def _run(rng, p):
    return _locomotion(rng, p, "run")


def _walk_backwards(rng, p):
    return _locomotion(rng, p, "walk backwards")


def _jump(rng, p: _Params):
    direction = p.direction or str(rng.choice(list(DIRECTIONS["jump"])))
    height = rng.uniform(0.15, 0.32) * min(p.amp, 1.3)
    flight = 2.0 * math.sqrt(2.0 * height / 9.81)
    per = (0.45 + 0.17 + 0.2 + 0.45 + 0.2) / p.speed + flight
    rig, start, k, count = _plan(rng, p, 0.0, per, (1, 3))
    t = rig.t
    keys_t, keys_v = [0.0], [(0.0, 0.0)]
    forward = np.zeros(rig.T)
    dist = rng.uniform(0.4, 0.9) * min(p.amp, 1.3) if direction == "forward" else rng.uniform(-0.03, 0.03)
    s = start
    for _ in range(count):
        crouch, takeoff = s + 0.45 * k / p.speed, s + 0.62 * k / p.speed
        land = takeoff + flight * k
        keys_t += [s, crouch, takeoff, land, land + 0.2 * k / p.speed, land + 0.65 * k / p.speed]
        keys_v += [(0.0, 0.0), (1.0, -1.0), (-0.3, 1.0), (-0.2, 0.6), (0.7, 0.1), (0.0, 0.0)]
        u = np.clip((t - takeoff) / (land - takeoff), 0.0, 1.0)
        rig.lift += height * 4.0 * u * (1.0 - u)
        forward += dist * _smoothstep(u)
        s += per * k
    keys_t.append(max(t[-1], keys_t[-1]) + 1.0)
    keys_v.append((0.0, 0.0))
    cv = _keys(t, keys_t, keys_v)
    c, a = cv[:, 0], cv[:, 1]
    bend = np.clip(c, 0, None)
    hip, knee = 60.0 * bend, 95.0 * bend  # countermovement: knees ~95 deg at the bottom
    for side in ("left", "right"):
        rig.hip_flex(side, hip)
        rig.knee(side, knee)
        rig.ankle(side, knee - hip + 60.0 * np.clip(c, None, 0))
        rig.shoulder_flex(side, np.where(a > 0, 140.0 * a, 45.0 * a))
    rig.pelvis_pitch(20.0 * bend)
    rig.disp[:, 1] = forward
    return rig, {"dir": direction, "count": count}


def _squat(rng, p: _Params):
    period = 2.3 / p.speed
    rig, start, k, count = _plan(rng, p, 0.0, period, (1, 4))
    depth = min(rng.uniform(0.75, 1.0) * p.amp, 1.1)
    arms_forward = rng.random() < 0.6
    c = _repeated_hold(rig, start, k, count, period, 0.42 * period, 0.58 * period, depth)
    for side in ("left", "right"):
        rig.hip_flex(side, 100.0 * c)
        rig.knee(side, 120.0 * c)
        rig.ankle(side, 20.0 * c)
        if arms_forward:
            rig.shoulder_flex(side, 85.0 * c)
    rig.pelvis_pitch(30.0 * c)
    return rig, {"count": count}


def _wave(rng, p: _Params, side: str):
    freq = rng.uniform(1.6, 2.4) * p.speed
    cycles = int(rng.integers(2, 7))
    raise_t = 0.6 / p.speed
    rig_frames = p.num_frames
    if rig_frames is None:
        total = 2 * raise_t + cycles / freq + rng.uniform(0.3, 1.6)
        rig_frames = int(np.clip(round(total * FPS), MIN_FRAMES, MAX_FRAMES))
    rig = _Rig(rig_frames)
    t = rig.t
    dur = t[-1]
    lead = rng.uniform(0.1, 0.25) * dur
    tail = rng.uniform(0.1, 0.25) * dur
    raise_t = min(raise_t, 0.3 * (dur - lead - tail))
    up, down = lead + raise_t, dur - tail - raise_t
    r = _keys(t, [0, lead, up, down, dur - tail, dur + 1], [0, 0, 1, 1, 0, 0])
    high = rng.uniform(95, 140)
    rig.shoulder_abd(side, high * r)
    rig.shoulder_flex(side, rng.uniform(5, 25) * r)
    rig.elbow_up(side, (180.0 - high - rng.uniform(-10, 15)) * r)
    w = _window(t, up, down, 0.2) * 25.0 * min(p.amp, 1.4) * np.sin(2 * math.pi * freq * (t - up))
    rig.elbow_up(side, w)
    rig.spine_lean((-3.0 if side == "left" else 3.0) * r)
    return rig, {"side": side}


def _kick(rng, p: _Params, side: str):
    other = "right" if side == "left" else "left"
    per = 1.4 / p.speed
    rig, start, k, count = _plan(rng, p, 0.0, per, (1, 2))
    t = rig.t
    height = min(rng.uniform(55, 85) * p.amp, 100.0)
    times, vals = [0.0], [(0.0, 0.0)]
    for i in range(count):
        s = start + i * per * k
        d = k / p.speed
        times += [s, s + 0.35 * d, s + 0.6 * d, s + 0.9 * d, s + 1.3 * d]
        vals += [(0.0, 0.0), (-15.0, 70.0), (height, 5.0), (30.0, 60.0), (0.0, 0.0)]
    times.append(max(t[-1], times[-1]) + 1.0)
    vals.append((0.0, 0.0))
    hk = _keys(t, times, vals)
    active = _keys(
        t,
        [
            0,
            start,
            start + 0.3 * k,
            start + count * per * k - 0.2 * k,
            start + count * per * k,
            max(t[-1], start + count * per * k) + 1,
        ],
        [0, 0, 1, 1, 0, 0],
    )
    rig.hip_flex(side, hk[:, 0])
    rig.knee(side, hk[:, 1])
    rig.ankle(side, -0.2 * np.clip(hk[:, 0], 0, None))  # point the toes while kicking
    rig.knee(other, 8.0 * active)
    rig.ankle(other, 8.0 * active)
    rig.hip_flex(other, 8.0 * active)
    rig.spine_flex(-0.12 * np.clip(hk[:, 0], 0, None))
    rig.shoulder_flex(other, 0.4 * np.clip(hk[:, 0], 0, None))
    rig.shoulder_flex(side, -0.25 * np.clip(hk[:, 0], 0, None))
    rig.shoulder_abd(side, 20.0 * active)
    rig.shoulder_abd(other, 10.0 * active)
    rig.plant = (_SIDES[other]["ankle"], _SIDES[other]["foot"])
    return rig, {"side": side, "count": count}


def _turn(rng, p: _Params, side: str):
    degrees = p.degrees if p.degrees is not None else float(rng.choice([90.0, 180.0], p=[0.6, 0.4]))
    dur_turn = (0.9 + 0.6 * degrees / 90.0) / p.speed * rng.uniform(0.9, 1.1)
    rig, start, k, _ = _plan(rng, p, dur_turn, 0.0, (1, 1))
    t = rig.t
    d = dur_turn * k
    sign = 1.0 if side == "left" else -1.0
    rig.yaw(sign * degrees * _smoothstep((t - start) / d))
    env = np.sin(math.pi * np.clip((t - start) / d, 0, 1))
    steps = max(2, round(degrees / 45.0))
    phase = math.pi * steps * np.clip((t - start) / d, 0, 1)
    _gait(rig, phase, env, 12.0 * min(p.amp, 1.3), 35.0, 3.0, 5.0, 10.0, pelvis_yaw=0.0)
    rig.spine_twist(sign * 8.0 * env)  # lead with the upper body
    rig.plant = None
    return rig, {"side": side, "degrees": degrees}


def _side_step(rng, p: _Params, side: str):
    T = _free_frames(rng, p, 2.5, 8.0)
    rig = _Rig(T)
    rig.plant = None
    t = rig.t
    period = rng.uniform(0.9, 1.2) / p.speed
    step = min(rng.uniform(0.22, 0.32) * p.amp, 0.4)
    sign = 1.0 if side == "left" else -1.0
    lead = rng.uniform(0.1, 0.5)
    n = max(1, int((t[-1] - lead - 0.2) // period))
    u = np.clip((t - lead) / period, 0, n)
    cyc = np.floor(np.minimum(u, n - 1e-9))
    frac = u - cyc
    lead_foot = step * (cyc + _smoothstep(2 * frac))
    trail_foot = step * (cyc + _smoothstep(2 * frac - 1))
    pelvis = 0.5 * (lead_foot + trail_foot)
    leg = _LEG_LENGTH
    lead_side, trail_side = side, ("right" if side == "left" else "left")
    # abduction of the leading leg / adduction of the trailing leg that put the feet under their plan
    rig.hip_abd(lead_side, np.degrees(np.arcsin(np.clip((lead_foot - pelvis) / leg, -0.6, 0.6))))
    rig.hip_abd(trail_side, -np.degrees(np.arcsin(np.clip((trail_foot - pelvis) / leg, -0.6, 0.6))))
    lift_lead = np.sin(math.pi * np.clip(2 * frac, 0, 1)) * (u < n)
    lift_trail = np.sin(math.pi * np.clip(2 * frac - 1, 0, 1)) * (u < n)
    for s_, lift in ((lead_side, lift_lead), (trail_side, lift_trail)):
        rig.knee(s_, 25.0 * lift)
        rig.hip_flex(s_, 12.0 * lift)
    for s_ in ("left", "right"):
        rig.shoulder_abd(s_, 8.0 + 6.0 * min(p.amp, 1.3) * np.abs(np.sin(math.pi * u)))
    rig.disp[:, 0] = sign * pelvis
    return rig, {"side": side}


def _raise_arms(rng, p: _Params):
    direction = p.direction or str(rng.choice(list(DIRECTIONS["raise both arms"])))
    move = 0.8 / p.speed
    hold = rng.uniform(0.4, 1.5)
    per = 2 * move + hold
    rig, start, k, count = _plan(rng, p, 0.0, per, (1, 2))
    r = _repeated_hold(rig, start, k, count, per, move, move + hold)
    a = min(p.amp, 1.2)
    for side in ("left", "right"):
        if direction == "forward":
            rig.shoulder_flex(side, 90.0 * a * r)
        elif direction == "sideways":
            rig.shoulder_abd(side, 85.0 * a * r)
        else:  # overhead
            rig.shoulder_flex(side, min(165.0 * a, 175.0) * r)
            rig.shoulder_abd(side, 12.0 * r)
        rig.elbow(side, -8.0 * r)  # straighten the arms
    return rig, {"dir": direction}


def _sit(rng, p: _Params):
    dur = rng.uniform(1.2, 1.7) / p.speed
    rig, start, k, _ = _plan(rng, p, dur, 0.0, (1, 1))
    c = _smoothstep((rig.t - start) / (dur * k))
    bump = np.sin(math.pi * c)
    for side in ("left", "right"):
        rig.hip_flex(side, 90.0 * c)
        rig.knee(side, 88.0 * c)
        rig.ankle(side, -2.0 * c)
        rig.shoulder_flex(side, 20.0 * c + 25.0 * bump)
        rig.elbow(side, 45.0 * c)
    rig.pelvis_pitch(35.0 * bump - 5.0 * c)
    rig.neck_flex(10.0 * bump)
    return rig, {}


def _stand_up(rng, p: _Params):
    rig, meta = _sit(rng, p)
    rig.ang = rig.ang[::-1].copy()
    return rig, meta


def _clap(rng, p: _Params):
    freq = rng.uniform(1.8, 2.6) * p.speed
    raise_t = 0.5 / p.speed
    rig, start, k, count = _plan(rng, p, 2 * raise_t, 1.0 / freq, (3, 10))
    t = rig.t
    claps_start = start + raise_t * k
    claps_end = claps_start + count / freq * k
    r = _keys(
        t,
        [0, start, claps_start, claps_end, claps_end + raise_t * k, max(t[-1], claps_end + raise_t * k) + 1],
        [0, 0, 1, 1, 0, 0],
    )
    # hands meet at horizontal adduction ~34 deg (arms flexed 55 deg, elbows 70 deg); open to ~10 deg
    u = np.clip((t - claps_start) / (claps_end - claps_start), 0, 1)
    closed = 0.5 - 0.5 * np.cos(2 * math.pi * count * u)  # 1 at each clap
    open_amount = min(p.amp, 1.3) * rng.uniform(0.8, 1.0)
    for side in ("left", "right"):
        rig.shoulder_flex(side, 55.0 * r)
        rig.elbow(side, 70.0 * r)
        rig.shoulder_hadd(side, r * (34.0 - 24.0 * open_amount * closed))
    return rig, {"count": count}


def _bow(rng, p: _Params):
    down, up = 0.9 / p.speed, 1.0 / p.speed
    hold = rng.uniform(0.3, 1.0)
    per = down + hold + up
    rig, start, k, count = _plan(rng, p, 0.0, per, (1, 2))
    b = _repeated_hold(rig, start, k, count, per, down, down + hold)
    angle = min(rng.uniform(30, 60) * p.amp, 80.0)
    rig.pelvis_pitch(0.6 * angle * b)
    rig.spine_flex(0.4 * angle * b)
    rig.neck_flex(10.0 * b)
    for side in ("left", "right"):
        rig.shoulder_flex(side, 0.9 * angle * b)  # arms hang
    return rig, {"count": count}


def _punch(rng, p: _Params):
    per = 0.5 / p.speed
    guard_t = 0.4 / p.speed
    rig, start, k, count = _plan(rng, p, 2 * guard_t, per, (2, 6))
    t = rig.t
    g0 = start + guard_t * k
    g1 = g0 + count * per * k
    g = _keys(t, [0, start, g0, g1, g1 + guard_t * k, max(t[-1], g1 + guard_t * k) + 1], [0, 0, 1, 1, 0, 0])
    reach = min(p.amp, 1.3)
    punch = {"left": np.zeros(rig.T), "right": np.zeros(rig.T)}
    for i in range(count):
        s = g0 + i * per * k
        side = "right" if i % 2 == 0 else "left"
        punch[side] += _keys(t, [s, s + 0.3 * per * k, s + 0.45 * per * k, s + per * k], [0, 1, 1, 0])
    for side in ("left", "right"):
        rig.shoulder_flex(side, 45.0 * g + 40.0 * reach * punch[side])
        rig.shoulder_hadd(side, 15.0 * g - 5.0 * punch[side])
        rig.elbow(side, 120.0 * g - 115.0 * punch[side])
    rig.spine_twist(12.0 * reach * (punch["right"] - punch["left"]))
    for side in ("left", "right"):
        rig.knee(side, 10.0 * g)
        rig.hip_flex(side, 8.0 * g)
        rig.ankle(side, 8.0 * g)
    return rig, {"count": count}


def _jumping_jacks(rng, p: _Params):
    freq = rng.uniform(0.9, 1.2) * p.speed
    rig, start, k, count = _plan(rng, p, 0.0, 1.0 / freq, (2, 8))
    t = rig.t
    tau = np.clip((t - start) / (count / freq * k), 0, 1)
    u = 0.5 - 0.5 * np.cos(2 * math.pi * count * tau)
    a = min(p.amp, 1.2)
    for side in ("left", "right"):
        rig.shoulder_abd(side, 150.0 * a * u)
        rig.elbow_up(side, 10.0 * u)
        rig.hip_abd(side, 13.0 * u)
        rig.knee(side, 10.0 * np.abs(np.sin(2 * math.pi * count * tau)))
    rig.lift += 0.05 * a * np.abs(np.sin(2 * math.pi * count * tau)) * (tau > 0) * (tau < 1)
    return rig, {"count": count}


def _stand_still(rng, p: _Params):
    rig = _Rig(_free_frames(rng, p, 2.0, 8.0))
    t = rig.t
    f = rng.uniform(0.1, 0.3)
    ph = rng.uniform(0, 2 * math.pi, size=3)
    rig.add(PELVIS, _Z, 1.2 * np.sin(2 * math.pi * f * t + ph[0]))  # weight shift
    rig.spine_twist(3.0 * np.sin(2 * math.pi * f * 0.7 * t + ph[1]))
    rig.neck_flex(4.0 * np.sin(2 * math.pi * f * 1.3 * t + ph[2]))
    return rig, {}


# action -> (builder, caption template key, allowed styles)
_ALL_STYLES = tuple(STYLES)
_ACTION_TABLE: dict[str, tuple[Callable, str, tuple]] = {
    "walk": (_walk, "walk", _ALL_STYLES),
    "run": (_run, "run", _ALL_STYLES),
    "jump": (_jump, "jump", _ALL_STYLES),
    "squat": (_squat, "squat", _ALL_STYLES),
    "wave left hand": (lambda r, p: _wave(r, p, "left"), "wave", _ALL_STYLES),
    "wave right hand": (lambda r, p: _wave(r, p, "right"), "wave", _ALL_STYLES),
    "kick left leg": (lambda r, p: _kick(r, p, "left"), "kick", _ALL_STYLES),
    "kick right leg": (lambda r, p: _kick(r, p, "right"), "kick", _ALL_STYLES),
    "turn left": (lambda r, p: _turn(r, p, "left"), "turn", _ALL_STYLES),
    "turn right": (lambda r, p: _turn(r, p, "right"), "turn", _ALL_STYLES),
    "raise both arms": (_raise_arms, "raise both arms", _ALL_STYLES),
    "sit down": (_sit, "sit down", _ALL_STYLES),
    "stand up": (_stand_up, "stand up", _ALL_STYLES),
    "walk backwards": (_walk_backwards, "walk backwards", _ALL_STYLES),
    "side step left": (lambda r, p: _side_step(r, p, "left"), "side step", _ALL_STYLES),
    "side step right": (lambda r, p: _side_step(r, p, "right"), "side step", _ALL_STYLES),
    "clap": (_clap, "clap", _ALL_STYLES),
    "bow": (_bow, "bow", _ALL_STYLES),
    "punch": (_punch, "punch", _ALL_STYLES),
    "jumping jacks": (_jumping_jacks, "jumping jacks", _ALL_STYLES),
    "stand still": (_stand_still, "stand still", (None,)),
}

#: Names of the procedural actions, in the order the dataset cycles through them.
ACTIONS: tuple[str, ...] = tuple(_ACTION_TABLE)

_COUNTED = {
    "jump",
    "squat",
    "kick left leg",
    "kick right leg",
    "raise both arms",
    "clap",
    "bow",
    "punch",
    "jumping jacks",
}


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
_UNSET: Any = object()


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}.")


def generate_motion(
    action: str,
    rng: np.random.Generator | int | None = None,
    *,
    style: str | None = _UNSET,
    num_frames: int | None = None,
    direction: str | None = None,
    count: int | None = None,
    degrees: float | None = None,
    speed: float = 1.0,
    amplitude: float = 1.0,
    noise: float = 1.0,
    stature: float = REFERENCE_STATURE,
    num_captions: int | None = None,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Generate one procedural motion clip with templated captions.

    Every parameter left out is drawn from ``rng``, so ``generate_motion(action, rng)`` gives a random
    variation and the same generator state gives the same clip.

    Args:
        action: one of :data:`ACTIONS`.
        rng: a ``numpy.random.Generator`` (or an int seed, or ``None`` for fresh entropy).
        style: ``None`` (neutral) or one of ``"slowly"``, ``"quickly"``, ``"energetically"``, ``"tiredly"``
            (changes speed, amplitude and posture, and appears in the captions); drawn when omitted.
        num_frames: clip length at 20 fps (16-600); drawn in 40-200 (2-10 s) when omitted. Repeated events
            are reduced in number (or, when ``count`` is given, sped up) to fit.
        direction: for ``walk``/``run``: ``forward``, ``diagonal left``, ``diagonal right``, ``curve left``,
            ``curve right``; for ``jump``: ``in place``, ``forward``; for ``raise both arms``: ``forward``,
            ``sideways``, ``overhead`` (see :data:`DIRECTIONS`); drawn when omitted.
        count: repetitions for counted actions (jump, squat, kicks, raise both arms, clap, bow, punch,
            jumping jacks); drawn when omitted.
        degrees: turn angle for ``turn left``/``turn right`` (90 or 180 drawn when omitted).
        speed, amplitude: extra multipliers on top of the style's.
        noise: scale of the smooth joint-angle noise and of the random posture (0 = none).
        stature: body height in metres (bone lengths scale with it).
        num_captions: captions to return (1-3 drawn when omitted).

    Returns:
        ``(motion, captions, labels)``: float32 ``(T, 22, 3)`` joint positions (metres, Y up, facing +Z
        at frame 0, root at x = z = 0 at frame 0, lowest foot contact on y = 0), a list of captions and
        ``[action]`` or ``[action, style]``.

    Raises:
        ValueError: unknown action, style or direction, or a parameter out of range.
    """
    if action not in _ACTION_TABLE:
        raise ValueError(f"Unknown action {action!r}. Known actions: {list(ACTIONS)}.")
    builder, template_key, styles = _ACTION_TABLE[action]
    rng = _as_rng(rng)
    if style is _UNSET:
        style = None if len(styles) == 1 or rng.random() < 0.4 else str(rng.choice(_STYLE_WORDS))
    if style not in STYLES:
        raise ValueError(f"Unknown style {style!r}. Known styles: {list(STYLES)}.")
    if style not in styles:
        raise ValueError(f"Action {action!r} takes no style; allowed: {list(styles)}.")
    if num_frames is not None and not (16 <= int(num_frames) <= 600):
        raise ValueError(f"num_frames must be between 16 and 600 (0.8-30 s at 20 fps), got {num_frames}.")
    valid_dirs = DIRECTIONS.get(action)
    if direction is not None and (valid_dirs is None or direction not in valid_dirs):
        known = list(valid_dirs) if valid_dirs else "none (this action has no direction)"
        raise ValueError(f"Unknown direction {direction!r} for action {action!r}. Known directions: {known}.")
    if count is not None and (action not in _COUNTED or int(count) < 1):
        if action not in _COUNTED:
            raise ValueError(f"Action {action!r} takes no count; counted actions: {sorted(_COUNTED)}.")
        raise ValueError(f"count must be a positive integer, got {count}.")
    if degrees is not None and (action not in ("turn left", "turn right") or not 0 < degrees <= 360):
        raise ValueError(
            f"degrees applies to 'turn left'/'turn right' only and must be in (0, 360], got {degrees}."
        )
    for name, value in (("speed", speed), ("amplitude", amplitude), ("stature", stature)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if not 1.0 <= stature <= 2.3:
        raise ValueError(f"stature is a body height in metres; expected 1.0-2.3, got {stature}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    if num_captions is not None and not 1 <= num_captions <= num_templates(template_key):
        raise ValueError(
            f"num_captions must be between 1 and {num_templates(template_key)} for {action!r}, "
            f"got {num_captions}."
        )

    style_speed, style_amp, slouch = STYLES[style]
    params = _Params(
        style=style,
        speed=style_speed * speed * rng.uniform(0.9, 1.1),
        amp=style_amp * amplitude * rng.uniform(0.9, 1.1),
        num_frames=None if num_frames is None else int(num_frames),
        direction=direction,
        count=None if count is None else int(count),
        degrees=None if degrees is None else float(degrees),
    )
    rig, meta = builder(rng, params)
    _add_posture_and_noise(rig, rng, slouch, noise)
    motion = _finish(rig, stature)

    k = num_captions if num_captions is not None else int(rng.integers(1, 4))
    captions = generate_captions(action, template_key, meta, style, k, rng)
    labels = [action] if style is None else [action, style]
    return motion, captions, labels


def _add_posture_and_noise(rig: _Rig, rng: np.random.Generator, slouch: float, noise: float) -> None:
    """Relaxed standing posture (arms slightly out, elbows soft), style slouch and smooth angle noise."""
    n = noise
    for side in ("left", "right"):
        rig.shoulder_abd(side, 6.0 + n * rng.uniform(-3, 5))
        rig.elbow(side, 10.0 + n * rng.uniform(-5, 10))
        rig.hip_abd(side, 2.0 + n * rng.uniform(-1, 2))
        rig.knee(side, 2.0 + n * rng.uniform(0, 3))
        rig.hip_flex(side, 2.0)
    rig.spine_flex(slouch + n * rng.uniform(-3, 4))
    rig.neck_flex(slouch + n * rng.uniform(-5, 5))
    if n > 0:
        # smooth noise: random knots every 0.4 s, eased interpolation (one small matrix product)
        knot_time = 0.4
        u = rig.t / knot_time
        i = np.floor(u).astype(np.intp)
        w = _smoothstep(u - i)
        weights = np.zeros((rig.T, int(i[-1]) + 2))
        rows = np.arange(rig.T)
        weights[rows, i] = 1.0 - w
        weights[rows, i + 1] = w
        knots = rng.normal(0.0, np.deg2rad(1.5 * n), size=(weights.shape[1], NUM_JOINTS * 3))
        knots[:, [3 * PELVIS, 3 * PELVIS + 2]] *= 0.3
        rig.ang += (weights @ knots).reshape(rig.T, NUM_JOINTS, 3)


def _finish(rig: _Rig, stature: float) -> np.ndarray:
    scale = stature / REFERENCE_STATURE
    pos = _forward_kinematics(rig.ang, rest_offsets(stature))
    # ground contact: the lowest heel (ankle joint minus its height) or ball of the foot touches y = 0
    contact = np.minimum(
        pos[:, (L_ANKLE, R_ANKLE), 1].min(axis=1) - _HEEL_HEIGHT * scale,
        pos[:, (L_FOOT, R_FOOT), 1].min(axis=1) - _TOE_HEIGHT * scale,
    )
    pos[:, :, 1] -= contact[:, None]
    if rig.plant is not None:
        feet = pos[:, list(rig.plant)][:, :, (0, 2)].mean(axis=1)
        pos[:, :, (0, 2)] -= (feet - feet[0])[:, None, :]
    # root trajectory: displacement in the heading frame integrated along the (possibly turning) heading
    yaw = rig.ang[:, PELVIS, _Y]
    step = np.diff(rig.disp, axis=0, prepend=rig.disp[:1]) * scale
    cy, sy = np.cos(yaw), np.sin(yaw)
    vx = step[:, 0] * cy + step[:, 1] * sy
    vz = -step[:, 0] * sy + step[:, 1] * cy
    pos[:, :, 0] += np.cumsum(vx)[:, None]
    pos[:, :, 2] += np.cumsum(vz)[:, None]
    pos[:, :, 1] += rig.lift[:, None] * scale
    # canonical frame: facing +Z and root at x = z = 0 at frame 0 (as HumanML3D's new_joints)
    across = (pos[0, L_HIP] - pos[0, R_HIP]) + (pos[0, L_SHOULDER] - pos[0, R_SHOULDER])
    heading = math.atan2(-across[2], across[0])  # facing = across x up = (-across_z, 0, across_x)
    c, s = math.cos(-heading), math.sin(-heading)
    x = pos[:, :, 0] - pos[0, PELVIS, 0]
    z = pos[:, :, 2] - pos[0, PELVIS, 2]
    pos[:, :, 0] = c * x + s * z
    pos[:, :, 2] = -s * x + c * z
    return pos


def facing_angle(motion: np.ndarray) -> np.ndarray:
    """Heading (radians, ``atan2(fx, fz)``; positive = turned left) per frame, from the hips and shoulders."""
    across = (motion[:, L_HIP] - motion[:, R_HIP]) + (motion[:, L_SHOULDER] - motion[:, R_SHOULDER])
    return np.arctan2(-across[:, 2], across[:, 0])
