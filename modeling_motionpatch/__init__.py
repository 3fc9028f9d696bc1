"""motionpatch: 3D human motion-language models with motion patches and Vision Transformers.

Importing this package registers the classes with transformers' Auto classes, so that
``AutoConfig``, ``AutoModel``, ``AutoFeatureExtractor`` and ``AutoProcessor`` load saved folders.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor

from .configuration_motionpatch import (
    MotionPatchConfig,
    MotionPatchInteractionConfig,
)
from .feature_extraction_motionpatch import MotionPatchFeatureExtractor
from .modeling_motionpatch import (
    MotionPatchInteractionModel,
    MotionPatchModel,
    MotionPatchOutput,
    MotionPatchPreTrainedModel,
    motion_text_contrastive_loss,
    similarity_logits,
)
from .motion_patches import (
    MotionInputError,
    chain_interpolation_matrix,
    chain_sample_positions,
    resample_fps,
)
from .pipeline_zero_shot_motion import (
    ZeroShotMotionClassificationPipeline,
    register_pipeline,
)
from .processing_motionpatch import MotionPatchProcessor
from .skeletons import (
    CHAIN_NAMES,
    Skeleton,
    SkeletonError,
    available_skeletons,
    get_skeleton,
    register_skeleton,
)

__version__ = "0.1.0"

AutoConfig.register(MotionPatchConfig.model_type, MotionPatchConfig, exist_ok=True)
AutoModel.register(MotionPatchConfig, MotionPatchModel, exist_ok=True)
AutoFeatureExtractor.register(MotionPatchConfig, MotionPatchFeatureExtractor, exist_ok=True)
AutoProcessor.register(MotionPatchConfig, MotionPatchProcessor, exist_ok=True)
AutoConfig.register(MotionPatchInteractionConfig.model_type, MotionPatchInteractionConfig, exist_ok=True)
AutoModel.register(MotionPatchInteractionConfig, MotionPatchInteractionModel, exist_ok=True)
AutoFeatureExtractor.register(MotionPatchInteractionConfig, MotionPatchFeatureExtractor, exist_ok=True)
AutoProcessor.register(MotionPatchInteractionConfig, MotionPatchProcessor, exist_ok=True)

# saved folders carry the model code and an `auto_map`, so they also load with trust_remote_code=True
MotionPatchConfig.register_for_auto_class()
MotionPatchModel.register_for_auto_class("AutoModel")
MotionPatchInteractionConfig.register_for_auto_class()
MotionPatchInteractionModel.register_for_auto_class("AutoModel")
MotionPatchFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
MotionPatchProcessor.register_for_auto_class("AutoProcessor")

register_pipeline()  # pipeline("zero-shot-motion-classification", model=...)

__all__ = [
    "CHAIN_NAMES",
    "MotionInputError",
    "MotionPatchConfig",
    "MotionPatchFeatureExtractor",
    "MotionPatchInteractionConfig",
    "MotionPatchInteractionModel",
    "MotionPatchModel",
    "MotionPatchOutput",
    "MotionPatchPreTrainedModel",
    "MotionPatchProcessor",
    "Skeleton",
    "ZeroShotMotionClassificationPipeline",
    "SkeletonError",
    "available_skeletons",
    "chain_interpolation_matrix",
    "chain_sample_positions",
    "get_skeleton",
    "motion_text_contrastive_loss",
    "register_skeleton",
    "resample_fps",
    "similarity_logits",
]
