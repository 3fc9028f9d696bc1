"""``motionpatch-evaluate`` end to end on a tiny saved model and a tiny saved synthetic dataset (no download).

Covers: the JSON and the printed table; metrics equal to ``compute_retrieval_metrics`` on embeddings computed
directly with the model; the model card's ``model-index`` (parsed back by ``huggingface_hub.ModelCard.load``);
clear errors for a model folder without a processor, a split without captions, motions of another skeleton and an
unknown protocol; ``--skeleton-from-dataset``. Several processes: ``tests/test_evaluation_distributed.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import tiny_config

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
N_CLIPS = 36  # > 32, so small_batches has one batch


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tokenizer_dir):
    """A saved tiny model + processor and a saved synthetic dataset (first caption of clip 1 = that of clip 0)."""
    import datasets
    from motionpatch_processing.io import save_prepared
    from motionpatch_processing.synthetic import generate_synthetic_dataset
    from transformers import AutoTokenizer

    from modeling_motionpatch import (
        MotionPatchFeatureExtractor,
        MotionPatchModel,
        MotionPatchProcessor,
    )

    root = tmp_path_factory.mktemp("evaluation")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tok)))
    model.save_pretrained(root / "model")
    MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tok).save_pretrained(root / "model")
    model.save_pretrained(root / "model_without_processor")

    test = generate_synthetic_dataset(N_CLIPS, seed=3)
    caps = list(test["captions"])
    caps[1] = [caps[0][0]] + caps[1][1:]  # a repeated first caption: 'all' counts both motions as correct
    test = test.remove_columns("captions").add_column("captions", caps, feature=test.features["captions"])
    save_prepared(datasets.DatasetDict({"test": test}), root / "data", "humanml3d")

    no_caps = test.remove_columns("captions").add_column("captions", [[] for _ in range(N_CLIPS)],
                                                         feature=test.features["captions"])
    save_prepared(datasets.DatasetDict({"test": no_caps}), root / "data_no_captions", "humanml3d")

    from motionpatch_processing.schema import (
        motion_features,  # the 21-joint KIT-ML skeleton
    )

    rng = np.random.default_rng(0)
    kit_rows = {
        "id": [f"k{i}" for i in range(8)], "motion": [rng.normal(size=(30, 21, 3)).astype(np.float32) for _ in range(8)],
        "fps": [20.0] * 8, "skeleton": ["kit"] * 8, "captions": [[f"a person walks {w}"] for w in "abcdefgh"],
        "labels": [["walk"]] * 8, "source": ["test"] * 8, "mirrored": [False] * 8,
    }
    kit = datasets.Dataset.from_dict(kit_rows, features=motion_features(21))
    save_prepared(datasets.DatasetDict({"test": kit}), root / "data_kit", "kit")
    return root


def _run(argv):
    from motionpatch_training.evaluate_retrieval import main

    return main([str(a) for a in argv])


def _direct_embeddings(workdir):
    """Text (first captions) and motion embeddings computed directly with the model, in one batch each."""
    from motionpatch_processing.io import load_prepared

    from modeling_motionpatch import MotionPatchModel, MotionPatchProcessor

    model = MotionPatchModel.from_pretrained(workdir / "model").eval()
    processor = MotionPatchProcessor.from_pretrained(workdir / "model")
    rows = load_prepared(workdir / "data").dataset["test"]
    captions = [c[0] for c in rows["captions"]]
    motions = [np.asarray(m, dtype=np.float32) for m in rows.with_format("numpy")["motion"]]
    with torch.no_grad():
        text = model.get_text_features(**processor(text=captions, return_tensors="pt", padding=True), normalize=True).pooler_output
        inputs = processor(motions=motions, return_tensors="pt")
        motion = model.get_motion_features(inputs["motion_values"], inputs["motion_attention_mask"], normalize=True).pooler_output
    return text, motion, captions


def test_evaluate_end_to_end_matches_direct_metrics(workdir, tmp_path, capsys):
    from motionpatch_training.encode import default_sentence_encoder

    from modeling_motionpatch.apps.retrieval_metrics import compute_retrieval_metrics

    encoder = default_sentence_encoder()
    protocols = "all,small_batches,strict" + (",threshold" if encoder else "")
    out = tmp_path / "results.json"
    rc = _run(["--model", workdir / "model", "--dataset", workdir / "data", "--split", "test", "--protocols", protocols,
               "--seed", 3, "--batch-size", 8, "--output", out])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "| Protocol | N | T2M R@1 |" in printed and "all (chance)" in printed and "small_batches (bs=32, seed=3)" in printed
    res = json.loads(out.read_text())
    assert res["model"] == str(workdir / "model") and res["dataset"] == str(workdir / "data")
    assert res["split"] == "test" and res["seed"] == 3
    assert res["counts"] == {"rows": N_CLIPS, "evaluated": N_CLIPS, "without_caption": 0,
                             "distinct_first_captions": N_CLIPS - 1}
    assert res["protocols"]["small_batches"] == {"num_queries": 32, "batch_size": 32, "seed": 3, "num_batches": 1}
    assert res["table"] in printed

    text, motion, captions = _direct_embeddings(workdir)
    caption_embeds = None
    if encoder:  # independent sentence embeddings: MiniLM, attention-masked mean, normalised
        from transformers import AutoModel, AutoTokenizer

        tok, enc = AutoTokenizer.from_pretrained(encoder), AutoModel.from_pretrained(encoder).eval()
        batch = tok(captions, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = enc(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        caption_embeds = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        assert res["protocols"]["threshold"]["sentence_encoder"] == encoder
    expected = compute_retrieval_metrics(text, motion, captions=captions, protocols=protocols.split(","), seed=3,
                                         caption_embeds=caption_embeds)
    for protocol, metrics in expected.items():
        for key, value in metrics.items():
            if "/" in key:
                assert res["metrics"][f"{protocol}/{key}"] == pytest.approx(value, abs=1e-9), (protocol, key)
                assert res["results"][protocol][key] == pytest.approx(value, abs=1e-9)
    # chance levels: same random draws for every protocol; 'all' also accepts the motion with the repeated caption
    for k in (1, 5, 10):
        assert res["chance"][f"all/t2m/R@{k}"] >= res["chance"][f"strict/t2m/R@{k}"] > 0


def test_update_model_card_writes_a_parsable_model_index_and_keeps_the_rest(workdir, tmp_path):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    folder = tmp_path / "model"
    shutil.copytree(workdir / "model", folder)
    other = EvalResult(task_type="zero-shot-classification", dataset_type="someone/else", dataset_name="Else",
                       metric_type="accuracy", metric_value=12.5)
    ModelCard.from_template(ModelCardData(model_name="tiny", license="apache-2.0", eval_results=[other]),
                            template_str="---\n{{ card_data }}\n---\n# Tiny\n\nHand-written text stays.\n").save(
        str(folder / "README.md"))
    for _ in range(2):  # a second run replaces its entries instead of adding duplicates
        rc = _run(["--model", folder, "--dataset", workdir / "data", "--protocols", "all,small_batches",
                   "--update-model-card"])
        assert rc == 0
    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "apache-2.0" and "Hand-written text stays." in card.text
    assert card.text.count("<!-- motionpatch-evaluate:start") == 1 and "| Protocol | N |" in card.text
    results = card.data.eval_results
    names = [r.metric_name for r in results if r.dataset_type == "motionpatch/data"]  # no report: the folder name
    assert len(names) == len(set(names)) == 16  # 2 protocols x 2 directions x (R@1, R@5, R@10, MedR)
    assert any(r.dataset_type == "someone/else" and r.metric_value == 12.5 for r in results)
    r1 = next(r for r in results if r.metric_name == "T2M R@1 (all protocol)")
    assert r1.task_type == "text-to-motion-retrieval" and r1.dataset_split == "test" and r1.metric_type == "recall@1"
    assert 0.0 <= r1.metric_value <= 100.0


def test_model_folder_without_processor_is_a_clear_error(workdir, capsys):
    rc = _run(["--model", workdir / "model_without_processor", "--dataset", workdir / "data"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "has no processor" in err and "processor_config.json" in err and "tokenizer" in err
    assert "save_pretrained" in err  # says how to add one


def test_split_without_captions_is_a_clear_error(workdir, capsys):
    rc = _run(["--model", workdir / "model", "--dataset", workdir / "data_no_captions"])
    err = capsys.readouterr().err
    assert rc == 2 and "has no captions" in err and "motionpatch-zero-shot" in err


def test_other_skeleton_needs_the_flag_and_then_swaps_the_processor(workdir, tmp_path, capsys):
    rc = _run(["--model", workdir / "model", "--dataset", workdir / "data_kit", "--protocols", "all"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "21 joints" in err and "22 joints" in err and "--skeleton-from-dataset" in err and "'kit'" in err
    out = tmp_path / "kit.json"
    rc = _run(["--model", workdir / "model", "--dataset", workdir / "data_kit", "--protocols", "all,small_batches",
               "--skeleton-from-dataset", "--output", out])
    assert rc == 0
    res = json.loads(out.read_text())
    proc = res["processor"]
    assert proc["skeleton"] == "kit" and proc["num_joints"] == 21 and proc["skeleton_from_dataset"] is True
    assert proc["processor_skeleton"] == "humanml3d" and "evaluated rows" in proc["statistics"]
    assert "small_batches" not in res["results"] and any("small_batches skipped" in n for n in res["notes"])


def test_unknown_protocol_and_bad_split_are_clear_errors(workdir, capsys):
    rc = _run(["--model", workdir / "model", "--dataset", workdir / "data", "--protocols", "all,recall"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown protocol(s) ['recall']" in err and "small_batches" in err
    rc = _run(["--model", workdir / "model", "--dataset", workdir / "data", "--split", "validation"])
    err = capsys.readouterr().err
    assert rc == 2 and "has no split 'validation'" in err and "['test']" in err


def test_synthetic_dataset_by_name(workdir, tmp_path):
    out = tmp_path / "syn.json"
    rc = _run(["--model", workdir / "model", "--dataset", "synthetic", "--synthetic-size", 6, "--protocols", "all",
               "--output", out])
    res = json.loads(out.read_text())
    assert rc == 0 and res["counts"]["evaluated"] == 6 and res["dataset_type"] == "motionpatch/synthetic"
