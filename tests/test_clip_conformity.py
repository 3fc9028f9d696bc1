"""MotionPatchModel follows transformers 5's CLIPModel API (issue: CLIP conformity).

The snippet in ``test_clip_style_zero_shot_snippet`` is the zero-shot recipe written for ``CLIPModel`` /
``CLIPProcessor`` in transformers 5 (features -> ``pooler_output`` -> normalise -> cosine -> argmax), with only the
names changed (``images`` -> ``motions``, ``get_image_features`` -> ``get_motion_features``). Run alone with
``python -m pytest tests/test_clip_conformity.py -q``.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from conftest import random_motions, tiny_config
from transformers import AutoModel, AutoProcessor, CLIPModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.clip.modeling_clip import CLIPOutput

from modeling_motionpatch import MotionPatchModel, MotionPatchOutput

LABELS = ["a person walks forward", "a person jumps", "someone waves the right hand"]


@pytest.fixture
def saved_folder(tmp_path, tokenizer, tiny_processor):
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer))).eval()
    model.save_pretrained(tmp_path / "model")
    tiny_processor.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_clip_style_zero_shot_snippet(saved_folder):
    motions = random_motions(4, seed=3)

    # ---- the transformers CLIP recipe, names changed only ----
    model = AutoModel.from_pretrained(saved_folder)
    processor = AutoProcessor.from_pretrained(saved_folder)
    inputs = processor(text=LABELS, motions=motions, return_tensors="pt", padding=True)
    with torch.no_grad():
        text_features = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        motion_features = model.get_motion_features(motion_values=inputs["motion_values"])
    text_embeds = text_features.pooler_output
    motion_embeds = motion_features.pooler_output
    text_embeds = text_embeds / text_embeds.norm(p=2, dim=-1, keepdim=True)
    motion_embeds = motion_embeds / motion_embeds.norm(p=2, dim=-1, keepdim=True)
    similarity = motion_embeds @ text_embeds.T
    predictions = [LABELS[i] for i in similarity.argmax(dim=-1).tolist()]
    # ----

    assert isinstance(text_features, BaseModelOutputWithPooling)
    assert isinstance(motion_features, BaseModelOutputWithPooling)
    assert motion_features.pooler_output.shape == (4, model.config.projection_dim)
    # not normalised (as CLIP's pooler_output): the norms are not all 1
    assert not torch.allclose(motion_features.pooler_output.norm(dim=-1), torch.ones(4), atol=1e-3)
    # the towers' own hidden states come along, as in CLIP
    assert motion_features.last_hidden_state.shape[0] == 4
    assert text_features.last_hidden_state.shape[:2] == inputs["input_ids"].shape

    # the same answer as the full forward pass (logits_per_motion, as CLIPModel's logits_per_image)
    with torch.no_grad():
        out = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            motion_values=inputs["motion_values"],
        )
    assert isinstance(out, MotionPatchOutput)
    expected = out.logits_per_motion.softmax(dim=-1).argmax(dim=-1)
    assert predictions == [LABELS[i] for i in expected.tolist()]
    torch.testing.assert_close(out.logits_per_motion, model.logit_scale.exp() * similarity, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.motion_embeds, motion_embeds, rtol=1e-5, atol=1e-6)


def test_return_dict_false_and_normalize_option(saved_folder):
    model = AutoModel.from_pretrained(saved_folder)
    processor = AutoProcessor.from_pretrained(saved_folder)
    inputs = processor(motions=random_motions(2, seed=1), return_tensors="pt")
    with torch.no_grad():
        as_tuple = model.get_motion_features(inputs["motion_values"], return_dict=False)
        as_output = model.get_motion_features(inputs["motion_values"])
        normalised = model.get_motion_features(inputs["motion_values"], normalize=True).pooler_output
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], as_output.last_hidden_state)
    torch.testing.assert_close(as_tuple[1], as_output.pooler_output)
    torch.testing.assert_close(normalised, torch.nn.functional.normalize(as_output.pooler_output, dim=-1))


def test_output_fields_mirror_clip_output():
    clip_fields = [f.name for f in dataclasses.fields(CLIPOutput)]
    ours = [f.name for f in dataclasses.fields(MotionPatchOutput)]
    assert ours == [name.replace("image", "motion").replace("vision", "motion") for name in clip_fields]


def test_class_conventions_match_clip():
    for attr in ("supports_gradient_checkpointing", "_supports_sdpa", "_supports_flash_attn"):
        assert getattr(MotionPatchModel, attr) is True, attr
    assert MotionPatchModel._no_split_modules
    # the feature methods take the tower inputs first, by CLIP's names where they exist
    text_params = list(inspect.signature(MotionPatchModel.get_text_features).parameters)
    clip_text_params = list(inspect.signature(CLIPModel.get_text_features).parameters)
    assert text_params[:3] == clip_text_params[:3] == ["self", "input_ids", "attention_mask"]

    # the processor takes the non-text modality first, as ProcessorMixin.__call__(images, text, ...) does
    from transformers import ProcessorMixin

    from modeling_motionpatch import MotionPatchProcessor

    ours = list(inspect.signature(MotionPatchProcessor.__call__).parameters)[:3]
    theirs = list(inspect.signature(ProcessorMixin.__call__).parameters)[:3]
    assert ours == ["self", "motions", "text"] and theirs == ["self", "images", "text"]
