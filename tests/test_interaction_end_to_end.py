"""The two-person interaction model end to end: a folder in InterHuman's layout prepared, evaluated with
``motionpatch-evaluate``, exported to ONNX with parity, and classified by the zero-shot pipeline (one pair, a stacked
pair, a batch of pairs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import modeling_motionpatch  # noqa: F401  (registers the Auto classes and the pipeline task)
from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchInteractionModel, MotionPatchProcessor

from conftest import random_poses
from test_pipeline_interaction import interaction_config

CAPTIONS = ["a person walks forward", "a person jumps", "a person kicks with the left leg",
            "a person waves the right hand", "a person runs quickly", "a person squats"]
LABELS = ["walks", "jumps", "kicks"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tokenizer_dir):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("interaction")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = MotionPatchInteractionModel(interaction_config(len(tokenizer))).eval()
    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64, num_persons=2), tokenizer)
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    inter = root / "InterHuman"
    for folder in ("motions/person1", "motions/person2", "annots", "split"):
        (inter / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, caption in enumerate(CAPTIONS):
        for person in ("person1", "person2"):
            np.save(inter / "motions" / person / f"{i}.npy", random_poses(40, rng))
        (inter / "annots" / f"{i}.txt").write_text(caption + ".\n")
    (inter / "split" / "train.txt").write_text("0\n1\n")
    (inter / "split" / "test.txt").write_text("2\n3\n4\n5\n")
    pairs = [(random_poses(40, rng), random_poses(50, rng)) for _ in range(3)]
    return root, model, processor, pairs


def test_prepare_and_evaluate_an_interhuman_folder(workspace):
    from motionpatch_processing.cli import main as prepare
    from motionpatch_training.evaluate_retrieval import main as evaluate

    root, *_ = workspace
    assert prepare(["interhuman", "--root", str(root / "InterHuman"), "--output", str(root / "data")]) == 0
    out = root / "results.json"
    assert evaluate(["--model", str(root / "model"), "--dataset", str(root / "data"), "--split", "test",
                     "--protocols", "all", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    assert result["split"] == "test" and 0 <= metrics["all/t2m/R@1"] <= 100 and metrics["all/t2m/R@5"] == 100.0
    assert result["counts"]["evaluated"] == 4  # the four test pairs were scored


def test_onnx_export_of_the_interaction_model_matches_eager(workspace):
    pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime: pip install 'motionpatch[onnx]'")
    from modeling_motionpatch.apps.modeling_onnx import MotionPatchOnnxModel
    from modeling_motionpatch.apps.onnx_export import export_onnx

    root, model, processor, pairs = workspace
    exported = MotionPatchOnnxModel.from_pretrained(export_onnx(model, processor, root / "onnx"))
    inputs = processor(text=CAPTIONS[:3], motions=pairs, return_tensors="pt")
    with torch.no_grad():
        eager = model(**inputs)
    got = exported(**inputs)
    np.testing.assert_allclose(np.asarray(got.motion_embeds), eager.motion_embeds.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(got.text_embeds), eager.text_embeds.numpy(), atol=1e-5)


def test_pipeline_classifies_pairs_like_the_model(workspace):
    from transformers import pipeline

    root, model, processor, pairs = workspace
    classify = pipeline("zero-shot-motion-classification", model=str(root / "model"))
    one = classify(pairs[0], candidate_labels=LABELS)
    with torch.no_grad():
        expected = model(**processor(text=[f"A person {label}." for label in LABELS], motions=[pairs[0]],
                                     return_tensors="pt", padding=True)).logits_per_motion.softmax(-1)[0]
    got = {r["label"]: r["score"] for r in one}
    np.testing.assert_allclose([got[label] for label in LABELS], expected.numpy(), atol=1e-5)
    length = min(len(pairs[0][0]), len(pairs[0][1]))
    stacked = classify(np.stack([pairs[0][0][:length], pairs[0][1][:length]]), candidate_labels=LABELS)
    cut = classify((pairs[0][0][:length], pairs[0][1][:length]), candidate_labels=LABELS)
    assert [r["score"] for r in stacked] == pytest.approx([r["score"] for r in cut], abs=1e-6)
    batched = classify(pairs, candidate_labels=LABELS, batch_size=2)
    for pair, answer in zip(pairs, batched, strict=True):
        single = classify(pair, candidate_labels=LABELS)
        assert [r["label"] for r in answer] == [r["label"] for r in single]
        assert [r["score"] for r in answer] == pytest.approx([r["score"] for r in single], abs=1e-5)
