"""from_pretrained on bad folders is transformers' own: it fails loudly and never runs code from a pickle.

MotionPatch adds nothing to `PreTrainedModel.from_pretrained`; these tests pin the behaviour users rely on, so that a
transformers upgrade that changed it would show here.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from modeling_motionpatch import MotionPatchModel


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


@pytest.mark.parametrize("keep", [0.5, 0.99, 5])
def test_truncated_safetensors_fail_to_load(saved, tmp_path, keep):
    folder = copy_of(saved, tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    with pytest.raises(Exception, match="(?i)header|metadata|deserializ|truncat|incomplete"):
        MotionPatchModel.from_pretrained(folder)


class _WritesMarker:
    """Unpickling this object would create the marker file (what a malicious pickle could do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_only_folder_never_runs_its_code(saved, tmp_path):
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

    with pytest.raises(Exception, match="(?i)weights_only|unpickl|pickle"):  # torch.load(weights_only=True) refuses it
        MotionPatchModel.from_pretrained(folder)
    assert not marker.exists()


def test_auto_model_dispatches_by_model_type(saved):
    from transformers import AutoModel

    assert type(AutoModel.from_pretrained(saved)) is MotionPatchModel
