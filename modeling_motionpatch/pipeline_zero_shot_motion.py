"""``pipeline("zero-shot-motion-classification")``: label motions with free-text class names."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Pipeline

from .configuration_motionpatch import PIPELINE_TASK
from .modeling_motionpatch import similarity_logits

DEFAULT_TEMPLATE = "A person {}."  # the paper's prompt


def ensemble_prompt_embeddings(text_embeds: torch.Tensor, num_templates: int) -> torch.Tensor:
    """Prompt ensembling: ``(templates * labels, dim)`` text embeddings, template-major (all labels of template 0
    first), -> ``(labels, dim)``, the mean over templates re-normalised. Shared by the pipeline and batch scripts."""
    labels = text_embeds.shape[0] // num_templates
    return F.normalize(text_embeds.float().view(num_templates, labels, -1).mean(0), dim=-1)


class ZeroShotMotionClassificationPipeline(Pipeline):
    """Zero-shot motion classification with a :class:`MotionPatchModel`.

    Each candidate label is put into one or several hypothesis templates (``"A person {}."`` by default, the
    paper's prompt); with several templates the normalised text embeddings of a label are averaged and
    re-normalised (prompt ensembling). Scores are the softmax over labels of the scaled cosine similarities.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> import modeling_motionpatch  # registers the task
    >>> classify = pipeline("zero-shot-motion-classification", model="path/to/motionpatch")
    >>> classify(joints, candidate_labels=["walks", "runs", "jumps"])
    [{'label': 'walks', 'score': 0.91}, ...]
    ```

    Accepts one motion ``(frames, joints, 3)`` or a list of them (returns a list of lists), numpy or torch.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __call__(self, motions, candidate_labels: Sequence[str] | None = None, **kwargs):
        if isinstance(motions, np.ndarray) and motions.ndim == 4:
            motions = list(motions)
        elif isinstance(motions, torch.Tensor) and motions.dim() == 4:
            motions = list(motions.unbind(0))
        return super().__call__(motions, candidate_labels=candidate_labels, **kwargs)

    def _sanitize_parameters(self, candidate_labels=None, hypothesis_template=None, input_fps=None, top_k=None, **kwargs):
        preprocess = {}
        if candidate_labels is not None:
            preprocess["candidate_labels"] = candidate_labels
        if hypothesis_template is not None:
            preprocess["hypothesis_template"] = hypothesis_template
        if input_fps is not None:
            preprocess["input_fps"] = input_fps
        postprocess = {"top_k": top_k} if top_k is not None else {}
        return preprocess, {}, postprocess

    def preprocess(self, motion, candidate_labels=None, hypothesis_template=DEFAULT_TEMPLATE, input_fps=None):
        if candidate_labels is None or isinstance(candidate_labels, str) or len(candidate_labels) == 0:
            raise ValueError(
                "zero-shot-motion-classification needs a non-empty list `candidate_labels=[...]` "
                f"(got {candidate_labels!r})."
            )
        labels = [str(label) for label in candidate_labels]
        if len(set(labels)) != len(labels):
            raise ValueError(f"candidate_labels contains duplicates: {labels}.")
        templates = [hypothesis_template] if isinstance(hypothesis_template, str) else list(hypothesis_template)
        if not templates or any("{}" not in t for t in templates):
            raise ValueError(f"every hypothesis_template needs a '{{}}' placeholder; got {templates!r}.")
        inputs = self.processor(motions=motion, return_tensors="pt", input_fps=input_fps)
        return {
            "motion_values": inputs["motion_values"],
            "motion_attention_mask": inputs["motion_attention_mask"],
            "candidate_labels": labels,
            "templates": templates,
        }

    def label_embeddings(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """Normalised text embeddings of the labels ``(labels, dim)``, averaged over templates.

        Cached per (labels, templates): classifying many motions against the same labels encodes the texts once.
        """
        key = (tuple(labels), tuple(templates))
        cache = self.__dict__.setdefault("_label_cache", {})
        if key not in cache:
            sentences = [t.format(label) for t in templates for label in labels]
            text = self.processor(text=sentences, return_tensors="pt", padding=True)
            text = {k: v.to(self.model.device) for k, v in text.items()}
            with torch.no_grad():
                embeds = self.model.get_text_features(**text).float()
            cache.clear()  # keep one label set: pipelines are usually called with the same labels
            cache[key] = ensemble_prompt_embeddings(embeds, len(templates))
        return cache[key]

    def _forward(self, model_inputs):
        labels = model_inputs.pop("candidate_labels")
        templates = model_inputs.pop("templates")
        motion = self.model.get_motion_features(
            motion_values=model_inputs["motion_values"].to(self.model.dtype),
            motion_attention_mask=model_inputs["motion_attention_mask"],
        )
        text = self.label_embeddings(labels, templates)
        logits = similarity_logits(motion, text, self.model.logit_scale)  # (motions, labels), float32
        return {"logits": logits, "candidate_labels": labels}

    def postprocess(self, model_outputs, top_k: int | None = None) -> list[dict[str, Any]]:
        labels = model_outputs["candidate_labels"]
        scores = model_outputs["logits"][0].softmax(-1).tolist()
        result = [{"label": label, "score": score} for score, label in sorted(zip(scores, labels), key=lambda x: -x[0])]
        return result[:top_k] if top_k else result


def custom_pipelines_config() -> dict[str, dict[str, Any]]:
    """The ``custom_pipelines`` entry of a saved ``config.json``, as ``Pipeline.save_pretrained`` writes it.

    With it (and this file saved next to the model), ``pipeline(PIPELINE_TASK, model=folder, trust_remote_code=True)``
    loads this pipeline class and ``AutoModel`` from the folder alone, without the package installed.
    """
    cls = ZeroShotMotionClassificationPipeline
    return {PIPELINE_TASK: {"impl": f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}", "pt": ["AutoModel"],
                            "type": "multimodal"}}  # fmt: skip


def register_pipeline() -> None:
    """Register ``zero-shot-motion-classification`` with transformers' pipeline registry."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if PIPELINE_TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            PIPELINE_TASK, pipeline_class=ZeroShotMotionClassificationPipeline, pt_model=AutoModel, type="multimodal"
        )
