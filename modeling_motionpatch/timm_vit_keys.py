"""timm ``VisionTransformer`` weights in transformers' `ViTModel` layout: config, key mapping, position embeddings.

Everything here works on plain state dicts with torch: timm itself is never imported. The timm layout is
read from these facts about timm's ``VisionTransformer`` (pre-norm blocks, fused ``qkv`` projection):
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

Copied with the remote code of saved folders (through :mod:`modeling_motionpatch.pretrained_towers`), so it imports
only torch, transformers, safetensors and huggingface_hub.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from transformers import ViTConfig, ViTModel

from .checkpoint_files import StateDict, Tensor, preview_keys


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
def resize_patch_embedding(weight: Tensor, new_size: Sequence[int]) -> Tensor:
    """Resize a patch-embedding convolution ``(out, channels, h, w)`` to ``new_size`` patches, keeping its response.

    FlexiViT's pseudo-inverse resize (Beyer et al., CVPR 2023): with ``B`` the bilinear resize of an ``h x w`` patch
    to ``new_size`` (a linear map), the new filters ``w'`` solve ``B^T w' = w`` with the least norm, so that a
    patch upsampled to the new size gives the token the old filters gave the original patch. Computed in float64.
    """
    old = tuple(int(s) for s in weight.shape[-2:])
    new = tuple(int(s) for s in new_size)
    if old == new:
        return weight
    basis = torch.eye(old[0] * old[1], dtype=torch.float64).reshape(-1, 1, *old)
    resize = torch.nn.functional.interpolate(basis, size=new, mode="bilinear", align_corners=False, antialias=False)
    resize = resize.reshape(old[0] * old[1], -1)  # B^T: (old pixels, new pixels)
    flat = weight.double().reshape(-1, old[0] * old[1]).T  # (old pixels, out * channels)
    resized = torch.linalg.pinv(resize) @ flat  # (new pixels, out * channels)
    return resized.T.reshape(*weight.shape[:2], *new).to(weight.dtype)


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
            f"attention pooling or another non-standard timm ViT feature): {preview_keys(unsupported)}. Only plain "
            "timm VisionTransformer checkpoints (class token, fused qkv, GELU MLP) can be converted."
        )
    resampled = tuple(old_grid) if tuple(old_grid) != tuple(new_grid) else None
    return ViTConversion(config, out, final_norm, final_kind, resampled, dropped, [], source)


def config_dtype(state_dict: Mapping[str, Tensor]) -> torch.dtype:
    """dtype of a state dict's first floating tensor (float32 when none)."""
    return next((v.dtype for v in state_dict.values() if v.is_floating_point()), torch.float32)



__all__ = [
    "ViTConversion",
    "config_dtype",
    "convert_timm_vit_state_dict",
    "find_timm_vit_prefix",
    "hf_vit_layer_names",
    "patch_grid",
    "resample_position_embeddings",
    "resize_patch_embedding",
    "timm_vit_config",
]
