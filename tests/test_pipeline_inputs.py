"""What the zero-shot pipeline and the processor accept: batched calls, label and top_k checks, file paths,
comma-separated labels, and the warnings for truncated captions and motions shorter than one patch row."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import modeling_motionpatch  # noqa: F401  (registers the pipeline task)
from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchProcessor
from modeling_motionpatch.motion_patches import MotionInputError, MotionInputWarning

from test_pipeline_interaction import LABELS, constructed_folder  # noqa: F401  (the fixture: motion i -> label i)


@pytest.fixture
def classify(constructed_folder):  # noqa: F811
    from transformers import pipeline

    folder, motions = constructed_folder
    return pipeline("zero-shot-motion-classification", model=str(folder)), motions


def scores(result):
    return {r["label"]: r["score"] for r in result}


def assert_same(results, expected):
    assert len(results) == len(expected)
    for got, want in zip(results, expected):
        assert [r["label"] for r in got] == [r["label"] for r in want]
        assert scores(got) == pytest.approx(scores(want), abs=1e-5)


def test_batched_calls_equal_one_at_a_time(classify):
    """Lists, tuples, generators and datasets, with batch_size 2 over 3 motions (a partial last batch)."""
    import datasets
    from transformers import pipeline
    from transformers.pipelines.pt_utils import KeyDataset

    classify, motions = classify
    single = [classify(m, candidate_labels=LABELS) for m in motions]
    assert [r[0]["label"] for r in single] == LABELS  # each motion gets its own label: a mix-up would show
    assert_same(classify(motions, candidate_labels=LABELS, batch_size=2), single)
    assert_same(classify(tuple(motions), candidate_labels=LABELS), single)  # was: the first motion's scores only
    assert_same(list(classify((m for m in motions), candidate_labels=LABELS, batch_size=2)), single)
    rows = datasets.Dataset.from_dict({"motion": [m.tolist() for m in motions]})  # nested lists per row
    assert_same(list(classify(KeyDataset(rows, "motion"), candidate_labels=LABELS, batch_size=2)), single)
    assert_same(list(classify(KeyDataset(rows.with_format("torch"), "motion"), candidate_labels=LABELS)), single)
    batched = pipeline("zero-shot-motion-classification", model=classify.model, processor=classify.processor, batch_size=3)
    assert_same(batched([torch.from_numpy(m) for m in motions], candidate_labels=LABELS, top_k=2),
                [r[:2] for r in single])
    # one motion written as nested lists is one input, not a list of frames
    assert_same([classify(motions[1].tolist(), candidate_labels=LABELS)], single[1:2])
    with pytest.raises(ValueError, match="KeyDataset"):
        classify(rows, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="holds 2 motions"):
        classify([motions[:2]], candidate_labels=LABELS)  # a list inside the list


def test_empty_labels_top_k_and_templates_are_checked(classify):
    classify, motions = classify
    for bad in (["walks", ""], ["walks", "   "], "walks, , jumps"):
        with pytest.raises(ValueError, match="candidate label 1 is empty"):
            classify(motions[0], candidate_labels=bad)
    with pytest.raises(ValueError, match="labels must be strings"):
        classify(motions[0], candidate_labels=["walks", None])
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="top_k must be a positive integer"):
            classify(motions[0], candidate_labels=LABELS, top_k=bad)
    assert [r["label"] for r in classify(motions[2], candidate_labels=LABELS, top_k=np.int64(2))][:1] == ["kicks"]
    assert len(classify(motions[2], candidate_labels=LABELS, top_k=2)) == 2
    assert len(classify(motions[2], candidate_labels=LABELS, top_k=10)) == 3
    for bad in ("{} and {}", "{name}", ["A person {}.", None], []):
        with pytest.raises(ValueError, match="placeholder"):
            classify(motions[0], candidate_labels=LABELS, hypothesis_template=bad)


def test_comma_separated_labels_like_transformers(classify):
    classify, motions = classify
    assert classify(motions[1], candidate_labels="walks, jumps,kicks") == classify(motions[1], candidate_labels=LABELS)


def test_paths_to_npy_and_npz_files(classify, tmp_path):
    classify, motions = classify
    expected = classify(motions[1], candidate_labels=LABELS)
    np.save(tmp_path / "one.npy", motions[1])
    np.savez(tmp_path / "single.npz", motions[1])
    np.savez(tmp_path / "named.npz", joints=motions[1], fps=np.float32(20))
    for path in (tmp_path / "one.npy", str(tmp_path / "one.npy"), tmp_path / "single.npz", str(tmp_path / "named.npz")):
        assert_same([classify(path, candidate_labels=LABELS)], [expected])
    listed = classify([str(tmp_path / "one.npy"), motions[2]], candidate_labels=LABELS, batch_size=2)
    assert [r[0]["label"] for r in listed] == ["jumps", "kicks"]

    np.savez(tmp_path / "clips.npz", joints=np.concatenate(motions), lengths=[len(m) for m in motions], offsets=[0, 1, 2])
    np.savez(tmp_path / "unnamed.npz", a=motions[0], b=motions[1])
    np.save(tmp_path / "objects.npy", np.array([motions[0], "x"], dtype=object), allow_pickle=True)
    (tmp_path / "walk.bvh").write_text("HIERARCHY\n")
    (tmp_path / "walk.txt").write_text("1 2 3\n")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    cases = {
        "clips.npz": "several concatenated clips",
        "unnamed.npz": "holds arrays",
        "objects.npy": "cannot be read as a numpy file",  # pickled: refused, never unpickled
        "walk.bvh": "no MOTION section",
        "walk.txt": "Accepted inputs",
        "broken.npy": "cannot be read as a numpy file",
        "missing.npy": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            classify(tmp_path / name, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="Accepted inputs"):
        classify({"motion": motions[0]}, candidate_labels=LABELS)


def _messages(record) -> list[str]:
    return [str(w.message) for w in record]


def test_truncated_captions_warn_unless_truncation_is_explicit(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, model_max_length=12)
    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tok)
    long = "a person walks forward " * 6
    with pytest.warns(UserWarning, match=r"1 of 2 captions are longer than 12 tokens and were truncated \(indices \[1\]\)"):
        out = processor(text=["a person jumps", long])
    assert max(len(ids) for ids in out["input_ids"]) == 12
    with pytest.warns(UserWarning, match="longer than 4 tokens"):
        processor(text=["a person jumps"], max_length=4)  # [CLS] a person jumps [SEP]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        processor(text=[long], truncation=True)
        processor(text=["a person jumps"])
    assert not [m for m in _messages(record) if "truncated" in m]
    # tokenizers without `encodings` (Python ones): the lengths are counted without truncation
    with pytest.warns(UserWarning, match=r"indices \[0\]"):
        processor._warn_if_truncated([long], {"input_ids": [[0] * 12]}, None)


def test_motions_shorter_than_one_patch_row_warn(classify):
    classify, motions = classify
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64)
    batch = [motions[0][:1], motions[1], motions[2][:15]]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fe(batch)
    short = [m for m in _messages(record) if "fewer than 16 frames" in m]
    assert len(short) == 1 and "2 of 3 motions" in short[0] and "[0, 2]" in short[0] and "shortest 1" in short[0]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fe([motions[1][:16]])
    assert not [w for w in record if issubclass(w.category, MotionInputWarning)]
    with pytest.raises(MotionInputError, match="fewer than min_frames=16"):
        MotionPatchFeatureExtractor("humanml3d", max_frames=64, min_frames=16)(batch)
    with pytest.warns(MotionInputWarning, match="mean-pose padding"):
        classify(motions[0][:1], candidate_labels=LABELS)
