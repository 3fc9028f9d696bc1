"""MotionPatch model configuration."""

from __future__ import annotations

import math
from typing import Literal

import transformers
from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig

try:
    from transformers.configuration_utils import SubConfigSpec
except ImportError:  # remote code loaded by an older transformers than the package's floor
    raise ImportError(
        f"MotionPatch needs transformers>=5.20,<6 (it composes its configs with SubConfigSpec); this is "
        f"transformers {transformers.__version__}. Upgrade it: pip install -U 'transformers>=5.20,<6'."
    ) from None

#: ViT-B/16 over a (224 frames x 80 points) motion image: 14 x 5 patches of 16 x 16.
DEFAULT_MOTION_CONFIG = {"image_size": [224, 80], "patch_size": 16, "num_channels": 3}
#: ``model_type`` of the vision backbones that can be the motion tower (built with ``AutoModel.from_config``)
MOTION_TOWER_TYPES = ("vit", "dinov2")
#: body parts of a motion image, left to right: right leg, left leg, torso, right arm, left arm
NUM_PARTS = 5
#: the task of :class:`ZeroShotMotionClassificationPipeline`, named in saved configs' ``custom_pipelines``
PIPELINE_TASK = "zero-shot-motion-classification"


def _pair(value) -> tuple[int, int]:
    """An ``int`` or a pair (``image_size`` / ``patch_size`` of a `ViTConfig`) as ``(height, width)``."""
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


def motion_image_size(max_frames: int, points_per_part: int) -> list[int]:
    """``motion_config.image_size`` of a motion image of ``max_frames`` frames and :data:`NUM_PARTS` body parts of
    ``points_per_part`` points each."""
    return [int(max_frames), NUM_PARTS * int(points_per_part)]


def geometry_problem(image_size, patch_size) -> str | None:
    """Why a ViT of ``image_size`` / ``patch_size`` cannot read motion images (``None`` when it can).

    Rows are frames and columns are :data:`NUM_PARTS` body parts of ``points_per_part`` points each, so the image
    height must be a multiple of the patch height (whole patch rows), the width must be :data:`NUM_PARTS` parts of
    equal width, and a patch must not straddle two body parts: ``points_per_part`` must be a multiple of the patch
    width. A patch as wide as the image (one token per patch row, e.g. the raw-joints baseline of
    ``training/baselines.py``) is also accepted.
    """
    (height, width), (frames, points) = _pair(image_size), _pair(patch_size)
    where = f"motion_config.image_size {[height, width]} (frames x points) with patch_size {[frames, points]}"
    if min(height, width, frames, points) <= 0:
        return f"{where}: sizes must be positive."
    if height % frames:
        return (
            f"{where}: the image height (max_frames) must be a multiple of patch_size {frames} (the patch height, "
            f"frames_per_patch); use max_frames {max(frames, height // frames * frames)} or a patch height that "
            f"divides {height}."
        )
    if points == width:
        return None  # whole-row patches: one token per patch row
    if width % NUM_PARTS:
        return (
            f"{where}: the image width must be {NUM_PARTS} body parts of points_per_part points each, but {width} is "
            f"not a multiple of {NUM_PARTS}; use image_size [{height}, {NUM_PARTS} * points_per_part]."
        )
    per_part = width // NUM_PARTS
    if per_part % points:
        return (
            f"{where}: a patch of {points} point columns would straddle two body parts of points_per_part="
            f"{per_part}; points_per_part must be a multiple of the patch width (e.g. patch_size {per_part} or a "
            f"divisor of {per_part}, or points_per_part {max(points, per_part // points * points)})."
        )
    return None


@strict
class MotionPatchConfig(PreTrainedConfig):
    r"""Configuration of a :class:`MotionPatchModel`: a ViT motion tower and any text encoder, projected to one space.

    Composed like `CLIPConfig` / `VisionTextDualEncoderConfig`: ``motion_config`` is a `ViTConfig` (defaults of
    ViT-B/16 with ``image_size=(224, 80)``) or another transformers vision backbone in :data:`MOTION_TOWER_TYPES`
    (a `Dinov2Config` whose ``image_size`` is the motion image, e.g. ``[56, 70]`` with ``patch_size=14``),
    ``text_config`` any `AutoConfig` text encoder (defaults of DistilBERT).

    The config is the one home of the patch geometry: ``motion_config.image_size`` (frames x points) and
    ``patch_size`` (an int or a pair) give the read-only :attr:`max_frames`, :attr:`num_parts`,
    :attr:`points_per_part`, :attr:`frames_per_patch`, :attr:`points_per_patch`, :attr:`patch_grid` and
    :attr:`num_patches`; geometries the motion tower cannot read (see :func:`geometry_problem`) are refused when
    the config is built.

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
            (:func:`~.apps.retrieval_metrics.calibrate_match_threshold`). The zero-shot pipeline and the search index
            report ``match`` next to their scores with it, so that "nothing fits" is said rather than the best of bad
            candidates shown as a hit. `None`: not calibrated (``match`` is then `None`).
        skeleton (`dict`, *optional*): the skeleton and patch geometry of the processor the model was trained with
            (``name``, ``joint_names``, ``chains``, ``points_per_part``, ``max_frames``), written at save time by
            training and conversion (``apps.folder_checks.record_processor``); when present, pairing the model with a
            processor of another skeleton raises ``MotionPatchMismatchError``. ``None`` in older folders (no check).
    """

    model_type = "motionpatch"
    sub_configs_defaults = {
        # any transformers vision backbone with image_size / patch_size / num_channels (a dict without model_type is
        # a ViT, as in older folders): ViT, DINOv2 (``Dinov2Config``)...
        "motion_config": SubConfigSpec(config_class=AutoConfig, model_type="vit", init_kwargs=DEFAULT_MOTION_CONFIG),
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
        tower = getattr(self.motion_config, "model_type", None)
        if tower not in MOTION_TOWER_TYPES:
            raise ValueError(
                f"motion_config is a {tower!r} config; the motion tower must be one of {list(MOTION_TOWER_TYPES)} "
                "(e.g. transformers.ViTConfig or Dinov2Config with image_size [max_frames, 5 * points_per_part])."
            )
        problem = geometry_problem(self.motion_config.image_size, self.motion_config.patch_size)
        if problem:
            raise ValueError(problem)
        if self.motion_config.num_channels != 3:
            raise ValueError(f"motion_config.num_channels must be 3 (x, y, z), got {self.motion_config.num_channels}.")


    # ------------------------------------------------------------ patch geometry (read-only, from motion_config)
    @property
    def num_parts(self) -> int:
        """Body parts side by side in the motion image (5: right leg, left leg, torso, right arm, left arm)."""
        return NUM_PARTS

    @property
    def max_frames(self) -> int:
        """Frames per motion image: the image height."""
        return _pair(self.motion_config.image_size)[0]

    @property
    def points_per_part(self) -> int:
        """Points each body-part chain is resampled to: the image width / :attr:`num_parts`."""
        width = _pair(self.motion_config.image_size)[1]
        if width % NUM_PARTS:
            raise ValueError(
                f"motion_config.image_size is {_pair(self.motion_config.image_size)}: its width {width} is not "
                f"{NUM_PARTS} body parts of equal width (a whole-row tokeniser such as the raw-joints baseline), so "
                "it has no points_per_part."
            )
        return width // NUM_PARTS

    @property
    def frames_per_patch(self) -> int:
        """Frames in one ViT patch (the patch height): one patch row of the motion image."""
        return _pair(self.motion_config.patch_size)[0]

    @property
    def points_per_patch(self) -> int:
        """Point columns in one ViT patch (the patch width); a divisor of :attr:`points_per_part`, or the whole
        image width."""
        return _pair(self.motion_config.patch_size)[1]

    @property
    def patch_grid(self) -> tuple[int, int]:
        """``(patch rows, patch columns)`` of the motion image; the ViT reads its patches row by row."""
        (height, width), (frames, points) = _pair(self.motion_config.image_size), _pair(self.motion_config.patch_size)
        return height // frames, width // points

    @property
    def num_patches(self) -> int:
        """Patch tokens of the motion tower (class token excluded): the length of ``motion_attention_mask``."""
        rows, columns = self.patch_grid
        return rows * columns

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


__all__ = ["MOTION_TOWER_TYPES", "NUM_PARTS", "PIPELINE_TASK", "geometry_problem", "motion_image_size", "MotionPatchConfig", "MotionPatchInteractionConfig"]
