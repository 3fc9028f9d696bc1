"""BVH reader, forward kinematics and the Bandai-Namco import (offline, deterministic).

Tests on the real data skip, with the reason, when ``../shared/data`` is absent.
"""

from __future__ import annotations

import collections
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from motionpatch_processing.bandai_namco import BVHImportWarning, load_bandai_namco, load_bvh_collection
from motionpatch_processing.bandai_labels import BANDAI_CAPTION_TEMPLATE, BANDAI_PHRASES, make_caption
from motionpatch_processing.clip_splits import assign_splits, clip_group, take_number
from motionpatch_processing.bandai_npz import dataset_from_npz
from modeling_motionpatch.apps.bvh import (
    BVHError,
    forward_kinematics,
    forward_kinematics_batch,
    parse_bvh,
    parse_bvh_string,
    read_bvh,
)

from modeling_motionpatch import MotionPatchFeatureExtractor, get_skeleton
from modeling_motionpatch.skeletons import CHAIN_NAMES, SkeletonError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BANDAI = SHARED_DATA / "bandai-namco"


def bandai(*parts: str) -> Path:
    path = BANDAI.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (../shared/data ships beside the repository)")
    return path


# ---------------------------------------------------------------------------
# forward kinematics on a hand-written file
# ---------------------------------------------------------------------------
# root: 6 channels, positions then Z X Y rotations (the Bandai order); mid: X Y Z order (not ZXY);
# tip: position channels on a non-root joint (Y and X only, interleaved with a rotation).
TOY = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT mid
  {
    OFFSET 1 0 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    JOINT tip
    {
      OFFSET 0 2 7
      CHANNELS 3 Yposition Zrotation Xposition
      End Site
      {
        OFFSET 0 0 1
      }
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.05
0 0 0  0 0 0   0 0 0   2 0 0
10 0 0  90 0 0   90 0 0   3 90 0.5
0 0 0  90 90 0   0 0 0   2 0 0
"""


def test_fk_hand_computed_channel_orders():
    data = parse_bvh_string(TOY, source="toy.bvh", keep_end_sites=True)
    assert data.hierarchy.names == ("root", "mid", "tip", "tip_end")
    assert data.hierarchy.parents.tolist() == [-1, 0, 1, 2]
    assert data.values.shape == (3, 12) and data.fps == 20.0
    pos = forward_kinematics(data, dtype=np.float64)
    assert pos.shape == (3, 4, 3)
    # frame 0, rest pose: tip's Yposition (2) replaces OFFSET y, its Xposition (0) replaces x, z keeps 7
    np.testing.assert_allclose(pos[0], [[0, 0, 0], [1, 0, 0], [1, 2, 7], [1, 2, 8]], atol=1e-12)
    # frame 1: root at (10,0,0), Rz(90): x -> y.  mid = root + Rz90 (1,0,0) = (10, 1, 0).
    # mid rotates Xrotation 90 (order X Y Z): G_mid = Rz90 Rx90. tip translation = (0.5, 3, 7):
    #   Rx90 (0.5, 3, 7) = (0.5, -7, 3);  Rz90 (0.5, -7, 3) = (7, 0.5, 3)  -> tip = (17, 1.5, 3)
    # tip rotates Zrotation 90: G_tip = Rz90 Rx90 Rz90; end (0,0,1): Rz90 -> (0,0,1), Rx90 -> (0,-1,0),
    #   Rz90 -> (1, 0, 0)  -> end = (18, 1.5, 3)
    np.testing.assert_allclose(pos[1], [[10, 0, 0], [10, 1, 0], [17, 1.5, 3], [18, 1.5, 3]], atol=1e-9)
    # frame 2: root Z=90 then X=90, intrinsic R = Rz90 Rx90 (not Rx90 Rz90):
    #   mid = R (1,0,0) = Rz90 (1,0,0) = (0, 1, 0)      [Rx90 Rz90 would give (0, 0, 1)]
    #   tip = mid + R (0,2,7): Rx90 (0,2,7) = (0,-7,2), Rz90 -> (7, 0, 2); tip = (7, 1, 2)
    #   end = tip + R (0,0,1): Rx90 -> (0,-1,0), Rz90 -> (1, 0, 0); end = (8, 1, 2)
    np.testing.assert_allclose(pos[2], [[0, 0, 0], [0, 1, 0], [7, 1, 2], [8, 1, 2]], atol=1e-9)


def test_fk_scale_up_axis_and_end_sites_dropped():
    data = parse_bvh_string(TOY, source="toy.bvh")
    assert data.hierarchy.names == ("root", "mid", "tip")  # End Sites dropped by default
    ref = forward_kinematics(data, dtype=np.float64)
    z_up = forward_kinematics(data, scale=0.01, up_axis="z", dtype=np.float64)
    # Z up -> Y up: (x, y, z) -> (x, z, -y), a proper rotation
    np.testing.assert_allclose(z_up, 0.01 * np.stack([ref[..., 0], ref[..., 2], -ref[..., 1]], -1), atol=1e-12)
    with pytest.raises(ValueError, match="up_axis"):
        forward_kinematics(data, up_axis="x")


def test_batch_fk_equals_per_file():
    datas = [parse_bvh_string(TOY, source="a.bvh"), parse_bvh_string(TOY.replace("10 0 0", "5 1 2"), source="b.bvh")]
    assert datas[0].hierarchy is datas[1].hierarchy  # hierarchy cached by text
    batched = forward_kinematics_batch(datas, max_frames=4)
    for d, b in zip(datas, batched):
        np.testing.assert_array_equal(forward_kinematics(d), b)


def _rot(axis: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return {
        "X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def test_fk_matches_per_frame_reference_on_mixed_orders():
    """Siblings with different channel orders and counts, position channels on inner joints."""
    rng = np.random.default_rng(0)
    parents = [-1, 0, 1, 1, 1, 2, 3, 0]
    channels = [
        ["Zposition", "Xposition", "Yposition", "Yrotation", "Xrotation", "Zrotation"],
        ["Xrotation", "Zrotation", "Yrotation"],
        ["Zrotation", "Yrotation"],
        ["Yrotation", "Xposition", "Xrotation", "Zrotation", "Zposition"],
        ["Xrotation"],
        ["Zrotation", "Xrotation", "Yrotation"],
        ["Yposition", "Zrotation", "Yrotation", "Xrotation"],
        [],
    ]
    offsets = rng.normal(size=(8, 3)).round(3)
    frames = rng.uniform(-180, 180, size=(5, sum(map(len, channels)))).round(4)

    def joint(k: int, depth: int) -> str:
        pad = "  " * depth
        kw = "ROOT" if k == 0 else "JOINT"
        body = f"{pad}{kw} j{k}\n{pad}{{\n{pad}  OFFSET {' '.join(map(str, offsets[k]))}\n"
        body += f"{pad}  CHANNELS {len(channels[k])} {' '.join(channels[k])}\n"
        for c in (c for c, p in enumerate(parents) if p == k):
            body += joint(c, depth + 1)
        return body + f"{pad}}}\n"

    text = "HIERARCHY\n" + joint(0, 0) + "MOTION\nFrames: 5\nFrame Time: 0.0333333\n"
    text += "\n".join(" ".join(map(str, row)) for row in frames) + "\n"
    data = parse_bvh_string(text, source="mixed.bvh")
    assert data.fps == 30.0
    order = [int(n[1:]) for n in data.hierarchy.names]  # file (depth-first) order
    got = forward_kinematics(data, dtype=np.float64)
    starts = np.cumsum([0] + [len(channels[k]) for k in order])
    for f, row in enumerate(frames):
        rot, pos = {}, {}
        for i, k in enumerate(order):
            t, r = offsets[k].astype(float).copy(), np.eye(3)
            for name, v in zip(channels[k], row[starts[i] : starts[i + 1]]):
                if name.endswith("position"):
                    t["XYZ".index(name[0])] = v
                else:
                    r = r @ _rot(name[0], v)
            p = parents[k]
            rot[k] = r if p < 0 else rot[p] @ r
            pos[k] = t if p < 0 else pos[p] + rot[p] @ t
        np.testing.assert_allclose(got[f], [pos[k] for k in order], atol=1e-9)


# ---------------------------------------------------------------------------
# malformed input
# ---------------------------------------------------------------------------
def test_truncated_motion_names_file_and_missing_values(tmp_path):
    text = TOY[: TOY.rindex("0 0 0  90 90 0")] + "0 0 0  90\n"  # cut inside the last frame
    path = tmp_path / "cut.bvh"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"cut\.bvh.*Frames: 3 x 12 channels = 36 values.*28 values.*truncated"):
        parse_bvh(path)
    # strict=False keeps the complete frames (and logs it)
    assert parse_bvh(path, strict=False).num_frames == 2


def test_missing_motion_and_bad_values(tmp_path):
    path = tmp_path / "nomotion.bvh"
    path.write_text(TOY[: TOY.index("MOTION")])
    with pytest.raises(ValueError, match=r"nomotion\.bvh: no MOTION section"):
        parse_bvh(path)
    bad = tmp_path / "bad.bvh"
    bad.write_text(TOY.replace("3 90 0.5", "3 ninety 0.5"))
    with pytest.raises(ValueError, match=r"bad\.bvh: line 25, value 11: 'ninety' is not a number"):
        parse_bvh(bad)
    comma = TOY.replace("2 0 0\n10", "2 0 0,5\n10")
    with pytest.raises(BVHError, match="'0,5' is not a number"):
        parse_bvh_string(comma, source="comma.bvh")
    with pytest.raises(BVHError, match=r"line 9: unknown channel 'Xrot'"):
        parse_bvh_string(TOY.replace("CHANNELS 3 Xrotation", "CHANNELS 3 Xrot"), source="chan.bvh")
    with pytest.raises(BVHError, match="braces are unbalanced|'}' is missing"):
        parse_bvh_string(TOY.replace("  }\n}\nMOTION", "MOTION"), source="brace.bvh")


# ---------------------------------------------------------------------------
# Bandai-Namco, real data
# ---------------------------------------------------------------------------
def _npz_clips(path: Path) -> tuple[dict[str, np.ndarray], np.lib.npyio.NpzFile]:
    z = np.load(path)
    joints, offsets, lengths = z["joints"], z["offsets"], z["lengths"]
    return {str(n): joints[o : o + n_] for n, o, n_ in zip(z["names"], offsets, lengths)}, z


def test_ds2_sample_matches_prepared_npz():
    root = bandai("ds2-bvh-sample")
    clips, _ = _npz_clips(bandai("ds2_h22_20fps.npz"))
    dd, skeleton = load_bandai_namco(root, variant="humanml3d")
    assert skeleton.name == "humanml3d"
    seen, worst = 0, 0.0
    for split in dd:
        for ex in dd[split].with_format("numpy"):
            ref = clips[ex["id"]].astype(np.float32)
            assert ex["motion"].shape == ref.shape, ex["id"]  # same frame count at 20 fps
            worst = max(worst, float(np.abs(ex["motion"] - ref).max()))
            assert ex["fps"] == 20.0 and ex["skeleton"] == "humanml3d" and not ex["mirrored"]
            assert ex["source"] == f"{ex['id']}.bvh"
            seen += 1
    assert seen == 70
    print(f"max |error| vs ds2_h22_20fps.npz over 70 clips: {worst:.2e} m")
    assert worst < 5e-3  # measured 1.95e-3 m: float16 rounding of the npz


def test_ds1_imports_without_error_and_chains():
    root = bandai("ds1-bvh")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BVHImportWarning)
        dd, skeleton = load_bandai_namco(root, variant="native")
    assert sum(len(dd[s]) for s in dd) == 174
    assert skeleton.name == "bandai-namco" and get_skeleton("bandai-namco") == skeleton
    assert skeleton.num_joints == 22 and skeleton.joint_names[0] == "joint_Root"
    chains = skeleton.chain_names()
    assert list(chains) == list(CHAIN_NAMES)
    assert chains["left_arm"][-1] == "Hand_L" and chains["right_leg"][-1] == "Toes_R"
    assert chains["right_arm"][-1] == "Hand_R" and chains["left_leg"][-1] == "Toes_L"
    assert chains["torso"] == ["Hips", "Spine", "Chest", "Neck", "Head"]
    ex = dd["train"].with_format("numpy")[0]
    assert ex["motion"].dtype == np.float32 and ex["motion"].shape[1:] == (22, 3)
    # captions and labels from the sidecar ids + cfg names, phrased like the index
    index = {json.loads(line)["name"]: json.loads(line) for line in bandai("ds1_index.jsonl").open()}
    for split in dd:
        for row in dd[split].select_columns(["id", "captions", "labels"]):
            assert row["captions"] == [index[row["id"]]["caption_template"]]
            assert row["labels"] == [index[row["id"]]["content"], index[row["id"]]["style"]]


def test_bvh_skeleton_from_reader():
    motion = read_bvh(bandai("ds1-bvh", "data", "dataset-1_bow_angry_001.bvh"), scale=0.01)
    assert motion.fps == 30.0 and motion.positions.dtype == np.float32
    skel = motion.skeleton("bandai-namco-test")
    assert skel.chain_names()["left_arm"][-1] == "Hand_L" and skel.chain_names()["right_leg"][-1] == "Toes_R"
    # metres, Y up: the head is above the toes and about 1.5-1.9 m above them in the first frame
    head, toes = motion.names.index("Head"), motion.names.index("Toes_R")
    assert 1.3 < motion.positions[0, head, 1] - motion.positions[0, toes, 1] < 2.0


def test_ds1_npz_patches():
    _, z = _npz_clips(bandai("ds1_h22_20fps.npz"))
    joints = z["joints"].astype(np.float32)
    motions = [joints[o : o + n] for o, n in zip(z["offsets"], z["lengths"])]
    assert len(motions) == 174
    out = MotionPatchFeatureExtractor("humanml3d")(motions)
    values = out["motion_values"]
    assert values.shape == (174, 3, 224, 80)
    assert not np.isnan(values).any()


def test_captions_reproduce_index():
    for name in ("ds1_index.jsonl", "ds2_index.jsonl"):
        for line in bandai(name).open():
            row = json.loads(line)
            fields = {"content": row["content"], "style": row["style"]}
            assert make_caption(BANDAI_CAPTION_TEMPLATE, fields, BANDAI_PHRASES) == row["caption_template"]
    # a user mapping and template work too
    assert (
        make_caption(
            "{who} {content} {style}", {"who": "she", "content": "hop", "style": "x"}, {"style": {"x": "twice"}}
        )
        == "she hop twice"
    )
    with pytest.raises(ValueError, match="field 'mood'"):
        make_caption("a person {mood}", {"content": "bow"})


# ---------------------------------------------------------------------------
# collections and splits
# ---------------------------------------------------------------------------
def test_collection_skips_broken_file_with_warning(tmp_path):
    src = bandai("ds2-bvh-sample", "data")
    names = sorted(p.name for p in src.glob("*.bvh"))[:3]
    for n in names:
        shutil.copy(src / n, tmp_path / n)
        shutil.copy((src / n).with_suffix(".json"), (tmp_path / n).with_suffix(".json"))
    text = (src / names[0]).read_text()
    (tmp_path / "zz_broken_001.bvh").write_text(text[: len(text) // 2])  # cut mid-MOTION
    (tmp_path / "zz_broken_001.json").write_text('{"content": 0, "style": 0}')
    with pytest.warns(BVHImportWarning, match=r"skipped 1 of 4 .*zz_broken_001\.bvh.*truncated"):
        dd, skeleton = load_bvh_collection(
            tmp_path, pattern="*.bvh", labels="sidecar", scale=0.01, skeleton_name="bandai-namco", splits="hash"
        )
    assert sorted(r for s in dd for r in dd[s]["id"]) == sorted(Path(n).stem for n in names)
    assert skeleton.name == "bandai-namco"
    row = next(dd[s][0] for s in dd if len(dd[s]))
    assert row["labels"] == [str(v) for v in json.loads((src / f"{row['id']}.json").read_text()).values()]
    assert row["fps"] == 30.0 and len(row["motion"][0]) == 22


def test_collection_with_user_labels_chains_and_fps(tmp_path):
    for stem in ("hop_001", "hop_002", "spin_009"):
        (tmp_path / f"{stem}.bvh").write_text(TOY)
    labels = {"hop_001": {"content": "hops", "style": "x"}, "hop_002": ["hops", "y"], "spin_009": ["spins", "x"]}
    dd, skeleton = load_bvh_collection(
        tmp_path,
        pattern="*.bvh",
        labels=labels,
        caption_template="someone {content} {style}.",
        phrases={"style": {"x": "twice", "y": ""}},
        skeleton_name="toy-3",
        chains=[[0, 1], [0, 1], [0, 1, 2], [1, 2], [1, 2]],  # 3 joints: chains cannot be derived
        splits="take",
        target_fps=10.0,
        up_axis="z",
    )
    assert skeleton.name == "toy-3" and get_skeleton("toy-3") == skeleton
    assert dd["train"]["id"] == ["hop_001", "hop_002"] and dd["validation"]["id"] == ["spin_009"]
    assert dd["train"]["captions"] == [["someone hops twice."], ["someone hops."]]
    assert dd["validation"]["labels"] == [["spins", "x"]]
    row = dd["train"].with_format("numpy")[0]
    assert row["fps"] == 10.0 and row["motion"].shape == (2, 3, 3)  # 3 frames at 20 fps -> 2 at 10 fps
    full = forward_kinematics(parse_bvh_string(TOY), up_axis="z")
    np.testing.assert_allclose(row["motion"][1], full[2], atol=1e-6)  # t = 0.1 s is source frame 2


def test_two_collections_with_one_folder_name_keep_their_own_skeletons(tmp_path):
    """The default skeleton name ``bvh-<folder>`` taken by another hierarchy in this process gets a hierarchy suffix
    (it used to be a SkeletonError, so a second ``motionpatch-prepare bvh`` in one process failed)."""
    chains = [[0, 1], [0, 1], [0, 1, 2], [1, 2], [1, 2]]
    renamed = TOY.replace("JOINT tip", "JOINT finger")
    skeletons = []
    for parent, text in (("a", TOY), ("b", renamed), ("c", TOY)):
        folder = tmp_path / parent / "mocap_lib"
        folder.mkdir(parents=True)
        for stem in ("hop_001", "hop_002"):
            (folder / f"{stem}.bvh").write_text(text)
        _, skeleton = load_bvh_collection(folder, pattern="*.bvh", labels=None, chains=chains, splits="hash")
        skeletons.append(skeleton)
    assert skeletons[0].name == skeletons[2].name == "bvh-mocap_lib"  # the same hierarchy reuses the name
    assert skeletons[1].name.startswith("bvh-mocap_lib-") and skeletons[1].joint_names[-1] == "finger"
    assert get_skeleton(skeletons[1].name) == skeletons[1] and get_skeleton("bvh-mocap_lib").joint_names[-1] == "tip"
    with pytest.raises(SkeletonError, match="already registered"):  # a name chosen by the user is never changed
        load_bvh_collection(tmp_path / "b" / "mocap_lib", pattern="*.bvh", labels=None, chains=chains,
                            splits="hash", skeleton_name="bvh-mocap_lib")


def test_splits_by_take_are_disjoint():
    names = [json.loads(line)["name"] for line in bandai("ds2_index.jsonl").open()]
    splits = assign_splits(names)  # auto -> by take number (takes 1..104)
    takes: dict[int, set[str]] = collections.defaultdict(set)
    for n, s in zip(names, splits):
        takes[take_number(n)].add(s)
    assert all(len(s) == 1 for s in takes.values())
    counts = collections.Counter(splits)
    assert set(counts) == {"train", "validation", "test"}
    assert assign_splits(names) == splits  # deterministic
    # one take per clip (ds1): seeded hash of the clip group, both takes of a pair in one split
    ds1 = sorted(p.stem for p in bandai("ds1-bvh", "data").glob("*.bvh"))
    ds1_splits = assign_splits(ds1)
    groups: dict[str, set[str]] = collections.defaultdict(set)
    for n, s in zip(ds1, ds1_splits):
        groups[clip_group(n)].add(s)
    assert all(len(s) == 1 for s in groups.values())
    assert set(ds1_splits) == {"train", "validation", "test"}
    assert assign_splits(ds1, seed=1) != ds1_splits


def test_dataset_from_npz_streams_splits():
    dd, skeleton = dataset_from_npz(bandai("ds2_h22_20fps.npz"))
    assert skeleton.name == "humanml3d"
    assert sum(len(dd[s]) for s in dd) == 2902
    ids = {s: set(dd[s]["id"]) for s in dd}
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["validation"])
    for s in dd:
        assert (
            len(
                {take_number(n) for n in ids[s]}
                & set().union(*({take_number(n) for n in ids[o]} for o in dd if o != s))
            )
            == 0
        )
    clips, _ = _npz_clips(bandai("ds2_h22_20fps.npz"))
    row = dd["test"].with_format("numpy")[3]
    np.testing.assert_array_equal(row["motion"], clips[row["id"]].astype(np.float32))
    assert row["captions"][0].startswith("a person ") and row["fps"] == 20.0
