"""MotionPatchModel: loss, gradients, temperature, Auto round trips and trust_remote_code loading."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_motionpatch import MotionPatchConfig, MotionPatchModel, motion_text_contrastive_loss

from conftest import random_motions, tiny_config
from motionpatch_training.loop import enable_checkpointing

CAPTIONS = ["a person walks forward", "someone jumps", "a person kicks with the left leg"]


@pytest.fixture
def batch(tiny_processor):
    return tiny_processor(text=CAPTIONS, motions=random_motions(3, seed=1), return_tensors="pt")


def test_loss_equals_hand_computation_on_3x3():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3], [-0.5, 0.2, 3.0]])  # rows: texts, cols: motions
    # text->motion: -log softmax(row)[i], motion->text: -log softmax(column)[i]
    t2m = [2.0 - math.log(math.exp(2.0) + math.exp(0.5) + math.exp(-1.0)),
           1.0 - math.log(math.exp(0.0) + math.exp(1.0) + math.exp(0.3)),
           3.0 - math.log(math.exp(-0.5) + math.exp(0.2) + math.exp(3.0))]
    m2t = [2.0 - math.log(math.exp(2.0) + math.exp(0.0) + math.exp(-0.5)),
           1.0 - math.log(math.exp(0.5) + math.exp(1.0) + math.exp(0.2)),
           3.0 - math.log(math.exp(-1.0) + math.exp(0.3) + math.exp(3.0))]
    expected = (-sum(t2m) / 3 - sum(m2t) / 3) / 2
    assert motion_text_contrastive_loss(logits).item() == pytest.approx(expected, abs=1e-6)
    assert motion_text_contrastive_loss(logits.bfloat16()).dtype == torch.float32


def test_forward_shapes_normalised_embeddings_and_scaled_logits(tiny_model, batch):
    out = tiny_model(**batch, return_loss=True)
    assert out.logits_per_motion.shape == (3, 3) and out.logits_per_text.shape == (3, 3)
    torch.testing.assert_close(out.motion_embeds.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out.text_embeds.norm(dim=-1), torch.ones(3))
    expected = (out.text_embeds @ out.motion_embeds.t()) / 0.07
    torch.testing.assert_close(out.logits_per_text, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits_per_motion, expected.t())
    assert out.loss.dtype == torch.float32 and out.loss.item() > 0
    tiny_model.eval()
    with torch.no_grad():
        again = tiny_model(**batch)
        motion = tiny_model.get_motion_features(batch["motion_values"], normalize=True).pooler_output
        text = tiny_model.get_text_features(batch["input_ids"], batch["attention_mask"], normalize=True).pooler_output
    torch.testing.assert_close(motion, again.motion_embeds)
    torch.testing.assert_close(text, again.text_embeds)


def test_gradients_reach_both_towers_and_logit_scale_is_fixed(tiny_model, batch):
    before = tiny_model.logit_scale.detach().clone()
    optimizer = torch.optim.AdamW([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-2)
    out = tiny_model(**batch, return_loss=True)
    out.loss.backward()
    assert tiny_model.motion_model.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    assert tiny_model.text_model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert tiny_model.motion_projection.projection.weight.grad.abs().sum() > 0
    assert tiny_model.logit_scale.grad is None
    optimizer.step()
    assert torch.equal(tiny_model.logit_scale.detach(), before)
    assert tiny_model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_set_learnable_logit_scale_switches_between_buffer_and_parameter(tiny_model):
    tiny_model.logit_scale.fill_(1.5)
    tiny_model.set_learnable_logit_scale(True)
    assert "logit_scale" in dict(tiny_model.named_parameters()) and tiny_model.config.learnable_logit_scale
    tiny_model.set_learnable_logit_scale(False)
    assert "logit_scale" not in dict(tiny_model.named_parameters()) and "logit_scale" in tiny_model.state_dict()
    assert tiny_model.logit_scale.item() == 1.5


def test_learnable_logit_scale_changes(tokenizer, batch):
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer), learnable_logit_scale=True))
    assert "logit_scale" in dict(model.named_parameters())
    before = model.logit_scale.item()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(**batch, return_loss=True).loss.backward()
    optimizer.step()
    assert model.logit_scale.item() != before


def test_save_pretrained_auto_round_trip_is_exact(tmp_path, tiny_model, tiny_processor, batch):
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor

    tiny_model.save_pretrained(tmp_path)
    tiny_processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    # a fixed temperature stays fixed after loading (it is not a trainable parameter)
    reloaded = MotionPatchModel.from_pretrained(tmp_path)
    assert "logit_scale" not in dict(reloaded.named_parameters())
    assert reloaded.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "motionpatch" and config["auto_map"]["AutoModel"].endswith("MotionPatchModel")
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MotionPatchConfig)
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path)).__name__ == "MotionPatchFeatureExtractor"
    model = AutoModel.from_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(model, MotionPatchModel) and not model.training
    tiny_model.eval()
    inputs = processor(text=CAPTIONS, motions=random_motions(3, seed=1), return_tensors="pt")
    with torch.no_grad():
        a, b = tiny_model(**batch), model(**inputs)
    assert (a.logits_per_text - b.logits_per_text).abs().max().item() == 0
    assert (a.motion_embeds - b.motion_embeds).abs().max().item() == 0


def test_trust_remote_code_loads_without_the_package(tmp_path, tiny_model, tiny_processor, batch):
    tiny_model.eval()
    tiny_model.save_pretrained(tmp_path)
    tiny_processor.save_pretrained(tmp_path)
    for name in ("modeling_motionpatch.py", "configuration_motionpatch.py", "feature_extraction_motionpatch.py"):
        assert (tmp_path / name).exists()
    with torch.no_grad():
        expected = tiny_model(**batch).logits_per_text.numpy()
    np.save(tmp_path / "expected.npy", expected)
    motions = random_motions(3, seed=1)
    np.save(tmp_path / "motions.npy", np.array(motions, dtype=object), allow_pickle=True)
    script = textwrap.dedent(
        f"""
        import sys
        class Block:  # make the installed package unimportable
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "modeling_motionpatch":
                    raise ImportError("modeling_motionpatch is blocked in this process")
        sys.meta_path.insert(0, Block())
        import numpy as np, torch
        from transformers import AutoModel, AutoProcessor
        folder = {str(tmp_path)!r}
        model = AutoModel.from_pretrained(folder, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        motions = list(np.load(folder + "/motions.npy", allow_pickle=True))
        inputs = processor(text={CAPTIONS!r}, motions=motions, return_tensors="pt")
        with torch.no_grad():
            got = model(**inputs).logits_per_text.numpy()
        print("MAXDIFF", float(np.abs(got - np.load(folder + "/expected.npy")).max()))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    maxdiff = float(result.stdout.split("MAXDIFF")[-1])
    assert maxdiff == 0.0


def test_mask_motion_padding_ignores_padded_rows(tokenizer):
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer), mask_motion_padding=True)).eval()
    values = torch.randn(1, 3, 64, 80)
    mask = torch.tensor([[1] * 10 + [0] * 10])  # 2 of 4 patch rows are real
    changed = values.clone()
    changed[:, :, 32:] = torch.randn(1, 3, 32, 80)  # only padded rows differ
    with torch.no_grad():
        a = model.get_motion_features(values, mask, normalize=True).pooler_output
        b = model.get_motion_features(changed, mask, normalize=True).pooler_output
        c = model.get_motion_features(changed, normalize=True).pooler_output  # without a mask, padding counts
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert (a - c).abs().max() > 1e-3


def test_reference_mean_pooling_has_no_final_norm_and_an_fc_norm(tiny_model):
    assert isinstance(tiny_model.motion_model.layernorm, torch.nn.Identity)
    assert tiny_model.motion_model.pooler is None
    values = torch.randn(2, 3, 64, 80)
    tiny_model.eval()
    with torch.no_grad():
        hidden = tiny_model.motion_model(pixel_values=values).last_hidden_state
        pooled = tiny_model.motion_fc_norm(hidden[:, 1:].mean(1))
        expected = F.normalize(tiny_model.motion_projection(pooled), dim=-1)
        torch.testing.assert_close(tiny_model.get_motion_features(values, normalize=True).pooler_output, expected)


def test_cls_pooling_linear_head_and_mean_text_pooling(tokenizer, batch):
    torch.manual_seed(0)
    model = MotionPatchModel(
        tiny_config(vocab_size=len(tokenizer), motion_pooling="cls", projection_head="linear", text_pooling="mean")
    ).eval()
    assert not isinstance(model.motion_model.layernorm, torch.nn.Identity)
    with torch.no_grad():
        out = model(**batch)
        hidden = model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        expected = F.normalize(model.text_projection((hidden * m).sum(1) / m.sum(1)), dim=-1)
    torch.testing.assert_close(out.text_embeds, expected)


def test_sdpa_matches_eager_and_gradient_checkpointing_runs(tmp_path, tiny_model, batch):
    tiny_model.eval()
    tiny_model.save_pretrained(tmp_path)
    eager = MotionPatchModel.from_pretrained(tmp_path, attn_implementation="eager")
    sdpa = MotionPatchModel.from_pretrained(tmp_path, attn_implementation="sdpa")
    assert sdpa.motion_model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(eager(**batch).logits_per_text, sdpa(**batch).logits_per_text, rtol=1e-4, atol=1e-4)
    sdpa.train()
    enable_checkpointing(sdpa)  # what `--gradient_checkpointing true` calls, by the name this transformers has
    flag = "is_activation_checkpointing" if hasattr(sdpa, "activation_checkpointing_enable") else "is_gradient_checkpointing"
    assert getattr(sdpa.motion_model, flag) and getattr(sdpa.text_model, flag)
    sdpa(**batch, return_loss=True).loss.backward()
    assert sdpa.motion_model.embeddings.patch_embeddings.projection.weight.grad is not None


def test_loss_is_float32_under_bf16_autocast(tiny_model, batch):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_model(**batch, return_loss=True)
    assert out.logits_per_text.dtype == torch.float32 and out.loss.dtype == torch.float32


def test_unpaired_loss_and_missing_inputs_raise(tiny_model, tiny_processor):
    inputs = tiny_processor(text=CAPTIONS[:2], motions=random_motions(3), return_tensors="pt")
    with pytest.raises(ValueError, match="paired inputs: got 2 texts and 3 motions"):
        tiny_model(**inputs, return_loss=True)
    with pytest.raises(ValueError, match="needs both `input_ids` and `motion_values`"):
        tiny_model(motion_values=inputs["motion_values"])


def test_default_config_is_vit_b16_distilbert_reference():
    config = MotionPatchConfig()
    assert list(config.motion_config.image_size) == [224, 80] and config.motion_config.patch_size == 16
    assert (config.motion_config.hidden_size, config.motion_config.num_hidden_layers) == (768, 12)
    assert config.text_config.model_type == "distilbert"
    assert config.projection_dim == 256 and config.projection_dropout == 0.5
    assert config.logit_scale_init_value == pytest.approx(math.log(1 / 0.07))
    assert not config.learnable_logit_scale and config.motion_pooling == "mean" and config.text_pooling == "cls"
    from huggingface_hub.errors import StrictDataclassClassValidationError

    # transformers' strict configs wrap validation errors (the cause is our ValueError)
    with pytest.raises(StrictDataclassClassValidationError, match="multiple of patch_size"):
        MotionPatchConfig(motion_config={"image_size": [100, 80]})
