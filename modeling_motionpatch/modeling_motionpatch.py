"""MotionPatch: a ViT over motion patches and a text encoder, trained contrastively (CLIP-style)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel, ViTModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_motionpatch import (
    MotionPatchConfig,
    MotionPatchInteractionConfig,
    MotionPatchLoadError,
    MotionPatchWeightsError,
    _named_file,
)


# ---------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------
def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row against the diagonal."""
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))


def motion_text_contrastive_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: mean of the text->motion and motion->text cross-entropies, computed in float32."""
    logits = logits_per_text.float()
    return (contrastive_loss(logits) + contrastive_loss(logits.t())) / 2.0


def paired_contrastive_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """:func:`motion_text_contrastive_loss` of a forward pass with ``return_loss=True``, which needs paired inputs."""
    if logits_per_text.shape[0] != logits_per_text.shape[1]:
        raise ValueError(
            f"return_loss=True needs paired inputs: got {logits_per_text.shape[0]} texts and "
            f"{logits_per_text.shape[1]} motions."
        )
    return motion_text_contrastive_loss(logits_per_text)


def similarity_logits(
    text_embeds: torch.Tensor, motion_embeds: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """``exp(logit_scale) * text @ motion.T`` in float32, also under autocast. Returns ``logits_per_text``."""
    device_type = text_embeds.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        return logit_scale.float().exp() * (text_embeds.float() @ motion_embeds.float().t())


# ---------------------------------------------------------------------------
# outputs and heads
# ---------------------------------------------------------------------------
@dataclass
class MotionPatchOutput(ModelOutput):
    """Output of :class:`MotionPatchModel`.

    Args:
        loss: symmetric contrastive loss (with ``return_loss=True``), float32.
        logits_per_motion: ``(motions, texts)`` scaled cosine similarities, float32.
        logits_per_text: ``(texts, motions)``, the transpose.
        text_embeds: ``(texts, projection_dim)`` L2-normalised text embeddings.
        motion_embeds: ``(motions, projection_dim)`` L2-normalised motion embeddings.
        text_model_output: the text encoder's output.
        motion_model_output: the ViT's output.

    The fields and their order are `CLIPOutput`'s with ``image``/``vision`` -> ``motion``.
    """

    loss: torch.FloatTensor | None = None
    logits_per_motion: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    motion_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutput | None = None
    motion_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(
            self[k] if k not in ("motion_model_output", "text_model_output") else getattr(self, k).to_tuple()
            for k in self.keys()
        )


class MotionPatchProjectionHead(nn.Module):
    """The reference projection head: ``p = Linear(x); y = Linear(GELU(p)); y = Dropout(y) + p; LayerNorm(y)``."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float):
        super().__init__()
        self.projection = nn.Linear(in_dim, out_dim)
        self.fc = nn.Linear(out_dim, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.projection(x)
        y = self.fc(F.gelu(projected))
        y = self.dropout(y) + projected
        return self.layer_norm(y)


class MotionPatchLinearHead(nn.Module):
    """A bias-free linear projection (CLIP's head)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.projection = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x)


def build_projection_head(config: MotionPatchConfig, in_dim: int) -> nn.Module:
    cls = MotionPatchProjectionHead if config.projection_head == "mlp" else MotionPatchLinearHead
    return cls(in_dim, config.projection_dim, config.projection_dropout)


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _local_folder(pretrained_model_name_or_path) -> Path | None:
    folder = Path(str(pretrained_model_name_or_path)).expanduser()
    return folder if folder.is_dir() else None


def _unreadable_safetensors(pretrained_model_name_or_path) -> list[str]:
    """The ``.safetensors`` files of a local folder whose header safetensors cannot read (truncated, corrupt)."""
    from safetensors import SafetensorError, safe_open

    folder = _local_folder(pretrained_model_name_or_path)
    bad = []
    for path in sorted(folder.glob("*.safetensors")) if folder else []:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except SafetensorError:
            bad.append(str(path))
    return bad


def _pickle_only_weights(pretrained_model_name_or_path) -> list[str]:
    """The pickled weight files of a local folder that has no ``.safetensors`` file (names only, never opened)."""
    folder = _local_folder(pretrained_model_name_or_path)
    if folder is None or any(folder.glob("*.safetensors")):
        return []
    return [str(p) for p in sorted(folder.iterdir()) if p.suffix in _PICKLE_SUFFIXES and p.is_file()]


def _check_loading_info(info: dict, pretrained_model_name_or_path) -> None:
    """Raise :class:`MotionPatchWeightsError` for the missing / unexpected keys of transformers' loading report."""
    missing, unexpected = sorted(info.get("missing_keys") or ()), sorted(info.get("unexpected_keys") or ())
    if not missing and not unexpected:
        return

    def keys(names):
        return ", ".join(names[:10]) + (f" ... ({len(names)} in all)" if len(names) > 10 else "")

    parts = []
    if missing:
        parts.append(f"it lacks {len(missing)} tensor(s) the model needs ({keys(missing)}), which would be left "
                     "randomly initialised")  # fmt: skip
    if unexpected:
        parts.append(f"it holds {len(unexpected)} tensor(s) the model does not use ({keys(unexpected)})")
    raise MotionPatchWeightsError(
        f"{_named_file(pretrained_model_name_or_path, 'model.safetensors')} does not match config.json: "
        + "; ".join(parts)
        + ". Re-save the model with save_pretrained() (or re-download it), check that config.json is the one saved "
        "with these weights, or pass allow_missing_weights=True to accept new, untrained weights (e.g. to fine-tune)."
    )


def _fix_position_grid(motion_model: nn.Module) -> None:
    """Make a DINOv2 tower add its position embeddings as they are (one per patch of the motion grid).

    ``Dinov2Embeddings.interpolate_pos_encoding`` assumes a square grid and resamples whenever the input is not
    square, which fails on a motion image (``max_frames x 5 * points``): the embeddings already hold one position
    per patch of ``config.image_size``, so they are used unchanged, and an input of another size is refused.
    """
    embeddings = getattr(motion_model, "embeddings", None)
    if type(embeddings).__name__ != "Dinov2Embeddings":
        return

    def fixed_grid(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        size = self.patch_embeddings.image_size
        if tokens.shape[1] != self.position_embeddings.shape[1] or (height, width) != tuple(size):
            raise ValueError(
                f"motion_values of {height} x {width} (frames x points) give {tokens.shape[1] - 1} patches, but the "
                f"motion tower reads {list(size)} images with {self.position_embeddings.shape[1] - 1} positions "
                "(config.motion_config.image_size); use the processor saved with the model (max_frames and "
                "points_per_part of the config)."
            )
        return self.position_embeddings

    embeddings.interpolate_pos_encoding = fixed_grid.__get__(embeddings)


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
class MotionPatchPreTrainedModel(PreTrainedModel):
    config: MotionPatchConfig
    config_class = MotionPatchConfig
    base_model_prefix = "motionpatch"
    main_input_name = "motion_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _no_split_modules = ["ViTEmbeddings", "ViTLayer", "Dinov2Embeddings", "Dinov2Layer"]

    def _init_weights(self, module):
        super()._init_weights(module)  # Linear: normal(0, initializer_range), zero bias; LayerNorm: ones/zeros
        if isinstance(module, MotionPatchModel):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, reading safetensors only and failing clearly on a bad folder.

        ``use_safetensors`` defaults to ``True``: a folder that holds only a pickle (``pytorch_model.bin``...) is
        refused without being opened (a pickle can run code when loaded). A truncated or corrupt ``.safetensors``
        file and a ``config.json`` of another model type raise :class:`MotionPatchLoadError` (an ``OSError`` and
        a ``ValueError``) that names the file. ``use_safetensors=False`` restores transformers' fallback to
        ``torch.load(weights_only=True)`` for pickles you trust.

        Weights that the model needs but ``model.safetensors`` lacks (they would be left randomly initialised) and
        tensors of the file that the model does not use raise :class:`MotionPatchWeightsError` naming the keys
        (from transformers' own loading report). ``allow_missing_weights=True`` accepts them (transformers then only
        warns), for instance to fine-tune a new head; ``ignore_mismatched_sizes=True`` accepts re-initialised
        tensors of another shape, as in transformers. ``output_loading_info=True`` returns the report as usual.
        """
        from safetensors import SafetensorError

        if kwargs.get("use_safetensors") is None:
            kwargs["use_safetensors"] = True
        allow_missing_weights = bool(kwargs.pop("allow_missing_weights", False))
        output_loading_info = bool(kwargs.pop("output_loading_info", False))
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
            )
            if not allow_missing_weights:
                _check_loading_info(info, pretrained_model_name_or_path)
            return (model, info) if output_loading_info else model
        except SafetensorError as e:
            bad = _unreadable_safetensors(pretrained_model_name_or_path) or [
                _named_file(pretrained_model_name_or_path, "model.safetensors")
            ]
            raise MotionPatchLoadError(
                f"{', '.join(bad)}: the weights file is truncated or corrupt ({e}). Re-download it (for a Hub model "
                "from_pretrained(..., force_download=True)) or re-save the model with save_pretrained()."
            ) from e
        except OSError as e:
            pickles = [] if isinstance(e, MotionPatchLoadError) else _pickle_only_weights(pretrained_model_name_or_path)
            if not kwargs["use_safetensors"] or not pickles:
                raise
            raise MotionPatchLoadError(
                f"{', '.join(pickles)}: the folder holds only pickled weights, which MotionPatch does not load by "
                "default (unpickling can run code) and which were not opened. Re-download the model in safetensors "
                "format, or, if you trust the file, load it once with use_safetensors=False and re-save it with "
                "save_pretrained() (which writes model.safetensors)."
            ) from e

    #: save ``pipeline("zero-shot-motion-classification")`` with the model (``config.json``'s ``custom_pipelines``)
    _saves_zero_shot_pipeline = False

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        push_to_hub: bool = False,
        variant: str | None = None,
        distributed_checkpoint: bool = False,
        **kwargs,
    ):
        """`PreTrainedModel.save_pretrained`, written atomically and with the zero-shot pipeline's code.

        The folder is written into a temporary sibling that then replaces it in one rename, so that an interrupted
        save (even ``kill -9``) leaves the previous folder (or none), never a half-written one; files of an existing
        folder that this save does not rewrite (a processor, a card) are kept, stale weight shards are not, as in
        transformers. ``config.json`` gets a ``custom_pipelines`` entry and ``pipeline_zero_shot_motion.py`` is
        saved beside the model code, so that ``pipeline("zero-shot-motion-classification", model=folder,
        trust_remote_code=True)`` works from the folder alone; the same holds for :meth:`push_to_hub`, which saves
        through this method. Distributed (DCP) checkpoints and non-main processes are written as transformers does.
        """
        from transformers.dynamic_module_utils import custom_object_save

        from .apps.atomic_folder import save_atomically
        from .pipeline_zero_shot_motion import ZeroShotMotionClassificationPipeline, custom_pipelines_config

        if self._saves_zero_shot_pipeline:
            self.config.custom_pipelines = {**(getattr(self.config, "custom_pipelines", None) or {}),
                                            **custom_pipelines_config()}  # fmt: skip
        save = super().save_pretrained
        kwargs.update(is_main_process=is_main_process, variant=variant, distributed_checkpoint=distributed_checkpoint)
        if distributed_checkpoint or not self.should_save_on_this_rank(is_main_process):
            return save(save_directory, push_to_hub=push_to_hub, **kwargs)

        def save_with_pipeline(folder, **save_kwargs):
            if self._saves_zero_shot_pipeline:
                custom_object_save(ZeroShotMotionClassificationPipeline, folder)
            return save(folder, **save_kwargs)

        # transformers removes the weight shards of an older save that the new one does not write
        weights = "model" if variant is None else f"model.{variant}"
        stale_shard = re.compile(re.escape(weights) + r"-\d{5}-of-\d{5}\.safetensors")
        return save_atomically(save_with_pipeline, save_directory, push_to_hub=push_to_hub,
                               keep=lambda name: not stale_shard.fullmatch(name), **kwargs)  # fmt: skip


class MotionPatchModel(MotionPatchPreTrainedModel):
    r"""A motion-language dual encoder over motion patches (Yu, Tanaka, Fujiwara, CVPR 2024).

    ``motion_model`` is a transformers `ViTModel` (no pooler) or `Dinov2Model` (``config.motion_config``) over
    ``motion_values`` of shape ``(batch, 3, max_frames, 5 * points)``; ``text_model`` any `AutoModel` text
    encoder. Both are pooled, projected to ``projection_dim`` and L2-normalised.

    Example:

    ```python
    >>> from transformers import AutoModel, AutoProcessor
    >>> model = AutoModel.from_pretrained("path/to/motionpatch")
    >>> processor = AutoProcessor.from_pretrained("path/to/motionpatch")
    >>> inputs = processor(text=["a person walks"], motions=[joints], return_tensors="pt", padding=True)
    >>> model(**inputs).logits_per_motion.softmax(-1)
    ```
    """

    _saves_zero_shot_pipeline = True

    def __init__(
        self,
        config: MotionPatchConfig,
        motion_model: PreTrainedModel | None = None,
        text_model: PreTrainedModel | None = None,
    ):
        super().__init__(config)
        if motion_model is None:
            if config.motion_config.model_type == "vit":
                motion_model = ViTModel(config.motion_config, add_pooling_layer=False)
            else:
                motion_model = AutoModel.from_config(config.motion_config)
        _fix_position_grid(motion_model)
        if text_model is None:
            text_model = AutoModel.from_config(config.text_config)
        if getattr(motion_model, "pooler", None) is not None:
            motion_model.pooler = None
        if config.motion_pooling == "mean":
            # timm's global_pool="avg": no final norm over the tokens, a LayerNorm after the mean (fc_norm)
            motion_model.layernorm = nn.Identity()
            self.motion_fc_norm = nn.LayerNorm(
                config.motion_config.hidden_size, eps=config.motion_config.layer_norm_eps
            )
        # keep the towers' configs and the composite config in sync (as VisionTextDualEncoderModel does)
        self.config.motion_config._attn_implementation = motion_model.config._attn_implementation
        self.config.text_config._attn_implementation = text_model.config._attn_implementation
        motion_model.config = self.config.motion_config
        text_model.config = self.config.text_config
        self.motion_model = motion_model
        self.text_model = text_model

        self.motion_projection = build_projection_head(config, self._motion_feature_dim(config))
        self.text_projection = build_projection_head(config, config.text_config.hidden_size)
        logit_scale = torch.tensor(float(config.logit_scale_init_value))
        if config.learnable_logit_scale:
            self.logit_scale = nn.Parameter(logit_scale)
        else:
            # a persistent buffer: saved and loaded under the same key, never trained (the reference keeps the
            # temperature fixed), and it stays fixed after `from_pretrained` too
            self.register_buffer("logit_scale", logit_scale)
        self.post_init()

    def set_learnable_logit_scale(self, learnable: bool) -> None:
        """Make the temperature trainable (an ``nn.Parameter``) or fixed (a buffer), keeping its value.

        Use this, not ``requires_grad_``, to change it on a built model: a fixed temperature is a buffer.
        ``config.learnable_logit_scale`` is updated so that the choice is saved.
        """
        value = self.logit_scale.detach().clone()
        del self.logit_scale  # removes the parameter or the buffer
        if learnable:
            self.logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("logit_scale", value)
        self.config.learnable_logit_scale = bool(learnable)

    @staticmethod
    def _motion_feature_dim(config: MotionPatchConfig) -> int:
        return config.motion_config.hidden_size

    # ------------------------------------------------------------- towers
    def _pool_motion(self, hidden: torch.Tensor, motion_attention_mask: torch.Tensor | None) -> torch.Tensor:
        if self.config.motion_pooling == "cls":
            return hidden[:, 0]
        tokens = hidden[:, 1:]
        if self.config.mask_motion_padding and motion_attention_mask is not None:
            mask = motion_attention_mask.to(tokens.dtype).unsqueeze(-1)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            pooled = tokens.mean(dim=1)
        return self.motion_fc_norm(pooled)

    def _pool_text(self, outputs, attention_mask: torch.Tensor | None) -> torch.Tensor:
        pooling = self.config.text_pooling
        hidden = outputs.last_hidden_state
        if pooling == "cls":
            return hidden[:, 0]
        if pooling == "pooler":
            if getattr(outputs, "pooler_output", None) is None:
                raise ValueError(f"text_pooling='pooler' but {type(self.text_model).__name__} returns no pooler_output.")
            return outputs.pooler_output
        if attention_mask is None:
            return hidden.mean(dim=1)
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def _motion_attention(self, motion_attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """The ViT's attention mask (class token first, always attended) from a per-patch ``motion_attention_mask``
        ``(batch, num_patches)``, or ``None`` when padding is not masked. A mask of another length than the config's
        patch count (a processor of another patch geometry) is a ``ValueError``."""
        if not self.config.mask_motion_padding or motion_attention_mask is None:
            return None
        expected = self.config.num_patches
        if motion_attention_mask.dim() != 2 or motion_attention_mask.shape[-1] != expected:
            rows, columns = self.config.patch_grid
            raise ValueError(
                f"motion_attention_mask has shape {tuple(motion_attention_mask.shape)}, but this model's motion tower "
                f"reads {expected} patches per motion ({rows} rows of {self.config.frames_per_patch} frames x "
                f"{columns} patches of {self.config.points_per_patch} points, from config.motion_config image_size "
                f"{list(self.config.motion_config.image_size)} and patch_size {self.config.motion_config.patch_size}): "
                "the mask needs one entry per patch. Use the processor saved with the model, or build the feature "
                "extractor with max_frames=config.max_frames, points_per_part=config.points_per_part, "
                "frames_per_patch=config.frames_per_patch and points_per_patch=config.points_per_patch."
            )
        ones = motion_attention_mask.new_ones(motion_attention_mask.shape[0], 1)
        return torch.cat([ones, motion_attention_mask], dim=1)  # the class token is always attended

    def _encode_motion(self, motion_values, motion_attention_mask=None, **kwargs):
        attention_mask = self._motion_attention(motion_attention_mask)
        outputs = self.motion_model(pixel_values=motion_values, attention_mask=attention_mask, **kwargs)
        pooled = self._pool_motion(outputs.last_hidden_state, motion_attention_mask)
        return outputs, self.motion_projection(pooled)

    def _encode_text(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, **kwargs):
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        outputs = self.text_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        pooled = self._pool_text(outputs, attention_mask)
        return outputs, self.text_projection(pooled)

    @can_return_tuple
    def get_motion_features(
        self,
        motion_values: torch.Tensor,
        motion_attention_mask: torch.Tensor | None = None,
        normalize: bool = False,
        **kwargs,
    ) -> tuple | BaseModelOutputWithPooling:
        r"""Encode motions, as `CLIPModel.get_image_features` encodes images in transformers 5.

        Returns:
            `BaseModelOutputWithPooling`: ``pooler_output`` is the projected motion embedding ``(batch,
            projection_dim)`` (not normalised, like CLIP's; ``normalize=True`` L2-normalises it), and
            ``last_hidden_state`` / ``hidden_states`` / ``attentions`` are the ViT's. ``return_dict=False`` gives the
            tuple.

        Example:

        ```python
        >>> inputs = processor(motions=[joints], return_tensors="pt")
        >>> motion_embeds = model.get_motion_features(**inputs).pooler_output
        >>> motion_embeds = motion_embeds / motion_embeds.norm(dim=-1, keepdim=True)
        ```
        """
        kwargs.pop("motion_lengths", None)
        outputs, embeds = self._encode_motion(motion_values, motion_attention_mask, **kwargs)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=F.normalize(embeds, dim=-1) if normalize else embeds,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        normalize: bool = False,
        **kwargs,
    ) -> tuple | BaseModelOutputWithPooling:
        r"""Encode captions, as `CLIPModel.get_text_features` does in transformers 5.

        Returns:
            `BaseModelOutputWithPooling`: ``pooler_output`` is the projected text embedding ``(batch,
            projection_dim)`` (not normalised; ``normalize=True`` L2-normalises it), ``last_hidden_state`` /
            ``hidden_states`` / ``attentions`` are the text encoder's.
        """
        outputs, embeds = self._encode_text(input_ids, attention_mask, token_type_ids, position_ids, **kwargs)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=F.normalize(embeds, dim=-1) if normalize else embeds,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )

    # ------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        motion_values: torch.FloatTensor | None = None,
        motion_attention_mask: torch.Tensor | None = None,
        motion_lengths: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        return_loss: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | MotionPatchOutput:
        r"""
        Args:
            input_ids, attention_mask, token_type_ids, position_ids: the tokenised captions.
            motion_values (`torch.FloatTensor` of shape `(batch, 3, max_frames, 5 * points)`): motion patches from
                :class:`MotionPatchFeatureExtractor`.
            motion_attention_mask (`torch.LongTensor` of shape `(batch, num_patches)`, *optional*): 1 for patches that
                hold real frames; used only when ``config.mask_motion_padding`` is set.
            motion_lengths: accepted (the processor returns it) and ignored; the mask carries the same information.
            return_loss (`bool`, *optional*): return the symmetric contrastive loss (texts and motions are pairs).
        """
        if input_ids is None or motion_values is None:
            raise ValueError(
                "MotionPatchModel.forward needs both `input_ids` and `motion_values`; use `get_text_features` or "
                "`get_motion_features` to encode one modality."
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        motion_outputs, motion_embeds = self._encode_motion(motion_values, motion_attention_mask, **kwargs)
        text_outputs, text_embeds = self._encode_text(input_ids, attention_mask, token_type_ids, position_ids)
        motion_embeds = F.normalize(motion_embeds, dim=-1)
        text_embeds = F.normalize(text_embeds, dim=-1)

        logits_per_text = similarity_logits(text_embeds, motion_embeds, self.logit_scale)
        logits_per_motion = logits_per_text.t()
        loss = None
        if return_loss:
            loss = paired_contrastive_loss(logits_per_text)

        output = MotionPatchOutput(
            loss=loss,
            logits_per_motion=logits_per_motion,
            logits_per_text=logits_per_text,
            motion_embeds=motion_embeds,
            text_embeds=text_embeds,
            motion_model_output=motion_outputs,
            text_model_output=text_outputs,
        )
        return output if return_dict else output.to_tuple()

    # ------------------------------------------------------ pretrained towers
    @classmethod
    def from_motion_text_pretrained(
        cls,
        motion_model_name_or_path: str,
        text_model_name_or_path: str,
        *,
        motion_image_size: tuple[int, int] | None = None,
        motion_num_attention_heads: int | None = None,
        motion_kwargs: dict[str, Any] | None = None,
        text_kwargs: dict[str, Any] | None = None,
        **config_overrides,
    ) -> "MotionPatchModel":
        r"""Build a model from a pretrained ViT and a pretrained text encoder (like
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
            motion_kwargs, text_kwargs: extra ``from_pretrained``/Hub options of each tower (``revision``, ``token``...).
            config_overrides: `MotionPatchConfig` fields (``projection_dim``, ``motion_pooling``, ``text_pooling``...).
                ``text_pooling`` defaults per family: the sentence-transformers Pooling module when present (MiniLM:
                ``"mean"``), ``"pooler"`` for CLIP, ``"cls"`` otherwise.

        Emits one warning listing the newly initialised weights (train them before use).
        """
        import warnings

        from .configuration_motionpatch import DEFAULT_MOTION_CONFIG
        from .convert_timm import load_motion_tower, load_text_tower
        from .timm_vit_keys import patch_grid

        image_size = tuple(motion_image_size or DEFAULT_MOTION_CONFIG["image_size"])
        motion = load_motion_tower(
            motion_model_name_or_path, image_size, motion_num_attention_heads, **(motion_kwargs or {})
        )
        text_model, text_pooling, pooling_note = load_text_tower(
            text_model_name_or_path, config_overrides.pop("text_pooling", None), **(text_kwargs or {})
        )
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
            "MotionPatchModel.from_motion_text_pretrained: newly initialised weights, train them before use:\n"
            + "".join(f"  - {line}\n" for line in new)
            + "Loaded:\n"
            + "".join(f"  - {line}\n" for line in loaded),
            UserWarning,
            stacklevel=2,
        )
        return model


class MotionPatchInteractionModel(MotionPatchModel):
    r"""Two-person interaction model (the paper's InterHuman setting).

    One shared motion encoder (the ViT) is applied to each person; the pooled features of the persons are
    concatenated (``num_persons * hidden_size``) and projected into the joint space. ``motion_values`` has shape
    ``(batch, num_persons, 3, max_frames, 5 * points)`` and ``motion_attention_mask`` ``(batch, num_persons,
    patches)``, as a :class:`MotionPatchFeatureExtractor` with ``num_persons=2`` returns them.
    """

    config: MotionPatchInteractionConfig
    config_class = MotionPatchInteractionConfig
    _saves_zero_shot_pipeline = False  # the zero-shot pipeline classifies one motion per sample, not a pair

    @staticmethod
    def _motion_feature_dim(config) -> int:
        return config.num_persons * config.motion_config.hidden_size

    def _encode_motion(self, motion_values, motion_attention_mask=None, **kwargs):
        persons = self.config.num_persons
        if motion_values.dim() != 5 or motion_values.shape[1] != persons:
            raise ValueError(
                f"motion_values must have shape (batch, {persons}, 3, frames, points) for an interaction model; "
                f"got {tuple(motion_values.shape)}. Use a feature extractor with num_persons={persons}."
            )
        batch = motion_values.shape[0]
        flat_values = motion_values.flatten(0, 1)
        flat_mask = None if motion_attention_mask is None else motion_attention_mask.flatten(0, 1)
        attention_mask = self._motion_attention(flat_mask)
        outputs = self.motion_model(pixel_values=flat_values, attention_mask=attention_mask, **kwargs)
        pooled = self._pool_motion(outputs.last_hidden_state, flat_mask)  # (batch * persons, hidden)
        return outputs, self.motion_projection(pooled.reshape(batch, -1))


__all__ = [
    "MotionPatchInteractionModel",
    "MotionPatchModel",
    "MotionPatchOutput",
    "MotionPatchPreTrainedModel",
    "motion_text_contrastive_loss",
    "similarity_logits",
]
