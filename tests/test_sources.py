"""One registry of dataset sources and one spec grammar: ``motionpatch-prepare``, training and evaluation name and load
data the same way (``NAME``, ``NAME:ARG``, a prepared folder or a Hub id), with the metadata of one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from motionpatch_processing.cli import PREPARERS, build_parser
from motionpatch_processing.loading import LOADERS, load_source, parse_spec
from motionpatch_processing.sources import DEFAULT_BANDAI_DIR, NAMES, SOURCES, source_info
from motionpatch_training.arguments import DataArguments
from motionpatch_training.data import KNOWN_SOURCES, load_training_data
from motionpatch_training.encode import load_eval_data

BANDAI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bandai-namco"


def test_every_command_reads_its_sources_from_the_registry():
    assert set(LOADERS) <= set(SOURCES) and set(PREPARERS) <= set(SOURCES)
    assert KNOWN_SOURCES == tuple(LOADERS)
    subcommands = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    assert list(subcommands) == list(PREPARERS)
    assert all(subcommands[name].description == SOURCES[name].description for name in PREPARERS)
    for name, info in SOURCES.items():
        assert info.name == name and info.description and info.captions_kind
        assert all(NAMES[alias] == name for alias in info.aliases)


def test_one_grammar_aliases_and_arguments(tmp_path):
    for alias in ("bandai", "bandai_namco", "bandai-namco"):
        assert (parse_spec(alias).source, parse_spec(alias).arg) == ("bandai-namco", DEFAULT_BANDAI_DIR)
    assert parse_spec("bandai-namco", folder=str(tmp_path)).arg == str(tmp_path)  # training's --dataset_dir
    assert parse_spec(f"bandai-namco:{tmp_path}", folder=str(tmp_path)).arg == str(tmp_path)
    assert parse_spec("embedded:ds1").arg == "ds1" and parse_spec("embedded").arg is None
    assert parse_spec("user/name").hub_id == "user/name" and parse_spec(str(tmp_path)).source is None
    assert source_info("bandai").name == "bandai-namco"
    with pytest.raises(ValueError, match="two different folders"):
        parse_spec(f"bandai-namco:{tmp_path}", folder="/elsewhere")
    with pytest.raises(ValueError, match="synthetic takes no ':ARG'"):
        parse_spec("synthetic:3")
    with pytest.raises(ValueError, match="nothing after ':'"):
        parse_spec("embedded:")
    with pytest.raises(ValueError, match="bandai-namco-native:PATH"):
        parse_spec("bandai-namco-native")
    with pytest.raises(ValueError, match=r"motionpatch-prepare humanml3d --root"):
        parse_spec("humanml3d")
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'.*synthetic.*bandai-namco"):
        parse_spec("nope")


def test_training_and_evaluation_load_the_same_spec_the_same_way():
    args = DataArguments(dataset="embedded:ds1", synthetic_num_train=0, synthetic_num_validation=0,
                         synthetic_num_test=0)
    train = load_training_data(args)
    evaluated = load_eval_data("embedded:ds1", "all")
    assert {s: len(d) for s, d in train.dataset.items()} == {s: len(d) for s, d in evaluated.splits.items()}
    assert train.dataset["test"]["id"] == evaluated.splits["test"]["id"]
    assert train.name == "embedded" and evaluated.dataset_type == "motionpatch/embedded"
    assert train.captions_kind == SOURCES["embedded"].captions_kind and train.license == "cc-by-nc-4.0"
    synthetic = load_source("synthetic", synthetic_sizes={"test": 4})
    assert list(synthetic.dataset) == ["test"] and len(synthetic.dataset["test"]) == 4


@pytest.mark.skipif(not (BANDAI / "ds1_h22_20fps.npz").is_file(), reason="needs ../shared/data/bandai-namco")
def test_bandai_npz_by_spec_in_training_and_evaluation():
    npz = BANDAI / "ds1_h22_20fps.npz"
    evaluated = load_eval_data(f"bandai-namco:{npz}", "all")
    train = load_training_data(DataArguments(dataset="bandai", dataset_dir=str(npz)))
    assert evaluated.skeleton.name == train.skeleton.name == "humanml3d"
    assert {s: len(d) for s, d in train.dataset.items()} == {s: len(d) for s, d in evaluated.splits.items()}
    assert train.name == "bandai-namco" and "split by take" in " ".join(evaluated.notes)
