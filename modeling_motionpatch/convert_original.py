"""Convert an original MotionPatches checkpoint (Yu, Tanaka, Fujiwara, CVPR 2024) into a Hub-native folder.

Console script::

    motionpatch-convert-original --checkpoint best_model.pt --dataset humanml3d \\
        --mean Mean_raw.npy --std Std_raw.npy --tokenizer distilbert-base-uncased --output motionpatch-humanml3d

The original checkpoint layout (read without the original code; ``torch.load(weights_only=True)`` only):

- ``motion_encoder.model.*``: a timm ViT-B/16 built with ``img_size=(224, 80)``, ``num_classes=0``,
  ``global_pool="avg"`` (no final ``norm`` weights; ``fc_norm`` is a LayerNorm over the mean of the patch tokens);
- ``text_encoder.text_model.*``: a transformers `DistilBertModel`, pooled at token 0;
- ``motion_projection.*`` / ``text_projection.*``: ``projection`` (Linear), ``fc`` (Linear), ``layer_norm``;
- ``logit_scale``: a scalar (float64), fixed.

The output folder holds ``config.json``, ``model.safetensors``, the processor (skeleton, statistics, tokenizer),
the model code (``trust_remote_code``) and a model card with the original licence (CC BY-NC 4.0) and citation.
It is written into a temporary folder next to ``--output`` and moved into place only when complete.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, DistilBertConfig, PreTrainedConfig

from .atomic_folder import atomic_folder
from .configuration_motionpatch import MotionPatchConfig
from .convert_timm import (
    StateDict,
    convert_timm_vit_state_dict,
    load_state_dict_file,
    quiet_transformers,
    unwrap_state_dict,
)
from .feature_extraction_motionpatch import MotionPatchFeatureExtractor
from .modeling_motionpatch import MotionPatchModel
from .processing_motionpatch import MotionPatchProcessor
from .skeletons import get_skeleton

MOTION_PREFIX = "motion_encoder.model."
TEXT_PREFIX = "text_encoder.text_model."
HEAD_PREFIXES = ("motion_projection.", "text_projection.")
HEAD_KEYS = tuple(f"{m}.{p}" for m in ("projection", "fc", "layer_norm") for p in ("weight", "bias"))
#: buffers that some transformers versions saved in text-model state dicts; not weights
IGNORED_TEXT_SUFFIXES = ("position_ids",)
ORIGINAL_LICENSE = "cc-by-nc-4.0"
CITATION = (
    "@inproceedings{yu2024motionpatches,\n"
    "  title     = {Exploring Vision Transformers for 3D Human Motion-Language Models with Motion Patches},\n"
    "  author    = {Yu, Qing and Tanaka, Mikihiro and Fujiwara, Kent},\n"
    "  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},\n"
    "  year      = {2024}\n"
    "}"
)
#: width of a motion image: 5 body-part chains x 16 points
MOTION_IMAGE_WIDTH = 80


@dataclass(frozen=True)
class DatasetPreset:
    """How a checkpoint trained on one dataset reads motions."""

    name: str
    display_name: str
    skeleton: str
    fps: float
    input_fps: float | None
    fps_mode: str
    projection_dropout: float


PRESETS: dict[str, DatasetPreset] = {
    "humanml3d": DatasetPreset("humanml3d", "HumanML3D", "humanml3d", 20.0, None, "nearest", 0.5),
    "kit": DatasetPreset("kit", "KIT-ML", "kit", 20.0, 12.5, "nearest", 0.0),
}


class ConversionError(ValueError):
    """The inputs of a conversion are invalid; the message says what and how to fix it."""


def _preview(keys: Sequence[str], limit: int = 25) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


# ---------------------------------------------------------------------------
# reading the checkpoint
# ---------------------------------------------------------------------------
def load_original_state_dict(path: str | os.PathLike) -> StateDict:
    """The state dict of an original checkpoint (a ``{"state_dict": ...}`` dict or a bare state dict).

    Read with ``torch.load(..., weights_only=True)``: a pickle that needs code execution is refused, not run.
    A ``module.`` prefix (DataParallel) is stripped.
    """
    state = unwrap_state_dict(load_state_dict_file(path, "checkpoint"), f"checkpoint {os.fspath(path)!r}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _block_count(keys: Sequence[str], pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def expected_motion_keys(motion: Mapping[str, torch.Tensor]) -> set[str]:
    """Keys of the original motion ViT (timm, ``global_pool="avg"``), for as many blocks as ``motion`` has."""
    keys = {
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "fc_norm.weight",
        "fc_norm.bias",
    }
    for i in range(max(1, _block_count(list(motion), r"blocks\.(\d+)\."))):
        for module in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys |= {f"blocks.{i}.{module}.weight", f"blocks.{i}.{module}.bias"}
    return keys


def infer_text_config(
    text: Mapping[str, torch.Tensor], text_config: PreTrainedConfig | None = None
) -> PreTrainedConfig:
    """The text encoder's config: ``text_config`` checked against the weights, or DistilBERT inferred from them.

    Inferred from shapes: hidden size and vocabulary (``embeddings.word_embeddings``), positions, layers and the
    FFN size; heads = hidden / 64 (DistilBERT base: 768 / 12).
    """
    emb = text.get("embeddings.word_embeddings.weight")
    if text_config is not None:
        hidden = int(text_config.hidden_size)
        if emb is not None and int(emb.shape[1]) != hidden:
            raise ConversionError(
                f"The text tower's hidden size ({hidden}, from the given text config "
                f"{getattr(text_config, '_name_or_path', '') or type(text_config).__name__}) does not match the "
                f"checkpoint's text encoder ({int(emb.shape[1])}: {TEXT_PREFIX}embeddings.word_embeddings.weight is "
                f"{tuple(emb.shape)}). Pass a text config of the checkpoint's size, or omit it to infer the sizes."
            )
        return text_config
    defaults = DistilBertConfig()
    kwargs: dict[str, Any] = {}
    if emb is not None:
        kwargs["vocab_size"], kwargs["dim"] = int(emb.shape[0]), int(emb.shape[1])
    pos = text.get("embeddings.position_embeddings.weight")
    if pos is not None:
        kwargs["max_position_embeddings"] = int(pos.shape[0])
    layers = _block_count(list(text), r"transformer\.layer\.(\d+)\.")
    if layers:
        kwargs["n_layers"] = layers
    lin1 = text.get("transformer.layer.0.ffn.lin1.weight")
    if lin1 is not None:
        kwargs["hidden_dim"] = int(lin1.shape[0])
    dim = kwargs.get("dim", defaults.dim)
    if dim % 64:
        raise ConversionError(
            f"Cannot infer the attention heads of a DistilBERT with hidden size {dim} (not a multiple of 64); pass "
            "--text-config with the text encoder's config."
        )
    kwargs["n_heads"] = dim // 64
    return DistilBertConfig(**kwargs)


def build_model_from_original(
    state_dict: Mapping[str, torch.Tensor],
    dataset: str = "humanml3d",
    text_config: PreTrainedConfig | None = None,
    motion_num_attention_heads: int | None = None,
) -> MotionPatchModel:
    """Map an original state dict onto a :class:`MotionPatchModel` (eval mode) without the original code.

    Raises:
        ConversionError: missing or unexpected keys (all listed, original names), or sizes that do not fit.
    """
    preset = PRESETS[dataset]
    motion = {k[len(MOTION_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(MOTION_PREFIX)}
    text = {k[len(TEXT_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(TEXT_PREFIX)}
    text = {k: v for k, v in text.items() if not k.endswith(IGNORED_TEXT_SUFFIXES)}
    heads = {p: {k[len(p) :]: v for k, v in state_dict.items() if k.startswith(p)} for p in HEAD_PREFIXES}

    tconfig = infer_text_config(text, text_config)
    with torch.device("meta"), quiet_transformers():
        text_keys = set(AutoModel.from_config(tconfig).state_dict())
    missing = [MOTION_PREFIX + k for k in expected_motion_keys(motion) - set(motion)]
    missing += [TEXT_PREFIX + k for k in text_keys - set(text)]
    missing += [p + k for p in HEAD_PREFIXES for k in HEAD_KEYS if k not in heads[p]]
    missing += ["logit_scale"] if "logit_scale" not in state_dict else []
    known = (MOTION_PREFIX, TEXT_PREFIX) + HEAD_PREFIXES
    unexpected = [MOTION_PREFIX + k for k in set(motion) - expected_motion_keys(motion)]
    unexpected += [TEXT_PREFIX + k for k in set(text) - text_keys]
    unexpected += [p + k for p in HEAD_PREFIXES for k in heads[p] if k not in HEAD_KEYS]
    unexpected += [k for k in state_dict if not k.startswith(known) and k != "logit_scale"]
    if missing or unexpected:
        raise ConversionError(
            "The checkpoint does not have the original MotionPatches layout "
            f"({MOTION_PREFIX}* timm ViT with fc_norm, {TEXT_PREFIX}* {type(tconfig).__name__}, motion_projection.*, "
            f"text_projection.*, logit_scale). Missing keys ({len(missing)}): {_preview(missing) or 'none'}. "
            f"Unexpected keys ({len(unexpected)}): {_preview(unexpected) or 'none'}."
        )

    patch_w = int(motion["patch_embed.proj.weight"].shape[-1])
    cols, num_patches = MOTION_IMAGE_WIDTH // patch_w, int(motion["pos_embed"].shape[1]) - 1
    if MOTION_IMAGE_WIDTH % patch_w or num_patches % cols:
        raise ConversionError(
            f"{MOTION_PREFIX}pos_embed holds {num_patches} patch positions, which is not a (frames x "
            f"{MOTION_IMAGE_WIDTH // max(patch_w, 1)}) grid of {MOTION_IMAGE_WIDTH}-pixel-wide motion images."
        )
    image_size = (num_patches // cols * int(motion["patch_embed.proj.weight"].shape[-2]), MOTION_IMAGE_WIDTH)
    try:
        vit = convert_timm_vit_state_dict(
            motion,
            image_size=image_size,
            num_attention_heads=motion_num_attention_heads,
            source=f"{MOTION_PREFIX}* (timm ViT)",
        )
    except ValueError as err:
        raise ConversionError(str(err)) from None
    projection_dim = int(heads["motion_projection."]["projection.weight"].shape[0])
    for prefix, tower_hidden, tower in (
        ("motion_projection.", vit.config.hidden_size, "motion ViT"),
        ("text_projection.", int(tconfig.hidden_size), f"text encoder ({type(tconfig).__name__})"),
    ):
        weight = heads[prefix]["projection.weight"]
        if int(weight.shape[1]) != tower_hidden:
            raise ConversionError(
                f"{prefix}projection.weight is {tuple(weight.shape)}: it projects {int(weight.shape[1])}-dim "
                f"features, but the {tower} has hidden size {tower_hidden}. The checkpoint's towers and heads do "
                "not fit together; check --text-config / that the checkpoint is an original MotionPatches one."
            )
        if int(weight.shape[0]) != projection_dim:
            raise ConversionError(
                f"{prefix}projection.weight projects to {int(weight.shape[0])} dims but motion_projection to "
                f"{projection_dim}; both heads must share the joint space."
            )
    logit_scale = state_dict["logit_scale"]
    if logit_scale.numel() != 1:
        raise ConversionError(f"logit_scale must be a scalar, got shape {tuple(logit_scale.shape)}.")

    config = MotionPatchConfig(
        motion_config=vit.config.to_dict(),
        text_config=tconfig.to_dict(),
        projection_dim=projection_dim,
        projection_head="mlp",
        projection_dropout=preset.projection_dropout,
        logit_scale_init_value=float(logit_scale.item()),
        learnable_logit_scale=False,
        motion_pooling="mean",
        text_pooling="cls",
        mask_motion_padding=False,
    )
    mapped = {f"motion_model.{k}": v for k, v in vit.state_dict.items()}
    mapped.update({f"motion_fc_norm.{k}": v for k, v in vit.final_norm.items()})
    mapped.update({f"text_model.{k}": v for k, v in text.items()})
    for prefix in HEAD_PREFIXES:
        mapped.update({prefix + k: v for k, v in heads[prefix].items()})
    mapped["logit_scale"] = logit_scale.reshape(())
    with quiet_transformers():
        model = MotionPatchModel(config)
    target = model.state_dict()
    mapped = {k: v.to(target[k].dtype) if k in target else v for k, v in mapped.items()}
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise ConversionError(f"The checkpoint's tensors do not fit the model: {err}") from None
    return model.eval()


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------
def load_statistics_file(path: str | os.PathLike, what: str, num_joints: int, skeleton: str) -> np.ndarray:
    """A ``(joints, 3)`` float32 array from a ``.npy`` file of shape ``(joints, 3)`` or ``(joints * 3,)``."""
    try:
        arr = np.load(os.fspath(path), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConversionError(
            f"Could not read {what} statistics {os.fspath(path)!r} as a .npy array: {err}"
        ) from None
    if arr.shape == (num_joints * 3,):
        arr = arr.reshape(num_joints, 3)
    if arr.shape != (num_joints, 3):
        hint = ""
        if arr.ndim == 1 and arr.shape[0] in (263, 251):
            hint = (
                f" A ({arr.shape[0]},) vector is the HumanML3D-style motion *feature* statistics (Mean.npy/Std.npy); "
                "MotionPatches normalises raw joint positions (Mean_raw.npy/Std_raw.npy)."
            )
        raise ConversionError(
            f"{what} statistics {os.fspath(path)!r} have shape {arr.shape}; expected ({num_joints}, 3) or "
            f"({num_joints * 3},) for the {skeleton!r} skeleton ({num_joints} joints x 3 axes).{hint}"
        )
    return arr.astype(np.float32)


def statistics_from_dataset(
    dataset_dir: str | os.PathLike, skeleton: str, split: str = "train"
) -> tuple[np.ndarray, np.ndarray, str]:
    """Mean and std per (joint, axis) of a prepared dataset folder, with a sentence saying what they cover.

    The folder is a `datasets` ``save_to_disk`` folder in motionpatch's schema. With ``motionpatch_processing``
    installed, the ``statistics.json`` saved with the dataset is used when it covers ``split`` (``"all"`` = every
    split), otherwise its ``compute_dataset_statistics`` streams the split; without it, the motions of ``split`` are
    fed to ``MotionPatchFeatureExtractor.compute_statistics`` here. Returns ``(mean, std, description)``.
    """
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency of the package
        raise ConversionError("--stats-from needs the `datasets` package (pip install datasets).") from None
    where = os.fspath(dataset_dir)
    try:
        data = datasets.load_from_disk(where)
    except (FileNotFoundError, ValueError) as err:
        raise ConversionError(f"--stats-from {where!r} is not a prepared dataset folder: {err}") from None
    parts = dict(data) if isinstance(data, datasets.DatasetDict) else {split: data}
    names = list(parts) if split == "all" else [split]
    absent = [n for n in names if n not in parts]
    if absent:
        raise ConversionError(
            f"Dataset {where!r} has no {absent[0]!r} split (has {sorted(parts)}); pick --stats-split."
        )
    for name in names:
        if "skeleton" in parts[name].column_names:
            others = sorted(set(parts[name].unique("skeleton")) - {skeleton})
            if others:
                raise ConversionError(
                    f"Dataset {where!r} holds skeletons {others}, not {skeleton!r}; statistics must come from the "
                    "checkpoint's skeleton."
                )
    base = os.path.basename(os.path.normpath(where))
    try:
        from motionpatch_processing.statistics import STATISTICS_FILE, compute_dataset_statistics, read_statistics
    except ImportError:
        columns = [c for c in ("motion", "motion_a", "motion_b") if c in parts[names[0]].column_names]
        if not columns:
            raise ConversionError(
                f"Dataset {where!r} has no motion column (columns: {parts[names[0]].column_names})."
            )

        def motions():
            for name in names:
                for row in parts[name].select_columns(columns).with_format("numpy"):
                    yield from (row[c] for c in columns)

        mean, std = MotionPatchFeatureExtractor.compute_statistics(motions())
        count = sum(len(parts[n]) for n in names)
        return (
            mean,
            std,
            (
                f"Computed with `MotionPatchFeatureExtractor.compute_statistics` over every frame of the "
                f"{', '.join(f'`{n}`' for n in names)} split ({count} motions) of the prepared dataset `{base}` "
                "(population std)."
            ),
        )
    saved = os.path.join(where, STATISTICS_FILE)
    stats = read_statistics(where) if os.path.isfile(saved) else None
    origin = f"`{STATISTICS_FILE}` saved with the prepared dataset `{base}`"
    if stats is None or sorted(stats.splits) != sorted(names):
        try:
            stats = compute_dataset_statistics(data, splits=split)
        except ValueError as err:
            raise ConversionError(f"Could not compute statistics of {where!r}: {err}") from None
        origin = (
            "computed by `motionpatch_processing.statistics.compute_dataset_statistics` over the prepared "
            f"dataset `{base}`"
        )
    return (
        stats.mean,
        stats.std,
        (
            f"{origin[0].upper()}{origin[1:]}: every frame of the {', '.join(f'`{n}`' for n in stats.splits)} split "
            f"({stats.num_motions} motions, {stats.num_frames} frames; population std)."
        ),
    )


# ---------------------------------------------------------------------------
# model card
# ---------------------------------------------------------------------------
def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _card_template() -> str:
    try:
        from importlib.resources import files

        return files("motionpatch_hub_cards").joinpath("model_card_converted.md").read_text(encoding="utf-8")
    except (ImportError, FileNotFoundError, ModuleNotFoundError):
        return (
            "---\nlicense: cc-by-nc-4.0\nlibrary_name: transformers\ntags:\n  - motionpatch\n  - ${dataset}\n---\n\n"
            "# MotionPatches (${dataset_name}), converted\n\n"
            "Original weights by Yu, Tanaka and Fujiwara (CVPR 2024), "
            "licence CC BY-NC 4.0 (non-commercial use only). Source `${checkpoint_name}` (sha256 "
            "`${checkpoint_sha256}`).\n\n## Normalisation statistics\n\n${statistics}\n\n## Citation\n\n```bibtex\n"
            + CITATION.replace("$", "$$")
            + "\n```\n"
        )


def render_model_card(
    model: MotionPatchModel,
    preset: DatasetPreset,
    checkpoint: str | os.PathLike,
    statistics: str,
    tokenizer: str,
    repo_id: str,
) -> str:
    """The README.md of a converted folder: licence (CC BY-NC 4.0), citation, statistics and provenance."""
    import transformers

    from . import __version__

    config = model.config
    scale = float(config.logit_scale_init_value)
    skeleton = get_skeleton(preset.skeleton)
    text = config.text_config
    values = {
        "dataset": preset.name,
        "dataset_name": preset.display_name,
        "image_size": "x".join(str(x) for x in config.motion_config.image_size),
        "motion_layers": config.motion_config.num_hidden_layers,
        "motion_hidden": config.motion_config.hidden_size,
        "patch_size": config.motion_config.patch_size,
        "max_frames": config.max_frames,
        "points_per_part": MOTION_IMAGE_WIDTH // 5,
        "projection_dim": config.projection_dim,
        "text_model_type": text.model_type,
        "text_layers": getattr(text, "num_hidden_layers", "?"),
        "text_hidden": text.hidden_size,
        "logit_scale": f"{scale:.6f} (temperature {math.exp(-scale):.4f})",
        "repo_id": repo_id,
        "num_joints": skeleton.num_joints,
        "fps": f"{preset.fps:g}",
        "skeleton": preset.skeleton,
        "input_fps_note": (
            f"; motions at {preset.input_fps:g} fps are resampled to {preset.fps:g} fps by the processor "
            f"(`{preset.fps_mode}`)"
            if preset.input_fps
            else ""
        ),
        "input_fps_row": f", input fps {preset.input_fps:g} ({preset.fps_mode})" if preset.input_fps else "",
        "statistics": statistics,
        "checkpoint_name": os.path.basename(os.fspath(checkpoint)),
        "checkpoint_sha256": _sha256(checkpoint),
        "projection_dropout": f"{preset.projection_dropout:g}",
        "tokenizer": f"{Path(tokenizer).name} (local folder)" if os.path.isdir(tokenizer) else tokenizer,
        "motionpatch_version": __version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    try:
        from motionpatch_hub_cards.usage import usage_snippet

        fps = preset.input_fps or preset.fps  # what the processor expects
        values["usage"] = usage_snippet(repo_id, preset.skeleton, skeleton.num_joints, fps)
    except ImportError:  # the card templates are not installed: the fallback card has no usage section
        pass
    return Template(_card_template()).safe_substitute(values)


# ---------------------------------------------------------------------------
# the conversion
# ---------------------------------------------------------------------------
def _statistics(preset: DatasetPreset, mean, std, stats_from, stats_split) -> tuple[np.ndarray, np.ndarray, str]:
    skeleton = get_skeleton(preset.skeleton)
    j = skeleton.num_joints
    if stats_from is not None and (mean is not None or std is not None):
        raise ConversionError("Give either --mean/--std or --stats-from, not both.")
    if stats_from is not None:
        m, s, note = statistics_from_dataset(stats_from, preset.skeleton, stats_split)
        return m, s, f"{note} Shape ({j}, 3)."
    if mean is None or std is None:
        raise ConversionError(
            "Normalisation statistics are required: pass --mean and --std (.npy, the training set's raw joint "
            f"position statistics, shape ({j}, 3)) or --stats-from a prepared dataset folder."
        )
    m = load_statistics_file(mean, "mean", j, preset.skeleton)
    s = load_statistics_file(std, "std", j, preset.skeleton)
    return (
        m,
        s,
        (
            f"From the files `{os.path.basename(os.fspath(mean))}` (sha256 `{_sha256(mean)}`) and "
            f"`{os.path.basename(os.fspath(std))}` (sha256 `{_sha256(std)}`), shape ({j}, 3): the training "
            "set's mean and std of raw joint positions."
        ),
    )


def _verify(folder: str, model: MotionPatchModel) -> None:
    with quiet_transformers():
        reloaded = MotionPatchModel.from_pretrained(folder)
    expected = model.state_dict()
    for key, value in reloaded.state_dict().items():
        if key not in expected or not torch.equal(value, expected[key]):
            raise ConversionError(f"Verification failed: {key} differs after saving and reloading the folder.")


def convert_original_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    dataset: str = "humanml3d",
    mean: str | os.PathLike | None = None,
    std: str | os.PathLike | None = None,
    stats_from: str | os.PathLike | None = None,
    stats_split: str = "train",
    tokenizer: str = "distilbert-base-uncased",
    text_config: str | os.PathLike | None = None,
    motion_num_attention_heads: int | None = None,
    overwrite: bool = False,
    verify: bool = True,
    push_to_hub: str | None = None,
    private: bool = False,
) -> Path:
    """Convert an original checkpoint into a Hub-native folder (model, processor, card); returns the folder.

    Everything is read and checked in memory first; the folder is then written into a temporary folder next to
    ``output`` that replaces it in one rename (:func:`~modeling_motionpatch.atomic_folder.atomic_folder`). On any
    error the temporary folder is removed, so no half-written output is left. See the module docstring for the
    layout and :data:`PRESETS` for the datasets.
    """
    if dataset not in PRESETS:
        raise ConversionError(f"Unknown dataset {dataset!r}; choose one of {sorted(PRESETS)}.")
    preset = PRESETS[dataset]
    output = Path(output).absolute()
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
        raise ConversionError(
            f"Output {str(output)!r} exists and is not an empty folder; pass --overwrite to replace it."
        )

    # 1. read and check everything in memory
    tconfig = None
    if text_config is not None:
        try:
            tconfig = AutoConfig.from_pretrained(os.fspath(text_config))
        except (OSError, ValueError) as err:
            raise ConversionError(f"Could not load --text-config {os.fspath(text_config)!r}: {err}") from None
    state = load_original_state_dict(checkpoint)
    model = build_model_from_original(state, dataset, tconfig, motion_num_attention_heads)
    mean_arr, std_arr, stats_note = _statistics(preset, mean, std, stats_from, stats_split)
    try:
        tok = AutoTokenizer.from_pretrained(os.fspath(tokenizer))
    except (OSError, ValueError) as err:
        raise ConversionError(f"Could not load --tokenizer {os.fspath(tokenizer)!r}: {err}") from None
    vocab = int(model.config.text_config.vocab_size)
    if len(tok) > vocab:
        raise ConversionError(
            f"The tokenizer {os.fspath(tokenizer)!r} has {len(tok)} tokens but the checkpoint's text encoder embeds "
            f"only {vocab}; use the tokenizer the checkpoint was trained with (distilbert-base-uncased)."
        )
    try:
        feature_extractor = MotionPatchFeatureExtractor(
            preset.skeleton,
            mean_arr,
            std_arr,
            max_frames=model.config.max_frames,
            fps=preset.fps,
            input_fps=preset.input_fps,
            fps_mode=preset.fps_mode,
        )
    except ValueError as err:
        raise ConversionError(f"Invalid statistics: {err}") from None
    processor = MotionPatchProcessor(feature_extractor, tok)
    card = render_model_card(model, preset, checkpoint, stats_note, os.fspath(tokenizer), push_to_hub or output.name)

    # 2. write atomically: a temporary sibling that replaces `output` (old content and all) once complete
    with atomic_folder(output, keep=None) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        Path(tmp, "README.md").write_text(card, encoding="utf-8")
        if verify:
            _verify(str(tmp), model)

    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=push_to_hub,
            folder_path=str(output),
            commit_message=f"Convert original MotionPatches {preset.display_name} checkpoint",
        )
    return output


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motionpatch-convert-original",
        description="Convert an original MotionPatches checkpoint (CVPR 2024) into a Hub-native MotionPatchModel "
        "folder (config.json, model.safetensors, processor, model card).",
    )
    parser.add_argument("--checkpoint", required=True, help="the original checkpoint (best_model.pt)")
    parser.add_argument("--dataset", required=True, choices=sorted(PRESETS), help="the dataset it was trained on")
    parser.add_argument("--mean", help="Mean_raw.npy: mean of raw joint positions, (joints, 3)")
    parser.add_argument("--std", help="Std_raw.npy: std of raw joint positions, (joints, 3)")
    parser.add_argument("--stats-from", help="compute mean/std from a prepared dataset folder instead")
    parser.add_argument(
        "--stats-split", default="train", help="split of --stats-from to use, or 'all' (default: %(default)s)"
    )
    parser.add_argument(
        "--tokenizer", default="distilbert-base-uncased", help="tokenizer folder or Hub id (default: %(default)s)"
    )
    parser.add_argument("--text-config", help="text encoder config folder/Hub id (default: inferred DistilBERT)")
    parser.add_argument("--motion-num-heads", type=int, help="attention heads of the motion ViT (default: hidden/64)")
    parser.add_argument("--output", required=True, help="output folder (written atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip reloading the written folder to compare weights"
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload the folder to this Hub repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``motionpatch-convert-original``; returns 0 on success, 2 on invalid inputs."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.private and not args.push_to_hub:
        parser.error("--private only applies with --push-to-hub")
    try:
        folder = convert_original_checkpoint(
            args.checkpoint,
            args.output,
            dataset=args.dataset,
            mean=args.mean,
            std=args.std,
            stats_from=args.stats_from,
            stats_split=args.stats_split,
            tokenizer=args.tokenizer,
            text_config=args.text_config,
            motion_num_attention_heads=args.motion_num_heads,
            overwrite=args.overwrite,
            verify=not args.no_verify,
            push_to_hub=args.push_to_hub,
            private=args.private,
        )
    except ValueError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {folder}" + (f" and pushed it to {args.push_to_hub}" if args.push_to_hub else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
