"""HumanML3D / KIT-ML folder loading, 263-d recovery, BABEL- and InterHuman-style folders.

Real data (two HumanML3D clips) is read from ../shared/data when present; everything else runs on small
folders generated here in the published layouts.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from motionpatch_processing.humanml3d import (
    load_humanml3d,
    load_kit_ml,
    parse_caption_lines,
    recover_from_ric,
)
from motionpatch_processing.io import SkippedSamplesWarning, format_seconds, segment_id

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE = SHARED / "humanml3d-sample"


def sample_root() -> Path:
    if not (SAMPLE / "new_joints" / "000000.npy").exists():
        pytest.skip(f"real data not available: {SAMPLE} is absent (it ships beside the repository, not in it)")
    return SAMPLE


def rows(ds) -> dict[str, dict]:
    return {r["id"]: r for r in ds}


def walker(t: int, joints: int = 22, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """A random but finite motion with the root about 0.9 (scaled) above the ground."""
    rng = np.random.default_rng(seed)
    m = rng.normal(scale=0.1, size=(t, joints, 3)).astype(np.float32)
    m[:, :, 1] += 0.9
    return m * np.float32(scale)


def write_folder(root: Path, motions: dict, texts: dict, splits: dict, vecs: dict | None = None) -> Path:
    (root / "new_joints").mkdir(parents=True)
    (root / "texts").mkdir()
    for cid, m in motions.items():
        np.save(root / "new_joints" / f"{cid}.npy", m)
    for cid, v in (vecs or {}).items():
        (root / "new_joint_vecs").mkdir(exist_ok=True)
        np.save(root / "new_joint_vecs" / f"{cid}.npy", v)
    for cid, lines in texts.items():
        (root / "texts" / f"{cid}.txt").write_text("\n".join(lines) + "\n")
    for name, ids in splits.items():
        (root / name).write_text("\n".join(ids) + "\n")
    return root


# ---------------------------------------------------------------------------
# real sample
# ---------------------------------------------------------------------------
def test_sample_folder_becomes_dataset_dict():
    root = sample_root()
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dd, report = load_humanml3d(root)
    elapsed = time.perf_counter() - start
    skipped = [w for w in caught if issubclass(w.category, SkippedSamplesWarning)]
    assert len(skipped) == 1, "all missing ids must be reported in ONE warning"
    n_listed = sum(len((root / f).read_text().split()) for f in ("train.txt", "val.txt", "test.txt"))
    assert report.skipped.count("missing motion file") == n_listed - 2
    assert f"{n_listed - 2}" in str(skipped[0].message) and "000001" in str(skipped[0].message)
    assert elapsed < 20, f"loading 2 clips out of ~29k listed ids took {elapsed:.1f} s"

    assert set(dd) == {"train", "test"}  # the sample's validation ids are all missing -> empty split left out
    test, train = rows(dd["test"]), rows(dd["train"])
    assert list(test) == ["000000"] and list(train) == ["012314"]
    assert len(test["000000"]["captions"]) == 4
    assert test["000000"]["captions"][0] == "a man kicks something or someone with his left leg."
    assert train["012314"]["captions"] == []  # no caption file in the sample: kept, remarked
    assert report.remarks.items["no caption file (kept without captions)"] == ["012314"]
    for cid, ds in (("000000", dd["test"]), ("012314", dd["train"])):
        ref = np.load(root / "new_joints" / f"{cid}.npy")
        got = ds.with_format("numpy")[0]["motion"]
        assert got.shape == ref.shape and np.array_equal(got, ref)
    assert not test["000000"]["mirrored"] and test["000000"]["fps"] == 20.0
    assert test["000000"]["source"] == "new_joints/000000.npy"


@pytest.mark.parametrize("cid", ["000000", "012314"])
def test_recover_from_ric_matches_new_joints(cid):
    root = sample_root()
    vecs = np.load(root / "new_joint_vecs" / f"{cid}.npy")
    ref = np.load(root / "new_joints" / f"{cid}.npy")
    rec = recover_from_ric(vecs)
    assert rec.shape == ref.shape == (vecs.shape[0], 22, 3)
    err = float(np.abs(rec - ref).max())
    assert err < 1e-4, f"max error {err}"
    import torch

    rec_t = recover_from_ric(torch.from_numpy(vecs.astype(np.float64)))
    assert isinstance(rec_t, torch.Tensor)
    assert float((rec_t - torch.from_numpy(ref.astype(np.float64))).abs().max()) < 1e-4
    # batched input (B, T, D)
    both = recover_from_ric(np.stack([vecs, vecs]))
    assert both.shape == (2,) + ref.shape and np.array_equal(both[0], both[1])


def test_new_joint_vecs_only_folder_is_recovered(tmp_path):
    root = sample_root()
    (tmp_path / "new_joint_vecs").mkdir()
    for cid in ("000000", "012314"):
        np.save(tmp_path / "new_joint_vecs" / f"{cid}.npy", np.load(root / "new_joint_vecs" / f"{cid}.npy"))
    (tmp_path / "train.txt").write_text("000000\n012314\n")
    dd, report = load_humanml3d(tmp_path)
    assert report.remarks.count("joints recovered from new_joint_vecs") == 2
    got = rows(dd["train"].with_format("numpy"))
    for cid in ("000000", "012314"):
        ref = np.load(root / "new_joints" / f"{cid}.npy")
        assert float(np.abs(got[cid]["motion"] - ref).max()) < 1e-4


# ---------------------------------------------------------------------------
# generated folder: segments, mirrored ids, missing / NaN / wrong-joint files, bad caption lines
# ---------------------------------------------------------------------------
@pytest.fixture
def synthetic_folder(tmp_path):
    nan = walker(30, seed=2)
    nan[5, 3, 1] = np.nan
    motions = {
        "000001": walker(60, seed=1),
        "M000001": walker(60, seed=11),
        "000002": nan,
        "000003": walker(30, joints=21, seed=3),
        "000004": walker(40, seed=4),
        "000005": walker(25, seed=5),
        "000007": walker(35, seed=7),
    }
    texts = {
        "000001": [
            "a person walks forward.#a/DET person/NOUN#0.0#0.0",
            "someone walks ahead.#someone/PRON#0.0#0.0",
            "the person turns left.#the/DET#0.5#1.5",
            "a person turns to the left.#a/DET#0.5#1.5",
            "a tiny step.#a/DET#2.0#2.1",
            "runs off.#runs/VERB#2.5#10.0",
        ],
        "M000001": ["a person walks forward.#a/DET#nan#nan"],
        "000004": ["just text without fields", "", "a person squats.#a/DET#0.0#0.0"],
        "000007": ["a person jumps.#a/DET#0.0#0.0"],
        "000006": ["a person waves.#a/DET#0.0#0.0"],
    }
    missing = [f"9000{i:02d}" for i in range(10)]
    splits = {
        "train.txt": ["000001", "M000001", "000002", "000004", "000005"] + missing,
        "val.txt": ["000003", "000007"],
        "test.txt": ["000006"],
    }
    rng = np.random.default_rng(6)
    vecs = {"000006": rng.normal(scale=0.05, size=(33, 263)).astype(np.float32)}
    return write_folder(tmp_path / "hml", motions, texts, splits, vecs)


def test_generated_folder_segments_mirrors_and_skips(synthetic_folder):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dd, report = load_humanml3d(synthetic_folder, min_segment_frames=5)
    assert sum(issubclass(w.category, SkippedSamplesWarning) for w in caught) == 1
    train = rows(dd["train"].with_format("numpy"))
    assert list(train) == ["000001", "000001_0.5_1.5", "000001_2.5_10.0", "M000001", "000004", "000005"]
    clip = np.load(synthetic_folder / "new_joints" / "000001.npy")
    # whole clip: only whole-clip captions; the two captions of [0.5, 1.5) share one segment sample
    assert list(train["000001"]["captions"]) == ["a person walks forward.", "someone walks ahead."]
    assert list(train["000001_0.5_1.5"]["captions"]) == ["the person turns left.", "a person turns to the left."]
    assert np.array_equal(train["000001_0.5_1.5"]["motion"], clip[10:30])
    assert np.array_equal(train["000001_2.5_10.0"]["motion"], clip[50:60])  # clamped at the clip end
    assert report.remarks.items["segment end past the clip end (clamped)"] == ["000001_2.5_10.0"]
    assert report.skipped.items["segment shorter than min_segment_frames"] == ["000001_2.0_2.1"]
    # provided mirrored copies: kept, flagged; NaN start/end = whole clip
    assert train["M000001"]["mirrored"] and not train["000001"]["mirrored"]
    assert list(train["M000001"]["captions"]) == ["a person walks forward."]
    # bad caption line: that line only is skipped (counted), the clip and its other caption are kept
    assert list(train["000004"]["captions"]) == ["a person squats."]
    assert report.skipped.items["malformed caption line"] == ["000004:1"]
    # no caption file: kept without captions
    assert len(train["000005"]["captions"]) == 0 and train["000005"]["motion"].shape == (25, 22, 3)
    # 10 missing ids, one NaN file, one wrong joint count: counted skips; nothing else lost
    assert report.skipped.items["missing motion file"] == [f"9000{i:02d}" for i in range(10)]
    assert report.skipped.items["non-finite values (NaN/Inf)"] == ["000002"]
    assert report.skipped.items["wrong joint count"] == ["000003"]
    assert [r["id"] for r in dd["validation"]] == ["000007"]
    # an id with only new_joint_vecs: converted
    assert dd["test"][0]["id"] == "000006" and len(dd["test"][0]["motion"]) == 33
    assert report.remarks.items["joints recovered from new_joint_vecs"] == ["000006"]
    assert report.counts == {"train": 6, "validation": 1, "test": 1}


def test_default_min_segment_keeps_short_segments(synthetic_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedSamplesWarning)
        dd, report = load_humanml3d(synthetic_folder)
    ids = dd["train"]["id"]
    assert "000001_2.0_2.1" in ids and report.skipped.count("segment shorter than min_segment_frames") == 0
    assert len(rows(dd["train"])["000001_2.0_2.1"]["motion"]) == 2


def test_wrong_skeleton_everywhere_is_a_clear_error(tmp_path):
    root = write_folder(tmp_path / "kit_as_hml", {f"{i:06d}": walker(20, joints=21) for i in range(3)}, {},
                        {"train.txt": [f"{i:06d}" for i in range(3)]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedSamplesWarning)
        with pytest.raises(ValueError, match="wrong joint count: 3"):
            load_humanml3d(root)


def test_missing_root_or_split_files_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_humanml3d(tmp_path / "nope")
    root = write_folder(tmp_path / "nosplits", {"000001": walker(10)}, {}, {})
    with pytest.raises(ValueError, match="none of the split files"):
        load_humanml3d(root)


def test_caption_parsing_and_segment_ids():
    good, bad = parse_caption_lines("a b#t#0.0#0.0\nno fields\n\nx#t#1#2#extra\nc#t#abc#1\n#t#0#0\nd#t#1.25#3\n")
    assert good == [("a b", 0.0, 0.0), ("d", 1.25, 3.0)]
    assert bad == [2, 4, 5, 6]
    assert segment_id("000001", 1.5, 3.25) == "000001_1.5_3.25"
    assert segment_id("x", 2, 10) == "x_2.0_10.0"
    assert format_seconds(0.12345) == "0.123" and format_seconds(0) == "0.0"


# ---------------------------------------------------------------------------
# KIT-ML
# ---------------------------------------------------------------------------
def test_kit_ml_resampled_to_20_fps_in_metres(tmp_path):
    mm = walker(25, joints=21, seed=3, scale=1000.0)  # millimetres, 12.5 fps
    root = write_folder(tmp_path / "kit", {"00001": mm}, {"00001": ["a person walks.#a/DET#0#0", "turns.#t#0.8#1.6"]},
                        {"train.txt": ["00001"]})
    dd, report = load_kit_ml(root)
    got = rows(dd["train"].with_format("numpy"))
    whole = got["00001"]["motion"]
    assert whole.shape == (40, 21, 3)  # floor(25 * 20 / 12.5) frames, nearest: frames repeated
    idx = np.floor(np.arange(40) * 12.5 / 20 + 1e-9).astype(int)
    np.testing.assert_allclose(whole, mm[idx] * 0.001, rtol=1e-6)
    seg = got["00001_0.8_1.6"]["motion"]  # source frames [10, 20) -> 16 frames at 20 fps
    assert seg.shape == (16, 21, 3)
    assert report.fps == 20.0 and got["00001"]["fps"] == 20.0 and got["00001"]["skeleton"] == "kit"
    dd_lin, _ = load_kit_ml(root, fps_mode="linear")
    assert len(dd_lin["train"][0]["motion"]) == 39  # floor(24 * 1.6) + 1
    with pytest.warns(UserWarning, match="length_scale"):
        load_kit_ml(root, length_scale=1.0)  # left in millimetres: root height ~900 -> warned


# ---------------------------------------------------------------------------
# BABEL-style and InterHuman-style folders
# ---------------------------------------------------------------------------
def test_babel_style_folder(tmp_path):
    from motionpatch_processing.babel import class_index, load_babel

    root = tmp_path / "babel"
    (root / "motions" / "CMU" / "02").mkdir(parents=True)
    np.save(root / "motions" / "1.npy", walker(60, seed=1))
    np.save(root / "motions" / "CMU" / "02" / "02_01_poses.npy", walker(30, seed=2))
    np.save(root / "motions" / "4.npy", walker(40, seed=4))
    lab = lambda proc, cats, s, e: {"proc_label": proc, "act_cat": cats, "start_t": s, "end_t": e}
    train = {
        "1": {"feat_p": "CMU/01/01_01_poses.npz", "dur": 3.0, "seq_ann": None,
              "frame_ann": {"labels": [lab("walk", ["walk"], 0.0, 1.0), lab("turn left", ["turn"], 1.0, 2.0),
                                       lab("wave", ["wave", "hand movements"], 1.0, 2.0), lab("walk", ["walk"], 2.0, 3.0)]}},
        "2": {"feat_p": "CMU/02/02_01_poses.npz", "dur": 1.5, "frame_ann": None,
              "seq_ann": {"labels": [{"proc_label": "sit down", "act_cat": ["sit"]}]}},
        "3": {"feat_p": "CMU/03/03_01_poses.npz", "dur": 1.0, "frame_ann": None,
              "seq_ann": {"labels": [{"proc_label": "walk", "act_cat": ["walk"]}]}},
    }
    val = {"4": {"feat_p": "x/4.npz", "dur": 2.0, "seq_ann": None,
                 "frame_ann": {"labels": [lab("jog", ["run"], 0.0, 1.0)]}}}
    (root / "train.json").write_text(json.dumps(train))
    (root / "val.json").write_text(json.dumps(val))
    with pytest.warns(SkippedSamplesWarning, match="missing motion file: 1"):
        dd, report = load_babel(root)
    assert report.class_names == ["walk", "hand movements", "sit", "turn", "wave", "run"]
    tr = rows(dd["train"].with_format("numpy"))
    assert list(tr) == ["1_0.0_1.0", "1_1.0_2.0", "1_2.0_3.0", "2"]
    assert list(tr["1_1.0_2.0"]["labels"]) == ["turn", "wave", "hand movements"]
    assert list(tr["1_1.0_2.0"]["captions"]) == ["turn left", "wave"]
    assert tr["1_1.0_2.0"]["motion"].shape == (20, 22, 3)
    assert list(tr["2"]["labels"]) == ["sit"] and tr["2"]["motion"].shape == (30, 22, 3)
    assert tr["2"]["source"] == "CMU/02/02_01_poses.npy"
    assert report.skipped.items["missing motion file"] == ["3"]
    assert [r["id"] for r in dd["validation"]] == ["4_0.0_1.0"]
    np.testing.assert_array_equal(class_index(["walk", "run"], report.class_names), [1, 0, 0, 0, 0, 1])
    # a fixed class list drops other labels and skips (counted) segments left without one
    with pytest.warns(SkippedSamplesWarning):
        dd2, rep2 = load_babel(root, class_names=["walk", "sit"], captions_from=None)
    assert list(dd2["train"]["id"]) == ["1_0.0_1.0", "1_2.0_3.0", "2"] and dd2["train"][0]["captions"] == []
    assert rep2.skipped.items["segment without a label in class_names"] == ["1_1.0_2.0", "4_0.0_1.0"]


def test_interhuman_style_folder(tmp_path):
    from motionpatch_processing.interhuman import load_interhuman

    root = tmp_path / "interhuman"
    for d in ("motions/person1", "motions/person2", "annots", "split"):
        (root / d).mkdir(parents=True)
    p1 = {"1": walker(30, seed=1), "2": walker(30, seed=2), "3": walker(30, seed=3), "4": walker(30, seed=4),
          "5": walker(33, seed=5)}
    raw = np.concatenate([walker(30, seed=9).reshape(30, 66), np.zeros((30, 426), np.float32)], axis=1)  # (T, 492)
    p2 = {"1": raw, "2": walker(27, seed=6), "4": walker(30, seed=7), "5": walker(33, seed=8)}
    for person, items in (("person1", p1), ("person2", p2)):
        for cid, m in items.items():
            np.save(root / "motions" / person / f"{cid}.npy", m)
    (root / "annots" / "1.txt").write_text("two people shake hands.\n\nthey greet each other.\n")
    (root / "split" / "train.txt").write_text("1\n2\n3\n4\n")
    (root / "split" / "test.txt").write_text("5\n")
    (root / "ignore_list.txt").write_text("4\n")
    with pytest.warns(SkippedSamplesWarning):
        dd, report = load_interhuman(root)
    tr = rows(dd["train"].with_format("numpy"))
    assert list(tr) == ["1", "2"]
    assert list(tr["1"]["captions"]) == ["two people shake hands.", "they greet each other."]
    assert tr["1"]["motion_a"].shape == tr["1"]["motion_b"].shape == (20, 22, 3)  # 30 fps -> 20 fps
    np.testing.assert_allclose(tr["1"]["motion_b"][0], raw[0, :66].reshape(22, 3))
    assert tr["2"]["motion_a"].shape == tr["2"]["motion_b"].shape == (18, 22, 3)  # cropped to 27 frames first
    assert report.remarks.items["person lengths differ (cropped to the shorter)"] == ["2"]
    assert report.skipped.items == {"missing motion file": ["3"], "listed in ignore_list.txt": ["4"]}
    assert list(dd["test"]["id"]) == ["5"]
    assert set(dd["train"].features) >= {"motion_a", "motion_b"}
    dd_z, _ = load_interhuman(root, z_up=True, split_files={"test": "split/test.txt"})
    a = np.load(root / "motions" / "person1" / "5.npy")
    got = dd_z["test"].with_format("numpy")[0]["motion_a"]
    np.testing.assert_allclose(got[0], np.stack([a[0, :, 0], a[0, :, 2], -a[0, :, 1]], -1), atol=1e-6)
