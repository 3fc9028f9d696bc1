"""Honest answers: the calibrated match threshold, ``match`` next to pipeline and search scores, windows over long
takes, sentence labels, and same-caption positives in the contrastive loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import modeling_motionpatch  # noqa: F401  (registers the pipeline task)
from modeling_motionpatch.pipeline_zero_shot_motion import fill_template, window_starts
from modeling_motionpatch.apps.retrieval_metrics import calibrate_match_threshold
from modeling_motionpatch.apps.search_index import MotionSearchIndex
from motionpatch_training.losses import ClipLoss

from test_pipeline_interaction import LABELS, constructed_folder  # noqa: F401  (motion i -> label i, cosine 1)


def test_calibration_separates_matching_from_other_pairs():
    rng = np.random.default_rng(0)
    same = np.eye(40, dtype=bool) | (rng.random((40, 40)) < 0.05)
    sim = np.where(same, rng.uniform(0.5, 0.9, (40, 40)), rng.uniform(-0.2, 0.45, (40, 40)))
    result = calibrate_match_threshold(sim, same, false_positive_rate=None)
    assert 0.45 < result["threshold"] < 0.5 + 1e-6
    assert result["true_positive_rate"] == 1.0 and result["false_positive_rate"] == 0.0
    assert result["positives"] == same.sum() and result["negatives"] == (~same).sum()
    # overlapping scores: the threshold maximises TPR - FPR (checked against every candidate)
    noisy = np.where(same, rng.normal(0.5, 0.1, same.shape), rng.normal(0.3, 0.1, same.shape))
    got = calibrate_match_threshold(noisy, same, false_positive_rate=None)
    j = [(noisy[same] >= t).mean() - (noisy[~same] >= t).mean() for t in np.unique(noisy)]
    assert got["true_positive_rate"] - got["false_positive_rate"] == pytest.approx(max(j))
    # the default: the lowest threshold that at most 5 % of the non-matching pairs reach
    strict = calibrate_match_threshold(noisy, same)
    assert strict["false_positive_rate"] <= 0.05 < (noisy[~same] >= strict["threshold"] - 0.02).mean()
    assert strict["threshold"] > got["threshold"]
    with pytest.raises(ValueError, match="matching and non-matching"):
        calibrate_match_threshold(sim, np.ones_like(same))
    with pytest.raises(ValueError, match="one flag per pair"):
        calibrate_match_threshold(sim, same[:5])


def test_pipeline_reports_similarity_and_match(constructed_folder):  # noqa: F811
    from transformers import AutoModel, pipeline

    folder, motions = constructed_folder
    classify = pipeline("zero-shot-motion-classification", model=str(folder))
    first = classify(motions[0], candidate_labels=LABELS)
    assert first[0]["label"] == "walks" and first[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert all(r["match"] is None for r in first)  # not calibrated
    assert abs(first[1]["similarity"]) < 1e-3  # the constructed embeddings are orthogonal
    calibrated = pipeline("zero-shot-motion-classification", model=str(folder), threshold=0.5)
    assert [r["match"] for r in calibrated(motions[0], candidate_labels=LABELS)] == [True, False, False]
    # a label set without the motion's action: every answer is "no match", however high its softmax score
    answer = calibrated(motions[0], candidate_labels=["jumps", "kicks"])
    assert answer[0]["score"] > 0.4 and not any(r["match"] for r in answer)
    model = AutoModel.from_pretrained(folder)
    model.config.match_threshold = 0.99
    from_config = pipeline("zero-shot-motion-classification", model=model, processor=calibrated.processor)
    assert from_config(motions[0], candidate_labels=LABELS)[0]["match"] is True
    with pytest.raises(ValueError, match="cosine similarity in"):
        calibrated(motions[0], candidate_labels=LABELS, threshold=2)


def test_long_takes_are_read_in_windows_and_batching_keeps_them(constructed_folder):  # noqa: F811
    from transformers import pipeline

    folder, motions = constructed_folder
    classify = pipeline("zero-shot-motion-classification", model=str(folder))
    fe = classify.processor.feature_extractor
    # an action that comes late in a long take: the first max_frames frames alone would miss it
    long = np.concatenate([motions[1], motions[1], motions[0], motions[0], motions[0]])
    assert len(long) > fe.max_frames
    starts = window_starts(len(long), fe.max_frames)
    assert starts[0] == 0 and starts[-1] == len(long) - fe.max_frames and np.all(np.diff(starts) <= fe.max_frames // 2)
    pooled = classify(long, candidate_labels=LABELS)
    first_only = classify(long, candidate_labels=LABELS, windows=False)
    windows = [long[s : s + fe.max_frames] for s in starts]
    with torch.no_grad():
        inputs = classify.processor(motions=windows, return_tensors="pt")
        emb = classify.model.get_motion_features(**inputs, normalize=True).pooler_output
    expected = F.normalize(emb.mean(0), dim=-1)
    text = classify.label_embeddings(tuple(LABELS), ("A person {}.",))
    got = {r["label"]: r["similarity"] for r in pooled}
    np.testing.assert_allclose([got[k] for k in LABELS], (text @ expected).numpy(), atol=1e-5)
    assert {r["label"]: r["similarity"] for r in first_only} != pytest.approx(got, abs=1e-3)
    # in a batch with short motions (other window counts) every motion keeps its own windows
    batched = classify([motions[2], long, motions[1]], candidate_labels=LABELS, batch_size=3)
    one_by_one = [classify(m, candidate_labels=LABELS) for m in (motions[2], long, motions[1])]
    for b, o in zip(batched, one_by_one):
        assert [r["label"] for r in b] == [r["label"] for r in o]
        np.testing.assert_allclose([r["similarity"] for r in b], [r["similarity"] for r in o], atol=1e-5)


def test_sentence_labels_are_not_given_a_second_subject():
    assert fill_template("A person {}.", "walks") == "A person walks."
    assert fill_template("A person {}.", "a person walks forward") == "A person walks forward."
    assert fill_template("A person {}.", "Someone waves.") == "Someone waves."
    assert fill_template("Motion of {}.", "a person walking") == "Motion of a person walking."  # not a subject prefix


def test_search_reports_match_and_keeps_the_threshold(tmp_path):
    gallery = F.normalize(torch.eye(4, 8) + 0.01, dim=-1)
    index = MotionSearchIndex(gallery, ["a", "b", "c", "d"], match_threshold=0.9)
    hits = index.search(gallery[1], k=2)[0]
    assert hits[0]["id"] == "b" and hits[0]["match"] is True and hits[1]["match"] is False
    absent = index.search(F.normalize(torch.ones(8) - torch.eye(8)[:4].sum(0), dim=-1), k=1)[0][0]
    assert absent["match"] is False  # nothing in the library fits: the best hit is not presented as a match
    assert index.search_by_motion(gallery[0], k=1)[0][0]["match"] is None  # the threshold is for text queries
    loaded = MotionSearchIndex.load(index.save(tmp_path / "index"))
    assert loaded.match_threshold == 0.9 and loaded.search(gallery[1], k=1)[0][0]["match"] is True
    assert MotionSearchIndex(gallery, ["a", "b", "c", "d"]).search(gallery[0], k=1)[0][0]["match"] is None


def test_equal_captions_are_positives_in_the_loss():
    torch.manual_seed(0)
    motion, text = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(2.0)
    loss = ClipLoss()
    assert loss(motion, text, scale, torch.arange(6)).item() == pytest.approx(loss(motion, text, scale).item())
    keys = torch.tensor([5, 5, 1, 2, 3, 4])  # pairs 0 and 1 share a caption
    logits = scale.exp() * motion @ text.T
    target = (keys[:, None] == keys[None, :]).float()
    target /= target.sum(1, keepdim=True)
    expected = (-(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.T.log_softmax(1)).sum(1).mean()) / 2
    assert loss(motion, text, scale, keys).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss(motion, text, scale, keys).item() != pytest.approx(loss(motion, text, scale).item())
