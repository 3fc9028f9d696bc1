"""MotionPatch model configuration."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig, ViTConfig
from transformers.configuration_utils import SubConfigSpec

class MotionPatchLoadError(OSError, ValueError):
    """A saved model folder that cannot be loaded (another model type, truncated or pickle-only weights).

    Both an ``OSError`` (what transformers raises for unloadable checkpoints) and a ``ValueError``; the message
    names the file and says how to fix it.
    """


class MotionPatchWeightsError(MotionPatchLoadError):
    """``model.safetensors`` lacks tensors the model needs, or holds tensors it does not use (the message names the
    keys); loading would leave randomly initialised weights in the model."""


def _named_file(pretrained_model_name_or_path, filename: str) -> str:
    """``folder/filename`` for a local folder, else ``filename of 'org/name'``."""
    folder = Path(str(pretrained_model_name_or_path)).expanduser()
    if folder.is_dir():
        return str(folder / filename)
    return f"{filename} of {str(pretrained_model_name_or_path)!r}"


#: ViT-B/16 over a (224 frames x 80 points) motion image: 14 x 5 patches of 16 x 16.
DEFAULT_MOTION_CONFIG = {"image_size": [224, 80], "patch_size": 16, "num_channels": 3}
#: the task of :class:`ZeroShotMotionClassificationPipeline`, named in saved configs' ``custom_pipelines``
PIPELINE_TASK = "zero-shot-motion-classification"


@strict
class MotionPatchConfig(PreTrainedConfig):
    r"""Configuration of a :class:`MotionPatchModel`: a ViT motion tower and any text encoder, projected to one space.

    Composed like `CLIPConfig` / `VisionTextDualEncoderConfig`: ``motion_config`` is a `ViTConfig` (defaults of
    ViT-B/16 with ``image_size=(224, 80)``), ``text_config`` any `AutoConfig` text encoder (defaults of DistilBERT).

    Args:
        motion_config (`ViTConfig` or `dict`, *optional*): the motion tower.
        text_config (`PreTrainedConfig` or `dict`, *optional*): the text tower (``model_type`` selects the class).
        projection_dim (`int`, defaults to 256): size of the joint embedding space.
        projection_head (`"mlp"` or `"linear"`, defaults to `"mlp"`): ``"mlp"`` is the reference head
            ``p = Linear(x); y = Linear(GELU(p)); y = Dropout(y) + p; LayerNorm(y)``; ``"linear"`` a bias-free Linear.
        projection_dropout (`float`, defaults to 0.5): dropout of the MLP head (the reference uses 0.5 on
            HumanML3D and 0.0 on KIT-ML).
        logit_scale_init_value (`float`, defaults to log(1/0.07)): initial log of the inverse temperature.
        learnable_logit_scale (`bool`, defaults to `False`): train the temperature (the reference keeps it fixed).
        max_logit_scale (`float`, defaults to log(100)): clamp applied by training code when learnable.
        motion_pooling (`"mean"` or `"cls"`, defaults to `"mean"`): ``"mean"`` averages the patch tokens (class token
            excluded) and applies a LayerNorm (timm's ``global_pool="avg"`` + ``fc_norm``, the reference); ``"cls"``
            takes the class token after the ViT's final LayerNorm.
        text_pooling (`"cls"`, `"mean"` or `"pooler"`, defaults to `"cls"`): first token (DistilBERT/BERT as in the
            reference), the attention-masked mean (sentence-transformers models such as MiniLM), or the text model's
            own ``pooler_output`` (CLIP's text model, which pools at the end-of-text token).
        mask_motion_padding (`bool`, defaults to `False`): when `True`, padded patch rows are excluded from the
            ViT's attention and from mean pooling. The reference attends to padding (which encodes the mean pose),
            so converted original checkpoints keep `False`.
        initializer_range (`float`, defaults to 0.02): std of the projection heads' initialisation.
        match_threshold (`float`, *optional*): cosine similarity between a motion and a text from which they count as
            a confident match; training calibrates it on the validation split
            (:func:`~.retrieval_metrics.calibrate_match_threshold`). The zero-shot pipeline and the search index
            report ``match`` next to their scores with it, so that "nothing fits" is said rather than the best of bad
            candidates shown as a hit. `None`: not calibrated (``match`` is then `None`).
        skeleton (`dict`, *optional*): the skeleton and patch geometry of the processor the model was trained with
            (``name``, ``joint_names``, ``chains``, ``points_per_part``, ``max_frames``), written at save time by
            training and conversion (``folder_checks.record_processor``); when present, pairing the model with a
            processor of another skeleton raises ``MotionPatchMismatchError``. ``None`` in older folders (no check).
    """

    model_type = "motionpatch"
    sub_configs_defaults = {
        "motion_config": SubConfigSpec(config_class=ViTConfig, init_kwargs=DEFAULT_MOTION_CONFIG),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="distilbert"),
    }

    motion_config: PreTrainedConfig | dict | None = None
    text_config: PreTrainedConfig | dict | None = None
    projection_dim: int = 256
    projection_head: Literal["mlp", "linear"] = "mlp"
    projection_dropout: float | int = 0.5
    logit_scale_init_value: float | int = math.log(1 / 0.07)
    learnable_logit_scale: bool = False
    max_logit_scale: float | int = math.log(100.0)
    motion_pooling: Literal["mean", "cls"] = "mean"
    text_pooling: Literal["cls", "mean", "pooler"] = "cls"
    mask_motion_padding: bool = False
    initializer_range: float = 0.02
    match_threshold: float | None = None
    skeleton: dict | None = None

    def __post_init__(self, **kwargs):
        if self.motion_config is None:
            self.motion_config = dict(DEFAULT_MOTION_CONFIG)
        elif isinstance(self.motion_config, dict):  # a partial dict keeps the motion-image defaults
            self.motion_config = {**DEFAULT_MOTION_CONFIG, **self.motion_config}
        pipelines = kwargs.pop("custom_pipelines", None) or {}
        if PIPELINE_TASK in pipelines:
            from transformers.pipelines import PIPELINE_REGISTRY

            # `pipeline()` prefers a config's `custom_pipelines` (which needs trust_remote_code=True) to a task
            # registered in this process: where the package registered the task, its own class is used instead
            if PIPELINE_TASK in PIPELINE_REGISTRY.supported_tasks:
                pipelines = {task: info for task, info in pipelines.items() if task != PIPELINE_TASK}
        if pipelines:
            kwargs["custom_pipelines"] = pipelines
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Part of `@strict`-powered validation."""
        if self.projection_dim <= 0:
            raise ValueError(f"projection_dim must be positive, got {self.projection_dim}.")
        if not 0.0 <= self.projection_dropout < 1.0:
            raise ValueError(f"projection_dropout must be in [0, 1), got {self.projection_dropout}.")
        image = self.motion_config.image_size
        patch = self.motion_config.patch_size
        image = (image, image) if isinstance(image, int) else tuple(image)
        patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
        if image[0] % patch[0] or image[1] % patch[1]:
            raise ValueError(
                f"motion_config.image_size {image} must be a multiple of patch_size {patch} (frames x points)."
            )
        if self.motion_config.num_channels != 3:
            raise ValueError(f"motion_config.num_channels must be 3 (x, y, z), got {self.motion_config.num_channels}.")

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        """`PreTrainedConfig.get_config_dict`, refusing a config of another ``model_type`` (transformers only warns
        and then builds a default, untrained model from it)."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        found = config_dict.get("model_type")
        if found is not None and found != cls.model_type:
            raise MotionPatchLoadError(
                f"{_named_file(pretrained_model_name_or_path, 'config.json')} is a {found!r} config, not a "
                f"{cls.model_type!r} one, so {cls.__name__} cannot load it. Load the folder with "
                "transformers.AutoModel / AutoConfig (which pick the class from model_type), or pass the folder of a "
                f"model saved with {cls.__name__.replace('Config', 'Model')}.save_pretrained()."
            )
        return config_dict, kwargs

    @property
    def max_frames(self) -> int:
        image = self.motion_config.image_size
        return image if isinstance(image, int) else int(image[0])

    @classmethod
    def from_motion_text_configs(cls, motion_config: PreTrainedConfig, text_config: PreTrainedConfig, **kwargs):
        """Build from a motion (ViT) config and a text config, like ``VisionTextDualEncoderConfig.from_vision_text_configs``."""
        return cls(motion_config=motion_config.to_dict(), text_config=text_config.to_dict(), **kwargs)


@strict
class MotionPatchInteractionConfig(MotionPatchConfig):
    r"""Configuration of a :class:`MotionPatchInteractionModel` (the paper's two-person interaction setting).

    Same fields as :class:`MotionPatchConfig`, plus ``num_persons`` (defaults to 2): one shared motion encoder is
    applied to each person, and the pooled features of all persons are concatenated before the projection head.
    """

    model_type = "motionpatch_interaction"
    num_persons: int = 2

    def validate_architecture(self):
        super().validate_architecture()
        if self.num_persons < 2:
            raise ValueError(f"num_persons must be at least 2 for an interaction model, got {self.num_persons}.")


__all__ = ["PIPELINE_TASK", "MotionPatchConfig", "MotionPatchInteractionConfig", "MotionPatchLoadError", "MotionPatchWeightsError"]
