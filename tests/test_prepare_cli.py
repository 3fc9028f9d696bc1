"""``motionpatch-prepare`` end to end (in-process ``main([...])``), including pushes to a faked Hub.

The Hub is replaced at its network boundary only: the ``HfApi`` methods that talk to the server
(``repo_info``, ``create_repo``, ``preupload_lfs_files``, ``create_commit``, ``list_repo_tree``,
``get_paths_info``) and the card's YAML validation request (``RepoCard.validate``). Everything above them
(``DatasetDict.push_to_hub``, ``HfApi.upload_file``, ``DatasetCard.push_to_hub``, the parquet shards)
runs for real; ``HF_HUB_OFFLINE`` is set so that any other request fails instead of reaching out.
"""

from __future__ import annotations

import importlib
import io
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import numpy as np
import pyarrow.parquet as pq
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, RepoUrl
from huggingface_hub import errors as hf_errors
from huggingface_hub.hf_api import CommitInfo
from huggingface_hub.repocard import RepoCard
from motionpatch_processing.cli import build_parser, main
from motionpatch_processing.io import SkippedSamplesWarning, load_prepared

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE = SHARED / "humanml3d-sample"
_http = importlib.import_module(hf_errors.Response.__module__.split(".")[0])  # the HTTP client hub errors wrap


def _response(status: int, url: str):
    return _http.Response(status, request=_http.Request("GET", url))


class FakeHub:
    """Records what would have been sent to the Hub."""

    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.files: dict[tuple[str, str], bytes] = {}
        self.preuploaded: dict[tuple[str, str], bytes] = {}
        self.commits: list[tuple[str, str, list[str]]] = []
        self.validated: list[str] = []

    @staticmethod
    def _bytes(op: CommitOperationAdd) -> bytes:
        src = op.path_or_fileobj
        if isinstance(src, (bytes, bytearray)):
            return bytes(src)
        if isinstance(src, (str, Path)):
            return Path(src).read_bytes()
        src.seek(0)
        return src.read()

    def install(self, monkeypatch) -> FakeHub:
        hub = self

        def repo_info(api, repo_id, *args, **kwargs):
            if repo_id not in hub.repos:
                raise hf_errors.RepositoryNotFoundError("not found", response=_response(404, f"/api/datasets/{repo_id}"))
            return SimpleNamespace(id=repo_id, sha="0" * 40, siblings=[])

        def create_repo(api, repo_id, *args, private=None, repo_type=None, exist_ok=False, **kwargs):
            hub.repos[repo_id] = {"private": private, "repo_type": repo_type}
            return RepoUrl(f"https://huggingface.co/datasets/{repo_id}")

        def preupload_lfs_files(api, repo_id, additions, *args, **kwargs):
            for op in additions:  # the shard's temporary file is deleted right after this call
                hub.preuploaded[(repo_id, op.path_in_repo)] = hub._bytes(op)

        def create_commit(api, repo_id, operations, *args, commit_message="", repo_type=None, **kwargs):
            assert repo_id in hub.repos, f"commit to {repo_id}, which was never created"
            paths = []
            for op in operations:
                if isinstance(op, CommitOperationAdd):
                    key = (repo_id, op.path_in_repo)
                    hub.files[key] = hub.preuploaded.pop(key) if key in hub.preuploaded else hub._bytes(op)
                    paths.append(op.path_in_repo)
            hub.commits.append((repo_id, repo_type, paths))
            return CommitInfo(commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/{'1' * 40}",
                              commit_message=commit_message, commit_description="", oid="1" * 40)

        def list_repo_tree(api, repo_id, path_in_repo=None, *args, **kwargs):
            if path_in_repo:  # a fresh repository has no folder: the Hub answers 404
                raise hf_errors.RemoteEntryNotFoundError(
                    "entry not found", response=_response(404, f"/api/datasets/{repo_id}/tree/main/{path_in_repo}"))
            return iter(())

        def get_paths_info(api, repo_id, *args, **kwargs):
            return []

        def validate(card, repo_type=None):
            hub.validated.append(repo_type)

        for name, fn in (("repo_info", repo_info), ("create_repo", create_repo),
                         ("preupload_lfs_files", preupload_lfs_files), ("create_commit", create_commit),
                         ("list_repo_tree", list_repo_tree), ("get_paths_info", get_paths_info)):
            monkeypatch.setattr(HfApi, name, fn)
        monkeypatch.setattr(RepoCard, "validate", validate)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        return self

    def paths(self, repo_id: str) -> list[str]:
        return sorted(p for r, p in self.files if r == repo_id)


def make_humanml3d_folder(root: Path) -> Path:
    """A tiny folder in HumanML3D's layout (random motions, 3 clips, one segment, one missing id)."""
    rng = np.random.default_rng(0)
    (root / "new_joints").mkdir(parents=True)
    (root / "texts").mkdir()
    for cid, t in (("000001", 40), ("000002", 30), ("000003", 25)):
        m = rng.normal(scale=0.1, size=(t, 22, 3)).astype(np.float32)
        m[..., 1] += 0.9
        np.save(root / "new_joints" / f"{cid}.npy", m)
        (root / "texts" / f"{cid}.txt").write_text("a person waves the left hand.#a/DET#0.0#0.0\nturns.#t#0.5#1.0\n")
    (root / "train.txt").write_text("000001\n000002\n999999\n")
    (root / "val.txt").write_text("000003\n")
    (root / "test.txt").write_text("000003\n")
    return root


def run(argv: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedSamplesWarning)
        return main(argv)


def test_help_lists_every_source(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for source in ("humanml3d", "kit", "bvh", "bandai-namco", "babel", "interhuman", "synthetic"):
        assert source in text
    sub = build_parser()._subparsers._group_actions[0].choices["humanml3d"].format_help()
    for option in ("--root", "--output", "--format", "--statistics", "--mirror", "--push-to-hub", "--private"):
        assert option in sub


def test_cli_humanml3d_sample_end_to_end(tmp_path, capsys):
    if not (SAMPLE / "new_joints" / "000000.npy").exists():
        pytest.skip(f"real data not available: {SAMPLE} is absent (it ships beside the repository, not in it)")
    out = tmp_path / "hml"
    assert run(["humanml3d", "--root", str(SAMPLE), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "humanml3d: 2 samples" in printed and "missing motion file" in printed
    prepared = load_prepared(out)
    assert {s: list(prepared.dataset[s]["id"]) for s in prepared.dataset} == {"train": ["012314"], "test": ["000000"]}
    assert prepared.mean.shape == (22, 3) and prepared.report["counts"] == {"train": 1, "test": 1}
    card = (out / "README.md").read_text()
    n_missing = sum(len((SAMPLE / f).read_text().split()) for f in ("train.txt", "val.txt", "test.txt")) - 2
    assert f"| missing motion file | {n_missing} |" in card
    assert f"motionpatch-prepare humanml3d --root {SAMPLE} --output {out}" in card
    assert "license: other" in card and "Do not share this dataset publicly" in card
    batch = prepared.feature_extractor(max_frames=224)(list(prepared.dataset["test"].with_format("numpy")["motion"]))
    assert batch["motion_values"].shape == (1, 3, 224, 80) and batch["motion_lengths"].tolist() == [116]


def test_cli_generated_folder_mirror_parquet(tmp_path, capsys):
    root = make_humanml3d_folder(tmp_path / "src")
    out = tmp_path / "out"
    assert run(["humanml3d", "--root", str(root), "--output", str(out), "--mirror", "--format", "parquet",
                "--statistics", "all"]) == 0
    prepared = load_prepared(out)
    ids = list(prepared.dataset["train"]["id"])
    assert ids == ["000001", "000001_0.5_1.0", "000002", "000002_0.5_1.0",
                   "M000001", "M000001_0.5_1.0", "M000002", "M000002_0.5_1.0"]
    assert prepared.dataset["train"][4]["captions"] == ["a person waves the right hand."]
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["splits"] == ["train", "validation", "test"] and stats["num_motions"] == 16
    assert prepared.report["mirrored_added"] == 8 and prepared.report["skipped"]["missing motion file"]["count"] == 1
    # 000003 is listed in val.txt and test.txt: kept in both, flagged
    assert prepared.report["remarks"]["id listed in more than one split"]["first_ids"] == ["000003 (validation, test)"]
    assert "mirrored copies added: 8" in capsys.readouterr().out
    # an existing output is not overwritten without --overwrite
    with pytest.raises(SystemExit):
        run(["humanml3d", "--root", str(root), "--output", str(out)])
    assert run(["humanml3d", "--root", str(root), "--output", str(out), "--overwrite"]) == 0


def test_push_refused_without_private(tmp_path, capsys, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    root = make_humanml3d_folder(tmp_path / "src")
    with pytest.raises(SystemExit) as exc:
        main(["humanml3d", "--root", str(root), "--output", str(tmp_path / "out"), "--push-to-hub", "x/y"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "refusing to push humanml3d" in err and "AMASS" in err and "--private" in err
    assert not (tmp_path / "out").exists() and hub.repos == {}  # refused before any work or request


def test_push_private_sends_dataset_files_and_card(tmp_path, capsys, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    root = make_humanml3d_folder(tmp_path / "src")
    out = tmp_path / "out"
    assert run(["humanml3d", "--root", str(root), "--output", str(out), "--push-to-hub", "x/y", "--private"]) == 0
    assert "pushed to https://huggingface.co/datasets/x/y (private)" in capsys.readouterr().out
    assert hub.repos == {"x/y": {"private": True, "repo_type": "dataset"}}
    assert hub.paths("x/y") == [
        "README.md",
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
        "prepare_report.json",
        "skeleton.json",
        "statistics.json",
    ]
    assert all(repo_type == "dataset" for _, repo_type, _ in hub.commits) and hub.validated == ["dataset"]
    train = pq.read_table(io.BytesIO(hub.files[("x/y", "data/train-00000-of-00001.parquet")]))
    assert train.num_rows == 4 and train.column("id").to_pylist() == ["000001", "000001_0.5_1.0", "000002", "000002_0.5_1.0"]
    card = hub.files[("x/y", "README.md")].decode()
    assert card.startswith("---\n") and "pretty_name: HumanML3D (joint positions)" in card
    assert "path: data/train-*" in card and "| train | 4 |" in card
    assert hub.files[("x/y", "skeleton.json")] == (out / "skeleton.json").read_bytes()
    assert json.loads(hub.files[("x/y", "statistics.json")])["splits"] == ["train"]

    # what was sent is a complete prepared dataset: load_prepared("x/y") reads it back (download faked)
    snapshot = tmp_path / "snapshot"
    for (_, path), data in hub.files.items():
        (snapshot / path).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / path).write_bytes(data)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: str(snapshot))
    pulled = load_prepared("x/y")
    assert list(pulled.dataset) == ["train", "validation", "test"] and pulled.report["source"] == "humanml3d"
    np.testing.assert_array_equal(pulled.mean, load_prepared(out).mean)
    np.testing.assert_array_equal(pulled.dataset["train"].with_format("numpy")[1]["motion"],
                                  load_prepared(out).dataset["train"].with_format("numpy")[1]["motion"])


def test_push_public_allowed_for_redistributable_sources(tmp_path, monkeypatch):
    synthetic = pytest.importorskip("motionpatch_processing.synthetic")
    if not hasattr(synthetic, "build_synthetic_dataset_dict"):
        pytest.skip("processing/synthetic.py has no build_synthetic_dataset_dict yet")
    hub = FakeHub().install(monkeypatch)
    out = tmp_path / "syn"
    assert run(["synthetic", "--output", str(out), "--num-train", "3", "--num-validation", "1", "--num-test", "1",
                "--push-to-hub", "me/syn"]) == 0
    assert hub.repos["me/syn"]["private"] is None  # public (the Hub default)
    assert "data/train-00000-of-00001.parquet" in hub.paths("me/syn")
    card = hub.files[("me/syn", "README.md")].decode()
    assert "license: apache-2.0" in card and "synthetic" in card


def test_cli_babel_and_interhuman_generated(tmp_path):
    rng = np.random.default_rng(0)
    babel = tmp_path / "babel"
    (babel / "motions").mkdir(parents=True)
    np.save(babel / "motions" / "7.npy", rng.normal(size=(40, 22, 3)).astype(np.float32))
    ann = {"7": {"feat_p": "a/7.npz", "dur": 2.0, "seq_ann": None, "frame_ann": {"labels": [
        {"proc_label": "walk left", "act_cat": ["walk"], "start_t": 0.0, "end_t": 1.0},
        {"proc_label": "jump", "act_cat": ["jump"], "start_t": 1.0, "end_t": 2.0}]}}}
    (babel / "train.json").write_text(json.dumps(ann))
    assert run(["babel", "--root", str(babel), "--output", str(tmp_path / "b"), "--mirror"]) == 0
    prepared = load_prepared(tmp_path / "b")
    assert prepared.class_names == ["jump", "walk"]
    assert list(prepared.dataset["train"]["id"]) == ["7_0.0_1.0", "7_1.0_2.0", "M7_0.0_1.0", "M7_1.0_2.0"]
    assert prepared.dataset["train"][2]["captions"] == ["walk right"]
    assert "Class names (2, in class-index order): jump, walk." in (tmp_path / "b" / "README.md").read_text()

    inter = tmp_path / "inter"
    for d in ("motions/person1", "motions/person2", "annots"):
        (inter / d).mkdir(parents=True)
    for person in ("person1", "person2"):
        np.save(inter / "motions" / person / "1.npy", rng.normal(size=(30, 22, 3)).astype(np.float32))
    (inter / "annots" / "1.txt").write_text("one person pushes the other with the left hand.\n")
    assert run(["interhuman", "--root", str(inter), "--output", str(tmp_path / "i"), "--mirror"]) == 0
    prepared = load_prepared(tmp_path / "i")
    rows = prepared.dataset["train"].with_format("numpy")
    assert list(rows["id"]) == ["1", "M1"] and rows[0]["motion_a"].shape == (20, 22, 3)
    assert list(rows[1]["captions"]) == ["one person pushes the other with the right hand."]
    assert json.loads((tmp_path / "i" / "statistics.json").read_text())["columns"] == ["motion_a", "motion_b"]
    with pytest.raises(SystemExit) as exc:  # InterHuman is research-only too
        main(["interhuman", "--root", str(inter), "--output", str(tmp_path / "j"), "--push-to-hub", "a/b"])
    assert exc.value.code == 2


def _bandai_files(tmp_path: Path, n: int = 2) -> Path:
    src = SHARED / "bandai-namco" / "ds1-bvh"
    if not (src / "data").is_dir():
        pytest.skip(f"real data not available: {src} is absent (it ships beside the repository, not in it)")
    importlib.import_module("motionpatch_processing.bandai_namco")
    dst = tmp_path / "bandai"
    (dst / "data").mkdir(parents=True)
    (dst / "cfg").mkdir()
    for f in sorted((src / "data").glob("*.bvh"))[:n]:  # a copy in the test's temporary folder only
        for g in (f, f.with_suffix(".json")):
            (dst / "data" / g.name).write_bytes(g.read_bytes())
    for f in (src / "cfg").iterdir():
        (dst / "cfg" / f.name).write_bytes(f.read_bytes())
    return dst


def test_cli_bvh_and_bandai_namco_subcommands(tmp_path):
    root = _bandai_files(tmp_path)
    assert run(["bvh", "--root", str(root / "data"), "--output", str(tmp_path / "bvh"), "--scale", "0.01"]) == 0
    prepared = load_prepared(tmp_path / "bvh")
    assert prepared.report["source"] == "bvh" and prepared.skeleton.num_joints == 22
    assert sum(len(d) for d in prepared.dataset.values()) == 2 and prepared.fps == 20.0

    assert run(["bandai-namco", "--root", str(root), "--output", str(tmp_path / "bn"), "--mirror"]) == 0
    prepared = load_prepared(tmp_path / "bn")
    assert prepared.skeleton.name == "humanml3d" and prepared.report["mirrored_added"] == 2
    rows = [r for d in prepared.dataset.values() for r in d]
    assert len(rows) == 4 and all(r["captions"] for r in rows)
    card = (tmp_path / "bn" / "README.md").read_text()
    assert "license: cc-by-nc-4.0" in card and "derived mechanically from labels" in card


def test_bad_root_is_a_clear_error(tmp_path, capsys):
    assert main(["humanml3d", "--root", str(tmp_path / "absent"), "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "motionpatch-prepare humanml3d: error:" in err and "not a folder" in err
    assert not (tmp_path / "o").exists()
