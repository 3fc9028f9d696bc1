"""Templated captions of the synthetic dataset (:mod:`motionpatch_processing.synthetic`).

The caption generator is driven by the same parameters as the procedural motion of
:mod:`motionpatch_processing.synthetic_motion` (action, side, direction, style, count, turn angle), so every
caption describes its clip: :data:`DIRECTIONS` lists the direction values each action takes with the phrases
that name them, a few templates per action vary the wording, and the subject ("a person", "a woman", ...)
with its possessive is drawn at random. Synthetic text for demos and tests only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["DIRECTIONS", "generate_captions", "num_templates"]

_SUBJECTS = (
    ("a person", "their"),
    ("someone", "their"),
    ("a man", "his"),
    ("a woman", "her"),
    ("the person", "their"),
)
_NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)


def _times(n: int) -> str:
    if n == 1:
        return "once"
    if n == 2:
        return "twice"
    return f"{_number(n)} times"


def _number(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def _walk_dirs(verb_side: str) -> dict[str, list[str]]:
    return {
        "forward": ["forward", "ahead", "straight ahead", "forwards"],
        "diagonal left": ["diagonally to the left", "forward and to the left", "toward the front left"],
        "diagonal right": ["diagonally to the right", "forward and to the right", "toward the front right"],
        "curve left": [
            "in a curve to the left",
            f"forward while {verb_side} to the left",
            "along a path that bends to the left",
        ],
        "curve right": [
            "in a curve to the right",
            f"forward while {verb_side} to the right",
            "along a path that bends to the right",
        ],
    }


#: Valid ``direction`` values per action (the first is the default meaning of "no direction word").
DIRECTIONS: dict[str, dict[str, list[str]]] = {
    "walk": _walk_dirs("curving"),
    "run": _walk_dirs("curving"),
    "jump": {
        "in place": ["in place", "on the spot", "straight up"],
        "forward": ["forward", "forwards", "ahead"],
    },
    "raise both arms": {
        "forward": ["forward", "in front of {p} body", "straight out in front"],
        "sideways": ["sideways", "out to the sides", "to the sides"],
        "overhead": ["above {p} head", "over {p} head", "up high"],
    },
}

_TEMPLATES: dict[str, list[str]] = {
    "walk": [
        "{s} walks {dir} {adv}",
        "{s} is walking {dir} {adv}",
        "{adv_}{s} walks {dir}",
        "{s} takes a few steps {dir} {adv}",
    ],
    "run": [
        "{s} runs {dir} {adv}",
        "{s} is running {dir} {adv}",
        "{s} jogs {dir} {adv}",
        "{adv_}{s} runs {dir}",
    ],
    "walk backwards": [
        "{s} walks backwards {adv}",
        "{s} is walking backward {adv}",
        "{adv_}{s} steps backwards",
        "{s} walks in reverse {adv}",
        "{s} backs up {adv}",
    ],
    "jump": [
        "{s} jumps {dir} {n} {adv}",
        "{s} is jumping {dir} {adv}",
        "{adv_}{s} hops {dir} {n}",
        "{s} bends {p} knees and jumps {dir} {adv}",
        "{s} does {num} jump{pl} {dir} {adv}",
    ],
    "squat": [
        "{s} squats {n} {adv}",
        "{s} does {num} squat{pl} {adv}",
        "{s} bends {p} knees and squats down {adv}",
        "{adv_}{s} crouches down and stands back up {n}",
        "{s} squats down and up {n} {adv}",
    ],
    "wave": [
        "{s} waves {p} {side} hand {adv}",
        "{s} raises {p} {side} hand and waves {adv}",
        "{adv_}{s} waves with the {side} hand",
        "{s} is waving hello with {p} {side} arm {adv}",
        "{s} lifts the {side} arm and waves {adv}",
    ],
    "kick": [
        "{s} kicks with {p} {side} leg {adv}",
        "{s} kicks {p} {side} foot forward {n}",
        "{adv_}{s} kicks with the {side} leg {n}",
        "{s} lifts {p} {side} leg and kicks {adv}",
        "{s} does {num} kick{pl} with the {side} leg {adv}",
    ],
    "turn": [
        "{s} turns {dir} {adv}",
        "{s} is turning {dir} {adv}",
        "{adv_}{s} turns {dir} in place",
        "{s} rotates {dir} on the spot {adv}",
    ],
    "raise both arms": [
        "{s} raises both arms {dir} {adv}",
        "{s} lifts {p} arms {dir} and lowers them {adv}",
        "{adv_}{s} raises both hands {dir}",
        "{s} is raising {p} arms {dir} {adv}",
    ],
    "sit down": [
        "{s} sits down {adv}",
        "{s} sits down on a chair {adv}",
        "{adv_}{s} takes a seat",
        "{s} is sitting down {adv}",
        "{s} lowers {p} body onto a seat {adv}",
    ],
    "stand up": [
        "{s} stands up {adv}",
        "{s} gets up from a chair {adv}",
        "{adv_}{s} rises from a seated position",
        "{s} is standing up from a seat {adv}",
        "{s} pushes up from a chair to stand {adv}",
    ],
    "clap": [
        "{s} claps {p} hands {adv}",
        "{s} is clapping {adv}",
        "{adv_}{s} applauds",
        "{s} claps {p} hands {n} {adv}",
        "{s} raises {p} hands and claps {adv}",
    ],
    "bow": [
        "{s} bows {adv}",
        "{s} bends forward at the waist and straightens up {adv}",
        "{adv_}{s} takes a bow",
        "{s} bows {n} {adv}",
        "{s} is bowing {adv}",
    ],
    "punch": [
        "{s} punches {adv}",
        "{s} throws punches with both fists {adv}",
        "{adv_}{s} boxes in the air",
        "{s} throws {num} punch{es} {adv}",
        "{s} punches forward with alternating fists {adv}",
    ],
    "jumping jacks": [
        "{s} does jumping jacks {adv}",
        "{s} does {num} jumping jack{pl} {adv}",
        "{adv_}{s} is doing star jumps",
        "{s} jumps while spreading {p} arms and legs {adv}",
    ],
    "side step": [
        "{s} side steps to the {side} {adv}",
        "{s} shuffles sideways to {p} {side} {adv}",
        "{adv_}{s} steps sideways to the {side}",
        "{s} moves to the {side} with side steps {adv}",
    ],
    "stand still": [
        "{s} stands still",
        "{s} is standing in place",
        "{s} stands idle and waits",
        "{s} stands without moving much",
        "{s} stands and shifts {p} weight slightly",
    ],
}


def _turn_phrases(side: str, degrees: float) -> list[str]:
    if abs(degrees - 90.0) < 1e-6:
        return [side, f"to the {side}", f"to {{p}} {side}"]
    if abs(degrees - 180.0) < 1e-6:
        return [f"around to the {side}", f"all the way around to the {side}", f"around to {{p}} {side}"]
    return [f"{degrees:g} degrees to the {side}"]


def _captions(
    template_key: str,
    meta: dict[str, Any],
    style: str | None,
    k: int,
    rng: np.random.Generator,
    dir_phrases: Sequence[str] | None,
) -> list[str]:
    templates = _TEMPLATES[template_key]
    k = min(k, len(templates))
    chosen = rng.choice(len(templates), size=k, replace=False)
    count = meta.get("count")
    out = []
    for i in chosen:
        subj, poss = _SUBJECTS[int(rng.integers(len(_SUBJECTS)))]
        direction = dir_phrases[int(rng.integers(len(dir_phrases)))] if dir_phrases else ""
        text = templates[int(i)].format(
            s=subj,
            p=poss,
            adv=style or "",
            adv_=f"{style}, " if style else "",
            dir=direction.replace("{p}", poss),
            side=meta.get("side", ""),
            n=_times(count) if count else "",
            num=_number(count) if count else "",
            pl="" if count == 1 else "s",
            es="" if count == 1 else "es",
        )
        out.append(" ".join(text.split()) + ".")
    return out



def num_templates(template_key: str) -> int:
    """How many distinct captions the templates of ``template_key`` give: the most one clip can have."""
    return len(_TEMPLATES[template_key])


def generate_captions(
    action: str,
    template_key: str,
    meta: dict[str, Any],
    style: str | None,
    k: int,
    rng: np.random.Generator,
) -> list[str]:
    """``k`` distinct captions (drawn from ``rng``) of a clip of ``action`` with ``style`` and the clip's ``meta``.

    ``meta`` is what the motion builder reports: ``side``, ``dir`` (a key of ``DIRECTIONS[action]``),
    ``count`` and, for turns, ``degrees``.
    """
    if action in ("turn left", "turn right"):
        phrases = _turn_phrases(meta["side"], meta["degrees"])
    elif meta.get("dir") is not None:
        phrases = DIRECTIONS[action][meta["dir"]]
    else:
        phrases = None
    return _captions(template_key, meta, style, k, rng, phrases)
