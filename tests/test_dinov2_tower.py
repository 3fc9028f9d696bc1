"""A transformers DINOv2 backbone (``Dinov2Config``) as the motion tower: geometry, masking, save/reload, and a
saved folder that runs with the package blocked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_motions
from huggingface_hub.errors import StrictDataclassClassValidationError
from test_remote_code import BLOCK_PACKAGE, marked, run_python
from transformers import AutoModel, AutoProcessor, Dinov2Config

import modeling_motionpatch  # noqa: F401  (registers the Auto classes)
from modeling_motionpatch import (
    MotionPatchConfig,
    MotionPatchFeatureExtractor,
    MotionPatchModel,
    MotionPatchProcessor,
)

CAPTIONS = ["a person walks forward", "someone jumps", "a person kicks"]


def dinov2_config(vocab_size: int, **overrides) -> MotionPatchConfig:
    # 4 patch rows of 14 frames x 5 body parts of 14 points: a 56 x 70 motion image, 20 patches of 14 x 14
    motion = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                          image_size=[56, 70], patch_size=14)
    text = dict(model_type="distilbert", vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                max_position_embeddings=64)
    return MotionPatchConfig(motion_config=motion, text_config=text, projection_dim=16, **overrides)


def processor_for(tokenizer) -> MotionPatchProcessor:
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=56, points_per_part=14, frames_per_patch=14)
    return MotionPatchProcessor(fe, tokenizer)


def test_config_geometry_follows_the_dinov2_tower(tokenizer):
    config = dinov2_config(len(tokenizer))
    assert type(config.motion_config).__name__ == "Dinov2Config"
    assert (config.max_frames, config.points_per_part) == (56, 14)
    assert (config.frames_per_patch, config.points_per_patch, config.num_patches) == (14, 14, 20)
    reloaded = MotionPatchConfig.from_dict(config.to_dict())
    assert type(reloaded.motion_config).__name__ == "Dinov2Config"
    assert reloaded.patch_grid == (4, 5)


def test_geometry_the_tower_cannot_read_is_refused(tokenizer):
    with pytest.raises(StrictDataclassClassValidationError, match="straddle two body parts"):
        MotionPatchConfig(motion_config=Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                     image_size=[56, 80], patch_size=14))
    with pytest.raises(StrictDataclassClassValidationError, match="motion tower must be one of"):
        MotionPatchConfig(motion_config={"model_type": "bert"})


@pytest.mark.parametrize("mask", [False, True])
def test_forward_features_and_reload(tokenizer, tmp_path, mask):
    torch.manual_seed(0)
    model = MotionPatchModel(dinov2_config(len(tokenizer), mask_motion_padding=mask)).eval()
    assert type(model.motion_model).__name__ == "Dinov2Model"
    processor = processor_for(tokenizer)
    motions = random_motions(3, seed=1, lengths=(15, 50))  # shorter than 56 frames: padded patch rows
    inputs = processor(text=CAPTIONS, motions=motions, return_tensors="pt", padding=True)
    assert inputs["motion_values"].shape == (3, 3, 56, 70)
    assert inputs["motion_attention_mask"].shape == (3, 20)
    assert (inputs["motion_attention_mask"] == 0).any()
    with torch.no_grad():
        out = model(**inputs)
        feats = model.get_motion_features(inputs["motion_values"], inputs["motion_attention_mask"], normalize=True)
    assert out.logits_per_text.shape == (3, 3)
    assert out.motion_model_output.last_hidden_state.shape == (3, 21, 32)
    torch.testing.assert_close(feats.pooler_output, out.motion_embeds)

    # padding changes the embedding only when it is masked
    values, attn = inputs["motion_values"], inputs["motion_attention_mask"]
    changed = values.clone()
    changed[0, :, -14:] += 5.0  # the last patch row of the first motion, padding for a motion of < 42 frames
    assert attn[0, -5:].sum() == 0
    with torch.no_grad():
        other = model.get_motion_features(changed, attn).pooler_output
        base = model.get_motion_features(values, attn).pooler_output
    assert torch.allclose(other[0], base[0], atol=1e-5) == mask
    torch.testing.assert_close(other[1:], base[1:])

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded.motion_model).__name__ == "Dinov2Model"
    reinputs = loaded_processor(text=CAPTIONS, motions=motions, return_tensors="pt", padding=True)
    torch.testing.assert_close(reinputs["motion_values"], inputs["motion_values"])
    with torch.no_grad():
        again = loaded(**reinputs)
    torch.testing.assert_close(again.logits_per_text, out.logits_per_text)


def test_motion_image_of_another_size_is_refused(tokenizer):
    model = MotionPatchModel(dinov2_config(len(tokenizer))).eval()
    with pytest.raises(ValueError, match="20 positions"):
        model.get_motion_features(torch.zeros(1, 3, 70, 70))
    with pytest.raises(ValueError, match=r"motion_values of 70 x 56"):  # as many patches, transposed
        model.get_motion_features(torch.zeros(1, 3, 70, 56))


def test_saved_dinov2_model_runs_without_the_package(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = MotionPatchModel(dinov2_config(len(tokenizer), mask_motion_padding=True)).eval()
    processor = processor_for(tokenizer)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    motions = random_motions(2, seed=4, lengths=(15, 50))
    np.save(tmp_path / "motions.npy", np.array(motions, dtype=object), allow_pickle=True)
    with torch.no_grad():
        expected = model(**processor(text=CAPTIONS, motions=motions, return_tensors="pt", padding=True))
    code = f"CAPTIONS = {CAPTIONS!r}\n" + """
import json
import numpy as np, torch
from transformers import AutoModel, AutoProcessor
motions = list(np.load("motions.npy", allow_pickle=True))
model = AutoModel.from_pretrained("model", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("model", trust_remote_code=True)
with torch.no_grad():
    logits = model(**processor(text=CAPTIONS, motions=motions, return_tensors="pt", padding=True)).logits_per_text
print("CLASS:" + json.dumps(type(model.motion_model).__name__))
print("LOGITS:" + json.dumps(logits.tolist()))
"""
    stdout = run_python(BLOCK_PACKAGE + code, cwd=tmp_path).stdout
    assert marked(stdout, "CLASS:") == "Dinov2Model"
    np.testing.assert_allclose(marked(stdout, "LOGITS:"), expected.logits_per_text.numpy(), atol=1e-5)


def test_the_shipped_dinov2_config_trains_from_a_pretrained_dinov2_folder(tmp_path, tokenizer_dir):
    """``motionpatch-train bandai-namco-dinov2`` with a tiny DINOv2 folder in place of the converted weights and the
    synthetic data: the tower's 14 x 14 patches set the geometry, and the best model reloads with its processor."""
    from training_helpers import make_tiny_text_dir, run_training
    from transformers import AutoConfig, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2, image_size=56,
                             patch_size=14)).save_pretrained(tmp_path / "dinov2")
    text = make_tiny_text_dir(tokenizer_dir, tmp_path / "text")
    AutoModel.from_config(AutoConfig.from_pretrained(text)).save_pretrained(text)  # a "pretrained" text tower
    out = tmp_path / "run"
    proc = run_training(["bandai-namco-dinov2", "--dataset", "synthetic", "--dataset_dir", "",
                         "--motion_model_name_or_path", str(tmp_path / "dinov2"), "--text_model_name_or_path", str(text),
                         "--freeze_text_tower", "false",
                         "--synthetic_num_train", "32", "--synthetic_num_validation", "8", "--synthetic_num_test", "8",
                         "--max_frames", "56", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
                         "--num_train_epochs", "1", "--max_steps", "2", "--eval_protocols", "all", "--output_dir", str(out),
                         "--disable_tqdm", "true"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    model = AutoModel.from_pretrained(out / "best")
    processor = AutoProcessor.from_pretrained(out / "best")
    assert model.config.motion_config.model_type == "dinov2" and model.config.patch_grid == (4, 5)
    fe = processor.feature_extractor
    assert (fe.max_frames, fe.points_per_part, fe.frames_per_patch) == (56, 14, 14)
    inputs = processor(text=CAPTIONS, motions=random_motions(2, seed=1), return_tensors="pt")
    with torch.no_grad():
        assert model(**inputs).logits_per_text.shape == (3, 2)
