"""A model and its processor are checked as a pair where the package pairs them (the zero-shot pipeline, the CLIs,
``check_model_processor``): the tokenizer against the text tower, the feature extractor's skeleton and patch geometry
against what config.json records. Each mutation of a good folder raises a named error (a ValueError) instead of a
model that runs and answers wrong. Loading the weights themselves is transformers' ``from_pretrained``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import WORDS, shared_path, tiny_config
from transformers import AutoModel, AutoProcessor, BertTokenizerFast, pipeline

from modeling_motionpatch import (
    MotionPatchFeatureExtractor,
    MotionPatchModel,
    MotionPatchProcessor,
    get_skeleton,
)
from modeling_motionpatch.apps.folder_checks import (
    MotionPatchMismatchError,
    check_model_processor,
    record_processor,
)

TASK = "zero-shot-motion-classification"


def make_tokenizer(extra: int = 0) -> BertTokenizerFast:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + sorted(set(WORDS))
    vocab += [f"extra{i}" for i in range(extra)]
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)


def make_processor(skeleton="humanml3d", tokenizer=None, **fe_kwargs) -> MotionPatchProcessor:
    fe_kwargs.setdefault("max_frames", 64)
    return MotionPatchProcessor(MotionPatchFeatureExtractor(skeleton, **fe_kwargs), tokenizer or make_tokenizer())


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A good folder: a tiny model whose config records its processor's skeleton, and that processor."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("saved") / "model"
    processor = make_processor()
    model = MotionPatchModel(tiny_config(vocab_size=len(processor.tokenizer)))
    record_processor(model.config, processor)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture
def folder(saved, tmp_path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(saved, copy)
    return copy


def edit_config(folder: Path, edit) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def loaders(folder: Path):
    """The package's ways to pair the model and the processor of a folder."""
    def checked_pair():
        model, processor = AutoModel.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
        check_model_processor(model, processor)
        return model, processor

    return {"check_model_processor": checked_pair, "pipeline": lambda: pipeline(TASK, model=str(folder))}


# ------------------------------------------------------------------------------------------ the good folder loads
def test_the_good_folder_loads_every_way(saved):
    config = json.loads((saved / "config.json").read_text())
    assert config["skeleton"]["name"] == "humanml3d" and len(config["skeleton"]["joint_names"]) == 22
    assert config["skeleton"]["points_per_part"] == 16 and config["skeleton"]["max_frames"] == 64
    for name, load in loaders(saved).items():
        assert load() is not None, name
    model, info = MotionPatchModel.from_pretrained(saved, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    check_model_processor(model, MotionPatchProcessor.from_pretrained(saved))


def test_an_old_folder_without_a_skeleton_record_loads_unchecked(folder):
    edit_config(folder, lambda c: c.pop("skeleton"))
    make_processor("kit").save_pretrained(folder)  # another skeleton: nothing recorded to compare it with
    for name, load in loaders(folder).items():
        assert load() is not None, name


# ------------------------------------------------------------------------------------------------------ tokenizer
def test_a_missing_tokenizer_file_is_a_named_error(folder):
    (folder / "tokenizer.json").unlink()  # transformers then builds a tokenizer of the special tokens only
    for name, load in loaders(folder).items():
        with pytest.raises(MotionPatchMismatchError) as info:
            load()
        message = str(info.value)
        assert "tokenizer.json" in message and str(folder) in message, name
        assert f"vocabulary of {len(make_tokenizer())}" in message and "save_pretrained" in message, name


def test_token_ids_beyond_the_text_tower_are_a_named_error(folder):
    make_processor(tokenizer=make_tokenizer(extra=30)).save_pretrained(folder)
    vocab = len(make_tokenizer())
    for name, load in loaders(folder).items():
        with pytest.raises(MotionPatchMismatchError, match=rf"token ids up to {vocab + 29}.*only {vocab} embeddings"):
            load()


def test_a_text_tower_far_larger_than_the_tokenizer_is_a_named_error(tmp_path):
    processor = make_processor()
    model = MotionPatchModel(tiny_config(vocab_size=4 * len(processor.tokenizer)))
    with pytest.raises(MotionPatchMismatchError, match="vocabulary of"):
        check_model_processor(model, processor)
    assert isinstance(MotionPatchMismatchError("x"), ValueError)


# ------------------------------------------------------------------------------------ skeleton and patch geometry
def test_a_processor_of_another_skeleton_is_a_named_error(folder):
    make_processor("kit").save_pretrained(folder)  # KIT-ML: 21 joints
    for name, load in loaders(folder).items():
        with pytest.raises(MotionPatchMismatchError, match="'kit' has 21 joints.*'humanml3d' with 22 joints"):
            load()


def test_swapped_left_right_chains_are_a_named_error(folder):
    spec = get_skeleton("humanml3d").to_dict()
    spec["name"] = "humanml3d"
    spec["chains"] = [spec["chains"][1], spec["chains"][0], spec["chains"][2], spec["chains"][4], spec["chains"][3]]
    make_processor(spec).save_pretrained(folder)
    for name, load in loaders(folder).items():
        with pytest.raises(MotionPatchMismatchError, match=r"swapped \(right_leg <-> left_leg, right_arm <-> left_arm\)"):
            load()


@pytest.mark.parametrize(
    "fe_kwargs, expected",
    [({"points_per_part": 8}, "5 x 8 = 40 point columns.*points_per_part must be 16"),
     ({"max_frames": 32}, "max_frames is 32.*must be 64")],
)
def test_a_patch_geometry_that_does_not_fit_the_motion_tower_is_a_named_error(folder, fe_kwargs, expected):
    make_processor(**fe_kwargs).save_pretrained(folder)
    for name, load in loaders(folder).items():
        with pytest.raises(MotionPatchMismatchError, match=expected):
            load()


def test_pairing_in_memory_objects_is_checked(saved):
    model = MotionPatchModel.from_pretrained(saved)
    with pytest.raises(MotionPatchMismatchError, match="21 joints"):
        pipeline(TASK, model=model, processor=make_processor("kit"))
    with pytest.raises(MotionPatchMismatchError, match="max_frames"):
        check_model_processor(model, make_processor(max_frames=128))


def test_a_real_bandai_skeleton_does_not_pair_with_an_smpl_model(saved, tmp_path):
    from modeling_motionpatch.apps.bvh import read_bvh

    bvh = shared_path("bandai-namco", "ds1-bvh", "data", "dataset-1_bow_active_001.bvh")
    skeleton = read_bvh(bvh, scale=0.01).skeleton("bandai")
    model = MotionPatchModel.from_pretrained(saved)
    with pytest.raises(MotionPatchMismatchError, match=r"'bandai' orders or names its joints differently.*'joint_Root' \(model: 'pelvis'\)"):
        check_model_processor(model, make_processor(skeleton.to_dict()))
    # the model trained on that rig pairs with it
    bandai = make_processor(skeleton.to_dict())
    record_processor(model.config, bandai)
    check_model_processor(model, bandai)
