"""``motionpatch-zero-shot``: the batched scoring equals ``pipeline("zero-shot-motion-classification")``, accuracies
and baselines are right, label lists and phrases, clear errors. Tiny saved model + tiny saved datasets, offline."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import random_motions, tiny_config

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
LABELS = ["walk", "run", "jump", "kick", "wave"]
N = 12


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tokenizer_dir):
    """A saved tiny model + processor; a 22-joint dataset whose rows are labelled [action, style] (some unlabelled)
    and a 21-joint (KIT-ML skeleton) copy."""
    import datasets
    from motionpatch_processing.io import save_prepared
    from motionpatch_processing.schema import motion_features
    from transformers import AutoTokenizer

    from modeling_motionpatch import (
        MotionPatchFeatureExtractor,
        MotionPatchModel,
        MotionPatchProcessor,
    )

    root = tmp_path_factory.mktemp("zero_shot")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    MotionPatchModel(tiny_config(vocab_size=len(tok))).save_pretrained(root / "model")
    MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tok).save_pretrained(root / "model")
    rng = np.random.default_rng(0)
    for name, joints, skeleton in (("data", 22, "humanml3d"), ("data_kit", 21, "kit")):
        labels = [[LABELS[i % 5], "slowly" if i % 2 else "quickly"] for i in range(N)]
        labels[-1] = []  # a row without labels is left out and counted
        rows = {
            "id": [f"s{i}" for i in range(N)],
            "motion": random_motions(N, joints, seed=int(rng.integers(1 << 30))),  # body-like for SMPL-22
            "fps": [20.0] * N, "skeleton": [skeleton] * N, "captions": [[]] * N, "labels": labels,
            "source": ["test"] * N, "mirrored": [False] * N,
        }
        ds = datasets.Dataset.from_dict(rows, features=motion_features(joints))
        save_prepared(datasets.DatasetDict({"test": ds}), root / name, skeleton)
    return root


def _main(argv):
    from motionpatch_training.zero_shot import main

    return main([str(a) for a in argv])


def test_batched_scores_equal_the_pipeline(workdir):
    """The batched engine (text once, motions in batches) gives the pipeline's softmax scores, with 2 templates."""
    from motionpatch_processing.io import load_prepared
    from motionpatch_training.encode import load_model_and_processor, make_accelerator
    from motionpatch_training.zero_shot import batched_logits, pipeline_scores

    model, processor = load_model_and_processor(str(workdir / "model"))
    motions = [np.asarray(m, np.float32) for m in load_prepared(workdir / "data").dataset["test"].with_format("numpy")["motion"]][:5]
    texts = ["walks forward", "runs", "jumps", "kicks with the left leg", "waves the right hand"]
    templates = ["A person {}.", "someone {}"]
    batched = batched_logits(make_accelerator(cpu=True), model, processor, motions.__getitem__, 5, texts, templates,
                             batch_size=2).softmax(-1)
    piped = pipeline_scores(model, processor, motions.__getitem__, 5, texts, templates)
    torch.testing.assert_close(batched, piped, atol=2e-6, rtol=1e-5)
    assert torch.equal(batched.argmax(1), piped.argmax(1))


def test_cli_accuracy_baselines_and_engines_agree(workdir, tmp_path, capsys):
    outs = {}
    for engine in ("batched", "pipeline"):
        out = tmp_path / f"{engine}.json"
        rc = _main(["--model", workdir / "model", "--dataset", workdir / "data", "--label-index", 0, "--engine", engine,
                    "--batch-size", 4, "--output", out])
        assert rc == 0
        outs[engine] = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "| top-1 |" in printed and "| balanced top-1 |" in printed and "chance (uniform)" in printed
    res = outs["batched"]
    assert len({p["top1"] for p in res["predictions"]}) > 1  # the labels are distinct texts: no all-way tie
    assert res["predictions"] == outs["pipeline"]["predictions"]
    assert res["metrics"] == pytest.approx(outs["pipeline"]["metrics"])
    assert res["candidate_labels"] == sorted(LABELS) and res["candidate_texts"] == sorted(LABELS)
    assert res["counts"] == {"rows": N, "evaluated": N - 1, "without_label": 1, "labels_outside_candidates": 0,
                             "num_candidates": 5}
    m, chance = res["metrics"], res["chance"]
    assert 0 <= m["top1"] <= m["top5"] == 100.0  # 5 candidates: top-5 always hits
    assert chance["top1"] == pytest.approx(20.0) and chance["top5"] == pytest.approx(100.0)
    hits = sum(p["top1"] in p["true"] for p in res["predictions"])
    assert m["top1"] == pytest.approx(100.0 * hits / (N - 1))
    assert sum(map(sum, res["confusion"])) == N - 1
    assert res["majority"]["top1"] == pytest.approx(100.0 * 3 / 11)  # walk, run: 3 of the 11 labelled rows each
    assert res["per_class"]["walk"]["support"] == 3


def test_accuracy_report_counts_any_true_label_and_chance_is_exact():
    from motionpatch_training.zero_shot import accuracy_report, chance_accuracy

    scores = torch.tensor([[0.9, 0.5, 0.1, 0.0], [0.1, 0.2, 0.3, 0.8], [0.3, 0.9, 0.2, 0.1]])
    truth = [[2, 0], [1], [0, 3]]  # row 0: label 0 ranked first; row 1: label 1 third; row 2: labels 0/3 second/fourth
    rep = accuracy_report(scores, truth, ["a", "b", "c", "d"], ks=(1, 2, 3))
    assert rep["metrics"]["top1"] == pytest.approx(100 / 3)
    assert rep["metrics"]["top2"] == pytest.approx(200 / 3)
    assert rep["metrics"]["top3"] == pytest.approx(100.0)
    assert "confusion" not in rep  # multi-label: no confusion matrix
    for num_labels, g, k in ((4, 2, 1), (4, 2, 2), (5, 1, 3), (6, 3, 2)):
        # brute force over every ranking of the labels (labels 0..g-1 are the true ones)
        perms = list(itertools.permutations(range(num_labels)))
        brute = 100.0 * sum(any(p[i] < g for i in range(k)) for p in perms) / len(perms)
        assert chance_accuracy(num_labels, np.array([g]), k) == pytest.approx(brute)


def test_label_lists_and_phrases(workdir, tmp_path):
    from motionpatch_training.zero_shot import (
        BABEL_60_CLASSES,
        candidate_labels,
        label_phrases,
        read_label_file,
    )

    assert len(BABEL_60_CLASSES) == len(set(BABEL_60_CLASSES)) == 60
    assert BABEL_60_CLASSES[:3] == ("walk", "stand", "hand movements") and BABEL_60_CLASSES[-1] == "grab person / body part"
    (tmp_path / "l.txt").write_text("walk\nrun\n\n")
    (tmp_path / "l.json").write_text(json.dumps({"run": 1, "walk": 0}))
    assert read_label_file(tmp_path / "l.txt") == read_label_file(tmp_path / "l.json") == ["walk", "run"]
    texts, note = label_phrases(["walk-turn-left", "raise-up-both-hands"], "auto")
    assert texts == ["walks forward and turns left", "raises both hands"] and "Bandai" in note
    assert label_phrases(["take/pick something up", "t-pose"], "auto")[0] == ["take/pick something up", "t pose"]
    assert label_phrases(["t-pose"], "none")[0] == ["t-pose"]
    (tmp_path / "p.json").write_text(json.dumps({"t-pose": "stands in a T pose"}))
    assert label_phrases(["t-pose", "walk"], str(tmp_path / "p.json"))[0] == ["stands in a T pose", "walk"]
    from motionpatch_training.encode import load_eval_data

    data = load_eval_data(str(workdir / "data"), "test")
    assert candidate_labels("auto", data, "labels", 1)[0] == ["quickly", "slowly"]
    with pytest.warns(UserWarning, match=r"UNVERIFIED class list.*--candidate-labels FILE.*--class-names FILE"):
        labels, note = candidate_labels("babel60", data, "labels", None)
    assert labels == list(BABEL_60_CLASSES) and "unverified" in note


def test_bad_inputs_are_clear_errors(workdir, capsys):
    base = ["--model", workdir / "model", "--dataset", workdir / "data"]
    assert _main(base + ["--label-index", "first"]) == 2
    assert "--label-index must be a non-negative integer or 'all'" in capsys.readouterr().err
    assert _main(base + ["--template", "no placeholder"]) == 2
    assert "'{}' placeholder" in capsys.readouterr().err
    assert _main(base + ["--labels-column", "tags"]) == 2
    assert "no labels column 'tags'" in capsys.readouterr().err
    assert _main(base + ["--label-index", 5, "--candidate-labels", "babel60"]) == 2
    err = capsys.readouterr().err
    assert "no row of split 'test'" in err and "12 rows have no label at labels[5]" in err
    assert _main(["--model", workdir / "model", "--dataset", workdir / "data_kit"]) == 2
    err = capsys.readouterr().err
    assert "21 joints" in err and "22 joints" in err and "--skeleton-from-dataset" in err


def test_cross_skeleton_with_the_flag(workdir, tmp_path):
    out = tmp_path / "kit.json"
    assert _main(["--model", workdir / "model", "--dataset", workdir / "data_kit", "--skeleton-from-dataset",
                  "--output", out]) == 0
    res = json.loads(out.read_text())
    assert res["processor"]["skeleton"] == "kit" and res["processor"]["skeleton_from_dataset"] is True
    assert res["counts"]["evaluated"] == N - 1
