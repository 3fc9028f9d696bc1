"""``motionpatch-app``: libraries, the cached index, bad uploads, and the page driven by a real headless Chromium."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib", reason="the app renders motions with matplotlib (pip install 'motionpatch[app]')")

from conftest import tiny_config  # noqa: E402

from modeling_motionpatch import get_skeleton  # noqa: E402

ACTIONS = ("walk", "jump", "wave left hand", "kick right leg", "squat", "clap")


def smpl_bvh(frames: int = 40, fps: float = 20.0) -> str:
    """A BVH file of the 22-joint SMPL hierarchy (synthetic rest offsets, metres) that walks forward and waves."""
    from motionpatch_processing.synthetic_motion import rest_offsets

    skel = get_skeleton("humanml3d")
    offsets = rest_offsets()
    kids: dict[int, list[int]] = {}
    for j, p in enumerate(skel.parents):
        kids.setdefault(p, []).append(j)
    order: list[int] = []

    def joint(j: int, depth: int) -> str:
        order.append(j)
        pad = "  " * depth
        kind = "ROOT" if skel.parents[j] < 0 else "JOINT"
        channels = ("CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if kind == "ROOT"
                    else "CHANNELS 3 Zrotation Xrotation Yrotation")
        body = "".join(joint(c, depth + 1) for c in kids.get(j, []))
        if not body:
            body = f"{pad}  End Site\n{pad}  {{\n{pad}    OFFSET 0 0.05 0\n{pad}  }}\n"
        off = " ".join(f"{v:.5f}" for v in offsets[j])
        return f"{pad}{kind} {skel.joint_names[j]}\n{pad}{{\n{pad}  OFFSET {off}\n{pad}  {channels}\n{body}{pad}}}\n"

    hierarchy = "HIERARCHY\n" + joint(0, 0)
    t = np.arange(frames) / fps
    rows = []
    left_shoulder = skel.joint_names.index("left_shoulder") if "left_shoulder" in skel.joint_names else 16
    for k in range(frames):
        values = []
        for j in order:
            if skel.parents[j] < 0:
                values += [0.0, 0.95, 0.6 * t[k], 0.0, 0.0, 0.0]
            elif j == left_shoulder:
                values += [80.0 * np.sin(2 * np.pi * t[k]), 0.0, 0.0]
            else:
                values += [0.0, 0.0, 0.0]
        rows.append(" ".join(f"{v:.4f}" for v in values))
    return hierarchy + f"MOTION\nFrames: {frames}\nFrame Time: {1 / fps:.6f}\n" + "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tokenizer):
    """A tiny model saved to a folder and a library folder of .npy clips (one per action)."""
    from motionpatch_processing.synthetic_motion import generate_motion

    from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchModel, MotionPatchProcessor

    root = tmp_path_factory.mktemp("app")
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer)))
    model.save_pretrained(root / "model")
    MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tokenizer).save_pretrained(root / "model")
    library = root / "library"
    library.mkdir()
    rng = np.random.default_rng(0)
    for action in ACTIONS:
        np.save(library / f"{action.replace(' ', '_')}.npy", generate_motion(action, rng)[0])
    bad = root / "uploads"
    bad.mkdir()
    np.save(bad / "ten_joints.npy", np.zeros((30, 10, 3), np.float32))
    nan = generate_motion("walk", rng)[0].copy()
    nan[5, 3, 1] = np.nan
    np.save(bad / "nan.npy", nan)
    np.save(bad / "three_frames.npy", generate_motion("walk", rng)[0][:3])
    text = smpl_bvh()
    (bad / "wave.bvh").write_text(text)
    (bad / "cut.bvh").write_text(text[: int(len(text) * 0.9)].rsplit(" ", 1)[0] + "\n")
    return root


@pytest.fixture(scope="module")
def app(workspace):
    from motionpatch_training.app import create_app

    return create_app(str(workspace / "model"), str(workspace / "library"), cache_dir=str(workspace / "cache"),
                      progress=False)


def test_search_equals_the_index_and_the_index_is_cached(workspace, app, tmp_path, monkeypatch):
    from motionpatch_training.app import create_app

    from modeling_motionpatch.apps.search_index import MotionSearchIndex

    assert len(app.library) == len(ACTIONS) and sorted(app.library.ids) == sorted(a.replace(" ", "_") for a in ACTIONS)
    assert "embedded the library" in app.notes[-1]
    reference = MotionSearchIndex.from_model(app.model, app.processor, app.library.motions, app.library.ids)
    query = "a person jumps"
    rows, gallery, status = app.search(query, 4)
    expected = reference.search(query, k=4)
    assert [r[2] for r in rows] == expected.ids[0]
    np.testing.assert_allclose([r[1] for r in rows], expected.scores[0].numpy(), atol=1e-4)
    assert len(gallery) == 4 and all(Path(p).suffix == ".gif" and Path(p).stat().st_size > 0 for p, _ in gallery)
    assert "Top 4 of 6" in status
    # the second start reuses the index saved under the cache folder, keyed by both fingerprints
    again = create_app(str(workspace / "model"), str(workspace / "library"), cache_dir=str(workspace / "cache"),
                       progress=False)
    assert "reused the cached index" in again.notes[-1]
    assert torch.equal(again.index.embeddings, app.index.embeddings)
    # a changed library gets a new fingerprint, hence a new index
    changed = workspace / "library2"
    shutil.copytree(workspace / "library", changed)
    (changed / "clap.npy").unlink()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    other = create_app(str(workspace / "model"), str(changed), progress=False)
    assert "embedded the library" in other.notes[-1] and len(other.index) == len(ACTIONS) - 1
    # cached in the user's cache folder by default, never inside the library (nor the package)
    assert all(p.suffix == ".npy" for p in changed.iterdir()), sorted(changed.iterdir())
    assert len(list((tmp_path / "user-cache" / "motionpatch" / "app").glob("index-*"))) == 1
    assert str(tmp_path / "user-cache" / "motionpatch" / "app") in other.notes[-1]


def test_search_says_when_nothing_fits(workspace, tmp_path):
    """With a calibrated model the results carry a match column, and a best hit below the threshold is announced as
    no confident match instead of being shown as an answer."""
    from transformers import AutoModel

    from motionpatch_training.app import create_app

    model = AutoModel.from_pretrained(workspace / "model")
    uncalibrated = create_app(str(workspace / "model"), str(workspace / "library"), cache_dir=str(tmp_path / "a"),
                              progress=False)
    rows, _, status = uncalibrated.search("a person jumps", 3)
    assert [r[-1] for r in rows] == ["", "", ""] and status.startswith("Top 3 of")
    for threshold, expected in ((-1.0, "Top 3 of"), (0.999, "No confident match for 'a person jumps'")):
        model.config.match_threshold = threshold
        model.save_pretrained(tmp_path / f"model{threshold}")
        shutil.copytree(workspace / "model", tmp_path / f"model{threshold}", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("config.json", "model.safetensors"))  # the processor files
        app = create_app(str(tmp_path / f"model{threshold}"), str(workspace / "library"),
                         cache_dir=str(tmp_path / "b"), progress=False)
        rows, _, status = app.search("a person jumps", 3)
        assert expected in status, status
        assert [r[-1] for r in rows] == (["yes"] * 3 if threshold < 0 else ["no"] * 3)


def test_neighbours_and_zero_shot(workspace, app):
    rows, _, status = app.neighbours(None, "jump", 3)
    assert "3 nearest motions to jump" in status
    assert len(rows) == 3 and "jump" not in [r[2] for r in rows]
    emb = app.index.embeddings
    scores = emb @ app.index.get_embedding("jump")
    order = [app.library.ids[i] for i in scores.argsort(descending=True).tolist() if app.library.ids[i] != "jump"]
    assert [r[2] for r in rows] == order[:3]
    scores, patches, gif, status = app.classify(None, "squat", "walks, squats, jumps")
    assert sorted(s[0] for s in scores) == ["jumps", "squats", "walks"]
    assert sum(s[1] for s in scores) == pytest.approx(1.0, abs=1e-5)
    assert patches.size[0] > 80 and Path(gif).suffix == ".gif"
    # a valid BVH upload (22-joint SMPL hierarchy) is read, resampled and classified
    scores, _, _, status = app.classify(str(workspace / "uploads" / "wave.bvh"), None, "walks, waves")
    assert len(scores) == 2 and "wave.bvh" in status
    rows, _, _ = app.neighbours(str(workspace / "uploads" / "wave.bvh"), None, 2)
    assert len(rows) == 2


def test_bad_uploads_show_the_package_error(workspace, app):
    from modeling_motionpatch.apps.bvh import parse_bvh
    from motionpatch_training.app import _guarded

    classify = _guarded(app.classify, (None, None, None))
    up = workspace / "uploads"
    with pytest.raises(ValueError) as cut_err:
        parse_bvh(up / "cut.bvh")
    cases = {
        "ten_joints.npy": "has 10 joints but skeleton &#x27;humanml3d&#x27; has 22",
        "nan.npy": "contain NaN or Inf values",
        "three_frames.npy": "has 3 frames at 20 fps, fewer than min_frames=16",
        "cut.bvh": "truncated",
        "notes.txt": "upload a .bvh file or a .npy joint array",
    }
    (up / "notes.txt").write_text("hello")
    for name, expected in cases.items():
        *outputs, status = classify(str(up / name), None, "walks, jumps")
        assert outputs == [None, None, None]
        assert status.startswith("**Error**") and expected in status, (name, status)
    *_, status = classify(str(up / "cut.bvh"), None, "walks")
    assert str(cut_err.value).splitlines()[0].replace("'", "&#x27;") in status
    *_, status = _guarded(app.search, ([], []))("   ", 3)
    assert "type a description" in status
    *_, status = _guarded(app.neighbours, ([], []))(None, "no-such-id", 3)
    assert "no-such-id" in status and "not an id" in status


def test_library_kinds(tmp_path, app, workspace):
    from motionpatch_training.app import load_library, main

    synthetic = load_library("synthetic", app.processor, synthetic_size=5)
    assert len(synthetic) == 5 and all(c for c in synthetic.captions) and synthetic.skeleton.name == "humanml3d"
    bvh_dir = tmp_path / "bvh"
    bvh_dir.mkdir()
    (bvh_dir / "a.bvh").write_text(smpl_bvh(30))
    (bvh_dir / "b.bvh").write_text(smpl_bvh(50, fps=30.0))
    (bvh_dir / "b.json").write_text('{"content": "wave"}')
    (bvh_dir / "broken.bvh").write_text("HIERARCHY\nROOT x\n{")
    lib = load_library(str(bvh_dir), app.processor)
    assert lib.ids == ["a", "b"] and lib.labels == [[], ["wave"]]
    assert lib.motions[1].shape == (round(50 * 20 / 30), 22, 3)  # resampled to the model's 20 fps
    assert any("skipped 1 of 3" in n and "broken.bvh" in n for n in lib.notes)  # the broken file is counted, not dropped silently
    with pytest.raises(ValueError, match="neither 'synthetic'"):
        load_library(str(tmp_path / "missing"), app.processor)
    assert main(["--model", str(tmp_path / "nope"), "--library", "synthetic"]) == 2


# ---------------------------------------------------------------------------
# the real browser
# ---------------------------------------------------------------------------
def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no headless browser: install Debian's `chromium chromium-driver` (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (pip)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1100"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=opts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_app_in_a_real_browser(workspace, app, tmp_path):
    pytest.importorskip("gradio", reason="the app needs gradio (pip install 'motionpatch[app]')")
    from motionpatch_training.app import build_interface
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from modeling_motionpatch.apps.search_index import MotionSearchIndex

    query = "a person waves the left hand"
    reference = MotionSearchIndex.from_model(app.model, app.processor, app.library.motions, app.library.ids)
    expected_top = reference.search(query, k=1).ids[0][0]

    driver = _browser()
    demo = build_interface(app)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                allowed_paths=[str(app.render_dir)])
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 120)
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#query textarea"))
        box.send_keys(query)
        driver.find_element(By.ID, "search-button").click()
        wait.until(lambda d: "Top 5 of 6" in d.find_element(By.ID, "search-status").text)
        rows = [[c.text.strip() for c in row.find_elements(By.CSS_SELECTOR, "[role=gridcell]")]
                for row in driver.find_elements(By.CSS_SELECTOR, "#search-results [role=row]")]
        rows = [r for r in rows if r]  # data rows (the header row has no grid cells)
        assert len(rows) == 5 and rows[0][:1] == ["1"] and rows[0][2] == expected_top, rows
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-gallery img")) >= 5)
        driver.save_screenshot(str(tmp_path / "search.png"))

        driver.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Zero-shot labels')]").click()
        wait.until(lambda d: d.find_element(By.ID, "zs-upload").is_displayed()
                   and d.find_element(By.ID, "zs-button").is_displayed())
        upload = driver.find_element(By.CSS_SELECTOR, "#zs-upload input[type=file]")
        upload.send_keys(str(workspace / "uploads" / "cut.bvh"))
        # the upload is complete when the file is listed with its size (the name's stem and suffix are separate spans)
        wait.until(lambda d: "cut.bvh" in "".join(d.find_element(By.ID, "zs-upload").text.split())
                   and "B⇣" in "".join(d.find_element(By.ID, "zs-upload").text.split()))
        driver.find_element(By.ID, "zs-button").click()
        wait.until(lambda d: "truncated" in d.find_element(By.ID, "zs-status").text)
        status = driver.find_element(By.ID, "zs-status").text
        assert "BVHError" in status and "cut.bvh" in status
        driver.save_screenshot(str(tmp_path / "upload-error.png"))
        # the app survived: a search still answers
        driver.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Text search')]").click()
        driver.find_element(By.ID, "search-button").click()
        wait.until(lambda d: "Top 5 of 6" in d.find_element(By.ID, "search-status").text)
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        raise
    finally:
        driver.quit()
        demo.close()
    assert (tmp_path / "search.png").stat().st_size > 10_000
    assert (tmp_path / "upload-error.png").stat().st_size > 10_000


# ---------------------------------------------------------------------------
# real Bandai-Namco BVH files: joints by name, label names, captions
# ---------------------------------------------------------------------------
BANDAI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bandai-namco"
BANDAI_CLIPS = (0, 60, 100)


@pytest.fixture(scope="module")
def bandai_folder(tmp_path_factory):
    """Three ds1 clips in the dataset's own layout (data/*.bvh + *.json, cfg/*_label.txt), in a temporary folder."""
    if not (BANDAI / "ds1_h22_20fps.npz").is_file():
        pytest.skip(f"{BANDAI} is absent")
    root = tmp_path_factory.mktemp("bandai") / "ds1-bvh"
    (root / "data").mkdir(parents=True)
    shutil.copytree(BANDAI / "ds1-bvh" / "cfg", root / "cfg")
    index = [json.loads(line) for line in (BANDAI / "ds1_index.jsonl").read_text().splitlines()]
    with np.load(BANDAI / "ds1_h22_20fps.npz") as z:
        clips = {index[i]["name"]: z["joints"][z["offsets"][i] : z["offsets"][i] + z["lengths"][i]].astype(np.float32)
                 for i in BANDAI_CLIPS}
    for i in BANDAI_CLIPS:
        for suffix in (".bvh", ".json"):
            shutil.copy(BANDAI / "ds1-bvh" / "data" / (index[i]["name"] + suffix), root / "data")
    return root, {index[i]["name"]: index[i] for i in BANDAI_CLIPS}, clips


def test_bandai_library_maps_joints_by_name_with_label_names_and_captions(bandai_folder, workspace, tmp_path):
    from motionpatch_training.app import create_app

    root, index, clips = bandai_folder
    bandai_app = create_app(str(workspace / "model"), str(root / "data"), cache_dir=str(tmp_path / "cache"),
                            progress=False)
    lib = bandai_app.library
    assert sorted(lib.ids) == sorted(index) and lib.skeleton.name == "humanml3d"
    assert "joints mapped by name (bandai-namco)" in lib.notes[0] and "scale 0.01, Y up" in lib.notes[0]
    for item_id, labels, captions, motion in zip(lib.ids, lib.labels, lib.captions, lib.motions):
        assert labels == [index[item_id]["content"], index[item_id]["style"]]  # names, not the json's ids
        assert captions == [index[item_id]["caption_template"]]
        assert motion.shape == clips[item_id].shape
        np.testing.assert_allclose(motion, clips[item_id], atol=1e-3 + 2e-3)  # float16 npz of positions up to ~4 m
    assert not bandai_app.notes or "cross-skeleton" not in " ".join(bandai_app.notes)  # the model's own processor
    assert not any(p.name.startswith(".") for p in (root / "data").iterdir())  # no cache inside the library
    rows, _, _ = bandai_app.search("a person bows", 3)
    assert all(r[3] for r in rows) and all(", " in r[4] for r in rows)  # captions and label names in the table


def test_uploaded_bandai_bvh_is_mapped_by_name_like_the_converted_clip(bandai_folder, app):
    from modeling_motionpatch import ZeroShotMotionClassificationPipeline

    root, index, clips = bandai_folder
    name = next(iter(index))
    labels = "walks, bows, jumps"
    scores, _, gif, status = app.classify(str(root / "data" / f"{name}.bvh"), None, labels)
    assert "joints mapped by name (bandai-namco)" in status and "scale 0.01, Y up" in status, status
    expected = ZeroShotMotionClassificationPipeline(model=app.model, processor=app.processor)(
        clips[name], candidate_labels=[x.strip() for x in labels.split(",")]
    )
    assert [s[0] for s in scores] == [r["label"] for r in expected]
    np.testing.assert_allclose([s[1] for s in scores], [r["score"] for r in expected], atol=1e-4)
    assert Path(gif).stat().st_size > 0


def test_interface_shows_label_scores_as_horizontal_bars(app):
    gr = pytest.importorskip("gradio", reason="the app needs gradio (pip install 'motionpatch[app]')")
    from motionpatch_training.app import build_interface

    demo = build_interface(app)
    scores = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "zs-scores"]
    assert len(scores) == 1 and isinstance(scores[0], gr.Label)  # one bar per label, names beside the bars
    handler = next(fn for fn in demo.fns.values() if any(getattr(o, "elem_id", None) == "zs-scores" for o in fn.outputs))
    value, *_ = handler.fn(None, "squat", "walks, squats, jumps")
    assert isinstance(value, dict) and sorted(value) == ["jumps", "squats", "walks"]
    assert sum(value.values()) == pytest.approx(1.0, abs=1e-5)
