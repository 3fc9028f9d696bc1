"""The held-out accuracy study (benchmarks/accuracy): its splits, its baselines and its --quick end-to-end run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from motionpatch_processing.clip_splits import (
    held_out_combination_splits,
    held_out_group_splits,
)
from motionpatch_processing.mirror import mirror_text
from motionpatch_training.baselines import (
    RawJointsFeatureExtractor,
    count_motion_tower_parameters,
    raw_joints_motion_config,
    shuffled_chains_skeleton,
)

from modeling_motionpatch import (
    MotionPatchConfig,
    MotionPatchFeatureExtractor,
    MotionPatchModel,
    get_skeleton,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "bandai-namco"
STUDY = REPO / "benchmarks" / "accuracy" / "run_study.py"

CONTENTS = ["walk", "run", "wave-left-hand", "wave-right-hand", "raise-up-left-hand", "raise-up-right-hand", "bow"]
STYLES = ["normal", "angry", "happy", "tired", "proud"]


def _grid_labels(takes: int = 3) -> tuple[list[str], list[str]]:
    contents, styles = [], []
    for c in CONTENTS:
        for s in STYLES:
            contents += [c] * takes
            styles += [s] * takes
    return contents, styles


# ---------------------------------------------------------------------------
# split functions
# ---------------------------------------------------------------------------
def test_group_splits_keep_every_group_in_one_split_and_follow_the_seed():
    rng = np.random.default_rng(0)
    groups = [f"g{k}" for k in rng.integers(0, 40, size=600)]
    split = held_out_group_splits(groups, seed=3)
    where: dict[str, set[str]] = {}
    for g, s in zip(groups, split):
        where.setdefault(g, set()).add(s)
    assert all(len(v) == 1 for v in where.values())
    counts = Counter(split)
    assert counts["test"] >= 0.1 * len(groups) and counts["validation"] >= 0.1 * len(groups)
    assert counts["train"] >= 0.6 * len(groups)
    assert held_out_group_splits(groups, seed=3) == split
    assert held_out_group_splits(groups, seed=4) != split
    with pytest.raises(ValueError, match="at least 3 distinct groups"):
        held_out_group_splits(["a", "b", "a"])
    with pytest.raises(ValueError, match="summing to 1"):
        held_out_group_splits(groups, fractions=(0.5, 0.1, 0.1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_combination_splits_hold_out_pairs_but_keep_every_label_in_training(seed):
    contents, styles = _grid_labels()
    split = held_out_combination_splits(contents, styles, seed=seed, min_train_pairs=2, linked_contents=mirror_text)
    pairs = {name: {(c, s) for c, s, x in zip(contents, styles, split) if x == name} for name in ("train", "validation", "test")}
    assert pairs["test"] and pairs["validation"]
    assert not pairs["test"] & pairs["train"] and not pairs["validation"] & pairs["train"]
    assert not pairs["test"] & pairs["validation"]
    for c in set(contents):
        assert sum(p[0] == c for p in pairs["train"]) >= 2
    for s in set(styles):
        assert sum(p[1] == s for p in pairs["train"]) >= 2
    # a held-out pair's mirror image is held out too: mirroring a training clip never recreates it
    for held in pairs["test"] | pairs["validation"]:
        assert (mirror_text(held[0]), held[1]) not in pairs["train"]
    # all clips of a pair share its split
    assert len({(c, s, x) for c, s, x in zip(contents, styles, split)}) == len(CONTENTS) * len(STYLES)


def test_combination_splits_without_links_can_split_mirror_pairs_and_errors_are_clear():
    contents, styles = _grid_labels(takes=1)
    separated = 0
    for seed in range(20):
        split = held_out_combination_splits(contents, styles, seed=seed)
        train = {(c, s) for c, s, x in zip(contents, styles, split) if x == "train"}
        separated += any((c, s) not in train and (mirror_text(c), s) in train and mirror_text(c) != c
                         for c, s in zip(contents, styles))
    assert separated > 0  # so the linked test above checks something
    with pytest.raises(ValueError, match="no \\(content, style\\) pair can be held out"):
        held_out_combination_splits(["a", "a", "b", "b"], ["x", "y", "x", "y"], min_train_pairs=2)
    with pytest.raises(ValueError, match="one of each per clip"):
        held_out_combination_splits(["a"], ["x", "y"])


# ---------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------
def test_raw_joints_tower_matches_the_patch_tower_budget_and_is_one_token_per_frame():
    from transformers import ViTConfig

    patch = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      image_size=[64, 80], patch_size=16)
    raw, counts = raw_joints_motion_config(patch, num_joints=22)
    assert tuple(raw.image_size) == (64, 22) and tuple(raw.patch_size) == (1, 22)
    assert counts["patches"] == count_motion_tower_parameters(patch)
    assert abs(counts["raw_joints"] - counts["patches"]) <= patch.num_hidden_layers * (2 * 32 + 1)
    assert raw.intermediate_size != patch.intermediate_size  # the budget was actually adjusted

    config = MotionPatchConfig(motion_config=raw.to_dict(),
                               text_config={"model_type": "bert", "vocab_size": 50, "hidden_size": 16,
                                            "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32},
                               projection_dim=8)
    model = MotionPatchModel(config).eval()
    motion = torch.randn(3, 64, 22, 3)
    fe = RawJointsFeatureExtractor(skeleton="humanml3d", max_frames=64, check_skeleton=False)  # random arrays
    values = fe(list(motion.numpy()), return_tensors="pt")["motion_values"]
    out = model.get_motion_features(motion_values=values)
    assert out.last_hidden_state.shape == (3, 1 + 64, 32)  # class token + one token per frame
    # each frame token depends on its own frame only (before attention): perturb frame 5 of motion 0
    emb = model.motion_model.embeddings.patch_embeddings
    changed = values.clone()
    changed[0, :, 5, :] += 1.0
    diff = (emb(changed) - emb(values)).abs().sum(-1)
    assert diff[0, 5] > 0 and torch.count_nonzero(diff) == 1


def test_raw_joints_extractor_gives_the_z_scored_joints_and_shuffling_keeps_the_image_shape():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=(22, 3)).astype(np.float32), rng.uniform(0.5, 2, (22, 3)).astype(np.float32)
    motion = rng.normal(size=(40, 22, 3)).astype(np.float32)
    raw = RawJointsFeatureExtractor(skeleton="humanml3d", mean=mean, std=std, max_frames=48, body_frame=False,
                                    check_skeleton=False)(motion)  # the arithmetic, on a random array
    raw = raw["motion_values"]
    np.testing.assert_allclose(raw[0, :, :40].transpose(1, 2, 0), (motion - mean) / std, rtol=1e-5, atol=1e-6)
    assert np.all(raw[0, :, 40:] == 0)

    base = get_skeleton("humanml3d")
    shuffled = shuffled_chains_skeleton(base, seed=0)
    assert [len(c) for c in shuffled.chains] == [len(c) for c in base.chains]
    assert shuffled.chains != base.chains and shuffled_chains_skeleton(base, seed=0).chains == shuffled.chains
    # the same joint relabelling everywhere: shared joints stay shared
    mapping = {a: b for ca, cb in zip(base.chains, shuffled.chains) for a, b in zip(ca, cb)}
    assert all(mapping[a] == b for ca, cb in zip(base.chains, shuffled.chains) for a, b in zip(ca, cb))
    assert len(set(mapping.values())) == len(mapping)
    a = MotionPatchFeatureExtractor(skeleton=base, max_frames=48, check_skeleton=False)(motion)["motion_values"]
    b = MotionPatchFeatureExtractor(skeleton=shuffled, max_frames=48, check_skeleton=False)(motion)["motion_values"]
    assert a.shape == b.shape and not np.allclose(a, b)


# ---------------------------------------------------------------------------
# the study, end to end (--quick)
# ---------------------------------------------------------------------------
def _index(dataset: str) -> dict[str, dict]:
    return {r["name"]: r for r in map(json.loads, (DATA / f"{dataset}_index.jsonl").read_text().splitlines())}


@pytest.mark.skipif(not (DATA / "ds2_h22_20fps.npz").is_file(),
                    reason="the Bandai-Namco arrays are not at ../shared/data/bandai-namco (they are not shipped)")
def test_quick_study_runs_end_to_end_with_splits_disjoint_as_claimed(tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(STUDY), "--quick", "--output", str(tmp_path), "--workers", "1"],
                          check=False, capture_output=True, text=True, timeout=300, cwd=REPO)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert elapsed < 120, f"--quick took {elapsed:.0f} s"

    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    expected = {(d, r, v) for d, rules in (("ds2", ("held-out-takes", "held-out-combinations")),
                                           ("ds1", ("held-out-combinations",)))
                for r in rules for v in ("patches", "raw-joints", "patches-shuffled", "patches-no-mirror")}
    assert {(r["dataset"], r["split"], r["variant"]) for r in runs} == expected
    for r in runs:
        assert 0 <= r["test"]["zero_shot/content"] <= 100 and r["best_step"] <= r["steps"]
    tower = {r["variant"]: r["motion_tower_parameters"] for r in runs if r["dataset"] == "ds2"}
    assert abs(tower["raw-joints"] - tower["patches"]) / tower["patches"] < 0.01
    table = (tmp_path / "table.md").read_text()
    assert "| *chance* |" in table and "| *oracle* |" in table and "patches − raw-joints" in table

    for dataset in ("ds2", "ds1"):
        index = _index(dataset)
        for path in sorted((tmp_path / "splits").glob(f"{dataset}_*.json")):
            rec = json.loads(path.read_text())
            split = {name: "train" for name in index}
            for name in ("validation", "test"):
                for clip in rec["ids"][name]:
                    split[clip] = name
            train_ids = sorted(n for n, s in split.items() if s == "train")
            assert hashlib.sha256("\n".join(train_ids).encode()).hexdigest() == rec["train_ids_sha256"]
            assert {k: sum(s == k for s in split.values()) for k in ("train", "validation", "test")} == rec["counts"]
            if rec["rule"] == "held-out-takes":
                block = {n: (r["content"], r["style"], (int(r["take"]) - 1) // 8) for n, r in index.items()}
                where: dict[tuple, set[str]] = {}
                for n, s in split.items():
                    where.setdefault(block[n], set()).add(s)
                assert all(len(v) == 1 for v in where.values()), "a block of takes is in two splits"
                assert rec["counts"]["test"] > 0 and rec["counts"]["validation"] > 0
            else:
                pairs = {k: {(index[n]["content"], index[n]["style"]) for n, s in split.items() if s == k}
                         for k in ("train", "validation", "test")}
                assert pairs["test"] and not pairs["test"] & pairs["train"], "a tested pair is also trained on"
                assert not pairs["validation"] & pairs["train"] and not pairs["validation"] & pairs["test"]
                trained_contents = {c for c, _ in pairs["train"]}
                trained_styles = {s for _, s in pairs["train"]}
                assert all(c in trained_contents and s in trained_styles for c, s in pairs["test"])
                assert all((mirror_text(c), s) not in pairs["train"] for c, s in pairs["test"])


def test_the_committed_table_is_what_the_committed_runs_give():
    """``results/table.md`` (which the study README quotes) is regenerated from ``runs.jsonl`` and the chance / oracle
    references in ``study.json``: a hand-edited figure or a dropped run shows as a difference."""
    import importlib.util
    from dataclasses import replace

    spec = importlib.util.spec_from_file_location("run_study", STUDY)
    study = importlib.util.module_from_spec(spec)
    sys.modules["run_study"] = study
    spec.loader.exec_module(study)
    results = STUDY.parent / "results"
    runs = [json.loads(line) for line in (results / "runs.jsonl").read_text().splitlines() if line.strip()]
    meta = json.loads((results / "study.json").read_text())
    refs = {}
    for key, value in meta["references"].items():
        dataset, rule, seed = key.split("/")
        refs[(dataset, rule, int(seed.removeprefix("seed")))] = value
    datasets = tuple(d for d in study.DATASET_SPLITS if any(r["dataset"] == d for r in runs))
    table, _ = study.summarise(runs, refs, replace(study.StudyConfig(), datasets=datasets))
    assert table + "\n" == (results / "table.md").read_text()
    readme = (STUDY.parent / "README.md").read_text()
    for row in [line for line in table.splitlines() if line.startswith("| patches − raw-joints")]:
        assert row in readme  # the README's paired differences are the table's


@pytest.mark.skipif(not (DATA / "ds2_h22_20fps.npz").is_file(),
                    reason="the Bandai-Namco arrays are not at ../shared/data/bandai-namco (they are not shipped)")
def test_quick_transfer_study_runs_the_dinov2_variants(tmp_path):
    """The image-pretraining rows (--quick: a tiny random DINOv2 stands in for the converted weights): 14-point
    parts and 14-frame rows, the 16 x 16 resized variant, and the transfer table."""
    proc = subprocess.run([sys.executable, str(STUDY), "--quick", "--output", str(tmp_path), "--workers", "1",
                           "--datasets", "ds2", "--variants", "dinov2-pretrained", "dinov2-scratch",
                           "dinov2-pretrained-p16"], check=False, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert {(r["split"], r["variant"]) for r in runs} == {
        (s, v) for s in ("held-out-takes", "held-out-combinations")
        for v in ("dinov2-pretrained", "dinov2-scratch", "dinov2-pretrained-p16")}
    tower = {r["variant"]: r["motion_tower_parameters"] for r in runs}
    assert tower["dinov2-pretrained"] == tower["dinov2-scratch"] < tower["dinov2-pretrained-p16"]  # 16 x 16 filters
    table = (tmp_path / "table.md").read_text()
    assert "dinov2-pretrained − dinov2-scratch" in table and "dinov2-pretrained − dinov2-pretrained-p16" in table
