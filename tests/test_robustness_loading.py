"""from_pretrained on bad folders: a clear MotionPatchLoadError naming the file, and no code execution."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from modeling_motionpatch import MotionPatchInteractionModel, MotionPatchLoadError, MotionPatchModel


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("saved") / "model"
    MotionPatchModel(tiny_config()).save_pretrained(folder)
    return folder


def copy_of(saved: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(saved, folder)
    return folder


def test_the_saved_folder_loads(saved):
    model = MotionPatchModel.from_pretrained(saved)
    assert isinstance(model, MotionPatchModel)


@pytest.mark.parametrize("keep", [0.5, 0.99, 5])
def test_truncated_safetensors_names_the_file(saved, tmp_path, keep):
    folder = copy_of(saved, tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    with pytest.raises(MotionPatchLoadError) as info:
        MotionPatchModel.from_pretrained(folder)
    message = str(info.value)
    assert str(weights) in message and "truncated or corrupt" in message
    assert "Re-download" in message and "save_pretrained" in message
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)  # as transformers, and ours


class _WritesMarker:
    """Unpickling this object would create the marker file (what a malicious pickle could do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_only_folder_is_refused_without_unpickling(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code_ran"
    with open(folder / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"motion_model.embeddings.cls_token": _WritesMarker(marker)}, fh)
    # the payload is real: plain unpickling runs it
    with open(folder / "pytorch_model.bin", "rb") as fh:
        pickle.load(fh)  # noqa: S301 - the point of the test
    assert marker.exists()
    marker.unlink()

    with pytest.raises(MotionPatchLoadError) as info:
        MotionPatchModel.from_pretrained(folder)
    message = str(info.value)
    assert str(folder / "pytorch_model.bin") in message and "pickle" in message and "save_pretrained" in message
    assert not marker.exists()


def test_a_config_of_another_model_type_is_refused(tmp_path):
    from transformers import BertConfig, BertModel

    folder = tmp_path / "bert"
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=30)).save_pretrained(folder)  # fmt: skip
    with pytest.raises(MotionPatchLoadError, match=r"config\.json is a 'bert' config, not a 'motionpatch' one"):
        MotionPatchModel.from_pretrained(folder)


def test_a_motionpatch_folder_is_refused_by_the_interaction_model(saved):
    with pytest.raises(MotionPatchLoadError, match="not a 'motionpatch_interaction' one") as info:
        MotionPatchInteractionModel.from_pretrained(saved)
    assert str(saved / "config.json") in str(info.value)


def test_transformers_auto_model_still_dispatches_by_model_type(saved):
    from transformers import AutoModel

    assert type(AutoModel.from_pretrained(saved)) is MotionPatchModel
