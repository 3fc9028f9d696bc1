"""Hub-native folders: everything loads from a saved folder with trust_remote_code=True where the package is not
importable, gives the installed package's outputs, and the model card's usage snippet runs as written.

Saves through ``save_atomically`` (training, the converters) are atomic: one killed with SIGKILL mid-write leaves
the previous folder (or none).
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_motions, tiny_config
from training_helpers import make_tiny_text_dir, run_training, subprocess_env, tiny_args

import modeling_motionpatch  # noqa: F401  (registers the Auto classes and the pipeline task)
from modeling_motionpatch import (
    MotionPatchFeatureExtractor,
    MotionPatchInteractionConfig,
    MotionPatchInteractionModel,
    MotionPatchModel,
    MotionPatchProcessor,
)
from modeling_motionpatch.apps.atomic_folder import save_atomically

TASK = "zero-shot-motion-classification"
LABELS = ["walks", "jumps", "kicks with the left leg"]
CAPTIONS = ["a person walks forward", "someone jumps", "a person kicks"]

#: prepended to a subprocess: the package (and its siblings) cannot be imported there
BLOCK_PACKAGE = textwrap.dedent(
    """
    import sys
    BLOCKED = ("modeling_motionpatch", "motionpatch_processing", "motionpatch_training", "motionpatch_hub_cards")
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this process")
    sys.meta_path.insert(0, _Block())
    try:
        import modeling_motionpatch
    except ImportError:
        pass
    else:
        raise SystemExit("the package is still importable")
    """
)


def run_python(code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                            env=subprocess_env(PYTHONPATH=""))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def marked(stdout: str, marker: str):
    """The JSON printed after ``marker`` on its own line."""
    return json.loads(next(line for line in stdout.splitlines() if line.startswith(marker))[len(marker) :])


# ---------------------------------------------------------------------------
# a tiny saved model and interaction model; what the installed package computes on them
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folders(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("remote")
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer))).eval()
    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tokenizer)
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")

    base = tiny_config(vocab_size=len(tokenizer)).to_dict()
    pair_config = MotionPatchInteractionConfig(
        **{k: base[k] for k in ("motion_config", "text_config", "projection_dim")}
    )
    pair_model = MotionPatchInteractionModel(pair_config).eval()
    pair_processor = MotionPatchProcessor(
        MotionPatchFeatureExtractor("humanml3d", max_frames=64, num_persons=2), tokenizer
    )
    pair_model.save_pretrained(root / "interaction")
    pair_processor.save_pretrained(root / "interaction")

    motions = random_motions(3, seed=3)
    pairs = [tuple(random_motions(2, seed=10 + i)) for i in range(3)]
    np.save(root / "motions.npy", np.array(motions, dtype=object), allow_pickle=True)
    np.save(root / "pairs.npy", np.array(pairs, dtype=object), allow_pickle=True)
    (root / "mixamo.bvh").write_text(mixamo_bvh())
    return root, model, processor, pair_model, pair_processor, motions, pairs


def mixamo_bvh(frames: int = 30) -> str:
    """A Mixamo-named BVH in centimetres (the SMPL hierarchy renamed, rest offsets of the synthetic body): the
    pipeline must map it by name, detect the units and read its 30 fps without the package."""
    from motionpatch_processing.synthetic_motion import rest_offsets

    from modeling_motionpatch.apps.joint_maps import RIGS

    skel = modeling_motionpatch.get_skeleton("humanml3d")
    names = ["mixamorig:" + RIGS["mixamo"][n][0] for n in skel.joint_names]
    offsets = rest_offsets() * 100
    kids = [[c for c, p in enumerate(skel.parents) if p == j] for j in range(22)]
    order: list[int] = []

    def joint(j: int) -> str:
        order.append(j)
        kind = "ROOT" if j == 0 else "JOINT"
        chans = "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if j == 0 else "3 Zrotation Xrotation Yrotation"
        inner = "".join(joint(c) for c in kids[j]) or "End Site\n{\nOFFSET 0 5 0\n}\n"
        return f"{kind} {names[j]}\n{{\nOFFSET {' '.join(map(str, offsets[j]))}\nCHANNELS {chans}\n{inner}}}\n"

    text = "HIERARCHY\n" + joint(0)
    t = np.arange(frames) / 30
    rows = [[0, 95, 40 * x, 0, 0, 0] + sum(([20 * np.sin(3 * x * (j + 1)), 0, 0] for j in order[1:]), []) for x in t]
    return text + f"MOTION\nFrames: {frames}\nFrame Time: 0.0333333\n" + "\n".join(" ".join(map(str, r)) for r in rows) + "\n"


REMOTE_SCRIPT = """
import json
import numpy as np, torch
from transformers import AutoFeatureExtractor, AutoModel, AutoProcessor, AutoTokenizer, pipeline

def out(marker, value):
    print(marker + json.dumps(value))

folder, pair_folder = "model", "interaction"
motions = list(np.load("motions.npy", allow_pickle=True))
pairs = [tuple(p) for p in np.load("pairs.npy", allow_pickle=True)]

classify = pipeline(TASK, model=folder, trust_remote_code=True)
out("PIPELINE_CLASS:", type(classify).__module__ + "." + type(classify).__name__)
out("ONE:", classify(motions[0], candidate_labels=LABELS))
out("BATCH:", classify(motions, candidate_labels=LABELS))
try:
    classify("mixamo.bvh", candidate_labels=LABELS)
except ValueError as err:  # the BVH reader is the package's, not the model's code
    out("BVH_ERROR:", str(err))

model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
fe = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
out("CLASSES:", [type(x).__module__ for x in (model, processor, fe)])
inputs = processor(text=CAPTIONS, motions=motions, return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits_per_text
    one = model(**processor(text=CAPTIONS, motions=motions[:1], return_tensors="pt")).logits_per_text
out("LOGITS:", logits.tolist())
out("LOGITS_ONE:", one.tolist())
out("MOTION_VALUES:", fe(motions, return_tensors="np")["motion_values"].reshape(3, -1)[:, ::97].tolist())
out("INPUT_IDS:", tok(CAPTIONS, padding=True)["input_ids"])

pair_model = AutoModel.from_pretrained(pair_folder, trust_remote_code=True).eval()
pair_processor = AutoProcessor.from_pretrained(pair_folder, trust_remote_code=True)
out("PAIR_CLASS:", type(pair_model).__module__ + "." + type(pair_model).__name__)
with torch.no_grad():
    logits = pair_model(**pair_processor(text=CAPTIONS, motions=pairs, return_tensors="pt")).logits_per_text
    one = pair_model(**pair_processor(text=CAPTIONS[:1], motions=pairs[:1], return_tensors="pt")).logits_per_text
out("PAIR_LOGITS:", logits.tolist())
out("PAIR_ONE:", one.tolist())
"""


@pytest.fixture(scope="module")
def remote(folders):
    root = folders[0]
    code = f"TASK, LABELS, CAPTIONS = {TASK!r}, {LABELS!r}, {CAPTIONS!r}\n" + REMOTE_SCRIPT
    return run_python(BLOCK_PACKAGE + code, cwd=root).stdout


def test_saved_config_names_the_pipeline_and_the_folder_holds_its_code(folders):
    root = folders[0]
    config = json.loads((root / "model" / "config.json").read_text())
    assert config["custom_pipelines"] == {
        TASK: {"impl": "pipeline_zero_shot_motion.ZeroShotMotionClassificationPipeline", "pt": ["AutoModel"],
               "type": "multimodal"}
    }
    assert (root / "model" / "pipeline_zero_shot_motion.py").exists()
    for name in ("processor_config.json", "tokenizer.json", "modeling_motionpatch.py", "model.safetensors"):
        assert (root / "model" / name).exists(), name  # the model's save kept the processor's files and vice versa
    assert "custom_pipelines" not in json.loads((root / "interaction" / "config.json").read_text())
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")], "temporary folders left"


#: the model's code, which every saved folder carries (and trust_remote_code=True runs): nothing else
MODEL_CODE = {
    "configuration_motionpatch.py", "modeling_motionpatch.py", "feature_extraction_motionpatch.py",
    "processing_motionpatch.py", "pipeline_zero_shot_motion.py", "skeletons.py", "motion_patches.py",
}
#: lines of Python a saved folder may hold (the model as a reader audits it)
MAX_MODEL_CODE_LINES = 2200


def test_a_saved_folder_holds_the_model_code_and_nothing_else(folders, remote):
    root = folders[0]
    for name in ("model", "interaction"):
        files = {p.name for p in (root / name).glob("*.py")}
        assert files == MODEL_CODE, (name, sorted(files ^ MODEL_CODE))
        lines = sum(len(p.read_text().splitlines()) for p in (root / name).glob("*.py"))
        assert lines <= MAX_MODEL_CODE_LINES, f"{name}: {lines} lines of Python"
    # and it is enough: the subprocess that produced `remote` could not import the package
    assert marked(remote, "CLASSES:") and marked(remote, "PAIR_CLASS:").startswith("transformers_modules.")


def test_remote_code_under_an_older_transformers_says_which_version_to_install(folders):
    """Below the floor (transformers < 5.20 has no ``SubConfigSpec``) loading stops with an ImportError that names
    the version to install, not a bare "cannot import name"."""
    code = BLOCK_PACKAGE + textwrap.dedent(
        """
        import transformers.configuration_utils as cu
        del cu.SubConfigSpec  # what an older transformers lacks
        from transformers import AutoConfig
        try:
            AutoConfig.from_pretrained("model", trust_remote_code=True)
        except ImportError as e:
            print("ERROR:", e)
        """
    )
    out = run_python(code, cwd=folders[0]).stdout
    assert "ERROR: MotionPatch needs transformers>=5.20,<6" in out and "pip install -U" in out, out


def test_pipeline_without_the_package_matches_the_installed_one(folders, remote):
    from transformers import pipeline

    root, *_, motions, _ = folders
    assert marked(remote, "PIPELINE_CLASS:").startswith("transformers_modules.")
    classify = pipeline(TASK, model=str(root / "model"))  # the installed package's pipeline class
    assert type(classify).__module__ == "modeling_motionpatch.pipeline_zero_shot_motion"
    for got, expected in ((marked(remote, "ONE:"), classify(motions[0], candidate_labels=LABELS)),
                          (marked(remote, "BATCH:"), classify(motions, candidate_labels=LABELS))):
        if isinstance(expected[0], dict):
            got, expected = [got], [expected]
        assert len(got) == len(expected) > 0
        for g, e in zip(got, expected):
            assert [r["label"] for r in g] == [r["label"] for r in e]
            np.testing.assert_allclose([r["score"] for r in g], [r["score"] for r in e], rtol=0, atol=1e-6)
    assert len(marked(remote, "BATCH:")) == 3


def test_pipeline_reads_a_bvh_with_the_package_and_says_what_is_missing_without(folders, remote):
    from transformers import pipeline

    from modeling_motionpatch.apps.bvh import motion_for_skeleton

    root = folders[0]
    assert not (root / "model" / "joint_maps.py").exists() and not (root / "model" / "bvh.py").exists()
    error = marked(remote, "BVH_ERROR:")
    assert "needs the motionpatch package" in error and "joint_names=[...]" in error
    classify = pipeline(TASK, model=str(root / "model"))
    positions, fps, info = motion_for_skeleton(root / "mixamo.bvh")
    assert info == {"rig": "mixamo", "scale": 0.01, "up_axis": "y"} and fps == 30.0
    expected = classify(positions, candidate_labels=LABELS, input_fps=fps)
    for got in (classify(str(root / "mixamo.bvh"), candidate_labels=LABELS),):
        assert [r["label"] for r in got] == [r["label"] for r in expected]
        np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in expected], rtol=0, atol=1e-6)


def test_auto_classes_without_the_package_match_the_installed_ones(folders, remote):
    _, model, processor, _, _, motions, _ = folders
    assert all(m.startswith("transformers_modules.") for m in marked(remote, "CLASSES:"))
    with torch.no_grad():
        logits = model(**processor(text=CAPTIONS, motions=motions, return_tensors="pt")).logits_per_text
        one = model(**processor(text=CAPTIONS, motions=motions[:1], return_tensors="pt")).logits_per_text
    np.testing.assert_allclose(marked(remote, "LOGITS:"), logits.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(marked(remote, "LOGITS_ONE:"), one.numpy(), rtol=0, atol=1e-6)
    values = processor.feature_extractor(motions, return_tensors="np")["motion_values"].reshape(3, -1)[:, ::97]
    np.testing.assert_allclose(marked(remote, "MOTION_VALUES:"), values, rtol=0, atol=1e-6)
    assert marked(remote, "INPUT_IDS:") == processor.tokenizer(CAPTIONS, padding=True)["input_ids"]


def test_interaction_model_without_the_package_matches_the_installed_one(folders, remote):
    *_, pair_model, pair_processor, _, pairs = folders
    assert marked(remote, "PAIR_CLASS:").endswith(".MotionPatchInteractionModel")
    with torch.no_grad():
        logits = pair_model(**pair_processor(text=CAPTIONS, motions=pairs, return_tensors="pt")).logits_per_text
        one = pair_model(**pair_processor(text=CAPTIONS[:1], motions=pairs[:1], return_tensors="pt")).logits_per_text
    # float32 logits (scale ~14) computed in another process: 1e-6 was at the edge of the rounding (1.01e-6 seen)
    np.testing.assert_allclose(marked(remote, "PAIR_LOGITS:"), logits.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(marked(remote, "PAIR_ONE:"), one.numpy(), rtol=0, atol=1e-5)


def test_a_task_registered_by_the_package_needs_no_trust_remote_code(folders):
    from transformers import AutoConfig

    root = folders[0]
    assert not hasattr(AutoConfig.from_pretrained(root / "model"), "custom_pipelines")  # registered here
    model = MotionPatchModel.from_pretrained(root / "model")
    assert model.config.to_dict().get("custom_pipelines") is None
    model.save_pretrained(root / "model")  # saving again writes it back
    assert TASK in json.loads((root / "model" / "config.json").read_text())["custom_pipelines"]


def test_push_to_hub_uploads_the_pipeline_code(folders, monkeypatch):
    uploaded = {}

    def fake_upload(self, working_dir, repo_id, files_timestamps, **kwargs):
        uploaded["repo_id"] = repo_id
        uploaded["files"] = sorted(os.listdir(working_dir))
        uploaded["config"] = json.loads(Path(working_dir, "config.json").read_text())

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            return type("Repo", (), {"repo_id": repo_id})()

    from huggingface_hub import ModelCard

    monkeypatch.setattr(MotionPatchModel, "_upload_modified_files", fake_upload)
    monkeypatch.setattr("transformers.utils.hub.hf_api", lambda: FakeApi())
    monkeypatch.setattr("transformers.utils.hub.create_and_tag_model_card", lambda *a, **k: ModelCard("card"))
    folders[1].push_to_hub("me/motionpatch-tiny")
    assert uploaded["repo_id"] == "me/motionpatch-tiny"
    assert "pipeline_zero_shot_motion.py" in uploaded["files"] and "model.safetensors" in uploaded["files"]
    assert TASK in uploaded["config"]["custom_pipelines"]


# ---------------------------------------------------------------------------
# the model card's usage snippet, as rendered in the folders of motionpatch-train and motionpatch-convert-original
# ---------------------------------------------------------------------------
def usage_code(readme: Path) -> str:
    """The first ```python block of the card's "How to use" section, verbatim."""
    text = readme.read_text(encoding="utf-8")
    section = text[text.index("## How to use") :]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match, f"no python block under 'How to use' in {readme}"
    return match.group(1)


@pytest.fixture(scope="module")
def cli_folders(tmp_path_factory, tokenizer_dir):
    root = tmp_path_factory.mktemp("cli")
    text_dir = make_tiny_text_dir(tokenizer_dir, root / "text")
    args = tiny_args(text_dir, root / "run", num_train_epochs=1, synthetic_num_train=16, synthetic_num_validation=4,
                     synthetic_num_test=4, per_device_train_batch_size=4, per_device_eval_batch_size=4)
    result = run_training(args)
    assert result.returncode == 0, result.stderr[-3000:]

    from test_convert import original_parts, random_timm_vit_state_dict

    from modeling_motionpatch.convert_original import main as convert

    sd, *_ = original_parts(random_timm_vit_state_dict(hidden=64, depth=1, grid=(14, 5)), text_hidden=64,
                            text_heads=1)
    torch.save(sd, root / "ckpt.pt")
    rng = np.random.default_rng(0)
    np.save(root / "mean.npy", rng.normal(size=(22, 3)).astype(np.float32))
    np.save(root / "std.npy", rng.uniform(0.5, 1.5, size=(22, 3)).astype(np.float32))
    assert convert(["--checkpoint", str(root / "ckpt.pt"), "--dataset", "humanml3d", "--mean", str(root / "mean.npy"),
                    "--std", str(root / "std.npy"), "--tokenizer", str(tokenizer_dir),
                    "--output", str(root / "converted")]) == 0
    return {"train": root / "run" / "best", "convert": root / "converted"}


SNIPPET_RUNNER = """
import os, runpy
for name, folder in FOLDERS.items():
    os.chdir(os.path.dirname(folder))  # a converted card names its folder, to be replaced by the Hub id
    print("SNIPPET " + name, flush=True)
    runpy.run_path(os.path.join(folder, "usage_snippet.py"), run_name="__main__")
"""


def printed_by_snippet(stdout: str) -> dict[str, list[str]]:
    printed: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        if line.startswith("SNIPPET "):
            printed[line.split()[1]] = []
        elif printed:
            printed[list(printed)[-1]].append(line)
    return printed


def test_card_snippet_runs_as_written_with_and_without_the_package(cli_folders, monkeypatch):
    for folder in cli_folders.values():
        code = usage_code(folder / "README.md")
        assert "trust_remote_code=True" in code and "modeling_motionpatch" not in code
        assert json.loads((folder / "config.json").read_text())["custom_pipelines"][TASK]
        assert (folder / "pipeline_zero_shot_motion.py").exists()
        (folder / "usage_snippet.py").write_text(code, encoding="utf-8")
    runner = f"FOLDERS = {({k: str(v) for k, v in cli_folders.items()})!r}\n" + SNIPPET_RUNNER
    blocked = printed_by_snippet(run_python(BLOCK_PACKAGE + runner, cwd=cli_folders["convert"].parent).stdout)
    output = io.StringIO()
    monkeypatch.chdir(cli_folders["convert"].parent)
    with contextlib.redirect_stdout(output):  # here, with the package installed and imported
        exec(runner, {})
    installed = printed_by_snippet(output.getvalue())
    for name in cli_folders:
        assert len(installed[name]) == len(blocked[name]) == 2, (installed, blocked)
        ranked = [ast.literal_eval(out[0]) for out in (installed[name], blocked[name])]
        assert [r["label"] for r in ranked[0]] == [r["label"] for r in ranked[1]]
        assert sorted(r["label"] for r in ranked[0]) == sorted(["walk forward", "jump", "wave a hand"])
        np.testing.assert_allclose([r["score"] for r in ranked[0]], [r["score"] for r in ranked[1]], atol=1e-6)
        probs = [np.array(ast.literal_eval(out[1])) for out in (installed[name], blocked[name])]
        assert probs[0].shape == (1, 2)
        np.testing.assert_allclose(probs[0], probs[1], rtol=0, atol=1e-6)
        np.testing.assert_allclose(probs[0].sum(-1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------------
# atomic saves (modeling_motionpatch.apps.atomic_folder: what training and the converters save with)
# ---------------------------------------------------------------------------
KILLED_SAVE = """
import sys, threading, time
import modeling_motionpatch
import transformers.modeling_utils
from modeling_motionpatch import MotionPatchConfig, MotionPatchModel
from modeling_motionpatch.apps.atomic_folder import save_atomically

def slow_save_file(*args, **kwargs):  # the config and code are written; the weights hang until the kill
    sys.stdout.write("WRITING_WEIGHTS\\n")  # one write per thread (print writes the newline separately)
    sys.stdout.flush()
    time.sleep(120)

transformers.modeling_utils.safe_save_file = slow_save_file
config = MotionPatchConfig.from_pretrained(sys.argv[1])
saves = [threading.Thread(target=save_atomically, args=(MotionPatchModel(config).save_pretrained, target))
         for target in sys.argv[2:]]
for save in saves:
    save.start()
for save in saves:
    save.join()
"""


def kill_mid_save(config_folder: Path, *targets: Path) -> None:
    """Save new models into ``targets`` in one process and SIGKILL it while their weights are being written."""
    command = [sys.executable, "-c", KILLED_SAVE, str(config_folder), *map(str, targets)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        seen = ""
        while seen.count("WRITING_WEIGHTS") < len(targets):  # every save is inside its weights file
            line = proc.stdout.readline()
            assert line, seen + proc.stderr.read()[-3000:]
            seen += line
        for target in targets:
            temporary = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.tmp-")]
            assert temporary and (temporary[0] / "config.json").exists(), "the save did not write a temporary folder"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_save_killed_mid_write_leaves_the_previous_folder_or_none(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer)))
    model.config.save_pretrained(tmp_path / "config")
    save_atomically(model.save_pretrained, tmp_path / "old")
    (tmp_path / "old" / "README.md").write_text("kept")
    before = {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()}

    kill_mid_save(tmp_path / "config", tmp_path / "new", tmp_path / "old")
    assert not (tmp_path / "new").exists()  # absent, not half-written
    assert {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()} == before  # untouched
    assert MotionPatchModel.from_pretrained(tmp_path / "old").state_dict().keys() == model.state_dict().keys()

    # the next saves remove what the killed process left; an existing folder keeps the files it does not rewrite
    save_atomically(model.save_pretrained, tmp_path / "old")
    save_atomically(model.save_pretrained, tmp_path / "new")
    assert (tmp_path / "old" / "README.md").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "new", "old"]


def test_a_failed_save_keeps_the_previous_folder_and_stale_shards_go(tmp_path, tokenizer, monkeypatch):
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer)))
    save_atomically(model.save_pretrained, tmp_path / "m", max_shard_size="100KB")
    (tmp_path / "plain").mkdir()
    assert (tmp_path / "m").stat().st_mode == (tmp_path / "plain").stat().st_mode  # not a private temporary folder
    (tmp_path / "plain").rmdir()
    shards = sorted(p.name for p in (tmp_path / "m").glob("model-*.safetensors"))
    assert len(shards) > 1
    before = sorted(p.name for p in (tmp_path / "m").iterdir())

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_atomically(model.save_pretrained, tmp_path / "m")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]

    save_atomically(model.save_pretrained, tmp_path / "m")  # one file now: the old shards go, as transformers removes them
    assert not list((tmp_path / "m").glob("model-*.safetensors")) and (tmp_path / "m" / "model.safetensors").exists()
    reloaded = MotionPatchModel.from_pretrained(tmp_path / "m")
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


def test_saving_into_the_working_directory(tmp_path, tokenizer, monkeypatch):
    torch.manual_seed(0)
    model = MotionPatchModel(tiny_config(vocab_size=len(tokenizer)))
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path / "m")
    Path("notes.txt").write_text("mine")
    save_atomically(model.save_pretrained, ".")
    assert Path("config.json").exists() and Path("notes.txt").read_text() == "mine"  # cwd follows the new folder
    assert os.path.samefile(os.getcwd(), tmp_path / "m")
