"""Joints by name (``modeling_motionpatch/joint_maps.py``) and BVH in, directly (``bvh.motion_for_skeleton``, the
pipeline): a motion is mapped onto the model's skeleton by its joint names, never read as SMPL-22 because it has 22
joints. Generated mutations (permuted / renamed / missing joints, millimetre and Z-up variants of a real BVH) and
the real Bandai-Namco files, checked against the converted ``ds1_h22_20fps.npz``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchModel, MotionPatchProcessor, get_skeleton
from modeling_motionpatch.apps.bvh import motion_for_skeleton, parse_bvh_string, read_bvh
from modeling_motionpatch.apps.joint_maps import RIGS, SMPL22, JointMapError, joint_map_matrix, map_joints
from modeling_motionpatch.motion_patches import resample_fps

BANDAI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bandai-namco"
needs_bandai = pytest.mark.skipif(not (BANDAI / "ds1_h22_20fps.npz").is_file(), reason=f"{BANDAI} is absent")
CLIPS = (0, 1, 60)  # rows of ds1_index.jsonl: two bows and a clip that travels (hips far from the origin)
LABELS = ["walks", "bows", "jumps"]


def source_motion(names, frames=7, seed=0):
    """A motion whose every joint has its own random trajectory, so any wrong pick shows."""
    return np.random.default_rng(seed).normal(size=(frames, len(names), 3)).astype(np.float32)


def expected_from_table(motion, names, table):
    idx = {n: i for i, n in enumerate(names)}
    rows = []
    for t in SMPL22:
        if t in table:
            rows.append(motion[:, [idx[n] for n in table[t]]].mean(axis=1))
        else:  # derived: spine2 = mean(spine1, spine3)
            rows.append(None)
    k1, k2, k3 = (SMPL22.index(n) for n in ("spine1", "spine2", "spine3"))
    if rows[k2] is None:
        rows[k2] = (rows[k1] + rows[k3]) / 2
    return np.stack(rows, axis=1)


# ---------------------------------------------------------------------------
# names -> the model's skeleton
# ---------------------------------------------------------------------------
def test_permuted_and_respelled_smpl_names_map_back_exactly():
    rng = np.random.default_rng(1)
    motion = source_motion(SMPL22)
    perm = rng.permutation(22)
    respelled = [n.upper().replace("_", "-") if k % 2 else n.title().replace("_", ".") for k, n in enumerate(SMPL22)]
    names = [respelled[p] for p in perm]
    np.testing.assert_array_equal(map_joints(motion[:, perm], names, "humanml3d"), motion)
    assert joint_map_matrix(names)[1] == "smpl"


@pytest.mark.parametrize("rig", sorted(RIGS))
def test_every_rig_maps_by_name_with_extra_joints_and_any_order(rig):
    table = RIGS[rig]
    native = sorted({n for names in table.values() for n in names})
    prefix = {"mixamo": "mixamorig:", "blender-rigify": "DEF-"}.get(rig, "")
    names = [prefix + n for n in native] + [prefix + "LeftHandIndex1", prefix + "End_Site_X"]
    names = [names[k] for k in np.random.default_rng(2).permutation(len(names))]
    motion = source_motion(names)
    w, how = joint_map_matrix(names)
    assert how == rig
    plain = [n[len(prefix):] for n in names]
    np.testing.assert_allclose(map_joints(motion, names), expected_from_table(motion, plain, table), atol=1e-6)


def test_mixamo_left_shoulder_is_a_collar_not_smpl_left_shoulder():
    names = ["mixamorig:" + n for n in sorted({n for v in RIGS["mixamo"].values() for n in v})]
    w, _ = joint_map_matrix(names)
    assert w[SMPL22.index("left_collar"), names.index("mixamorig:LeftShoulder")] == 1
    assert w[SMPL22.index("left_shoulder"), names.index("mixamorig:LeftArm")] == 1
    biped = [n.replace("Bip01", "Bip001") for v in RIGS["3ds-max-biped"].values() for n in v]
    assert joint_map_matrix(sorted(set(biped)))[1] == "3ds-max-biped"  # Bip001 is Bip01 renumbered


def test_missing_joint_is_a_named_error_with_the_fix_and_the_fix_works():
    names = [n for n in SMPL22 if n != "left_wrist"] + ["LeftPaw"]
    motion = source_motion(names)
    with pytest.raises(JointMapError, match=r"no input joint for \['left_wrist'\].*LeftPaw.*joint_map="):
        map_joints(motion, names)
    fixed = map_joints(motion, names, joint_map={"left_wrist": "LeftPaw"})
    np.testing.assert_array_equal(fixed[:, SMPL22.index("left_wrist")], motion[:, names.index("LeftPaw")])
    no_chest = [n for n in RIGS["bandai-namco"]["spine3"][0:1]]  # Bandai without Chest: spine2 cannot be derived
    bandai = [n for v in RIGS["bandai-namco"].values() for n in v if n not in no_chest]
    with pytest.raises(JointMapError, match=r"\['spine2', 'spine3'\].*closest known rig: bandai-namco"):
        joint_map_matrix(sorted(set(bandai)))
    with pytest.raises(JointMapError, match="skeleton lacks"):
        joint_map_matrix(SMPL22, joint_map={"tail": "pelvis"})
    with pytest.raises(JointMapError, match="not found"):
        joint_map_matrix(SMPL22, joint_map={"head": "Skull"})
    with pytest.raises(JointMapError, match="equal up to case/separators"):  # two spellings of one name: ambiguous
        joint_map_matrix([n for n in SMPL22 if n != "head"] + ["Head_", "HEAD"])


def test_other_skeletons_map_by_their_own_names():
    kit = get_skeleton("kit")
    perm = np.random.default_rng(3).permutation(kit.num_joints)
    motion = source_motion(kit.joint_names)
    np.testing.assert_array_equal(map_joints(motion[:, perm], [kit.joint_names[p] for p in perm], "kit"), motion)
    with pytest.raises(JointMapError, match="right_heel"):  # SMPL names do not give KIT's heels: an error, not a guess
        map_joints(source_motion(SMPL22), SMPL22, "kit")


def test_feature_extractor_joint_names_map_before_anything_else():
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=32, check_skeleton=False)  # random trajectories per joint
    motions = [source_motion(SMPL22, frames=20, seed=s) for s in (4, 5)]
    perms = [np.random.default_rng(s).permutation(22) for s in (6, 7)]
    shuffled = [m[:, p] for m, p in zip(motions, perms)]
    names = [[SMPL22[k] for k in p] for p in perms]
    expected = fe(motions)["motion_values"]
    np.testing.assert_array_equal(fe(shuffled, joint_names=names)["motion_values"], expected)  # one list per motion
    np.testing.assert_array_equal(fe(shuffled[0], joint_names=names[0])["motion_values"], expected[:1])
    with pytest.raises(JointMapError, match="2 lists for 1 motions|1 motions"):
        fe([shuffled[0]], joint_names=names)
    with pytest.raises(JointMapError, match=r"came with 21 joint names"):
        fe(shuffled[0], joint_names=names[0][:21])
    with pytest.raises(JointMapError, match="needs joint_names"):
        fe(shuffled[0], joint_map={"head": "head"})


# ---------------------------------------------------------------------------
# BVH in, directly: real Bandai files against the converted npz
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ds1():
    index = [json.loads(line) for line in (BANDAI / "ds1_index.jsonl").read_text().splitlines()]
    with np.load(BANDAI / "ds1_h22_20fps.npz") as z:
        joints, offsets, lengths = z["joints"], z["offsets"], z["lengths"]
    clips = {i: joints[offsets[i] : offsets[i] + lengths[i]].astype(np.float32) for i in CLIPS}
    paths = {i: BANDAI / "ds1-bvh" / "data" / f"{index[i]['name']}.bvh" for i in CLIPS}
    return paths, clips


def assert_matches_npz(positions, fps, clip):
    at20 = resample_fps(positions, fps, 20.0, "linear")
    assert at20.shape == clip.shape
    tol = 1e-3 + np.abs(clip) * 2.0**-11  # ~1e-3 m: the npz is float16 (half a unit in the last place)
    assert (np.abs(at20 - clip) <= tol).all(), np.abs(at20 - clip).max()


@needs_bandai
def test_bandai_bvh_maps_onto_smpl22_like_the_converted_npz(ds1):
    paths, clips = ds1
    for i in CLIPS:
        positions, fps, info = motion_for_skeleton(paths[i])
        assert info == {"rig": "bandai-namco", "scale": 0.01, "up_axis": "y"} and fps == 30.0
        assert_matches_npz(positions, fps, clips[i])
    raw = read_bvh(paths[CLIPS[0]])  # the probing route: read_bvh's default (centimetres) passed as a motion
    assert len(raw.joint_names) == 22  # 22 joints, NOT the SMPL-22 ones: joint_Root is not the pelvis
    positions, fps, info = motion_for_skeleton(raw)
    assert info["scale"] == 0.01
    assert_matches_npz(positions, fps, clips[CLIPS[0]])
    positions, _, info = motion_for_skeleton(read_bvh(paths[CLIPS[0]], scale=0.01))  # already metres: kept
    assert info["scale"] == 1.0
    assert_matches_npz(positions, fps, clips[CLIPS[0]])


def mutate_bvh(text: str, factor: float = 1.0, turn: float = 0.0, rename: dict | None = None) -> str:
    """A variant of a BVH file: lengths times ``factor`` (OFFSETs and position channels), the whole body turned
    about X by ``turn`` degrees (a new root above the old one; 90: Y-up -> Z-up), joints renamed."""
    data = parse_bvh_string(text)
    head, _, _ = text.partition("MOTION")
    head = re.sub(r"OFFSET\s+(\S+)\s+(\S+)\s+(\S+)",
                  lambda m: "OFFSET " + " ".join(f"{float(v) * factor:.6f}" for v in m.groups()), head)
    values = data.values.copy()
    h = data.hierarchy
    for j, chans in enumerate(h.channels):
        for c, name in enumerate(chans):
            if name.endswith("position"):
                values[:, h.channel_start[j] + c] *= factor
    if turn:
        body = head.split("\n", 1)[1].replace("ROOT ", "JOINT ", 1)
        head = "HIERARCHY\nROOT ZUp\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n" + body + "}\n"
        values = np.concatenate([np.tile([0.0, turn, 0.0], (len(values), 1)), values], axis=1)
    for old, new in (rename or {}).items():
        head = re.sub(rf"\b{re.escape(old)}\b", new, head)
    rows = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in values)
    return f"{head}MOTION\nFrames: {len(values)}\nFrame Time: {data.frame_time:.8f}\n{rows}\n"


@needs_bandai
def test_millimetre_metre_z_up_and_renamed_variants_give_the_same_motion(ds1, tmp_path):
    paths, clips = ds1
    i = CLIPS[2]
    text = paths[i].read_text()
    reference, fps, _ = motion_for_skeleton(paths[i])
    for name, kwargs, found in (
        ("mm.bvh", dict(factor=10.0), {"scale": 0.001, "up_axis": "y"}),
        ("m.bvh", dict(factor=0.01), {"scale": 1.0, "up_axis": "y"}),
        ("zup.bvh", dict(turn=90.0), {"scale": 0.01, "up_axis": "z"}),
        ("zup_mm.bvh", dict(factor=10.0, turn=90.0), {"scale": 0.001, "up_axis": "z"}),
        ("blender.bvh", dict(rename={"Hand_L": "hand.L", "UpperLeg_R": "UPPERLEG-r"}), {"scale": 0.01}),
    ):
        path = tmp_path / name
        path.write_text(mutate_bvh(text, **kwargs))
        positions, got_fps, info = motion_for_skeleton(path)
        assert {k: info[k] for k in found} == found, name
        np.testing.assert_allclose(positions, reference, atol=2e-4, err_msg=name)
        assert_matches_npz(positions, got_fps, clips[i])
    # overrides win over the detection
    positions, _, info = motion_for_skeleton(tmp_path / "zup.bvh", scale=0.02, up_axis="z")
    assert info["scale"] == 0.02
    np.testing.assert_allclose(positions, reference * 2, atol=4e-4)
    # a missing joint is a named error; the explicit mapping fixes it
    (tmp_path / "paw.bvh").write_text(mutate_bvh(text, rename={"Hand_L": "Paw_L"}))
    with pytest.raises(JointMapError, match=r"no input joint for \['left_wrist'\].*Paw_L"):
        motion_for_skeleton(tmp_path / "paw.bvh")
    positions, _, _ = motion_for_skeleton(tmp_path / "paw.bvh", joint_map={"left_wrist": "Paw_L"})
    np.testing.assert_allclose(positions, reference, atol=1e-5)
    # upside down (head below the hips): an error asking for up_axis, not a silent flip
    (tmp_path / "down.bvh").write_text(mutate_bvh(text, turn=180.0))
    with pytest.raises(ValueError, match="neither \\+Y nor \\+Z.*up_axis="):
        motion_for_skeleton(tmp_path / "down.bvh")
    with pytest.raises(ValueError, match="no such BVH file"):
        motion_for_skeleton(tmp_path / "absent.bvh")


@needs_bandai
def test_pipeline_scores_a_bvh_like_its_converted_npz_clip(ds1, tokenizer):
    from transformers import pipeline

    paths, clips = ds1
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer))).eval()
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=64, fps_mode="linear")
    classify = pipeline("zero-shot-motion-classification", model=model,
                        processor=MotionPatchProcessor(fe, tokenizer))
    for i in CLIPS:
        expected = classify(clips[i], candidate_labels=LABELS)
        for source in (paths[i], str(paths[i]), read_bvh(paths[i]), read_bvh(paths[i], scale=0.01)):
            got = classify(source, candidate_labels=LABELS)
            assert [r["label"] for r in got] == [r["label"] for r in expected]
            np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in expected], atol=1e-4)
    # a batch of BVH inputs, and an array with its joint names, give the same answers
    raw = read_bvh(paths[CLIPS[0]], scale=0.01)
    batch = classify([paths[CLIPS[0]], paths[CLIPS[1]]], candidate_labels=LABELS, batch_size=2)
    named = classify(raw.positions, candidate_labels=LABELS, joint_names=list(raw.joint_names), input_fps=raw.fps)
    np.testing.assert_allclose([r["score"] for r in named], [r["score"] for r in batch[0]], atol=1e-6)
    with pytest.raises(ValueError, match="scale= and up_axis= apply to BVH inputs"):
        classify(clips[CLIPS[0]], candidate_labels=LABELS, scale=0.01)


@needs_bandai
def test_zero_shot_cli_labels_bvh_files_like_the_pipeline(ds1, tokenizer, tmp_path, capsys):
    from motionpatch_training.zero_shot import main
    from transformers import pipeline

    paths, clips = ds1
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer))).eval()
    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64, fps_mode="linear"), tokenizer)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    out = tmp_path / "scores.json"
    files = [str(paths[i]) for i in CLIPS[:2]]
    argv = ["--model", str(tmp_path / "model"), "--candidate-labels", ", ".join(LABELS), "--output", str(out)]
    assert main(argv + sum((["--motion", f] for f in files), [])) == 0
    result = json.loads(out.read_text())
    classify = pipeline("zero-shot-motion-classification", model=model, processor=processor)
    for i, entry in zip(CLIPS, result["files"]):
        expected = classify(clips[i], candidate_labels=LABELS)
        assert [s["label"] for s in entry["scores"]] == [r["label"] for r in expected]
        np.testing.assert_allclose([s["score"] for s in entry["scores"]], [r["score"] for r in expected], atol=1e-4)
    assert Path(files[0]).name in capsys.readouterr().out
    capsys.readouterr()
    # centimetres forced to be read as metres: the skeleton check names the units instead of answering wrong
    assert main(argv + ["--motion", files[0], "--scale", "1.0"]) == 2
    assert "looks like centimetres" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "model"), "--motion", files[0]]) == 2  # no candidate labels: an error
    assert "needs --candidate-labels" in capsys.readouterr().err
