"""The split modules keep the public API, the library stands alone, and the one Arrow motion writer is correct."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest

from motionpatch_processing.io import motion_storage, rows_table, write_arrow_splits
from motionpatch_processing.schema import SPLITS, motion_features

LIBRARY = Path(__file__).resolve().parents[1] / "modeling_motionpatch"


@pytest.mark.parametrize(
    "module, names",
    [
        ("motionpatch_processing.synthetic", ["ACTIONS", "DIRECTIONS", "STYLES", "SPLIT_OFFSETS", "NUM_JOINTS",
                                              "_PARENTS", "HEAD", "L_FOOT", "R_WRIST", "generate_motion",
                                              "facing_angle", "rest_offsets", "synthetic_sample",
                                              "generate_synthetic_dataset", "build_synthetic_dataset_dict"]),
        ("motionpatch_processing.bandai_namco", ["BANDAI_TO_HUMANML3D", "BANDAI_PHRASES", "BVHImportWarning",
                                                 "assign_splits", "bandai_labels", "dataset_from_npz",
                                                 "load_bandai_namco", "load_bvh_collection", "make_caption",
                                                 "split_of_key", "take_number"]),
        ("motionpatch_processing.statistics", ["STATISTICS_FILE", "MotionStatistics", "compute_dataset_statistics",
                                               "load_statistics", "read_statistics", "save_statistics",
                                               "statistics_markdown"]),
        ("modeling_motionpatch.convert_timm", ["ViTConversion", "convert_timm_vit_state_dict", "hf_vit_layer_names",
                                               "load_motion_tower", "load_state_dict_file", "load_text_tower",
                                               "patch_grid", "resample_position_embeddings", "timm_vit_config",
                                               "unwrap_state_dict", "StateDict", "quiet_transformers"]),
        ("modeling_motionpatch.convert_original", ["PRESETS", "ConversionError", "build_model_from_original",
                                                   "convert_original_checkpoint", "load_original_state_dict",
                                                   "statistics_from_dataset", "main", "MOTION_PREFIX"]),
    ],
)
def test_old_module_names_still_export_the_api(module, names):
    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module} lost {missing}"
    assert all(hasattr(mod, n) for n in getattr(mod, "__all__", [])), f"{module}.__all__ names a missing object"


def test_statistics_live_once_in_the_library():
    from modeling_motionpatch import motion_statistics
    from motionpatch_processing import statistics

    for name in ("MotionStatistics", "compute_dataset_statistics", "read_statistics", "save_statistics"):
        assert getattr(statistics, name) is getattr(motion_statistics, name)


def test_library_never_imports_the_builders():
    """No import of the dataset builders or the training package anywhere in the library, lazy ones included."""
    builders = ("motionpatch_processing", "motionpatch_training", "processing", "training")
    offenders = []
    for path in sorted(LIBRARY.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in builders]
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                offenders += [f"{path.name}: import_module({node.args[0].value!r})"] if str(
                    node.args[0].value).split(".")[0] in builders else []
    assert not offenders, offenders


def _nested(motions):
    return pa.array([np.asarray(m, dtype=np.float32).tolist() for m in motions],
                    pa.list_(pa.list_(pa.list_(pa.float32()))))


def test_motion_storage_matches_nested_lists_for_ragged_and_odd_inputs():
    rng = np.random.default_rng(0)
    motions = [
        rng.normal(size=(5, 4, 3)),  # float64
        rng.normal(size=(3, 4, 3)).astype(np.float32)[::-1],  # negative strides
        np.zeros((0, 4, 3), np.float32),  # zero frames
        np.asfortranarray(rng.normal(size=(2, 4, 3)).astype(np.float32)),
    ]
    storage = motion_storage(motions, 4)
    assert storage.type == motion_features(4)["motion"]().storage_type
    assert storage.equals(_nested(motions))
    assert len(motion_storage([], 4)) == 0
    assert len(motion_storage(np.zeros((2, 6, 4, 3), np.float32), 4)) == 2  # a stacked array is a batch too


@pytest.mark.parametrize("bad", [np.zeros((3, 5, 3)), np.zeros((3, 4)), np.zeros((3, 4, 2))])
def test_motion_storage_names_the_motion_with_the_wrong_shape(bad):
    with pytest.raises(ValueError, match=r"motion 1 of the batch has shape .* expected \(frames, 4, 3\)"):
        motion_storage([np.zeros((2, 4, 3)), bad], 4)


def test_motion_storage_refuses_a_batch_its_offsets_cannot_address():
    huge = np.broadcast_to(np.zeros(1, np.float32), (2**31 // 66 + 1, 22, 3))  # a view: no memory
    with pytest.raises(ValueError, match="smaller batches"):
        motion_storage([huge], 22)


def test_write_arrow_splits_round_trips_rows_in_order(tmp_path):
    feats = motion_features(4)
    rng = np.random.default_rng(1)
    rows = []
    for i in range(7):
        split = SPLITS[i % 3]
        rows.append((split, {"id": f"c{i}", "motion": rng.normal(size=(i + 1, 4, 3)).astype(np.float32),
                             "fps": 20.0, "skeleton": "s", "captions": [f"caption {i}"], "labels": ["a", "b"][: i % 3],
                             "source": f"f{i}.bvh", "mirrored": bool(i % 2)}))
    dd = write_arrow_splits(iter(rows), feats, tmp_path, batch_size=2)
    assert list(dd) == list(SPLITS) and dd["train"].features == feats
    for split in SPLITS:
        expected = [r for s, r in rows if s == split]
        got = dd[split].with_format("numpy")
        assert list(got["id"]) == [r["id"] for r in expected]
        for row, want in zip(got, expected):
            np.testing.assert_array_equal(row["motion"], want["motion"])
            assert list(row["labels"]) == want["labels"] and bool(row["mirrored"]) == want["mirrored"]
    table = rows_table({k: [r[k] for _, r in rows] for k in feats}, feats)
    assert datasets.Dataset(table).features == feats
