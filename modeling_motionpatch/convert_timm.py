"""Pretrained towers for :class:`MotionPatchModel`: timm ViT weights, position-embedding resampling, text encoders.

Everything here works on plain state dicts with torch: timm itself is never imported. The timm layout is
read from these facts about timm's ``VisionTransformer`` (pre-norm blocks, fused ``qkv`` projection):

========================================  ===================================================
timm key                                  transformers `ViTModel` key
========================================  ===================================================
``cls_token`` (1, 1, D)                   ``embeddings.cls_token``
``pos_embed`` (1, 1 + H*W, D)             ``embeddings.position_embeddings``
``patch_embed.proj.{weight,bias}``        ``embeddings.patch_embeddings.projection.*``
``blocks.{i}.norm1``                      layer ``i`` ``layernorm_before``
``blocks.{i}.attn.qkv`` (3D, D)           layer ``i`` query / key / value (rows split in that order)
``blocks.{i}.attn.proj``                  layer ``i`` attention output projection
``blocks.{i}.norm2``                      layer ``i`` ``layernorm_after``
``blocks.{i}.mlp.fc1`` / ``mlp.fc2``      layer ``i`` MLP in / out
``norm`` (``global_pool="token"``)        ``layernorm`` (the ViT's final LayerNorm)
``fc_norm`` (``global_pool="avg"``)       ``MotionPatchModel.motion_fc_norm`` (LayerNorm after mean pooling)
``head.*``                                dropped (classifier)
========================================  ===================================================

The transformers module names are probed at run time on a tiny `ViTModel`, so the mapping follows the
installed transformers (``layers.{i}.attention.q_proj`` in transformers 5.24, ``encoder.layer.{i}.attention.
attention.query`` in older releases).

This module is also copied next to ``modeling_motionpatch.py`` in saved folders (it is imported, lazily, by
``MotionPatchModel.from_motion_text_pretrained``), so it imports only torch, transformers, safetensors and
huggingface_hub.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel, ViTConfig, ViTModel
from transformers.utils import cached_file
from transformers.utils import logging as hf_logging

Tensor = torch.Tensor
StateDict = dict[str, Tensor]

#: file names tried, in order, for a timm checkpoint on the Hub
TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
#: state-dict wrappers unpacked when a checkpoint file holds more than the weights
CHECKPOINT_WRAPPER_KEYS = ("state_dict", "model", "module", "state_dict_ema", "model_ema")
#: text model types whose own ``pooler_output`` is the sentence embedding (end-of-text token)
POOLER_TEXT_MODEL_TYPES = ("clip_text_model", "clip", "siglip_text_model", "siglip", "xclip_text_model")
_ST_POOLING_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean"}


# ---------------------------------------------------------------------------
# safe file loading
# ---------------------------------------------------------------------------
def load_state_dict_file(path: str | os.PathLike, what: str = "checkpoint") -> dict[str, Any]:
    """Load a ``.safetensors`` file or a torch pickle **without executing code**.

    Pickles go through ``torch.load(..., map_location="cpu", weights_only=True)``, which only rebuilds tensors
    and plain containers; a pickle that needs to import or call anything else is refused with a `ValueError`
    and never executed.

    Args:
        path: a ``.safetensors``, ``.bin``, ``.pt`` or ``.pth`` file.
        what: how the file is named in error messages.

    Returns:
        The loaded object (a state dict, or a dict wrapping one).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path!r} does not exist or is not a file.")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise ValueError(f"Could not read {what} {path!r} as a torch checkpoint: {err}") from None
        raise ValueError(
            f"Refused to load {what} {path!r}: it is a pickle that needs to run code to be read (torch.load "
            f"with weights_only=True rejected it: {str(err).splitlines()[0]}). It was NOT executed. If you trust "
            "its origin, re-save only its tensors in an environment that has the code it needs, e.g. "
            "`torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.pt')`, or convert it to "
            ".safetensors, and pass that file instead."
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as err:
        raise ValueError(
            f"Could not read {what} {path!r} as a torch checkpoint ({type(err).__name__}: {err}); expected a file "
            "written by torch.save or a .safetensors file."
        ) from None


def unwrap_state_dict(obj: Any, what: str = "checkpoint") -> StateDict:
    """Return the tensor state dict inside ``obj`` (a state dict, or a dict holding one under a usual key)."""
    if isinstance(obj, Mapping):
        for key in CHECKPOINT_WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
        if tensors:
            return dict(tensors)
    keys = sorted(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise ValueError(
        f"{what} holds no tensor state dict (found {keys}); expected a state dict or a dict with one of "
        f"{list(CHECKPOINT_WRAPPER_KEYS)}."
    )


def _strip_prefix(state_dict: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def find_timm_vit_prefix(state_dict: Mapping[str, Tensor]) -> str:
    """The key prefix under which a timm ViT lives (``""``, ``"module."``, ``"motion_encoder.model."``...)."""
    prefixes = sorted({k[: -len("cls_token")] for k in state_dict if k.endswith("cls_token")})
    prefixes = [p for p in prefixes if f"{p}pos_embed" in state_dict]
    if len(prefixes) != 1:
        found = "none" if not prefixes else ", ".join(repr(p) for p in prefixes)
        raise ValueError(
            f"Could not locate one timm VisionTransformer in the state dict (needs `cls_token` and `pos_embed` "
            f"under one prefix; found {found}). Pass the ViT's own state dict."
        )
    return prefixes[0]


# ---------------------------------------------------------------------------
# position embeddings
# ---------------------------------------------------------------------------
def resample_position_embeddings(
    position_embeddings: Tensor,
    new_grid: Sequence[int],
    old_grid: Sequence[int] | None = None,
    num_prefix_tokens: int = 1,
) -> Tensor:
    """Resample absolute ViT position embeddings to another patch grid, keeping the prefix (class) positions.

    The patch positions are viewed as an ``old_grid`` image with ``D`` channels and resized with bicubic
    interpolation, antialiasing on and ``align_corners=False`` (timm's ``resample_abs_pos_embed``), computed in
    float32 and cast back. A grid that already matches is returned as is (the same tensor, bitwise).

    Args:
        position_embeddings: ``(1, num_prefix_tokens + H*W, D)``.
        new_grid: target ``(rows, cols)`` of patches.
        old_grid: source ``(rows, cols)``; a square grid is assumed when omitted.
        num_prefix_tokens: leading non-patch positions (1 for the class token).
    """
    if position_embeddings.ndim != 3 or position_embeddings.shape[0] != 1:
        raise ValueError(
            f"position embeddings must have shape (1, tokens, dim), got {tuple(position_embeddings.shape)}."
        )
    num_patches = position_embeddings.shape[1] - num_prefix_tokens
    if old_grid is None:
        side = math.isqrt(num_patches)
        if side * side != num_patches:
            raise ValueError(
                f"{num_patches} patch positions do not form a square grid; pass old_grid=(rows, cols) explicitly."
            )
        old_grid = (side, side)
    old_grid, new_grid = tuple(int(x) for x in old_grid), tuple(int(x) for x in new_grid)
    if old_grid[0] * old_grid[1] != num_patches:
        raise ValueError(
            f"old_grid {old_grid} has {old_grid[0] * old_grid[1]} cells but the embeddings hold {num_patches} "
            "patch positions."
        )
    if old_grid == new_grid:
        return position_embeddings
    dim = position_embeddings.shape[-1]
    prefix, grid = position_embeddings[:, :num_prefix_tokens], position_embeddings[:, num_prefix_tokens:]
    image = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=new_grid, mode="bicubic", antialias=True, align_corners=False)
    grid = image.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(position_embeddings.dtype)
    return torch.cat([prefix, grid], dim=1)


def _pair(x: int | Sequence[int]) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, int) else (int(x[0]), int(x[1]))


def patch_grid(image_size: int | Sequence[int], patch_size: int | Sequence[int], where: str = "") -> tuple[int, int]:
    """``(rows, cols)`` of patches of an image, with an error when the image is not a multiple of the patch."""
    image, patch = _pair(image_size), _pair(patch_size)
    if image[0] % patch[0] or image[1] % patch[1]:
        raise ValueError(
            f"{where}image size {image} is not a multiple of the patch size {patch}; choose a motion image size "
            f"(max_frames, 5 * points_per_part) divisible by the checkpoint's patch size."
        )
    return image[0] // patch[0], image[1] // patch[1]


# ---------------------------------------------------------------------------
# transformers' ViT names, probed
# ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def hf_vit_layer_names() -> dict[str, str]:
    """Names of one `ViTModel` layer's modules in the installed transformers, keyed by role.

    Roles: ``prefix`` (format string of layer ``i``), ``norm1``, ``query``, ``key``, ``value``, ``out``, ``norm2``,
    ``fc1``, ``fc2``.
    """
    config = ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=16, image_size=16)
    with torch.device("meta"):
        keys = set(ViTModel(config, add_pooling_layer=False).state_dict())
    candidates = {
        "prefix": ["layers.{i}.", "encoder.layer.{i}."],
        "norm1": ["layernorm_before"],
        "query": ["attention.q_proj", "attention.attention.query"],
        "key": ["attention.k_proj", "attention.attention.key"],
        "value": ["attention.v_proj", "attention.attention.value"],
        "out": ["attention.o_proj", "attention.output.dense"],
        "norm2": ["layernorm_after"],
        "fc1": ["mlp.fc1", "intermediate.dense"],
        "fc2": ["mlp.fc2", "output.dense"],
    }
    prefix = next((p for p in candidates.pop("prefix") if f"{p.format(i=0)}layernorm_before.weight" in keys), None)
    if prefix is None:
        raise RuntimeError(f"Unrecognised transformers ViTModel layout: {sorted(keys)}")
    names = {"prefix": prefix}
    for role, options in candidates.items():
        found = [o for o in options if f"{prefix.format(i=0)}{o}.weight" in keys]
        if not found:
            raise RuntimeError(f"Unrecognised transformers ViTModel layout: no {role} among {sorted(keys)}")
        names[role] = found[0]
    return names


# ---------------------------------------------------------------------------
# timm -> transformers
# ---------------------------------------------------------------------------
@dataclass
class ViTConversion:
    """A ViT motion tower in transformers' layout.

    Attributes:
        config: the `ViTConfig` of the tower, ``image_size`` set to the (motion) image the position embeddings fit.
        state_dict: `ViTModel` weights (no pooler), without the final LayerNorm.
        final_norm: the checkpoint's final LayerNorm (``{"weight", "bias"}``), or `None` when it has none.
        final_norm_kind: ``"fc_norm"`` (applied after mean pooling: timm ``global_pool="avg"``), ``"norm"`` (over all
            tokens before pooling: timm ``"token"``, transformers ``layernorm``) or `None`.
        resampled_from: the checkpoint's patch grid when the position embeddings were resampled, else `None`.
        dropped: checkpoint keys deliberately not used (classifier heads, poolers).
        missing: tower keys the checkpoint did not provide (initialised fresh).
        source: where the weights came from (for messages).
    """

    config: ViTConfig
    state_dict: StateDict
    final_norm: StateDict | None = None
    final_norm_kind: str | None = None
    resampled_from: tuple[int, int] | None = None
    dropped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    source: str = ""

    def final_norm_for(self, motion_pooling: str) -> tuple[StateDict | None, str]:
        """The final-norm weights for a pooling (``"mean"`` -> ``motion_fc_norm``, ``"cls"`` -> ``layernorm``).

        Returns the weights (or `None`) and a short note on where they come from.
        """
        if self.final_norm is None:
            return None, "new (the checkpoint has no final LayerNorm)"
        native = "fc_norm" if motion_pooling == "mean" else "norm"
        if self.final_norm_kind == native:
            return self.final_norm, "from the checkpoint"
        where = "after the mean pooling" if motion_pooling == "mean" else "before the class-token pooling"
        return (
            self.final_norm,
            f"copied from the checkpoint's final LayerNorm ({self.final_norm_kind}), now applied {where}",
        )


def _block_indices(state_dict: Mapping[str, Tensor]) -> list[int]:
    return sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k))})


def timm_vit_config(
    state_dict: Mapping[str, Tensor],
    image_size: int | Sequence[int] | None = None,
    num_attention_heads: int | None = None,
    checkpoint_grid: Sequence[int] | None = None,
    layer_norm_eps: float = 1e-6,
    **config_kwargs,
) -> tuple[ViTConfig, tuple[int, int]]:
    """Infer the `ViTConfig` of a timm ``VisionTransformer`` state dict (keys without prefix).

    Sizes come from tensor shapes: hidden size (``cls_token``), depth (``blocks.*``), MLP size (``fc1``), patch
    size and channels (``patch_embed.proj``), ``qkv_bias`` (whether ``attn.qkv.bias`` exists). The number of heads
    cannot be read from shapes: it defaults to ``hidden_size // 64`` (true of timm's tiny/small/base/large/huge
    ViTs), otherwise pass ``num_attention_heads``. ``layer_norm_eps`` is timm's 1e-6.

    Args:
        state_dict: the timm ViT's weights.
        image_size: the image the converted tower will take; defaults to the checkpoint's own grid * patch.
        num_attention_heads: heads per layer, when not ``hidden_size // 64``.
        checkpoint_grid: the ``(rows, cols)`` of ``pos_embed`` when it is neither square nor the target grid.
        layer_norm_eps: epsilon of every LayerNorm.
        config_kwargs: any other `ViTConfig` field.

    Returns:
        The config (``image_size`` = the target image) and the checkpoint's patch grid.
    """
    required = ("cls_token", "pos_embed", "patch_embed.proj.weight")
    absent = [k for k in required if k not in state_dict]
    if absent:
        raise ValueError(f"Not a timm VisionTransformer state dict: missing {absent}.")
    cls_token, pos_embed = state_dict["cls_token"], state_dict["pos_embed"]
    hidden = int(cls_token.shape[-1])
    blocks = _block_indices(state_dict)
    if not blocks or blocks != list(range(len(blocks))):
        raise ValueError(f"timm state dict has blocks {blocks}; expected blocks.0 ... blocks.N-1 without gaps.")
    proj = state_dict["patch_embed.proj.weight"]
    if proj.ndim != 4:
        raise ValueError(f"patch_embed.proj.weight must be a Conv2d weight (D, C, ph, pw), got {tuple(proj.shape)}.")
    patch = (int(proj.shape[-2]), int(proj.shape[-1]))
    heads = num_attention_heads
    if heads is None:
        if hidden % 64:
            raise ValueError(
                f"Cannot infer the number of attention heads of a ViT with hidden size {hidden} (not a multiple "
                "of 64, the head size of timm's standard ViTs); pass num_attention_heads."
            )
        heads = hidden // 64
    if hidden % heads:
        raise ValueError(f"hidden size {hidden} is not divisible by num_attention_heads={heads}.")
    if pos_embed.ndim != 3 or pos_embed.shape[1] < 2 or pos_embed.shape[-1] != hidden:
        raise ValueError(f"pos_embed has shape {tuple(pos_embed.shape)}; expected (1, 1 + patches, {hidden}).")
    num_patches = int(pos_embed.shape[1]) - 1
    target_grid = None if image_size is None else patch_grid(image_size, patch, "the motion ")
    if checkpoint_grid is not None:
        old_grid = (int(checkpoint_grid[0]), int(checkpoint_grid[1]))
    elif target_grid is not None and target_grid[0] * target_grid[1] == num_patches:
        old_grid = target_grid
    elif math.isqrt(num_patches) ** 2 == num_patches:
        old_grid = (math.isqrt(num_patches),) * 2
    elif math.isqrt(num_patches + 1) ** 2 == num_patches + 1:
        raise ValueError(
            f"pos_embed holds {num_patches + 1} positions, a square grid without a class-token position (timm "
            "`no_embed_class=True`); transformers' ViT adds a position to the class token, so this checkpoint "
            "cannot be converted exactly."
        )
    else:
        raise ValueError(
            f"pos_embed holds {num_patches} patch positions, which is neither a square grid nor the motion grid "
            f"{target_grid}; pass image_size=(rows * {patch[0]}, cols * {patch[1]}) matching the checkpoint, or "
            "checkpoint_grid=(rows, cols)."
        )
    if old_grid[0] * old_grid[1] != num_patches:
        raise ValueError(f"checkpoint_grid {old_grid} does not hold the checkpoint's {num_patches} patch positions.")
    if target_grid is None:
        target_grid = old_grid
    fc1 = state_dict.get(f"blocks.{blocks[0]}.mlp.fc1.weight")
    if fc1 is None:
        raise ValueError("timm state dict lacks blocks.0.mlp.fc1.weight (only the standard Mlp block is supported).")
    image = (target_grid[0] * patch[0], target_grid[1] * patch[1])
    kwargs = dict(
        hidden_size=hidden,
        num_hidden_layers=len(blocks),
        num_attention_heads=heads,
        intermediate_size=int(fc1.shape[0]),
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=layer_norm_eps,
        image_size=list(image),
        patch_size=patch[0] if patch[0] == patch[1] else list(patch),
        num_channels=int(proj.shape[1]),
        qkv_bias=f"blocks.{blocks[0]}.attn.qkv.bias" in state_dict,
    )
    kwargs.update(config_kwargs)
    return ViTConfig(**kwargs), old_grid


def convert_timm_vit_state_dict(
    state_dict: Mapping[str, Tensor],
    image_size: int | Sequence[int] | None = None,
    num_attention_heads: int | None = None,
    checkpoint_grid: Sequence[int] | None = None,
    layer_norm_eps: float = 1e-6,
    source: str = "timm state dict",
) -> ViTConversion:
    """Convert a timm ``VisionTransformer`` state dict into transformers' `ViTModel` layout.

    Position embeddings are resampled once when ``image_size`` asks for another patch grid than the checkpoint's
    (see :func:`resample_position_embeddings`). Keys of timm features that `ViTModel` cannot express (LayerScale,
    QK-norm, register tokens, pre-norm, attention pooling...) raise a `ValueError` listing them; classifier
    ``head.*`` keys are dropped and listed in ``dropped``.

    Args:
        state_dict: the timm ViT's weights, keys without prefix (see :func:`find_timm_vit_prefix`).
        image_size: image the tower will take (e.g. ``(224, 80)``); defaults to the checkpoint's.
        num_attention_heads: heads per layer when not ``hidden_size // 64``.
        checkpoint_grid: the checkpoint's ``(rows, cols)`` when ``pos_embed`` is neither square nor the target.
        layer_norm_eps: LayerNorm epsilon (timm: 1e-6).
        source: name of the checkpoint in messages.
    """
    config, old_grid = timm_vit_config(
        state_dict, image_size, num_attention_heads, checkpoint_grid, layer_norm_eps=layer_norm_eps
    )
    hidden = config.hidden_size
    names = hf_vit_layer_names()
    out: StateDict = {}
    used: set[str] = set()
    dropped: list[str] = []

    def take(key: str) -> Tensor:
        used.add(key)
        return state_dict[key]

    out["embeddings.cls_token"] = take("cls_token")
    new_grid = patch_grid(config.image_size, config.patch_size)
    out["embeddings.position_embeddings"] = resample_position_embeddings(take("pos_embed"), new_grid, old_grid)
    out["embeddings.patch_embeddings.projection.weight"] = take("patch_embed.proj.weight")
    if "patch_embed.proj.bias" in state_dict:
        out["embeddings.patch_embeddings.projection.bias"] = take("patch_embed.proj.bias")
    else:  # timm's bias-free patch embedding (pre-norm CLIP-style models) == a zero bias
        out["embeddings.patch_embeddings.projection.bias"] = torch.zeros(hidden, dtype=config_dtype(state_dict))

    simple = {"norm1": "norm1", "attn.proj": "out", "norm2": "norm2", "mlp.fc1": "fc1", "mlp.fc2": "fc2"}
    for i in range(config.num_hidden_layers):
        prefix = names["prefix"].format(i=i)
        for timm_name, role in simple.items():
            for param in ("weight", "bias"):
                key = f"blocks.{i}.{timm_name}.{param}"
                if key not in state_dict:
                    raise ValueError(f"{source}: missing {key!r} (block {i} is incomplete).")
                out[f"{prefix}{names[role]}.{param}"] = take(key)
        params = ("weight", "bias") if config.qkv_bias else ("weight",)
        for param in params:
            key = f"blocks.{i}.attn.qkv.{param}"
            if key not in state_dict:
                raise ValueError(f"{source}: missing {key!r} (block {i} is incomplete).")
            qkv = take(key)
            if qkv.shape[0] != 3 * hidden:
                raise ValueError(
                    f"{source}: {key} has {qkv.shape[0]} rows; expected 3 * {hidden} (query, key, value)."
                )
            for role, part in zip(("query", "key", "value"), qkv.chunk(3, dim=0)):
                out[f"{prefix}{names[role]}.{param}"] = part.clone()

    final_norm, final_kind = None, None
    if "fc_norm.weight" in state_dict:
        final_norm = {"weight": take("fc_norm.weight"), "bias": take("fc_norm.bias")}
        final_kind = "fc_norm"
        if "norm.weight" in state_dict:
            raise ValueError(f"{source}: has both `norm` and `fc_norm`; a ViT has one final LayerNorm.")
    elif "norm.weight" in state_dict:
        final_norm = {"weight": take("norm.weight"), "bias": take("norm.bias")}
        final_kind = "norm"
    for key in state_dict:
        if key.startswith(("head.", "head_dist.", "pre_logits.")) and key not in used:
            used.add(key)
            dropped.append(key)
    unsupported = sorted(set(state_dict) - used)
    if unsupported:
        raise ValueError(
            f"{source}: keys that transformers' ViTModel cannot represent (LayerScale, QK-norm, register tokens, "
            f"attention pooling or another non-standard timm ViT feature): {_preview(unsupported)}. Only plain "
            "timm VisionTransformer checkpoints (class token, fused qkv, GELU MLP) can be converted."
        )
    resampled = tuple(old_grid) if tuple(old_grid) != tuple(new_grid) else None
    return ViTConversion(config, out, final_norm, final_kind, resampled, dropped, [], source)


def config_dtype(state_dict: Mapping[str, Tensor]) -> torch.dtype:
    """dtype of a state dict's first floating tensor (float32 when none)."""
    return next((v.dtype for v in state_dict.values() if v.is_floating_point()), torch.float32)


def _preview(keys: Sequence[str], limit: int = 20) -> str:
    keys = list(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


# ---------------------------------------------------------------------------
# loading a motion tower
# ---------------------------------------------------------------------------
@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' own load reports (callers report once, with everything that matters)."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


def _hub_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in _HUB_KWARGS}


def _read_json(path_or_repo: str, filename: str, **kwargs) -> dict | list | None:
    """A JSON file of a local folder or Hub repo, or `None` when it has none."""
    if os.path.isdir(path_or_repo):
        path = os.path.join(path_or_repo, kwargs.get("subfolder") or "", filename)
        path = path if os.path.isfile(path) else None
    else:
        path = cached_file(
            path_or_repo,
            filename,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **_hub_kwargs(kwargs),
        )
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _is_timm_config(config: Any) -> bool:
    return isinstance(config, dict) and "architecture" in config and "model_type" not in config


def load_timm_checkpoint(name_or_path: str | os.PathLike, **kwargs) -> tuple[StateDict, dict | None]:
    """State dict (and timm ``config.json`` when there is one) of a timm checkpoint file, folder or Hub repo."""
    name_or_path = os.fspath(name_or_path)
    if os.path.isfile(name_or_path):
        return unwrap_state_dict(load_state_dict_file(name_or_path, "timm checkpoint"), name_or_path), None
    config = _read_json(name_or_path, "config.json", **kwargs)
    for filename in TIMM_WEIGHT_FILES:
        if os.path.isdir(name_or_path):
            path = os.path.join(name_or_path, filename)
            path = path if os.path.isfile(path) else None
        else:
            path = cached_file(
                name_or_path,
                filename,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
                **_hub_kwargs(kwargs),
            )
        if path is not None:
            return unwrap_state_dict(load_state_dict_file(path, "timm checkpoint"), path), config
    raise ValueError(
        f"No timm weights found in {name_or_path!r} (looked for {list(TIMM_WEIGHT_FILES)}); pass a timm Hub id "
        "(`timm/...`), a folder holding one of these files, or a checkpoint file."
    )


def _timm_checkpoint_grid(config: dict | None, patch: tuple[int, int]) -> tuple[int, int] | None:
    """The patch grid a timm ``config.json`` declares (``pretrained_cfg.input_size``), if any."""
    if not config:
        return None
    size = (config.get("pretrained_cfg") or {}).get("input_size")
    if not size or len(size) != 3:
        return None
    return int(size[1]) // patch[0], int(size[2]) // patch[1]


def load_motion_tower(
    name_or_path: str | os.PathLike,
    image_size: Sequence[int] = (224, 80),
    num_attention_heads: int | None = None,
    **kwargs,
) -> ViTConversion:
    """Load a pretrained ViT as a motion tower whose position embeddings fit ``image_size``.

    ``name_or_path`` may be:

    - a transformers ViT folder or Hub id (``model_type`` ``"vit"``, e.g. ``google/vit-base-patch16-224-in21k``):
      loaded with ``ViTModel.from_pretrained`` (float32); the config (``layer_norm_eps`` included) comes from
      the checkpoint;
    - a timm Hub id (``timm/...``) or a folder with timm's ``config.json`` and weights;
    - a timm checkpoint file (``.safetensors``, ``.bin``, ``.pth``, ``.pt``; pickles are read with
      ``weights_only=True``), e.g. an original MotionPatches checkpoint (the ViT is found by its keys).

    Position embeddings are resampled once from the checkpoint's grid to the motion grid (class position kept);
    a grid that already matches is left untouched. ``kwargs`` are Hub options (``revision``, ``token``,
    ``cache_dir``, ``local_files_only``, ``subfolder``).
    """
    name_or_path = os.fspath(name_or_path)
    config_json = None if os.path.isfile(name_or_path) else _read_json(name_or_path, "config.json", **kwargs)
    if os.path.isfile(name_or_path) or name_or_path.startswith("timm/") or _is_timm_config(config_json):
        raw, timm_config = load_timm_checkpoint(name_or_path, **kwargs)
        prefix = find_timm_vit_prefix(raw)
        raw = _strip_prefix(raw, prefix) if prefix else raw
        patch = tuple(raw["patch_embed.proj.weight"].shape[-2:]) if "patch_embed.proj.weight" in raw else (16, 16)
        if num_attention_heads is None and timm_config:
            num_attention_heads = (timm_config.get("model_args") or {}).get("num_heads")
        return convert_timm_vit_state_dict(
            raw,
            image_size=image_size,
            num_attention_heads=num_attention_heads,
            checkpoint_grid=_timm_checkpoint_grid(timm_config, patch),
            source=f"timm checkpoint {name_or_path!r}",
        )
    if config_json is None:
        raise ValueError(
            f"{name_or_path!r} is neither a file, a local folder with a config.json, nor a reachable Hub repo; "
            "pass a transformers ViT folder/Hub id, a timm Hub id (`timm/...`) or a timm checkpoint file."
        )
    if config_json.get("model_type") != "vit":
        raise ValueError(
            f"The motion tower must be a ViT checkpoint (model_type 'vit'); {name_or_path!r} has model_type "
            f"{config_json.get('model_type')!r}."
        )
    load_kwargs = {"dtype": torch.float32, **kwargs}
    with quiet_transformers():
        vit, info = ViTModel.from_pretrained(
            name_or_path, add_pooling_layer=False, output_loading_info=True, **load_kwargs
        )
    ckpt_config: ViTConfig = vit.config
    old_grid = patch_grid(ckpt_config.image_size, ckpt_config.patch_size, "the checkpoint's ")
    new_grid = patch_grid(image_size, ckpt_config.patch_size, "the motion ")
    state = dict(vit.state_dict())
    state["embeddings.position_embeddings"] = resample_position_embeddings(
        state["embeddings.position_embeddings"], new_grid, old_grid
    )
    final_norm = {p: state.pop(f"layernorm.{p}") for p in ("weight", "bias") if f"layernorm.{p}" in state}
    config_dict = ckpt_config.to_dict()
    for key in ("_name_or_path", "architectures", "transformers_version", "dtype", "torch_dtype"):
        config_dict.pop(key, None)
    config_dict["image_size"] = [int(image_size[0]), int(image_size[1])]
    has_final_norm = bool(final_norm) and not {"layernorm.weight", "layernorm.bias"} & set(info["missing_keys"])
    missing = sorted(k for k in info["missing_keys"] if not k.startswith(("pooler.", "layernorm.")))
    return ViTConversion(
        config=ViTConfig(**config_dict),
        state_dict=state,
        final_norm=final_norm if has_final_norm else None,
        final_norm_kind="norm" if has_final_norm else None,
        resampled_from=old_grid if old_grid != new_grid else None,
        dropped=sorted(info["unexpected_keys"]),
        missing=missing,
        source=f"transformers ViT {name_or_path!r}",
    )


# ---------------------------------------------------------------------------
# loading a text tower
# ---------------------------------------------------------------------------
def sentence_transformers_pooling(name_or_path: str | os.PathLike, **kwargs) -> tuple[str | None, str]:
    """Pooling and transformer subfolder of a sentence-transformers model (``modules.json``), else ``(None, "")``.

    Only ``cls`` and ``mean`` poolings are supported; others (max, last token...) raise a `ValueError` asking for
    an explicit ``text_pooling``.
    """
    name_or_path = os.fspath(name_or_path)
    modules = _read_json(name_or_path, "modules.json", **{k: v for k, v in kwargs.items() if k != "subfolder"})
    if not isinstance(modules, list):
        return None, ""
    subfolder, pooling = "", None
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith(".Transformer"):
            subfolder = module.get("path", "") or ""
        elif kind.endswith(".Pooling"):
            path = "/".join(p for p in (module.get("path", ""), "config.json") if p)
            cfg = _read_json(name_or_path, path, **{k: v for k, v in kwargs.items() if k != "subfolder"}) or {}
            modes = sorted(k for k, v in cfg.items() if k.startswith("pooling_mode") and v is True)
            mapped = {_ST_POOLING_MODES.get(m) for m in modes}
            if len(modes) != 1 or None in mapped:
                raise ValueError(
                    f"{name_or_path!r} is a sentence-transformers model pooled with {modes or 'no mode'}; "
                    "MotionPatchModel supports 'cls' and 'mean' pooling. Pass text_pooling='mean', 'cls' or "
                    "'pooler' explicitly to choose one."
                )
            pooling = mapped.pop()
    return pooling, subfolder


def default_text_pooling(config: Any) -> str:
    """``"pooler"`` for CLIP-like text models (end-of-text token), ``"cls"`` otherwise (DistilBERT/BERT/RoBERTa)."""
    return "pooler" if getattr(config, "model_type", None) in POOLER_TEXT_MODEL_TYPES else "cls"


def load_text_tower(
    name_or_path: str | os.PathLike, text_pooling: str | None = None, **kwargs
) -> tuple[PreTrainedModel, str, str]:
    """Load a pretrained text encoder and choose its pooling.

    Any `AutoModel` text encoder loads; for a composite vision-language folder (a `CLIPConfig`...) its text model
    is loaded (e.g. `CLIPTextModel`). Pooling, unless given: the sentence-transformers ``Pooling`` module when the
    folder has a ``modules.json`` (MiniLM: ``"mean"``), ``"pooler"`` for CLIP text models, ``"cls"`` otherwise.

    Returns:
        The model (float32 unless ``dtype`` is given), the pooling, and a note on where the pooling came from.
    """
    name_or_path = os.fspath(name_or_path)
    try:
        st_pooling, subfolder = sentence_transformers_pooling(name_or_path, **kwargs)
    except ValueError:
        if text_pooling is None:
            raise
        st_pooling, subfolder = None, ""
    load_kwargs = {"dtype": torch.float32, **kwargs}
    if subfolder and "subfolder" not in load_kwargs:
        load_kwargs["subfolder"] = subfolder
    with quiet_transformers():
        config = AutoConfig.from_pretrained(name_or_path, **_hub_kwargs(load_kwargs))
        text_config = getattr(config, "text_config", None)
        if isinstance(text_config, PreTrainedConfig):  # a composite vision-language config (CLIP, SigLIP...)
            from transformers.models.auto.modeling_auto import MODEL_MAPPING

            model_class = MODEL_MAPPING[type(text_config)]
            model = model_class.from_pretrained(name_or_path, **load_kwargs)
        else:
            model = AutoModel.from_pretrained(name_or_path, **load_kwargs)
    if text_pooling is not None:
        return model, text_pooling, "given"
    if st_pooling is not None:
        return model, st_pooling, "sentence-transformers Pooling module"
    pooling = default_text_pooling(model.config)
    return model, pooling, f"default for model_type {model.config.model_type!r}"


__all__ = [
    "ViTConversion",
    "convert_timm_vit_state_dict",
    "default_text_pooling",
    "find_timm_vit_prefix",
    "hf_vit_layer_names",
    "load_motion_tower",
    "load_state_dict_file",
    "load_text_tower",
    "load_timm_checkpoint",
    "patch_grid",
    "resample_position_embeddings",
    "sentence_transformers_pooling",
    "timm_vit_config",
    "unwrap_state_dict",
]
