"""Processor: a motion feature extractor and a tokenizer in one object, like `CLIPProcessor`."""

from __future__ import annotations

import warnings

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin


class MotionPatchProcessor(ProcessorMixin):
    r"""Wraps a :class:`MotionPatchFeatureExtractor` and a tokenizer into a single processor.

    ``processor(text=..., motions=..., return_tensors="pt", padding=True)`` returns the tokenizer's outputs
    (``input_ids``, ``attention_mask``...) and the feature extractor's (``motion_values``, ``motion_lengths``,
    ``motion_attention_mask``); either modality may be omitted. Captions longer than the tokenizer's maximum
    are truncated; unless ``truncation`` is given explicitly, a warning says which ones were cut.

    Args:
        feature_extractor (`MotionPatchFeatureExtractor`): motions -> motion patches.
        tokenizer (`PreTrainedTokenizerBase`): captions -> token ids.
    """

    def __init__(self, feature_extractor=None, tokenizer=None, **kwargs):
        # parameter names matter: ProcessorMixin finds its sub-processors from them
        super().__init__(feature_extractor, tokenizer)

    def __call__(
        self,
        motions=None,
        text: str | list[str] | None = None,
        return_tensors: str | None = None,
        padding: bool | str = True,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        training: bool = False,
        generator=None,
        input_fps: float | None = None,
        body_frame: bool | None = None,
        joint_names=None,
        joint_map=None,
        check_skeleton: bool | None = None,
        **tokenizer_kwargs,
    ) -> BatchFeature:
        if text is None and motions is None:
            raise ValueError("MotionPatchProcessor needs `text`, `motions` or both; got neither.")
        data = {}
        if text is not None:
            if not isinstance(text, (str, list, tuple)):
                raise ValueError(f"`text` is a {type(text).__name__}; give a caption (str) or a list of captions.")
            texts = [text] if isinstance(text, str) else list(text)
            if not texts:
                raise ValueError("`text` is an empty list; give at least one caption.")
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise ValueError(f"caption {i} is a {type(t).__name__}, not a string.")
                if not t.strip():
                    raise ValueError(f"caption {i} is empty; every caption needs at least one non-space character.")
            encoded = self.tokenizer(
                texts,
                padding=padding,
                truncation=True if truncation is None else truncation,
                max_length=max_length,
                return_tensors=return_tensors,
                **tokenizer_kwargs,
            )
            if truncation is None:
                self._warn_if_truncated(texts, encoded, max_length)
            data.update(encoded)
        if motions is not None:
            data.update(
                self.feature_extractor(
                    motions, return_tensors=return_tensors, training=training, generator=generator, input_fps=input_fps,
                    body_frame=body_frame,
                    joint_names=joint_names, joint_map=joint_map, check_skeleton=check_skeleton,
                )
            )
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _warn_if_truncated(self, texts: list[str], encoded, max_length: int | None) -> None:
        """One warning per call when captions were cut to the maximum length without an explicit ``truncation``."""
        limit = max_length or self.tokenizer.model_max_length
        encodings = getattr(encoded, "encodings", None)  # fast tokenizers keep what was cut in `overflowing`
        if encodings is not None:
            cut = [i for i, e in enumerate(encodings) if e.overflowing]
        else:
            lengths = [len(ids) for ids in self.tokenizer(texts, truncation=False)["input_ids"]]
            cut = [i for i, n in enumerate(lengths) if n > limit]
        if cut:
            warnings.warn(
                f"{len(cut)} of {len(texts)} captions are longer than {limit} tokens and were truncated (indices "
                f"{cut[:10]}); pass truncation=True to accept this silently, or shorten them.",
                UserWarning,
                stacklevel=3,
            )


__all__ = ["MotionPatchProcessor"]
