"""Zero-shot motion classification pipeline and the two-person interaction model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import modeling_motionpatch  # noqa: F401  (registers the pipeline task and the Auto classes)
from modeling_motionpatch import (
    MotionPatchFeatureExtractor,
    MotionPatchInteractionConfig,
    MotionPatchInteractionModel,
    MotionPatchModel,
    MotionPatchProcessor,
)

from conftest import random_motions, tiny_config

LABELS = ["walks", "jumps", "kicks"]


@pytest.fixture
def constructed_folder(tmp_path, tokenizer):
    """A tiny model whose projections are solved so that motion i embeds to e_i and label k's prompt to e_k."""
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer), projection_head="linear")).eval()
    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tokenizer)
    motions = random_motions(3, seed=5, lengths=(20, 64))  # within max_frames: one window each
    values = processor(motions=motions, return_tensors="pt")["motion_values"]
    text = processor(text=[f"A person {label}." for label in LABELS], return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model.motion_model(pixel_values=values).last_hidden_state
        motion_pool = model.motion_fc_norm(hidden[:, 1:].mean(1))  # (3, H)
        text_pool = model.text_model(**text).last_hidden_state[:, 0]  # (3, H)
        eye = torch.eye(model.config.projection_dim)[:3]  # targets e_0, e_1, e_2
        model.motion_projection.projection.weight.copy_(eye.t() @ torch.linalg.pinv(motion_pool).t())
        model.text_projection.projection.weight.copy_(eye.t() @ torch.linalg.pinv(text_pool).t())
        torch.testing.assert_close(model.get_motion_features(values, normalize=True).pooler_output, eye, atol=1e-4, rtol=0)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    return tmp_path, motions


def test_pipeline_returns_the_constructed_labels_and_handles_a_batch(constructed_folder):
    from transformers import pipeline

    folder, motions = constructed_folder
    classify = pipeline("zero-shot-motion-classification", model=str(folder))
    single = classify(motions[1], candidate_labels=LABELS)
    assert single[0]["label"] == "jumps" and sorted(r["label"] for r in single) == sorted(LABELS)
    assert single[0]["score"] > 0.99 and abs(sum(r["score"] for r in single) - 1) < 1e-5
    assert all(a["score"] >= b["score"] for a, b in zip(single, single[1:]))
    batch = classify(motions, candidate_labels=LABELS)
    assert [r[0]["label"] for r in batch] == LABELS
    assert classify(motions[2], candidate_labels=LABELS, top_k=1) == [
        {"label": "kicks", "score": pytest.approx(1, abs=1e-2), "similarity": pytest.approx(1, abs=1e-3), "match": None}]


def test_pipeline_refuses_empty_labels_and_bad_templates(constructed_folder):
    from transformers import pipeline

    folder, motions = constructed_folder
    classify = pipeline("zero-shot-motion-classification", model=str(folder))
    with pytest.raises(ValueError, match="non-empty list `candidate_labels"):
        classify(motions[0], candidate_labels=[])
    with pytest.raises(ValueError, match="placeholder"):
        classify(motions[0], candidate_labels=LABELS, hypothesis_template="no placeholder")


def test_pipeline_template_ensemble_averages_normalised_prompts(constructed_folder):
    from transformers import pipeline

    folder, motions = constructed_folder
    classify = pipeline("zero-shot-motion-classification", model=str(folder))
    one = classify(motions[0], candidate_labels=LABELS, hypothesis_template="A person {}.")
    two = classify(motions[0], candidate_labels=LABELS, hypothesis_template=["A person {}.", "A person {}."])
    one, two = {r["label"]: r["score"] for r in one}, {r["label"]: r["score"] for r in two}
    assert one == pytest.approx(two, abs=1e-6)
    assert max(one, key=one.get) == "walks"


def interaction_config(vocab_size):
    base = tiny_config(vocab_size=vocab_size).to_dict()
    base.pop("model_type", None)
    return MotionPatchInteractionConfig(**{k: v for k, v in base.items() if k in ("motion_config", "text_config", "projection_dim")})


def test_interaction_model_shares_the_encoder_and_round_trips(tmp_path, tokenizer):
    from transformers import AutoModel, AutoProcessor

    torch.manual_seed(0)
    model = MotionPatchInteractionModel(interaction_config(len(tokenizer)))
    assert model.motion_projection.projection.in_features == 2 * 32
    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64, num_persons=2), tokenizer)
    pairs = [tuple(random_motions(2, seed=s, lengths=(30, 31))) for s in range(3)]
    inputs = processor(text=["two people hug", "a person pushes another", "two people dance"], motions=pairs, return_tensors="pt")
    assert inputs["motion_values"].shape == (3, 2, 3, 64, 80) and inputs["motion_attention_mask"].shape == (3, 2, 20)
    out = model(**inputs, return_loss=True)
    out.loss.backward()
    assert model.motion_model.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        swapped = inputs["motion_values"].flip(1)
        a = model.get_motion_features(inputs["motion_values"], normalize=True).pooler_output
        b = model.get_motion_features(swapped, normalize=True).pooler_output
    assert (a - b).abs().max() > 1e-4  # the order of persons matters: features are concatenated
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, MotionPatchInteractionModel)
    assert loaded_processor.feature_extractor.num_persons == 2
    with torch.no_grad():
        torch.testing.assert_close(loaded.get_motion_features(inputs["motion_values"], normalize=True).pooler_output, a, rtol=0, atol=0)


def test_interaction_inputs_are_checked(tokenizer):
    model = MotionPatchInteractionModel(interaction_config(len(tokenizer)))
    with pytest.raises(ValueError, match=r"shape \(batch, 2, 3, frames, points\)"):
        model.get_motion_features(torch.zeros(2, 3, 64, 80), normalize=True).pooler_output
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64, num_persons=2)
    with pytest.raises(ValueError, match="sample 0 has 3 motions"):
        fe([random_motions(3)])


def test_two_persons_share_one_training_crop():
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=32, num_persons=2, check_skeleton=False)  # ramps
    ramp = np.arange(200, dtype=np.float32)[:, None, None] * np.ones((1, 22, 3), np.float32)
    out = fe([(ramp, ramp + 1000)] * 4, training=True, generator=0)["motion_values"]
    np.testing.assert_array_equal(out[:, 1, 0, :, 0] - out[:, 0, 0, :, 0], 1000)


def test_pipeline_encodes_the_labels_once_for_many_motions(constructed_folder, monkeypatch):
    from transformers import pipeline

    folder, motions = constructed_folder
    classify = pipeline("zero-shot-motion-classification", model=str(folder))
    calls = []
    original = classify.model.get_text_features
    monkeypatch.setattr(classify.model, "get_text_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    results = classify(motions * 3, candidate_labels=LABELS)
    assert len(calls) == 1 and [r[0]["label"] for r in results] == LABELS * 3
    classify(motions[0], candidate_labels=LABELS[:2])  # other labels: encoded again
    assert len(calls) == 2
