"""What the Bandai-Namco Research Motion Dataset's files mean: joints, labels and captions.

* :data:`BANDAI_TO_HUMANML3D` and :func:`bandai_to_humanml3d` - the 22 HumanML3D (SMPL) joints as means of
  the Bandai BVH joints;
* :func:`bandai_labels` - content and style of a clip from its ``.json`` sidecar and ``cfg/*_label.txt``
  (or from its file name);
* :data:`BANDAI_PHRASES` and :func:`make_caption` - captions filled from the labels ("a person bows angrily.").

The importers that use them are in :mod:`motionpatch_processing.bandai_namco` (BVH folders) and
:mod:`motionpatch_processing.bandai_npz` (the prepared ``.npz``).
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from modeling_motionpatch.apps.joint_maps import SMPL22, map_joints, rig_groups

__all__ = [
    "BANDAI_CAPTION_TEMPLATE",
    "BANDAI_CONTENT_PHRASES",
    "BANDAI_PHRASES",
    "BANDAI_STYLE_PHRASES",
    "BANDAI_TO_HUMANML3D",
    "bandai_labels",
    "bandai_to_humanml3d",
    "joint_map_matrix",
    "make_caption",
    "paraphrase_captions",
]

#: HumanML3D (SMPL-22) joint i = mean of these Bandai BVH joints (checked against ``ds2_h22_20fps.npz``: max
#: difference 1.95e-3 m over the 70 sample clips, the npz's float16 rounding). The Bandai skeleton has no
#: middle spine joint: spine2 = mean(Spine, Chest). The table lives in the library
#: (``modeling_motionpatch.apps.joint_maps.RIGS["bandai-namco"]``), which maps any named rig by name.
BANDAI_TO_HUMANML3D: tuple[tuple[str, ...], ...] = rig_groups("bandai-namco")

#: Verb phrase of each content label (datasets 1 and 2), as in the shared index files' ``caption_template``.
BANDAI_CONTENT_PHRASES: dict[str, str] = {
    # dataset 1
    "walk": "walks forward",
    "run": "runs forward",
    "dash": "dashes forward",
    "walk-back": "walks backwards",
    "walk-left": "walks to the left",
    "walk-right": "walks to the right",
    "bow": "bows",
    "bye": "waves goodbye",
    "guide": "gestures to guide someone the way",
    "byebye": "waves goodbye with both hands",
    "respond": "responds with a gesture",
    "call": "calls out to someone",
    "punch": "throws a punch",
    "kick": "kicks",
    "slash": "slashes with a sword",
    "dance-long": "dances for a long time",
    "dance-short": "dances briefly",
    # dataset 2
    "walk-turn-left": "walks forward and turns left",
    "walk-turn-right": "walks forward and turns right",
    "wave-both-hands": "waves both hands",
    "wave-left-hand": "waves the left hand",
    "wave-right-hand": "waves the right hand",
    "raise-up-both-hands": "raises both hands",
    "raise-up-left-hand": "raises the left hand",
    "raise-up-right-hand": "raises the right hand",
}

#: Adverbial phrase of each style label ("normal" adds nothing), as in the index files' ``caption_template``.
BANDAI_STYLE_PHRASES: dict[str, str] = {
    "normal": "",
    # dataset 1
    "active": "energetically",
    "angry": "angrily",
    "childish": "like a child",
    "chimpira": "like a swaggering thug",
    "feminine": "in a feminine way",
    "giant": "heavily, like a giant",
    "happy": "happily",
    "masculinity": "in a masculine way",
    "musical": "theatrically, like in a musical",
    "not-confident": "without confidence",
    "old": "like an old person",
    "proud": "proudly",
    "sad": "sadly",
    "tired": "tiredly",
    # dataset 2
    "elderly": "like an elderly person",
    "exhausted": "in an exhausted way",
    "masculine": "in a masculine way",
    "youthful": "in a youthful way",
}

#: Other ways people say each content: (third-person verb phrase, -ing phrase) pairs, the first being the phrase of
#: :data:`BANDAI_CONTENT_PHRASES`. Used by :func:`paraphrase_captions` so that free text, not only the template
#: sentence, finds the motions.
BANDAI_CONTENT_PARAPHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "walk": (("walks forward", "walking forward"), ("walks", "walking"), ("strolls", "strolling"),
             ("takes a walk", "taking a walk")),
    "run": (("runs forward", "running forward"), ("runs", "running"), ("jogs", "jogging")),
    "dash": (("dashes forward", "dashing forward"), ("sprints", "sprinting"), ("runs fast", "running fast")),
    "walk-back": (("walks backwards", "walking backwards"), ("steps backwards", "stepping backwards"),
                  ("walks backward", "walking backward")),
    "walk-left": (("walks to the left", "walking to the left"), ("walks sideways to the left",
                  "walking sideways to the left"), ("steps to the left", "stepping to the left")),
    "walk-right": (("walks to the right", "walking to the right"), ("walks sideways to the right",
                   "walking sideways to the right"), ("steps to the right", "stepping to the right")),
    "bow": (("bows", "bowing"), ("bows politely", "bowing politely"), ("takes a bow", "taking a bow"),
            ("bends forward in a bow", "bending forward in a bow")),
    "bye": (("waves goodbye", "waving goodbye"), ("waves a hand", "waving a hand"), ("waves", "waving")),
    "guide": (("gestures to guide someone the way", "gesturing to guide someone the way"),
              ("points the way", "pointing the way"), ("shows someone the way", "showing someone the way")),
    "byebye": (("waves goodbye with both hands", "waving goodbye with both hands"),
               ("waves both hands", "waving both hands"), ("waves", "waving")),
    "respond": (("responds with a gesture", "responding with a gesture"), ("gestures in reply", "gesturing in reply")),
    "call": (("calls out to someone", "calling out to someone"), ("beckons someone over", "beckoning someone over"),
             ("calls someone", "calling someone")),
    "punch": (("throws a punch", "throwing a punch"), ("punches", "punching"), ("punches forward", "punching forward")),
    "kick": (("kicks", "kicking"), ("kicks with one leg", "kicking with one leg"), ("kicks forward", "kicking forward")),
    "slash": (("slashes with a sword", "slashing with a sword"), ("swings a sword", "swinging a sword"),
              ("slashes", "slashing")),
    "dance-long": (("dances for a long time", "dancing for a long time"), ("dances", "dancing")),
    "dance-short": (("dances briefly", "dancing briefly"), ("dances", "dancing")),
    "walk-turn-left": (("walks forward and turns left", "walking forward and turning left"),
                       ("walks and turns left", "walking and turning left"),
                       ("turns left while walking", "turning left while walking")),
    "walk-turn-right": (("walks forward and turns right", "walking forward and turning right"),
                        ("walks and turns right", "walking and turning right"),
                        ("turns right while walking", "turning right while walking")),
    "wave-both-hands": (("waves both hands", "waving both hands"), ("waves with both hands", "waving with both hands"),
                        ("waves", "waving")),
    "wave-left-hand": (("waves the left hand", "waving the left hand"), ("waves with the left hand",
                       "waving with the left hand"), ("waves", "waving")),
    "wave-right-hand": (("waves the right hand", "waving the right hand"), ("waves with the right hand",
                        "waving with the right hand"), ("waves", "waving")),
    "raise-up-both-hands": (("raises both hands", "raising both hands"), ("raises both arms", "raising both arms"),
                            ("puts both hands up", "putting both hands up")),
    "raise-up-left-hand": (("raises the left hand", "raising the left hand"), ("raises the left arm",
                           "raising the left arm"), ("puts the left hand up", "putting the left hand up")),
    "raise-up-right-hand": (("raises the right hand", "raising the right hand"), ("raises the right arm",
                            "raising the right arm"), ("puts the right hand up", "putting the right hand up")),
}

#: Other ways to say each style (the first is the phrase of :data:`BANDAI_STYLE_PHRASES`).
BANDAI_STYLE_PARAPHRASES: dict[str, tuple[str, ...]] = {
    "normal": ("",),
    "active": ("energetically", "actively", "with energy"),
    "angry": ("angrily", "in an angry way"),
    "childish": ("like a child", "childishly"),
    "chimpira": ("like a swaggering thug", "with a swagger"),
    "feminine": ("in a feminine way", "femininely"),
    "giant": ("heavily, like a giant", "like a giant", "heavily"),
    "happy": ("happily", "cheerfully"),
    "masculinity": ("in a masculine way", "in a manly way"),
    "musical": ("theatrically, like in a musical", "theatrically"),
    "not-confident": ("without confidence", "timidly", "hesitantly"),
    "old": ("like an old person", "like an elderly person"),
    "proud": ("proudly", "with pride"),
    "sad": ("sadly", "in a sad way"),
    "tired": ("tiredly", "wearily"),
    "elderly": ("like an elderly person", "like an old person"),
    "exhausted": ("in an exhausted way", "wearily", "tiredly"),
    "masculine": ("in a masculine way", "in a manly way"),
    "youthful": ("in a youthful way", "youthfully"),
}

#: Sentence frames of the paraphrases: ``{v}`` is the third-person phrase, ``{ing}`` the -ing phrase.
PARAPHRASE_FRAMES = ("a person {v} {style}.", "someone {v} {style}.", "a person is {ing} {style}.",
                     "the person {v} {style}.", "a person {ing} {style}", "{ing} {style}")

BANDAI_CAPTION_TEMPLATE = "a person {content} {style}."
BANDAI_PHRASES: dict[str, Mapping[str, str]] = {"content": BANDAI_CONTENT_PHRASES, "style": BANDAI_STYLE_PHRASES}
_BANDAI_NAME_RE = re.compile(r"^dataset-\d+_(?P<content>[^_]+)_(?P<style>[^_]+)_(?P<take>\d+)$")
_LABEL_PREFIX_RE = re.compile(r"^dataset-\d+_")


def joint_map_matrix(names: Sequence[str], mapping: Sequence[Sequence[str]]) -> np.ndarray:
    """``(len(mapping), len(names))`` float32 matrix: output joint i = mean of the source joints ``mapping[i]``."""
    index = {n: k for k, n in enumerate(names)}
    missing = sorted({n for group in mapping for n in group if n not in index})
    if missing:
        raise ValueError(
            f"joint map names joints {missing} that the hierarchy lacks; its joints are {list(names)}. "
            "Pass a mapping written for this skeleton."
        )
    w = np.zeros((len(mapping), len(names)), dtype=np.float32)
    for i, group in enumerate(mapping):
        if not group:
            raise ValueError(f"joint map entry {i} is empty; every output joint needs at least one source joint.")
        for n in group:
            w[i, index[n]] += 1.0 / len(group)
    return w


def bandai_to_humanml3d(positions: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Reorder ``(T, J, 3)`` Bandai joint positions into the 22 HumanML3D joints (:data:`BANDAI_TO_HUMANML3D`)."""
    return map_joints(positions, names, "humanml3d", dict(zip(SMPL22, BANDAI_TO_HUMANML3D)))


def make_caption(
    template: str, fields: Mapping[str, Any], phrases: Mapping[str, Mapping[str, str]] | None = None
) -> str:
    """Fill a caption template from label fields, each mapped through ``phrases[field]`` when given.

    A label without a phrase is used as text (``-`` and ``_`` become spaces). Whitespace is collapsed and
    spaces before punctuation removed, so an empty phrase (style ``normal``) leaves no gap:
    ``make_caption("a person {content} {style}.", {"content": "bow", "style": "angry"}, BANDAI_PHRASES)``
    -> ``"a person bows angrily."``.
    """
    filled = {}
    for key, value in fields.items():
        table = (phrases or {}).get(key)
        text = str(value)
        if table is not None and text in table:
            filled[key] = table[text]
        else:
            filled[key] = text.replace("-", " ").replace("_", " ")
    try:
        out = template.format(**filled)
    except KeyError as err:
        raise ValueError(
            f"caption template {template!r} uses the field {err.args[0]!r} but the labels only have "
            f"{sorted(fields)}; change the template or the labels."
        ) from None
    out = re.sub(r"\s+", " ", out).strip()
    return re.sub(r"\s+([.,!?;:])", r"\1", out)


def paraphrase_captions(content: str, style: str) -> list[str]:
    """Every phrasing of a (content, style) clip: the template caption first (:func:`make_caption` with
    :data:`BANDAI_PHRASES`, the one evaluation uses), then each sentence frame of :data:`PARAPHRASE_FRAMES` with
    each content and style paraphrase, without duplicates. Unknown labels fall back to the template alone (a fresh
    list: the phrasings are computed once per pair)."""
    return list(_paraphrases(content, style))


@lru_cache(maxsize=None)
def _paraphrases(content: str, style: str) -> tuple[str, ...]:
    """The phrasings of :func:`paraphrase_captions`, computed once per (content, style)."""
    first = make_caption(BANDAI_CAPTION_TEMPLATE, {"content": content, "style": style}, BANDAI_PHRASES)
    out = {first: None}
    for v, ing in BANDAI_CONTENT_PARAPHRASES.get(content, ()):
        for adverb in BANDAI_STYLE_PARAPHRASES.get(style, ()):
            for frame in PARAPHRASE_FRAMES:
                text = re.sub(r"\s+([.,])", r"\1", re.sub(r"\s+", " ", frame.format(v=v, ing=ing, style=adverb))).strip()
                out[text] = None
    return tuple(out)


def _read_label_names(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [_LABEL_PREFIX_RE.sub("", line.strip()) for line in fh if line.strip()]


def bandai_labels(data_dir: str | os.PathLike) -> Callable[[Path], OrderedDict[str, str]]:
    """Label reader for a Bandai-Namco ``data/`` folder: sidecar ``{"content": id, "style": id}`` mapped
    through ``../cfg/content_label.txt`` and ``style_label.txt`` (0-based line numbers, ``dataset-N_``
    prefix removed). Without the sidecar or the cfg files, content and style are read from the file name
    (``dataset-N_<content>_<style>_<take>``)."""
    data_dir = Path(data_dir)
    cfg = data_dir.parent / "cfg"
    contents = _read_label_names(cfg / "content_label.txt") if (cfg / "content_label.txt").is_file() else None
    styles = _read_label_names(cfg / "style_label.txt") if (cfg / "style_label.txt").is_file() else None

    def read(path: Path) -> OrderedDict[str, str]:
        sidecar = path.with_suffix(".json")
        if contents is not None and styles is not None and sidecar.is_file():
            with open(sidecar, encoding="utf-8") as fh:
                ids = json.load(fh)
            try:
                return OrderedDict(content=contents[int(ids["content"])], style=styles[int(ids["style"])])
            except (KeyError, IndexError, TypeError, ValueError):
                raise ValueError(
                    f"{sidecar}: expected {{'content': id, 'style': id}} with ids in 0..{len(contents) - 1} / "
                    f"0..{len(styles) - 1} (cfg/*_label.txt), found {ids!r}."
                ) from None
        m = _BANDAI_NAME_RE.match(path.stem)
        if m is None:
            raise ValueError(
                f"{path}: no sidecar .json with cfg/ label files, and the name is not 'dataset-N_<content>_<style>_<take>'."
            )
        return OrderedDict(content=m.group("content"), style=m.group("style"))

    return read
