"""Patch geometry from one place, the model config (issue 25).

``MotionPatchConfig`` derives ``max_frames`` / ``points_per_part`` / ``frames_per_patch`` / ``points_per_patch`` from
``motion_config.image_size`` and ``patch_size``, and refuses geometries the motion tower cannot read. A feature
extractor built from those values gives one ``motion_attention_mask`` entry per ViT patch, for patch sizes 8 (two
patches per body part and row), 14 and 16, so that masking really leaves the padding out of attention and pooling.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from conftest import random_motions, tiny_config
from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchModel, MotionPatchProcessor
from modeling_motionpatch.apps.folder_checks import (
    MotionPatchMismatchError,
    check_model_processor,
    record_processor,
)
from modeling_motionpatch.configuration_motionpatch import geometry_problem

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: (image_size, patch_size, patch grid (rows, columns))
GEOMETRIES = [
    ((64, 80), 8, (8, 10)),  # 16 points per part, two 8-point patches per part and row
    ((56, 70), 14, (4, 5)),  # 14 points per part, 14-frame rows
    ((64, 80), 16, (4, 5)),  # the reference geometry
]
TOWER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def geometry_config(image_size, patch_size, mask: bool, vocab_size: int = 64):
    return tiny_config(vocab_size, motion_config=dict(TOWER, image_size=list(image_size), patch_size=patch_size),
                       mask_motion_padding=mask)


def extractor_for(config) -> MotionPatchFeatureExtractor:
    return MotionPatchFeatureExtractor(
        "humanml3d", max_frames=config.max_frames, points_per_part=config.points_per_part,
        frames_per_patch=config.frames_per_patch, points_per_patch=config.points_per_patch,
    )


def motions_for(config) -> list[np.ndarray]:
    """Four motions, three shorter than ``max_frames`` (at least one patch row long), one longer."""
    short = random_motions(3, seed=1, lengths=(config.frames_per_patch, config.max_frames // 2))
    return short + random_motions(1, seed=2, lengths=(config.max_frames + 5, config.max_frames + 30))


@pytest.mark.parametrize("image_size, patch_size, grid", GEOMETRIES)
def test_config_derives_the_geometry(image_size, patch_size, grid):
    config = geometry_config(image_size, patch_size, mask=False)
    assert config.num_parts == 5
    assert config.max_frames == image_size[0] and config.points_per_part == image_size[1] // 5
    assert config.frames_per_patch == patch_size and config.points_per_patch == patch_size
    assert config.patch_grid == grid and config.num_patches == grid[0] * grid[1]
    # a pair patch size: frames x points
    pair = tiny_config(motion_config=dict(TOWER, image_size=[64, 80], patch_size=[16, 8]))
    assert (pair.frames_per_patch, pair.points_per_patch, pair.patch_grid) == (16, 8, (4, 10))
    # read-only: the geometry lives in motion_config only
    with pytest.raises(AttributeError):
        config.frames_per_patch = 4


@pytest.mark.parametrize("mask", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("image_size, patch_size, grid", GEOMETRIES)
def test_forward_mask_and_padding(image_size, patch_size, grid, mask, tokenizer):
    torch.manual_seed(0)
    config = geometry_config(image_size, patch_size, mask, vocab_size=len(tokenizer))
    model = MotionPatchModel(config).eval()
    fe = extractor_for(config)
    processor = MotionPatchProcessor(fe, tokenizer)
    check_model_processor(model, processor)  # the extractor built from the config fits the model
    motions = motions_for(config)
    captions = ["a person walks forward", "someone jumps", "a person waves", "a person turns around"]
    batch = processor(text=captions, motions=motions, return_tensors="pt", padding=True)

    # one mask entry per ViT patch, row-major: every patch of a row shares the row's validity
    rows, columns = grid
    mask_values = batch["motion_attention_mask"]
    assert tuple(mask_values.shape) == (4, config.num_patches) == (4, rows * columns) == (4, fe.num_patches)
    lengths = batch["motion_lengths"].numpy()
    expected_rows = np.arange(rows)[None, :] * config.frames_per_patch < lengths[:, None]
    np.testing.assert_array_equal(mask_values.numpy().reshape(4, rows, columns), np.repeat(expected_rows[:, :, None], columns, 2))
    assert (lengths[:3] < config.max_frames).all() and not mask_values[:3].all() and mask_values[3].all()

    with torch.no_grad():
        out = model(**batch, return_loss=True)
        features = model.get_motion_features(motion_values=batch["motion_values"], motion_attention_mask=mask_values)
    assert out.motion_embeds.shape == (4, config.projection_dim) and torch.isfinite(out.loss)
    assert features.last_hidden_state.shape == (4, 1 + config.num_patches, TOWER["hidden_size"])

    # values in the fully padded rows: ignored when masking, seen otherwise
    first_padded = int(expected_rows[0].sum()) * config.frames_per_patch
    assert first_padded < config.max_frames
    changed = batch["motion_values"].clone()
    changed[0, :, first_padded:, :] += 3.0
    with torch.no_grad():
        other = model.get_motion_features(motion_values=changed, motion_attention_mask=mask_values).pooler_output
    same = torch.allclose(other[0], features.pooler_output[0], atol=1e-5)
    assert same is mask
    torch.testing.assert_close(other[1:], features.pooler_output[1:])  # the other motions are untouched


@pytest.mark.parametrize("image_size, patch_size, grid", GEOMETRIES)
def test_save_and_reload_keeps_the_geometry(image_size, patch_size, grid, tokenizer, tmp_path):
    from transformers import AutoModel, AutoProcessor

    torch.manual_seed(0)
    config = geometry_config(image_size, patch_size, True, vocab_size=len(tokenizer))
    model = MotionPatchModel(config).eval()
    processor = MotionPatchProcessor(extractor_for(config), tokenizer)
    record_processor(model.config, processor)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    saved = saved.get("feature_extractor", saved)
    assert saved["frames_per_patch"] == patch_size and saved["points_per_patch"] == patch_size

    loaded_model = AutoModel.from_pretrained(tmp_path).eval()
    loaded = AutoProcessor.from_pretrained(tmp_path)
    fe = loaded.feature_extractor
    assert (fe.max_frames, fe.points_per_part, fe.frames_per_patch, fe.points_per_patch) == (
        config.max_frames, config.points_per_part, config.frames_per_patch, config.points_per_patch)
    assert loaded_model.config.patch_grid == grid
    motions = motions_for(config)
    batch = loaded(motions=motions, return_tensors="pt")
    reference = processor(motions=motions, return_tensors="pt")
    torch.testing.assert_close(batch["motion_attention_mask"], reference["motion_attention_mask"])
    with torch.no_grad():
        a = loaded_model.get_motion_features(**{k: batch[k] for k in ("motion_values", "motion_attention_mask")})
        b = model.get_motion_features(**{k: reference[k] for k in ("motion_values", "motion_attention_mask")})
    torch.testing.assert_close(a.pooler_output, b.pooler_output)


def test_old_extractor_files_keep_16_frame_rows(tmp_path):
    MotionPatchFeatureExtractor("humanml3d", max_frames=64).save_pretrained(tmp_path)
    path = next(tmp_path.glob("*.json"))
    data = json.loads(path.read_text())
    assert data.pop("frames_per_patch") == 16 and data.pop("points_per_patch") == 16
    path.write_text(json.dumps(data))
    fe = MotionPatchFeatureExtractor.from_pretrained(tmp_path)
    assert (fe.frames_per_patch, fe.points_per_patch, fe.patch_grid) == (16, 16, (4, 5))
    mask = fe(random_motions(2, lengths=(17, 40)))["motion_attention_mask"]
    assert mask.shape == (2, 20)


@pytest.mark.parametrize(
    "image_size, patch_size, message",
    [
        ((64, 81), 16, "not a multiple of 5"),  # not 5 parts of equal width
        ((64, 80), 32, "straddle two body parts"),  # a patch wider than one part
        ((72, 90), 12, "straddle two body parts"),  # 18 points per part, 12-point patches
        ((60, 80), 16, "multiple of patch_size 16"),  # no whole patch rows
        ((64, 80), [16, 5], "straddle two body parts"),  # 16 points per part, 5-point patches
    ],
)
def test_impossible_geometries_are_refused_at_config_build(image_size, patch_size, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message) as caught:
        tiny_config(motion_config=dict(TOWER, image_size=list(image_size), patch_size=patch_size))
    assert isinstance(caught.value.__cause__, ValueError)
    assert "motion_config.image_size" in str(caught.value.__cause__)  # says where
    assert geometry_problem(image_size, patch_size) is not None
    # whole-row patches (one token per frame row, the raw-joints baseline) stay accepted
    assert geometry_problem((64, 22), (1, 22)) is None


def test_a_mask_of_another_geometry_is_a_clear_error(tokenizer):
    """The old bug: a 16-frame-row mask fed to a model of 8 x 8 patches (was "size of tensor a (40) must match")."""
    config = geometry_config((64, 80), 8, True, vocab_size=len(tokenizer))
    model = MotionPatchModel(config).eval()
    old = MotionPatchFeatureExtractor("humanml3d", max_frames=64)  # 16-frame rows, one patch per part
    with pytest.raises(MotionPatchMismatchError, match="frames_per_patch is 16.*must be 8"):
        check_model_processor(model, MotionPatchProcessor(old, tokenizer))
    batch = old(random_motions(2, lengths=(17, 40)), return_tensors="pt")
    with pytest.raises(ValueError, match="80 patches per motion.*frames_per_patch=config.frames_per_patch"):
        model.get_motion_features(motion_values=batch["motion_values"], motion_attention_mask=batch["motion_attention_mask"])
    # a points_per_patch mismatch is reported too
    half = MotionPatchFeatureExtractor("humanml3d", max_frames=64, frames_per_patch=8)
    with pytest.raises(MotionPatchMismatchError, match="points_per_patch is 16.*must be 8"):
        check_model_processor(model, MotionPatchProcessor(half, tokenizer))


def test_extractor_refuses_patches_that_straddle_parts():
    with pytest.raises(ValueError, match="multiple of points_per_patch"):
        MotionPatchFeatureExtractor("humanml3d", max_frames=64, points_per_part=16, points_per_patch=6)
    with pytest.raises(ValueError, match="multiple of 14 \\(frames_per_patch"):
        MotionPatchFeatureExtractor("humanml3d", max_frames=64, frames_per_patch=14)


def test_short_motion_warning_uses_the_patch_height():
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64, frames_per_patch=8, points_per_patch=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fe(random_motions(1, lengths=(10, 12)))  # 10-11 frames: more than one 8-frame row, no warning
    with pytest.warns(UserWarning, match="fewer than 8 frames.*min_frames=8"):
        fe(random_motions(1, lengths=(5, 7)))


def test_training_reads_the_geometry_from_the_model_config(tmp_path, tokenizer_dir):
    """``--patch_size 8 --mask_motion_padding`` trains (it crashed at the first forward); the extractor saved with
    the model has the model's patch geometry; an impossible one is refused before any data is loaded."""
    from training_helpers import make_tiny_text_dir, tiny_args

    from motionpatch_training.arguments import parse_args
    from motionpatch_training.train import train

    text_dir = make_tiny_text_dir(tokenizer_dir, tmp_path / "text")
    out = tmp_path / "run"
    args = tiny_args(text_dir, out, patch_size=8, mask_motion_padding="true", num_train_epochs=1,
                     dataloader_num_workers=0, torch_num_threads=1, synthetic_num_train=16,
                     per_device_train_batch_size=8)
    train(*parse_args(args))
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(out / "best")
    fe = AutoProcessor.from_pretrained(out / "best").feature_extractor
    assert (model.config.frames_per_patch, model.config.points_per_patch, model.config.num_patches) == (8, 8, 80)
    assert (fe.frames_per_patch, fe.points_per_patch, fe.num_patches) == (8, 8, 80)
    assert model.config.mask_motion_padding

    with pytest.raises(ValueError, match="--patch_size 32.*straddle two body parts"):
        parse_args(tiny_args(text_dir, tmp_path / "bad", patch_size=32))
    with pytest.raises(ValueError, match="--max_frames 72.*multiple of patch_size 16"):
        parse_args(tiny_args(text_dir, tmp_path / "bad", max_frames=72))
    assert parse_args(tiny_args(text_dir, tmp_path / "ok", max_frames=72, patch_size=8))[1].max_frames == 72
