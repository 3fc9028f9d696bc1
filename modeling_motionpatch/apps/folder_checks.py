"""Checks that a model, its processor and its tokenizer fit together (at load time, and when paired).

A saved folder holds a model (``config.json`` + ``model.safetensors``) and a processor (a feature extractor and a
tokenizer) written separately; any of them can be edited, replaced or lost without the others noticing. Each check
here turns such a mismatch into a :class:`MotionPatchMismatchError` (a ``ValueError``) that says what differs, in
which file, and how to fix it, instead of a model that runs and answers wrong.

``config.skeleton`` records the processor's skeleton and patch geometry at save time (:func:`record_processor`,
called by training and conversion); folders saved before it existed carry no record, and their skeleton is then
not checked (the geometry and the tokenizer still are).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..configuration_motionpatch import NUM_PARTS, _pair

#: ``len(tokenizer) < vocab_size * MIN_VOCAB_FRACTION`` is a tokenizer that is not the model's (e.g. one rebuilt
#: from ``tokenizer_config.json`` alone when ``tokenizer.json`` / ``vocab.txt`` is missing: only special tokens)
MIN_VOCAB_FRACTION = 0.5

_CHAIN_NAMES = ("right_leg", "left_leg", "torso", "right_arm", "left_arm")  # skeletons.CHAIN_NAMES


class MotionPatchMismatchError(ValueError):
    """A processor, tokenizer or feature extractor that does not fit the model it is paired with."""


def skeleton_record(feature_extractor) -> dict[str, Any]:
    """What ``config.skeleton`` stores about a feature extractor: its skeleton and its patch geometry."""
    skel = dict(feature_extractor.skeleton)
    return {
        "name": skel["name"],
        "joint_names": list(skel["joint_names"]),
        "chains": [list(c) for c in skel["chains"]],
        "points_per_part": int(feature_extractor.points_per_part),
        "max_frames": int(feature_extractor.max_frames),
    }


def record_processor(config, processor) -> None:
    """Store ``processor``'s skeleton and geometry in ``config.skeleton`` (saved in ``config.json``), so that a later
    pairing with another processor is checked (:func:`check_model_processor`)."""
    feature_extractor = getattr(processor, "feature_extractor", processor)
    config.skeleton = skeleton_record(feature_extractor)


def _image_grid(motion_config: Mapping[str, Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    return _pair(motion_config.get("image_size", 224)), _pair(motion_config.get("patch_size", 16))


def tokenizer_problems(tokenizer, vocab_size: int | None) -> list[str]:
    """Why ``tokenizer`` does not fit a text tower of ``vocab_size`` embeddings (empty when it fits)."""
    if tokenizer is None or vocab_size is None:
        return []
    size = len(tokenizer)
    vocab = tokenizer.get_vocab()
    top = max(vocab.values()) if vocab else -1
    problems = []
    if top >= vocab_size:
        problems.append(
            f"the tokenizer produces token ids up to {top}, but the text tower has only {vocab_size} embeddings "
            f"(ids >= {vocab_size} would index past its embedding table)"
        )
    if size < vocab_size * MIN_VOCAB_FRACTION:
        problems.append(
            f"the tokenizer has {size} tokens, but the text tower was trained with a vocabulary of {vocab_size}: most "
            "words would become unknown tokens (typically tokenizer.json / vocab.txt is missing and only the special "
            "tokens of tokenizer_config.json were loaded)"
        )
    return problems


def processor_problems(processor, config: Mapping[str, Any]) -> list[str]:
    """Why ``processor`` does not fit the model config ``config`` (a ``config.to_dict()``); empty when it fits."""
    problems = []
    text_config = config.get("text_config") or {}
    problems += tokenizer_problems(getattr(processor, "tokenizer", None), text_config.get("vocab_size"))
    fe = getattr(processor, "feature_extractor", None)
    if fe is None:
        return problems
    (height, width), (patch_height, patch_width) = _image_grid(config.get("motion_config") or {})
    columns = NUM_PARTS * int(fe.points_per_part)
    if columns != width:
        problems.append(
            f"the feature extractor makes images of {NUM_PARTS} x {fe.points_per_part} = {columns} point columns, but "
            f"the motion tower's image_size is {height} x {width}: points_per_part must be {width // NUM_PARTS}"
        )
    if int(fe.max_frames) != height:
        problems.append(
            f"the feature extractor's max_frames is {fe.max_frames}, but the motion tower's image_size is "
            f"{height} x {width} (max_frames must be {height})"
        )
    # extractors saved before frames_per_patch / points_per_patch existed use 16-frame rows, one patch per part
    frames_per_patch = int(getattr(fe, "frames_per_patch", 16))
    points_per_patch = int(getattr(fe, "points_per_patch", None) or fe.points_per_part)
    if frames_per_patch != patch_height:
        problems.append(
            f"the feature extractor's frames_per_patch is {frames_per_patch}, but the motion tower's patches are "
            f"{patch_height} frames high (patch_size {patch_height} x {patch_width}): its motion_attention_mask would "
            f"count patch rows of another height (frames_per_patch must be {patch_height})"
        )
    if points_per_patch != patch_width and patch_width != width:
        problems.append(
            f"the feature extractor's points_per_patch is {points_per_patch}, but the motion tower's patches are "
            f"{patch_width} points wide (patch_size {patch_height} x {patch_width}): its motion_attention_mask would "
            f"have another number of patches per row (points_per_patch must be {patch_width})"
        )
    recorded = config.get("skeleton")
    if recorded:
        skel = fe.skeleton
        names, chains = list(skel["joint_names"]), [list(c) for c in skel["chains"]]
        want_names, want_chains = list(recorded["joint_names"]), [list(c) for c in recorded["chains"]]
        if len(names) != len(want_names):
            problems.append(
                f"the processor's skeleton {skel['name']!r} has {len(names)} joints, but the model was trained on "
                f"skeleton {recorded['name']!r} with {len(want_names)} joints"
            )
        elif names != want_names:
            moved = [f"{i}: {a!r} (model: {b!r})" for i, (a, b) in enumerate(zip(names, want_names)) if a != b]
            problems.append(
                f"the processor's skeleton {skel['name']!r} orders or names its joints differently from the model's "
                f"{recorded['name']!r}: joint {', '.join(moved[:5])}{' ...' if len(moved) > 5 else ''}"
            )
        if len(names) == len(want_names) and chains != want_chains:
            swapped = [
                f"{_CHAIN_NAMES[i]} <-> {_CHAIN_NAMES[j]}"
                for i, j in ((0, 1), (3, 4))
                if chains[i] == want_chains[j] and chains[j] == want_chains[i]
            ]
            detail = (
                f"left and right chains are swapped ({', '.join(swapped)})"
                if swapped
                else "chains " + ", ".join(
                    f"{_CHAIN_NAMES[i]} {chains[i]} (model: {want_chains[i]})"
                    for i in range(min(len(chains), len(want_chains)))
                    if chains[i] != want_chains[i]
                )
            )
            problems.append(f"the processor's body-part chains differ from those the model was trained with: {detail}")
    return problems


def _raise(problems: list[str], where: str, fix: str) -> None:
    if problems:
        raise MotionPatchMismatchError(
            f"{where}: the processor does not fit the model: " + "; ".join(problems) + f". {fix}"
        )


_FIX = (
    "Load the processor saved with this model (AutoProcessor.from_pretrained on the model's folder, with its "
    "tokenizer.json / vocab files and preprocessor settings intact), or re-save a matching processor with "
    "processor.save_pretrained(folder)."
)


def check_model_processor(model, processor) -> None:
    """Raise :class:`MotionPatchMismatchError` when ``processor`` does not fit ``model``: a tokenizer whose ids exceed
    the text tower's ``vocab_size`` or whose vocabulary is far smaller, a feature extractor whose ``max_frames`` /
    ``points_per_part`` do not make the motion tower's ``image_size`` or whose ``frames_per_patch`` /
    ``points_per_patch`` are not its ``patch_size``, or (when ``model.config.skeleton`` records
    it) another skeleton: joint count, joint names or body-part chains (left/right swapped included)."""
    config = model.config.to_dict()
    where = f"{type(model).__name__} (config {getattr(model, 'name_or_path', '') or 'in memory'})"
    _raise(processor_problems(processor, config), where, _FIX)


def folder_config(pretrained_model_name_or_path, **hub_kwargs) -> dict[str, Any] | None:
    """The ``config.json`` of a model folder or Hub repository as a dict, or ``None`` when it has none or is not a
    MotionPatch config (a processor saved on its own)."""
    from transformers.utils import cached_file

    keep = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
    path = cached_file(
        pretrained_model_name_or_path,
        "config.json",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **{k: v for k, v in hub_kwargs.items() if k in keep},
    )
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        return None  # the model's own loading reports an unreadable config.json
    if not isinstance(config, dict) or not str(config.get("model_type", "")).startswith("motionpatch"):
        return None
    return config


def check_folder_processor(processor, pretrained_model_name_or_path, **hub_kwargs) -> None:
    """Check a processor loaded from a folder against the model ``config.json`` beside it (when there is one)."""
    config = folder_config(pretrained_model_name_or_path, **hub_kwargs)
    if config is None:
        return
    folder = Path(str(pretrained_model_name_or_path)).expanduser()
    named = str(folder / "config.json") if folder.is_dir() else f"config.json of {str(pretrained_model_name_or_path)!r}"
    where = f"{named} and the processor files beside it"
    _raise(processor_problems(processor, config), where, _FIX)


__all__ = [
    "MotionPatchMismatchError",
    "check_folder_processor",
    "check_model_processor",
    "record_processor",
    "skeleton_record",
]
