"""Reading an original MotionPatches checkpoint (Yu, Tanaka, Fujiwara, CVPR 2024) into a :class:`MotionPatchModel`.

The checkpoint layout (read without the original code; ``torch.load(weights_only=True)`` only):
- ``motion_encoder.model.*``: a timm ViT-B/16 built with ``img_size=(224, 80)``, ``num_classes=0``,
  ``global_pool="avg"`` (no final ``norm`` weights; ``fc_norm`` is a LayerNorm over the mean of the patch tokens);
- ``text_encoder.text_model.*``: a transformers `DistilBertModel`, pooled at token 0;
- ``motion_projection.*`` / ``text_projection.*``: ``projection`` (Linear), ``fc`` (Linear), ``layer_norm``;
- ``logit_scale``: a scalar (float64), fixed.

Also the normalisation statistics a converted folder needs: ``.npy`` files, or a prepared dataset.
:mod:`modeling_motionpatch.convert_original` writes the Hub-native folder and holds the command line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, DistilBertConfig, PreTrainedConfig

from .apps.motion_statistics import (
    STATISTICS_FILE,
    compute_dataset_statistics,
    read_statistics,
)
from .checkpoint_files import (
    StateDict,
    load_state_dict_file,
    preview_keys,
    unwrap_state_dict,
)
from .configuration_motionpatch import MotionPatchConfig
from .modeling_motionpatch import MotionPatchModel
from .pretrained_towers import quiet_transformers
from .timm_vit_keys import convert_timm_vit_state_dict

MOTION_PREFIX = "motion_encoder.model."
TEXT_PREFIX = "text_encoder.text_model."
HEAD_PREFIXES = ("motion_projection.", "text_projection.")
HEAD_KEYS = tuple(f"{m}.{p}" for m in ("projection", "fc", "layer_norm") for p in ("weight", "bias"))
#: buffers that some transformers versions saved in text-model state dicts; not weights
IGNORED_TEXT_SUFFIXES = ("position_ids",)
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
            f"text_projection.*, logit_scale). Missing keys ({len(missing)}): {preview_keys(missing, 25) or 'none'}. "
            f"Unexpected keys ({len(unexpected)}): {preview_keys(unexpected, 25) or 'none'}."
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

    The folder is a `datasets` ``save_to_disk`` folder in motionpatch's schema. The ``statistics.json`` saved with
    it is used when it covers ``split`` (``"all"`` = every split); otherwise
    :func:`~modeling_motionpatch.apps.motion_statistics.compute_dataset_statistics` streams the split.
    Returns ``(mean, std, description)``.
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
    saved = os.path.join(where, STATISTICS_FILE)
    stats = read_statistics(where) if os.path.isfile(saved) else None
    origin = f"`{STATISTICS_FILE}` saved with the prepared dataset `{base}`"
    if stats is None or sorted(stats.splits) != sorted(names):
        try:
            stats = compute_dataset_statistics(data, splits=split)
        except ValueError as err:
            raise ConversionError(f"Could not compute statistics of {where!r}: {err}") from None
        origin = f"computed by `compute_dataset_statistics` over the prepared dataset `{base}`"
    return (
        stats.mean,
        stats.std,
        (
            f"{origin[0].upper()}{origin[1:]}: every frame of the {', '.join(f'`{n}`' for n in stats.splits)} split "
            f"({stats.num_motions} motions, {stats.num_frames} frames; population std)."
        ),
    )


__all__ = [
    "MOTION_IMAGE_WIDTH",
    "PRESETS",
    "ConversionError",
    "DatasetPreset",
    "build_model_from_original",
    "expected_motion_keys",
    "infer_text_config",
    "load_original_state_dict",
    "load_statistics_file",
    "statistics_from_dataset",
]
