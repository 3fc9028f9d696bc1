"""A :class:`MotionPatchModel` from pretrained towers: a transformers or timm ViT (or DINOv2) and a text encoder.

:func:`load_motion_tower` reads a timm checkpoint (a local file or folder, or a Hub repository) safely
(:mod:`modeling_motionpatch.checkpoint_files`) and maps it into transformers' `ViTModel`
(:mod:`modeling_motionpatch.timm_vit_keys`); :func:`load_text_tower` loads
any transformers text encoder with its sentence pooling.

:func:`from_motion_text_pretrained` joins the two into a :class:`MotionPatchModel` (as transformers'
``VisionTextDualEncoderModel.from_vision_text_pretrained`` does). The model files never import this module: it is
not part of a saved folder's code.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    Dinov2Model,
    PreTrainedConfig,
    PreTrainedModel,
    ViTConfig,
    ViTModel,
)
from transformers.utils import cached_file
from transformers.utils import logging as hf_logging

from .checkpoint_files import (
    StateDict,
    load_state_dict_file,
    strip_prefix,
    unwrap_state_dict,
)
from .configuration_motionpatch import DEFAULT_MOTION_CONFIG
from .modeling_motionpatch import MotionPatchModel
from .timm_vit_keys import (
    ViTConversion,
    convert_timm_vit_state_dict,
    find_timm_vit_prefix,
    patch_grid,
    resample_position_embeddings,
    resize_patch_embedding,
)

#: file names tried, in order, for a timm checkpoint on the Hub
TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
#: text model types whose own ``pooler_output`` is the sentence embedding (end-of-text token)
POOLER_TEXT_MODEL_TYPES = ("clip_text_model", "clip", "siglip_text_model", "siglip", "xclip_text_model")
_ST_POOLING_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean"}


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


def _find_file(path_or_repo: str, filename: str, local_subfolder: str, kwargs: Mapping[str, Any]) -> str | None:
    """The path of ``filename`` in a local folder (under ``local_subfolder``) or a Hub repo (``kwargs``: the
    `cached_file` options), or `None` when absent."""
    if os.path.isdir(path_or_repo):
        path = os.path.join(path_or_repo, local_subfolder, filename)
        return path if os.path.isfile(path) else None
    return cached_file(
        path_or_repo,
        filename,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **_hub_kwargs(kwargs),
    )


def _read_json(path_or_repo: str, filename: str, **kwargs) -> dict | list | None:
    """A JSON file of a local folder or Hub repo, or `None` when it has none."""
    path = _find_file(path_or_repo, filename, kwargs.get("subfolder") or "", kwargs)
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
        path = _find_file(name_or_path, filename, "", kwargs)
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


#: transformers motion towers loadable from a folder / Hub id: ``model_type`` -> (model class, from_pretrained kwargs)
TRANSFORMERS_MOTION_TOWERS = {"vit": (ViTModel, {"add_pooling_layer": False}), "dinov2": (Dinov2Model, {})}


def load_motion_tower(
    name_or_path: str | os.PathLike,
    image_size: Sequence[int] = (224, 80),
    num_attention_heads: int | None = None,
    patch_size: int | None = None,
    **kwargs,
) -> ViTConversion:
    """Load a pretrained ViT as a motion tower whose position embeddings fit ``image_size``.

    ``name_or_path`` may be:

    - a transformers ViT folder or Hub id (``model_type`` ``"vit"``, e.g. ``google/vit-base-patch16-224-in21k``):
      loaded with ``ViTModel.from_pretrained`` (float32); the config (``layer_norm_eps`` included) comes from
      the checkpoint; a DINOv2 one (``model_type`` ``"dinov2"``, e.g. a folder written by
      ``motionpatch-convert-dinov2-onnx``) likewise with ``Dinov2Model``;
    - a timm Hub id (``timm/...``) or a folder with timm's ``config.json`` and weights;
    - a timm checkpoint file (``.safetensors``, ``.bin``, ``.pth``, ``.pt``; pickles are read with
      ``weights_only=True``), e.g. an original MotionPatches checkpoint (the ViT is found by its keys).

    Position embeddings are resampled once from the checkpoint's grid to the motion grid (class position kept);
    a grid that already matches is left untouched. ``patch_size`` (transformers towers) resizes the patch embedding
    first (:func:`~.timm_vit_keys.resize_patch_embedding`, e.g. DINOv2's 14 to 16). ``kwargs`` are Hub options (``revision``, ``token``,
    ``cache_dir``, ``local_files_only``, ``subfolder``).
    """
    name_or_path = os.fspath(name_or_path)
    config_json = None if os.path.isfile(name_or_path) else _read_json(name_or_path, "config.json", **kwargs)
    if os.path.isfile(name_or_path) or name_or_path.startswith("timm/") or _is_timm_config(config_json):
        raw, timm_config = load_timm_checkpoint(name_or_path, **kwargs)
        prefix = find_timm_vit_prefix(raw)
        raw = strip_prefix(raw, prefix) if prefix else raw
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
    model_type = config_json.get("model_type")
    if model_type not in TRANSFORMERS_MOTION_TOWERS:
        raise ValueError(
            "The motion tower must be a ViT (model_type 'vit') or DINOv2 (model_type 'dinov2') checkpoint; "
            f"{name_or_path!r} has model_type {model_type!r}. Convert other checkpoints first (e.g. "
            "motionpatch-convert-dinov2-onnx for a DINOv2 ONNX file)."
        )
    load_kwargs = {"dtype": torch.float32, **kwargs}
    tower_class, tower_kwargs = TRANSFORMERS_MOTION_TOWERS[model_type]
    with quiet_transformers():
        vit, info = tower_class.from_pretrained(name_or_path, output_loading_info=True, **tower_kwargs, **load_kwargs)
    ckpt_config: ViTConfig = vit.config
    old_grid = patch_grid(ckpt_config.image_size, ckpt_config.patch_size, "the checkpoint's ")
    state = dict(vit.state_dict())
    if patch_size is not None and int(patch_size) != ckpt_config.patch_size:
        key = "embeddings.patch_embeddings.projection.weight"
        state[key] = resize_patch_embedding(state[key], (int(patch_size), int(patch_size)))
        ckpt_config.patch_size = int(patch_size)
    new_grid = patch_grid(image_size, ckpt_config.patch_size, "the motion ")
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
        config=type(ckpt_config)(**config_dict),
        state_dict=state,
        final_norm=final_norm if has_final_norm else None,
        final_norm_kind="norm" if has_final_norm else None,
        resampled_from=old_grid if old_grid != new_grid else None,
        dropped=sorted(info["unexpected_keys"]),
        missing=missing,
        source=f"transformers {type(vit).__name__} {name_or_path!r}",
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


# ---------------------------------------------------------------------------
# a dual encoder from two pretrained towers
# ---------------------------------------------------------------------------
def from_motion_text_pretrained(
    motion_model_name_or_path: str,
    text_model_name_or_path: str,
    *,
    motion_image_size: tuple[int, int] | None = None,
    motion_num_attention_heads: int | None = None,
    motion_patch_size: int | None = None,
    motion_kwargs: dict[str, Any] | None = None,
    text_kwargs: dict[str, Any] | None = None,
    model_class: type[PreTrainedModel] | None = None,
    **config_overrides,
) -> PreTrainedModel:
    r"""Build a :class:`MotionPatchModel` (or ``model_class``) from a pretrained ViT and a pretrained text encoder (like
    ``VisionTextDualEncoderModel.from_vision_text_pretrained``); projections and logit scale are new.

    Args:
        motion_model_name_or_path: a transformers ViT or DINOv2 folder or Hub id
            (``google/vit-base-patch16-224-in21k``, a folder of ``motionpatch-convert-dinov2-onnx``),
            a timm Hub id (``timm/...``) or a timm checkpoint file (``.safetensors``/``.bin``/``.pth``). Its
            position embeddings are resampled once to the motion grid (class position kept, bicubic with
            antialiasing); ``layer_norm_eps`` and sizes come from the checkpoint.
        text_model_name_or_path: any `AutoModel` text encoder folder or Hub id (DistilBERT, BERT, RoBERTa,
            sentence-transformers MiniLM, or a CLIP folder whose `CLIPTextModel` is used).
        motion_image_size: ``(max_frames, 5 * points_per_part)``; defaults to ``(224, 80)``.
        motion_num_attention_heads: heads of a timm ViT whose hidden size is not 64 x heads.
        motion_patch_size: resize a transformers tower's patch embedding to this patch size (pseudo-inverse resize),
            e.g. 16 for a DINOv2 ViT-S/14 read as 16-point parts and 16-frame rows.
        motion_kwargs, text_kwargs: extra ``from_pretrained``/Hub options of each tower (``revision``, ``token``...).
        config_overrides: `MotionPatchConfig` fields (``projection_dim``, ``motion_pooling``, ``text_pooling``...).
            ``text_pooling`` defaults per family: the sentence-transformers Pooling module when present (MiniLM:
            ``"mean"``), ``"pooler"`` for CLIP, ``"cls"`` otherwise.

    Emits one warning listing the newly initialised weights (train them before use).
    """
    image_size = tuple(motion_image_size or DEFAULT_MOTION_CONFIG["image_size"])
    motion = load_motion_tower(motion_model_name_or_path, image_size, motion_num_attention_heads,
                               patch_size=motion_patch_size, **(motion_kwargs or {}))
    text_model, text_pooling, pooling_note = load_text_tower(
        text_model_name_or_path, config_overrides.pop("text_pooling", None), **(text_kwargs or {})
    )
    cls = model_class or MotionPatchModel
    config = cls.config_class.from_motion_text_configs(
        motion.config, text_model.config, text_pooling=text_pooling, **config_overrides
    )
    model = cls(config, text_model=text_model)
    incompatible = model.motion_model.load_state_dict(motion.state_dict, strict=False)
    final_keys = {"layernorm.weight", "layernorm.bias"}
    if incompatible.unexpected_keys or set(incompatible.missing_keys) - final_keys - set(motion.missing):
        raise ValueError(
            f"{motion.source} does not fit the motion ViT: missing {incompatible.missing_keys}, unexpected "
            f"{incompatible.unexpected_keys}."
        )
    norm_weights, norm_note = motion.final_norm_for(config.motion_pooling)
    norm_module = model.motion_fc_norm if config.motion_pooling == "mean" else model.motion_model.layernorm
    if norm_weights is not None:
        with torch.no_grad():
            norm_module.weight.copy_(norm_weights["weight"])
            norm_module.bias.copy_(norm_weights["bias"])
    head = "MLP" if config.projection_head == "mlp" else "linear"
    new = [
        f"motion_projection.*, text_projection.* ({head} heads, {config.projection_dim} dims)",
        f"logit_scale (= {config.logit_scale_init_value:.4f}, learnable={config.learnable_logit_scale})",
    ]
    if norm_weights is None:
        new.append("motion_fc_norm" if config.motion_pooling == "mean" else "motion_model.layernorm")
    new += [f"motion_model.{k} (absent from the checkpoint)" for k in motion.missing]
    grid = patch_grid(image_size, motion.config.patch_size)
    resampled = (
        f"resampled from a {motion.resampled_from[0]}x{motion.resampled_from[1]} to a {grid[0]}x{grid[1]} grid"
        if motion.resampled_from
        else f"kept (already a {grid[0]}x{grid[1]} grid)"
    )
    loaded = [
        f"motion tower: {motion.source}; position embeddings {resampled}",
        f"final LayerNorm ({'motion_fc_norm' if config.motion_pooling == 'mean' else 'layernorm'}): {norm_note}",
        f"text tower: {type(text_model).__name__} from {str(text_model_name_or_path)!r}, "
        f"text_pooling={text_pooling!r} ({pooling_note})",
    ]
    if motion.dropped:
        loaded.append(f"checkpoint weights not used: {', '.join(motion.dropped)}")
    warnings.warn(
        "from_motion_text_pretrained: newly initialised weights, train them before use:\n"
        + "".join(f"  - {line}\n" for line in new)
        + "Loaded:\n"
        + "".join(f"  - {line}\n" for line in loaded),
        UserWarning,
        stacklevel=2,
    )
    return model


__all__ = ["default_text_pooling", "from_motion_text_pretrained", "load_motion_tower", "load_text_tower", "load_timm_checkpoint", "quiet_transformers", "sentence_transformers_pooling"]
