"""MotionPatch: a ViT over motion patches and a text encoder, trained contrastively (CLIP-style)."""

from __future__ import annotations

import os
from dataclasses import dataclass
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

    #: save ``pipeline("zero-shot-motion-classification")`` with the model (``config.json``'s ``custom_pipelines``)
    _saves_zero_shot_pipeline = False

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the zero-shot pipeline's code and a ``custom_pipelines`` entry in
        ``config.json``, so that ``pipeline("zero-shot-motion-classification", model=folder, trust_remote_code=True)``
        works from the folder alone (:meth:`push_to_hub` saves through this method)."""
        if self._saves_zero_shot_pipeline:
            from transformers.dynamic_module_utils import custom_object_save

            from .pipeline_zero_shot_motion import (
                ZeroShotMotionClassificationPipeline,
                custom_pipelines_config,
            )

            self.config.custom_pipelines = {**(getattr(self.config, "custom_pipelines", None) or {}),
                                            **custom_pipelines_config()}
            os.makedirs(save_directory, exist_ok=True)
            custom_object_save(ZeroShotMotionClassificationPipeline, save_directory)
        return super().save_pretrained(save_directory, *args, **kwargs)


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
