"""BVH folders that mix rigs import whole (one skeleton per hierarchy, the primary one chosen independently of file
names, rows per skeleton in the report and card), too-short takes are counted skips, and long takes import in
bounded memory (chunked MOTION parse and forward kinematics, identical results). Built from real Bandai-Namco BVH
files (skipped with the reason when ../shared/data is absent) and mutations of them written to temporary folders."""

from __future__ import annotations

import json
import re
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path

from modeling_motionpatch.apps import bvh as bvh_module
from motionpatch_processing.bandai_namco import (
    OTHER_JOINT_COUNT_REASON,
    TOO_SHORT_REASON,
    BVHImportWarning,
    load_bvh_collection,
)
from modeling_motionpatch.apps.bvh import parse_bvh, read_bvh
from motionpatch_processing.cli import main

REPO = Path(__file__).resolve().parents[1]


def real_bvhs(n: int) -> list[Path]:
    folder = shared_path("bandai-namco", "ds1-bvh", "data")
    return sorted(folder.glob("*.bvh"))[:n]


def renamed_rig(text: str) -> str:
    """The same motion on another rig: every joint renamed (``Hips`` -> ``rigB_Hips``), so another hierarchy."""
    return re.sub(r"^(\s*(?:ROOT|JOINT)\s+)(\S+)", r"\1rigB_\2", text, flags=re.M)


TINY_RIG = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT mid
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 10 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0
0 1 0 0 0 0 0 0 0
0 2 0 0 0 0 0 0 0
"""


def one_frame(text: str) -> str:
    head, motion = text.split("MOTION", 1)
    lines = motion.strip().splitlines()
    return head + f"MOTION\nFrames: 1\n{lines[1]}\n{lines[2]}\n"


def mixed_folder(root: Path, names_a: list[str], names_b: list[str]) -> Path:
    """Rig A (real files) under ``names_a``, rig B (renamed joints) under ``names_b``, a 2-joint rig, a 1-frame take."""
    sources = real_bvhs(len(names_a) + len(names_b))
    root.mkdir(parents=True)
    for name, src in zip(names_a, sources):
        (root / name).write_text(src.read_text())
    for name, src in zip(names_b, sources[len(names_a):]):
        (root / name).write_text(renamed_rig(src.read_text()))
    (root / "m_tiny_rig.bvh").write_text(TINY_RIG)
    (root / "n_one_frame.bvh").write_text(one_frame(sources[0].read_text()))
    return root


def load(root: Path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dd, skeleton = load_bvh_collection(root, scale=0.01, target_fps=20, skeleton_name="rig", **kwargs)
    found = [w.message for w in caught if isinstance(w.message, BVHImportWarning)]
    assert len(found) == 1
    return dd, skeleton, found[0].skipped


def rows_by_skeleton(dd) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ds in dd.values():
        for sid, name in zip(ds["id"], ds["skeleton"]):
            out.setdefault(name, []).append(sid)
    return {k: sorted(v) for k, v in out.items()}


def test_a_mixed_rig_folder_imports_every_hierarchy_with_its_skeleton(tmp_path):
    root = mixed_folder(tmp_path / "mix", ["z1.bvh", "z2.bvh", "z3.bvh"], ["a1.bvh", "a2.bvh"])  # B sorts first
    dd, primary, skipped = load(root)
    rows = rows_by_skeleton(dd)
    assert primary.name == "rig" and rows["rig"] == ["z1", "z2", "z3"]  # the most files, not the first name
    (other,) = set(rows) - {"rig"}
    assert re.fullmatch(r"rig-[0-9a-f]{8}", other) and rows[other] == ["a1", "a2"]
    from modeling_motionpatch import get_skeleton

    assert get_skeleton(other).joint_names[0] == "rigB_" + primary.joint_names[0]
    assert skipped[OTHER_JOINT_COUNT_REASON] == ["m_tiny_rig.bvh"]
    assert skipped[TOO_SHORT_REASON] == ["n_one_frame.bvh"]
    # rig B's rows hold the same motion as rig A's files they were made from: nothing was mixed up
    a = read_bvh(real_bvhs(4)[3], scale=0.01).positions
    b_row = next(r for ds in dd.values() for r in ds.with_format("numpy") if r["id"] == "a1")
    from modeling_motionpatch import resample_fps

    np.testing.assert_allclose(b_row["motion"], resample_fps(a, 30.0, 20.0, mode="linear"), atol=1e-6)


def test_the_primary_skeleton_never_depends_on_file_names(tmp_path):
    """A tie (2 files per rig) is broken by the hierarchy digest: renaming the files swaps nothing."""
    first = mixed_folder(tmp_path / "one", ["a1.bvh", "a2.bvh"], ["b1.bvh", "b2.bvh"])
    second = mixed_folder(tmp_path / "two", ["b1.bvh", "b2.bvh"], ["a1.bvh", "a2.bvh"])  # the rigs' names swapped
    joints = []
    for root in (first, second):
        dd, primary, _ = load(root)
        joints.append(primary.joint_names)
        assert sum(len(ds) for ds in dd.values()) == 4
    assert joints[0] == joints[1]


def test_takes_shorter_than_the_minimum_are_counted_skips(tmp_path):
    (src,) = real_bvhs(1)
    root = tmp_path / "short"
    root.mkdir()
    (root / "full.bvh").write_text(src.read_text())
    (root / "one.bvh").write_text(one_frame(src.read_text()))
    dd, _, skipped = load(root)
    assert skipped == {TOO_SHORT_REASON: ["one.bvh"]}
    assert [r for ds in dd.values() for r in ds["id"]] == ["full"]
    frames = parse_bvh(src).num_frames  # a minimum above the take's length skips it too, with the same reason
    with pytest.raises(ValueError, match="none of the 2 BVH files"):
        load(root, min_frames=frames)


def test_the_cli_reports_rows_per_skeleton_and_uses_the_primary_for_statistics(tmp_path, capsys):
    root = mixed_folder(tmp_path / "mix", ["a1.bvh", "a2.bvh", "a3.bvh"], ["b1.bvh", "b2.bvh"])
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["bvh", "--root", str(root), "--output", str(out), "--scale", "0.01", "--statistics", "all",
                     "--skeleton-name", "mixrig"]) == 0
    report = json.loads((out / "prepare_report.json").read_text())
    rows = report["skeleton_rows"]
    assert report["skeleton"] == "mixrig" and rows["mixrig"] == 3 and sum(rows.values()) == 5 and len(rows) == 2
    assert report["skipped"][TOO_SHORT_REASON] == {"count": 1, "first_ids": ["n_one_frame.bvh"]}
    assert report["skipped"][OTHER_JOINT_COUNT_REASON]["count"] == 1
    assert json.loads((out / "skeleton.json").read_text())["name"] == "mixrig"
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["num_motions"] == 3  # the primary skeleton's rows only
    card = (out / "README.md").read_text()
    assert "`mixrig`: 3 (primary" in card and re.search(r"`mixrig-[0-9a-f]{8}`: 2", card)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SystemExit):
            main(["bvh", "--root", str(root), "--output", str(tmp_path / "m"), "--scale", "0.01", "--mirror"])
    assert "mixes skeletons" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ long takes
def test_chunked_parsing_and_kinematics_give_identical_results(monkeypatch):
    (src,) = real_bvhs(1)
    whole = read_bvh(src, scale=0.01)
    monkeypatch.setattr(bvh_module, "MOTION_CHUNK_BYTES", 997)  # many chunks, cut inside lines -> at line ends
    monkeypatch.setattr(bvh_module, "FK_CHUNK_FRAMES", 7)
    chunked = read_bvh(src, scale=0.01)
    np.testing.assert_array_equal(chunked.positions, whole.positions)
    # errors keep their line numbers across chunks
    lines = src.read_text().splitlines()
    k = len(lines) - 5
    tokens = lines[k].split()
    lines[k] = " ".join(tokens[:3] + ["1,5"] + tokens[4:])
    with pytest.raises(ValueError, match=rf"line {k + 1}, value 4: '1,5' is not a number"):
        bvh_module.parse_bvh_string("\n".join(lines) + "\n", source="bad.bvh")
    with pytest.raises(ValueError, match="truncated"):
        bvh_module.parse_bvh_string("\n".join(src.read_text().splitlines()[:-3]) + "\n", source="cut.bvh")


def test_a_ten_minute_take_imports_in_bounded_memory(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_bvh_long_take import make_long_bvh

    (src,) = real_bvhs(1)
    path = tmp_path / "long.bvh"
    frames = make_long_bvh(src, path, minutes=10)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        motion = read_bvh(path, scale=0.01)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert motion.positions.shape == (frames, 22, 3) and frames == 18000
    # before chunking: 7.9x the file (float64 token tables and FK temporaries of every frame at once)
    assert peak < 4.5 * size, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"
